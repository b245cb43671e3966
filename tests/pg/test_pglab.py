"""Smoke test of tests/lib/pglab.py: a private PostgreSQL with TLS starts on a free port,
takes a role and a database, accepts that role over TCP with its password and
sslmode=verify-full against the lab's CA (password from a PGPASSFILE, not argv), stops
(connections refused), starts again on the same port with the data intact, and leaves
nothing behind."""

import os
import socket
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lib'))
import pglab  # noqa: E402

N = 0


def ok(cond, what):
    global N
    N += 1
    print('%s %d - %s' % ('ok' if cond else 'not ok', N, what))
    return cond


def client_psql(pg, conninfo, sql, passfile):
    env = {k: v for k, v in os.environ.items() if not k.startswith('PG')}
    env['PGPASSFILE'] = passfile
    return subprocess.run([os.path.join(pg.bindir, 'psql'), '-X', '-A', '-t', '-d', conninfo,
                           '-c', sql], capture_output=True, env=env, timeout=60)


def port_open(port):
    with socket.socket() as s:
        return s.connect_ex((pglab.HOST, port)) == 0


def main():
    why = pglab.need_pg()
    if why:
        print('1..0 # SKIP ' + why)
        return 77
    with pglab.PgLab(tls=True) as pg:
        ok(pg.port != pglab.SYSTEM_PORT and pg.running(), 'running on a port other than 5432')
        ok(os.path.exists(os.path.join(pg.socket_dir, '.s.PGSQL.%d' % pg.port)),
           'unix socket in the lab folder')
        pg.create_role('smoke', password="pa'ss:w\\rd")
        pg.create_database('smokedb', owner='smoke')
        passfile = pg.write_passfile(os.path.join(pg.dir, 'pgpass'), 'smoke', "pa'ss:w\\rd")
        ci = pg.conninfo('smoke', 'smokedb', sslmode='verify-full')
        p = client_psql(pg, ci, 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()',
                        passfile)
        ok(p.returncode == 0 and p.stdout.strip() == b't',
           'verify-full TLS login with the password from PGPASSFILE: %r %r'
           % (p.stdout, p.stderr))
        p = client_psql(pg, pg.conninfo('smoke', 'smokedb', host='localhost',
                                        sslmode='verify-full'), 'SELECT 1', passfile)
        ok(p.returncode == 0, 'certificate also valid for localhost: %r' % p.stderr)
        bad = pg.conninfo('smoke', 'smokedb', password='wrong', sslmode='require')
        p = client_psql(pg, bad, 'SELECT 1', os.devnull)
        ok(p.returncode != 0 and b'password authentication failed' in p.stderr,
           'a wrong password is refused (scram over TCP)')
        pg.psql('CREATE TABLE t (x int); INSERT INTO t VALUES (42);', db='smokedb')
        path = pg.write_conninfo(os.path.join(pg.dir, 'db.conf'), 'smoke', 'smokedb',
                                 password='x')
        ok(path.startswith('pg:') and os.stat(path[3:]).st_mode & 0o777 == 0o600,
           'write_conninfo: pg: file of mode 0600')
        ok(pg.uri('smoke', 'smokedb', sslmode='verify-full').startswith(
            'postgresql://smoke@127.0.0.1:%d/smokedb?sslmode=verify-full&sslrootcert=' % pg.port),
           'uri')
        port, pid = pg.port, pg.pid
        pg.stop()
        ok(not pg.running() and not port_open(port), 'stopped: the port refuses connections')
        try:
            os.kill(pid, 0)
            gone = False
        except ProcessLookupError:
            gone = True
        ok(gone, 'the postmaster pid is gone')
        pg.start()
        ok(pg.port == port and pg.running(), 'started again on the same port')
        ok(pg.psql('SELECT x FROM t', db='smokedb') == '42', 'data survives the restart')
        folder = pg.dir
    ok(not os.path.exists(folder), 'the lab folder is removed')
    print('1..%d' % N)
    return 0


if __name__ == '__main__':
    sys.exit(main())
