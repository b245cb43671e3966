"""Drives test-relaydb-pg (the relaydb plugin on PostgreSQL through the real libsasl2):
starts a pglab server with TLS, makes the schema and logins as the owner role, grants the
plugin's reader role what `relay-admin grants` prints for the plugin, writes the pg: file
(verify-full against the lab's CA, the reader's password inside, mode 0600), and stops and
starts the server when the C program asks. TAP passes through."""

import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lib'))
import pglab  # noqa: E402


def grants(pg, role):
    relay_admin = os.environ.get('RELAY_ADMIN')
    p = subprocess.run([relay_admin, 'grants', '--plugin', role], capture_output=True,
                       text=True, timeout=30)
    if p.returncode != 0:
        raise RuntimeError('relay-admin grants: ' + p.stderr)
    return p.stdout


def main():
    why = pglab.need_pg()
    if why:
        print('1..0 # SKIP ' + why)
        return 77
    prog, plugin, sysdir = sys.argv[1:4]
    with pglab.PgLab(tls=True) as pg:
        pg.create_role('relayadmin', password='admin-pw')
        pg.create_role('smtpd_reader', password='reader-pw')
        pg.create_database('relay', owner='relayadmin')
        passfile = pg.write_passfile(os.path.join(pg.dir, 'pgpass'), 'relayadmin', 'admin-pw')
        env = {k: v for k, v in os.environ.items() if not k.startswith('PG')}
        env['PGPASSFILE'] = passfile
        admin = pg.uri('relayadmin', 'relay', sslmode='verify-full')
        p = subprocess.run([prog, 'fixture', admin], env=env, capture_output=True, text=True,
                           timeout=60)
        if p.returncode != 0:
            print('Bail out! fixture: ' + p.stderr)
            return 1
        pg.psql(grants(pg, 'smtpd_reader'), db='relay', user='relayadmin')
        name = pg.write_conninfo(os.path.join(pg.dir, 'relaydb.conf'), 'smtpd_reader', 'relay',
                                 password='reader-pw', sslmode='verify-full')
        other = os.path.join(pg.dir, 'other-ca')
        os.makedirs(other)
        subprocess.run(['openssl', 'req', '-x509', '-new', '-nodes', '-newkey', 'ec',
                        '-pkeyopt', 'ec_paramgen_curve:prime256v1',
                        '-keyout', os.path.join(other, 'ca.key'),
                        '-out', os.path.join(other, 'ca.pem'), '-days', '2',
                        '-subj', '/CN=another CA'], check=True, capture_output=True)
        badca = pg.write_conninfo(os.path.join(pg.dir, 'badca.conf'), 'smtpd_reader', 'relay',
                                  password='reader-pw', sslmode='verify-full',
                                  sslrootcert=os.path.join(other, 'ca.pem'))
        # the plugin never sees the owner's passfile
        penv = {k: v for k, v in env.items() if k != 'PGPASSFILE'}
        penv['PGPASSFILE'] = passfile  # admin name in the test process (relay-admin's side)
        proc = subprocess.Popen([prog, 'run', plugin, sysdir, name, admin, badca],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                env=penv)
        for line in proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            if line.startswith('# stop'):
                pg.stop()
                proc.stdin.write('down\n')
                proc.stdin.flush()
            elif line.startswith('# start'):
                pg.start()
                proc.stdin.write('up\n')
                proc.stdin.flush()
        return proc.wait(60)


if __name__ == '__main__':
    sys.exit(main())
