#!/usr/bin/python3
"""bench/milter/e2e.py — end to end through a real Postfix: the relay with relaydb AUTH and
relay-milter against the same relay without the milter, in the same run, same harness.

    bench/milter/e2e.py [BUILD_DIR] [--seconds S] [--clients N] [--rounds R]

Builds a relaylab (tests/e2e/relaylab.py): one upstream, relay A with the milter (generous
default limits, so the limiter's whole path runs) and relay B without it. Each client
thread repeats a full submission — connect, EHLO, STARTTLS, AUTH PLAIN, MAIL, RCPT, DATA,
QUIT — for S seconds; rounds alternate B, A, B, A ... so drift on a shared machine hits both.
Prints messages/s for each and the ratio A/B (budget in DESIGN.md: >= 0.95). Needs root.
Never part of `meson test`.
"""
import argparse
import os
import secrets
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', '..', 'tests', 'e2e'))
import relaylab  # noqa: E402

MESSAGE = (b'From: bench@example.org\r\nTo: rcpt@example.net\r\nSubject: bench\r\n\r\n'
           b'benchmark message through the relay\r\n')


def run(relay, password, seconds, clients):
    count = [0] * clients
    errors = [0] * clients
    stop = time.monotonic() + seconds

    def client(i):
        while time.monotonic() < stop:
            try:
                with relay.smtp() as s:
                    s.login('bench', password)
                    s.sendmail('bench@example.org', ['rcpt@example.net'], MESSAGE)
                count[i] += 1
            except Exception:  # noqa: BLE001 — a benchmark counts failures, it does not stop
                errors[i] += 1

    t0 = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(count), sum(errors), time.monotonic() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('build', nargs='?', default=os.path.join(HERE, '..', '..', 'build'))
    ap.add_argument('--seconds', type=float, default=15)
    ap.add_argument('--clients', type=int, default=8)
    ap.add_argument('--rounds', type=int, default=2)
    a = ap.parse_args()
    why = relaylab.need_root()
    if why:
        print('e2e bench: ' + why, file=sys.stderr)
        return 2
    with relaylab.Lab(build_root=os.path.abspath(a.build)) as lab:
        up = lab.upstream()
        with_milter = lab.relay(up, milter=True, milter_conf='log_level = warning\n')
        without = lab.relay(up)
        pw = secrets.token_urlsafe(24)
        for r in (with_milter, without):
            r.add_user('bench', pw)
            r.admin('sender', 'add', 'bench', 'bench@example.org')
        with_milter.admin('limit', 'set', '--default', '--messages', '100000000/1h',
                          '--recipients', '100000000/1h', '--bytes', '1T/1d')
        totals = {'without': [0, 0, 0.0], 'with': [0, 0, 0.0]}
        for rnd in range(a.rounds):
            for name, relay in (('without', without), ('with', with_milter)):
                n, err, dt = run(relay, pw, a.seconds, a.clients)
                totals[name][0] += n
                totals[name][1] += err
                totals[name][2] += dt
                print('round %d %-7s milter: %5d messages, %d errors, %.0f messages/s'
                      % (rnd + 1, name, n, err, n / dt), flush=True)
        rate = {k: v[0] / v[2] for k, v in totals.items()}
        print('end to end, %d clients, %d x %.0f s each: without milter %.1f messages/s, '
              'with relay-milter %.1f messages/s, ratio %.3f'
              % (a.clients, a.rounds, a.seconds, rate['without'], rate['with'],
                 rate['with'] / rate['without']))
        return 0 if totals['with'][1] == 0 and totals['without'][1] == 0 else 1


if __name__ == '__main__':
    sys.exit(main())
