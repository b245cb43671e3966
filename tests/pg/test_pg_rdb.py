"""The users data layer on a real PostgreSQL (tests/pg/test-pg-rdb.c), through pglab:
every operation (ops), a handle that lives through a server stop and start (reconnect),
and the pg: conninfo file rules (a group-readable file is refused, a 0600 one works, the
password never on a command line). TAP on stdout: the C program's lines, renumbered."""

import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lib'))
import pglab  # noqa: E402

N = 0
FAILED = 0


def ok(cond, what):
    global N, FAILED
    N += 1
    FAILED += 0 if cond else 1
    print('%s %d - %s' % ('ok' if cond else 'not ok', N, what), flush=True)
    return cond


def relay_tap(out, prefix):
    """Re-emits the C program's TAP lines under our numbering."""
    for line in out.splitlines():
        if line.startswith('ok ') or line.startswith('not ok '):
            good = line.startswith('ok ')
            ok(good, prefix + line.split(' - ', 1)[-1])
        elif line.startswith('#'):
            print(line)


def main():
    why = pglab.need_pg()
    if why:
        print('1..0 # SKIP ' + why)
        return 77
    prog = os.environ['TEST_PG_RDB']
    with pglab.PgLab() as pg:
        pg.create_role('relayadmin', password='adm-pw')
        pg.create_database('relay', owner='relayadmin')
        passfile = pg.write_passfile(os.path.join(pg.dir, 'pgpass'), 'relayadmin', 'adm-pw')
        env = {k: v for k, v in os.environ.items() if not k.startswith('PG')}
        env['PGPASSFILE'] = passfile
        uri = pg.uri('relayadmin', 'relay')

        p = subprocess.run([prog, 'ops', uri], capture_output=True, text=True, env=env,
                           timeout=90)
        relay_tap(p.stdout, 'ops: ')
        ok(p.returncode == 0, 'ops exit status %d %s' % (p.returncode, p.stderr[-500:]))

        proc = subprocess.Popen([prog, 'reconnect', uri], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True, env=env)
        out = []
        for line in proc.stdout:
            out.append(line)
            if line.startswith('# ready'):
                pg.stop()
                proc.stdin.write('down\n')
                proc.stdin.flush()
            elif line.startswith('# waiting'):
                pg.start()
                proc.stdin.write('up\n')
                proc.stdin.flush()
        proc.wait(60)
        relay_tap(''.join(out), 'reconnect: ')
        ok(proc.returncode == 0, 'reconnect exit status %d' % proc.returncode)

        # pg: files: the conninfo (with the password) in a file only its owner reads
        conf = os.path.join(pg.dir, 'users.conf')
        name = pg.write_conninfo(conf, 'relayadmin', 'relay', password='adm-pw', mode=0o640)
        p = subprocess.run([prog, 'open', name], capture_output=True, text=True,
                           env={k: v for k, v in env.items() if k != 'PGPASSFILE'}, timeout=30)
        ok(p.returncode != 0 and 'readable or writable by group or others' in p.stdout,
           'a group-readable pg: file is refused: %s' % p.stdout.strip())
        os.chmod(conf, 0o600)
        p = subprocess.run([prog, 'open', name], capture_output=True, text=True,
                           env={k: v for k, v in env.items() if k != 'PGPASSFILE'}, timeout=30)
        ok(p.returncode == 0, 'a 0600 pg: file with the password opens: %s' % p.stdout.strip())
        # the attacks on the name: a link another user planted in a folder everyone may
        # write, pointing root's relay-admin at a file of that user's choosing; a FIFO
        # that would hang the reader (an smtpd process) in open()
        shared = os.path.join(pg.dir, 'shared')
        os.mkdir(shared)
        os.chmod(shared, 0o1777)
        os.symlink(conf, os.path.join(shared, 'users.conf'))
        p = subprocess.run([prog, 'open', 'pg:' + os.path.join(shared, 'users.conf')],
                           capture_output=True, text=True,
                           env={k: v for k, v in env.items() if k != 'PGPASSFILE'}, timeout=30)
        ok(p.returncode != 0 and 'symbolic link' in p.stdout,
           'a pg: name that is a symbolic link is refused: %s' % p.stdout.strip())
        fifo = os.path.join(pg.dir, 'fifo.conf')
        os.mkfifo(fifo, 0o600)
        try:
            p = subprocess.run([prog, 'open', 'pg:' + fifo], capture_output=True, text=True,
                               timeout=30)
            ok(p.returncode != 0 and 'not a regular file' in p.stdout,
               'a FIFO as pg: file is refused at once: %s' % p.stdout.strip())
        except subprocess.TimeoutExpired:
            ok(False, 'a FIFO as pg: file hung the reader')
        p = subprocess.run([prog, 'open', 'pg:' + os.path.join(pg.dir, 'missing.conf')],
                           capture_output=True, text=True, timeout=30)
        ok(p.returncode != 0 and 'No such file' in p.stdout, 'a missing pg: file: %s'
           % p.stdout.strip())
        p = subprocess.run([prog, 'open', pg.uri('relayadmin', 'relay', password='wrong')],
                           capture_output=True, text=True, timeout=30)
        ok(p.returncode != 0 and 'adm-pw' not in p.stdout and 'wrong' not in p.stdout,
           'a wrong password is refused, and the message shows no password: %s'
           % p.stdout.strip())
    print('1..%d' % N)
    return 1 if FAILED else 0


if __name__ == '__main__':
    sys.exit(main())
