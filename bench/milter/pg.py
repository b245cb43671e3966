#!/usr/bin/python3
"""bench/milter/pg.py — relay-milter admission on a shared PostgreSQL state database: 50
concurrent milter sessions spread over two relay-milters (two nodes) on one private
PostgreSQL 15 server, against one relay-milter on its SQLite state file, interleaved in
one run (issue 10).

    bench/milter/pg.py [BUILD_DIR] [--seconds S] [--rounds R]   (default: build, 10, 3)

Needs root (pglab runs the server as the postgres user) and the PostgreSQL state engine.
Never part of `meson test`.

Set-up, thrown away afterwards: one users database (SQLite: the milter holds the policy in
memory, so its engine does not matter here) with the login `bench`, default limits far above
what the run sends on messages, recipients and bytes — so every MAIL and every RCPT is one
admission in the database (on PostgreSQL: one transaction serialised per login with a
reservation), and every end of message a commit; a pglab server with a role and database
for the state (conninfo file 0600, password never in argv), made by `relay-admin
--state-db pg:FILE init`; a SQLite state file for the baseline.

Load: bench/milter/milter-load (the milter protocol as Postfix speaks it: connect … MAIL,
3 × RCPT, headers, body, end of message). PostgreSQL: two milter-load processes at once,
25 sessions each, one per milter; SQLite: one milter-load with 50 sessions. All sessions use
the one login, the worst case for exact admission (every check waits for the login's lock).
Prints per-round and median messages/s and admission checks/s (1 MAIL + 3 RCPT per message).
"""
import argparse
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(TOP, 'tests', 'lib'))
import pglab  # noqa: E402

CHECKS_PER_MESSAGE = 4   # MAIL + 3 RCPT, as milter-load sends


class Milter:
    def __init__(self, binary, folder, name, users_db, state_db):
        self.sock = os.path.join(folder, name + '.sock')
        self.conf = os.path.join(folder, name + '.conf')
        self.logfile = os.path.join(folder, name + '.log')
        with open(self.conf, 'w') as f:
            f.write('socket = unix:%s\nusers_db = %s\nstate_db = %s\nlog = stderr\n'
                    'log_level = warning\n' % (self.sock, users_db, state_db))
        with open(self.logfile, 'ab') as log:
            self.proc = subprocess.Popen([binary, '-f', '-c', self.conf], stdout=log,
                                         stderr=log, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while not os.path.exists(self.sock):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                with open(self.logfile) as f:
                    raise SystemExit('bench: relay-milter did not start:\n' + f.read()[-2000:])
            time.sleep(0.05)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def run(argv, input=None):
    p = subprocess.run(argv, input=input.encode() if input else None, capture_output=True,
                       timeout=120)
    if p.returncode != 0:
        raise SystemExit('bench: %s failed (exit %d): %s%s' % (
            ' '.join(argv[:5]), p.returncode, p.stdout.decode(errors='replace'),
            p.stderr.decode(errors='replace')))
    return p.stdout.decode()


def load(binary, socks, sessions, seconds):
    """milter-load on each socket at once, `sessions` split evenly -> (messages/s, failed)."""
    each = sessions // len(socks)
    procs = [subprocess.Popen([binary, '--socket', s, '--sessions', str(each), '--seconds',
                               str(seconds)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for s in socks]
    rate, failed = 0.0, 0
    for p in procs:
        out, err = p.communicate(timeout=seconds + 120)
        m = re.search(r'(\d+) failed, (\d+) messages/s', out.decode())
        if not m:
            raise SystemExit('bench: milter-load printed no rate: %s%s' % (out, err))
        failed += int(m.group(1))
        rate += float(m.group(2))
    return rate, failed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('build', nargs='?', default='build')
    ap.add_argument('--seconds', type=int, default=10)
    ap.add_argument('--rounds', type=int, default=3)
    args = ap.parse_args()
    build = os.path.abspath(args.build)
    why = pglab.need_pg()
    if why:
        print('bench: %s' % why, file=sys.stderr)
        return 2
    admin = os.path.join(build, 'admin', 'relay-admin')
    milter = os.path.join(build, 'milter', 'relay-milter')
    loader = os.path.join(build, 'bench', 'milter', 'milter-load')
    tmp = tempfile.mkdtemp(prefix='bench-milter-pg-')
    milters = []
    try:
        with pglab.PgLab(prefix='bench-milter-pglab-') as pg:
            users = os.path.join(tmp, 'users.db')
            sqlite_state = os.path.join(tmp, 'state.db')
            run([admin, '--db', users, '--state-db', sqlite_state, 'init'])
            run([admin, '--db', users, 'user', 'add', 'bench', '--password-stdin', '--sender',
                 'bench@example.com'], input=secrets.token_urlsafe(24) + '\n')
            run([admin, '--db', users, 'limit', 'set', '--default', '--messages',
                 '100000000/1h', '--recipients', '1000000000/1h', '--bytes', '1T/1d'])
            dbpw = secrets.token_urlsafe(24)
            pg.create_role('relay', password=dbpw)
            pg.create_database('relay_state', owner='relay')
            state = pg.write_conninfo(os.path.join(tmp, 'state.pg'), 'relay', 'relay_state',
                                      password=dbpw)
            run([admin, '--db', users, '--state-db', state, 'init'])
            base = Milter(milter, tmp, 'sqlite', users, sqlite_state)
            milters.append(base)
            a = Milter(milter, tmp, 'node-a', users, state)
            milters.append(a)
            b = Milter(milter, tmp, 'node-b', users, state)
            milters.append(b)
            print('relay-milter admission, 50 concurrent sessions, %d s per round, %d cores, '
                  'PostgreSQL %s' % (args.seconds, os.cpu_count(),
                                     pg.psql('SHOW server_version')))
            rates = {'sqlite': [], 'pg': []}
            failures = 0
            for r in range(args.rounds):
                for name, socks in (('sqlite', [base.sock]), ('pg', [a.sock, b.sock])):
                    rate, failed = load(loader, socks, 50, args.seconds)
                    failures += failed
                    rates[name].append(rate)
                    print('  round %d  %-34s %7.0f msg/s  %8.0f checks/s%s' % (
                        r + 1, 'one milter, SQLite state' if name == 'sqlite'
                        else 'two milters, one PostgreSQL', rate, rate * CHECKS_PER_MESSAGE,
                        '  (%d failed)' % failed if failed else ''))
            med = {k: statistics.median(v) for k, v in rates.items()}
            print('\n| state database | messages/s (median) | admission checks/s |\n|---|---:|---:|')
            print('| SQLite, one relay-milter, 50 sessions | %.0f | %.0f |'
                  % (med['sqlite'], med['sqlite'] * CHECKS_PER_MESSAGE))
            print('| PostgreSQL, two relay-milters, 25 + 25 sessions | %.0f | %.0f |'
                  % (med['pg'], med['pg'] * CHECKS_PER_MESSAGE))
            print('\nPostgreSQL / SQLite: %.2f' % (med['pg'] / med['sqlite']))
            audited = pg.psql('SELECT count(*) FROM audit', db='relay_state')
            print('audit records on PostgreSQL: %s' % audited)
            return 1 if failures else 0
    finally:
        for m in milters:
            m.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
