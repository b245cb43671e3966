#!/usr/bin/python3
"""bench/auth/pg.py — AUTH PLAIN through the real libsasl2 with the users on PostgreSQL:
relaydb against Debian's own `sql` auxprop plugin (libsasl2-modules-sql, sql_engine: pgsql)
on the same private PostgreSQL 15 server, in the same run as the SQLite backends (issue 10).

    bench/auth/pg.py BUILD_DIR [relay-bench-auth options: --seconds S --rounds N ...]

(Normally started by `bench/auth/run --pg`, which makes the release build first.) Needs
root (pglab runs the server as the postgres user) and the build's PostgreSQL engine.

Set-up, all thrown away afterwards: a pglab server (tests/lib/pglab.py) on a free loopback
port; a role `relay` with a generated password and a database `relay_users`; relaydb's
schema made by `relay-admin --db pg:FILE init` (FILE: the conninfo with the password, 0600)
and the login alice made by `relay-admin user add --password-stdin`; for the sql plugin a
table with alice's password in cleartext (what that plugin needs), read by the same role
over TCP with the password in its settings file (0600). relay-bench-auth then runs every
backend interleaved and reads alice's password on its stdin. Passwords never go to argv.
"""
import os
import secrets
import shutil
import subprocess
import sys
import tempfile

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(TOP, 'tests', 'lib'))
import pglab  # noqa: E402


def run(argv, input=None):
    p = subprocess.run(argv, input=input.encode() if input else None, capture_output=True,
                       timeout=120)
    if p.returncode != 0:
        raise SystemExit('bench: %s failed (exit %d): %s%s' % (
            ' '.join(argv[:4]), p.returncode, p.stdout.decode(errors='replace'),
            p.stderr.decode(errors='replace')))
    return p.stdout.decode()


def private_file(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, 'w') as f:
        f.write(text)


def main(argv):
    if len(argv) < 2:
        print(__doc__.split('\n\n')[1], file=sys.stderr)
        return 2
    build, rest = os.path.abspath(argv[1]), argv[2:]
    why = pglab.need_pg()
    if why:
        print('bench: %s' % why, file=sys.stderr)
        return 2
    admin = os.path.join(build, 'admin', 'relay-admin')
    bench = os.path.join(build, 'bench', 'auth', 'relay-bench-auth')
    plugin = os.path.join(build, 'plugin', 'librelaydb.so')
    sysdir = run(['pkg-config', '--variable=libdir', 'libsasl2']).strip() + '/sasl2'
    tmp = tempfile.mkdtemp(prefix='bench-auth-pg-')
    try:
        # log_connections: how many connections each plugin opened, read back at the end
        with pglab.PgLab(prefix='bench-auth-pglab-', settings={'log_connections': 'on'}) as pg:
            dbpw = secrets.token_urlsafe(24)
            alice = secrets.token_urlsafe(24)
            pg.create_role('relay', password=dbpw)
            pg.create_database('relay_users', owner='relay')
            users = pg.write_conninfo(os.path.join(tmp, 'users.pg'), 'relay', 'relay_users',
                                      password=dbpw)
            run([admin, '--db', users, 'init'])
            run([admin, '--db', users, 'user', 'add', 'alice', '--password-stdin'],
                input=alice + '\n')
            pg.psql('CREATE TABLE sql_users (username text PRIMARY KEY, password text);\n'
                    'INSERT INTO sql_users VALUES (\'alice\', %s);\n'
                    'GRANT SELECT ON sql_users TO relay;\n' % pglab.quote_literal(alice),
                    db='relay_users')
            sqlconf = os.path.join(tmp, 'sql.conf')
            # the how-to's configuration of Debian's plugin, on the same server and role
            private_file(sqlconf, 'sql_engine: pgsql\nsql_hostnames: %s:%d\nsql_user: relay\n'
                         'sql_passwd: %s\nsql_database: relay_users\n'
                         'sql_select: SELECT password FROM sql_users WHERE username = \'%%u\'\n'
                         % (pg.host, pg.port, dbpw))
            p = subprocess.run([bench, plugin, sysdir, '--pg-relaydb', users, '--pg-sql',
                                sqlconf] + rest, input=(alice + '\n').encode())
            ours = [line for line in pg.log().splitlines()
                    if 'connection authorized: user=relay ' in line]
            relaydb = sum('application_name=smtp-relay' in line for line in ours)
            print('PostgreSQL connections opened: smtp-relay %d (relay-admin twice, then '
                  'relaydb once per process: the bench forks one per backend and round), '
                  'sql pgsql %d (a new one per lookup)' % (relaydb, len(ours) - relaydb))
            return p.returncode
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main(sys.argv))
