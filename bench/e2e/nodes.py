#!/usr/bin/python3
"""bench/e2e/nodes.py — messages/s end to end: two relay nodes behind HAProxy sharing one
PostgreSQL (users and state, exact admission), against one relay node on its SQLite files,
interleaved in one run on one machine (issue 10).

    bench/e2e/nodes.py [BUILD_DIR] [--seconds S] [--sessions N] [--rounds R]
                       [--rcpts N] [--size BYTES]

Needs root. Never part of `meson test`. Reuses bench/e2e/e2e.py's load client (N client
processes, each a full submission per connection: connect, EHLO, STARTTLS with the
certificate verified, AUTH PLAIN, MAIL, RCPTs, DATA, QUIT) and drains the queues between
rounds, so delivery of one round does not spill into the next.

  S  one node: private Postfix + relaydb + relay-milter on SQLite files, clients connect to
     it directly (the default installation).
  P  two nodes (tests/e2e/nodelab.py): two private Postfix instances + two relay-milters,
     users and state on one private PostgreSQL 15 (pglab), one HAProxy (TCP, send-proxy-v2,
     round robin; `relay-admin setup --proxy-protocol`); clients connect to the proxy.

Both have default limits far above what the run sends on messages, recipients and bytes, so
every MAIL and RCPT is an admission (on PostgreSQL one transaction with a reservation) and
every accepted message a commit. One login for all sessions: on PostgreSQL the worst case
(the admission serialises per login).

Honest reading on this machine: both nodes, the proxy, PostgreSQL, the upstream and the
load client share the same 2 cores, so P cannot show the capacity two machines would have;
it shows what the shared database and the proxy cost per message. Prints per-round rates and
the medians with the ratio P/S.
"""
import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(TOP, 'tests', 'e2e'))
sys.path.insert(0, HERE)
import e2e  # noqa: E402
import nodelab  # noqa: E402
import relaylab  # noqa: E402

LIMITS = ('--messages', '100000000/1h', '--recipients', '1000000000/1h', '--bytes', '1T/1d')
MILTER_CONF = 'log_level = warning\n'


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('build', nargs='?', default=os.path.join(TOP, 'build'))
    ap.add_argument('--seconds', type=int, default=15)
    ap.add_argument('--sessions', type=int, default=8)
    ap.add_argument('--rounds', type=int, default=3)
    ap.add_argument('--rcpts', type=int, default=3)
    ap.add_argument('--size', type=int, default=None)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print('bench: needs root (private Postfix instances)', file=sys.stderr)
        return 2
    why = nodelab.postgres_ready(os.path.abspath(args.build))
    if why:
        print('bench: %s' % why, file=sys.stderr)
        return 2
    rcpts = e2e.RCPTS[:args.rcpts] if args.rcpts <= len(e2e.RCPTS) else \
        tuple('r%d@example.net' % i for i in range(args.rcpts))
    lab = relaylab.Lab(build_root=args.build, prefix='bench-nodes-')
    nodes = None
    try:
        up = lab.upstream()
        single = lab.relay(up, milter=True, milter_conf=MILTER_CONF)
        pw_s = single.add_user(e2e.LOGIN)
        single.admin('sender', 'add', e2e.LOGIN, e2e.SENDER)
        single.admin('limit', 'set', '--default', *LIMITS)
        nodes = nodelab.TwoNodes(lab, engine='postgresql', milter_conf=MILTER_CONF)
        pw_p = nodes.add_user(e2e.LOGIN)   # with its sender, LOGIN@example.org = e2e.SENDER
        nodes.admin('limit', 'set', '--default', *LIMITS)
        configs = {
            'S': ('one node, SQLite', single.port, pw_s, [single], up),
            'P': ('two nodes, PostgreSQL, HAProxy', nodes.frontends['both'].port, pw_p,
                  nodes.nodes, nodes.up),
        }
        print('end to end, %d sessions, %d s per round, %d RCPT, %s message; %d cores'
              % (args.sessions, args.seconds, len(rcpts),
                 '%d-byte' % args.size if args.size else '~4 KiB', os.cpu_count()))
        rates = {k: [] for k in configs}
        problems = 0
        for rnd in range(args.rounds + 1):   # round 0: warm-up, not counted
            for key, (title, port, pw, instances, upstream) in configs.items():
                b0, all0 = e2e.system_busy()
                t0 = time.monotonic()
                res = e2e.run_round(port, lab.ca.cert, pw, args.seconds, args.sessions,
                                    rcpts, args.size)
                b1, all1 = e2e.system_busy()
                busy = 100.0 * (b1 - b0) / max(all1 - all0, 1)
                rate = res['done'] / args.seconds
                files, queued = e2e.drain(instances, upstream, res['ok'] * len(rcpts))
                lost = res['ok'] * len(rcpts) - files
                if rnd:
                    rates[key].append(rate)
                    problems += res['failed'] + max(lost, 0)
                print('  %s %s %-32s %6.1f msg/s  failed %d%s  (%.0f s, machine busy %.0f%%)'
                      % ('warm-up' if rnd == 0 else 'round %d' % rnd, key, title, rate,
                         res['failed'], ', %d deliveries missing' % lost if lost > 0 else '',
                         time.monotonic() - t0, busy))
                if res['errors']:
                    print('      errors: %s' % '; '.join(res['errors'][:3]))
        med = {k: statistics.median(v) for k, v in rates.items()}
        print('\n| setup | msg/s (median of %d) |\n|---|---:|' % args.rounds)
        for key, (title, *_rest) in configs.items():
            print('| %s %s | %.1f |' % (key, title, med[key]))
        print('\nP/S = %.2f (both on the same 2 cores: the cost of the shared database and the '
              'proxy per message, not the capacity of two machines)' % (med['P'] / med['S']))
        return 1 if problems else 0
    finally:
        if nodes is not None:
            nodes.close()
        else:
            lab.stop()


if __name__ == '__main__':
    sys.exit(main())
