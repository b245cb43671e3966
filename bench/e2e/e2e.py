#!/usr/bin/python3
"""bench/e2e/e2e.py — end to end through real Postfix: the classic sasldb relay against relaydb,
with and without relay-milter, in one run on one harness.

    bench/e2e/e2e.py [BUILD_DIR] [--seconds S] [--sessions N] [--rounds R]
                     [--configs a,b,c,d] [--rcpts N] [--size BYTES] [--keep]

(Normally started by bench/e2e/run, which makes the release build first.) Needs root.
Never part of `meson test`. Replaces bench/milter/e2e.py (relaydb with and without the
milter only): ``--configs b,c`` gives that comparison.

One relaylab (tests/e2e/relaylab.py, public API only) holds one upstream (STARTTLS + AUTH
sasldb, delivers to a Maildir) and three relays set up by ``relay-admin setup``, all
relaying to it and running at the same time:

  a  the classic how-to: smtpd.conf switched to Debian's sasldb auxprop (``pwcheck_method:
     auxprop``, ``auxprop_plugin: sasldb``, a sasldb2 made by saslpasswd2, ``mech_list:
     plain login``) and ``SASL_PATH`` (import_environment) at Debian's plugin folder only;
     no milter.
  b  relaydb, no milter.
  c  relaydb + relay-milter (the product): default limits far above what the run sends, so
     the limiter's whole path (reserve at MAIL and RCPT, commit and audit at end of message)
     runs for every message. Messages, recipients and bytes are limited, so the milter asks
     Postfix for every stage it can use: the milter as it negotiated before issue 11.
  d  relaydb + relay-milter with a message limit only (far above the run): the milter
     negotiates the body away and takes RCPT without replies (issue 11, item 4), while the
     From: check, the message limit, the commit and the audit record stay. c and d in one
     run show what asking Postfix only for what the policy needs is worth.

Load: N client processes (one session at a time each, so N concurrent sessions), each
repeating a full submission for S seconds: connect, EHLO, STARTTLS (full handshake, the
relay's certificate verified against the lab CA), EHLO, AUTH PLAIN, MAIL, 3 x RCPT, DATA
(a ~4 KiB message), QUIT (``--rcpts 1 --size 1024`` for the small-message case) — no pipelining, a new connection per message, as a mail client
does. Only sessions finished within the S seconds count. Rounds are interleaved
a b c a b c ...; the first (warm-up) round of each is discarded; before each round both
the relay queues and the upstream queue are drained, so delivery of one round does not
spill into the next. Every accepted message must reach the upstream (3 Maildir files per
message) or the run reports it.

Prints per-round rates (with how busy the machine was, and how much of that was other
users' load: on a shared machine that is the main source of noise), a table of medians with
the AUTH latency percentiles, the time spent in each phase of a session, CPU time per
message (client, the relay's Postfix processes, the milter, the upstream; read from /proc,
so other load hardly affects it) with the ratios it predicts for a CPU-bound machine, and
the measured ratios c/a, b/a, c/b (of the medians, and per round) with "budget met" /
"budget MISSED" for c/a >= 0.95 of the medians (DESIGN.md, "Performance budgets").
``--perf DIR`` records a system-wide perf(1) profile of the last round of each
configuration. Exit status: 0 when the run completed (budget met or not), 1 when sessions
failed or messages went missing, 2 on a setup error.
"""
import argparse
import base64
import grp
import multiprocessing
import os
import pwd
import secrets
import socket
import ssl
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(TOP, 'tests', 'e2e'))
import relaylab  # noqa: E402

BUDGET = 0.95
HOST = '127.0.0.1'
LOGIN = 'bench'
SENDER = 'bench@example.org'
RCPTS = ('alice@example.net', 'bob@example.net', 'carol@example.net')
PHASES = ('connect', 'ehlo', 'starttls', 'auth', 'mail', 'rcpt', 'data', 'quit')
CONFIGS = {
    'a': 'sasldb, no milter (how-to)',
    'b': 'relaydb, no milter',
    'c': 'relaydb + relay-milter',
    'd': 'relaydb + milter, msg limit',
}


def make_message(size=None):
    """A plain-text message with the headers a mail client writes: ~4 KiB (36 paragraphs,
    as before --size existed), or about `size` bytes (at least the headers)."""
    para = (b'The quarterly figures are attached to the ticket; this paragraph only gives the '
            b'message a realistic size.\r\n')
    head = (b'From: Bench Sender <' + SENDER.encode() + b'>\r\n'
            b'To: Alice <alice@example.net>, Bob <bob@example.net>\r\n'
            b'Cc: carol@example.net\r\n'
            b'Subject: end-to-end benchmark\r\n'
            b'Date: Thu, 26 Nov 2026 10:00:00 +0000\r\n'
            b'Message-ID: <bench.%d@example.org>\r\n'
            b'MIME-Version: 1.0\r\n'
            b'Content-Type: text/plain; charset=utf-8\r\n'
            b'Content-Transfer-Encoding: 7bit\r\n'
            b'User-Agent: smtp-relay bench/e2e\r\n\r\n')
    n = 36 if size is None else max(1, round((size - len(head)) / len(para)))
    body = b''.join(para for _ in range(n))
    return head, body


# ---- client ---------------------------------------------------------------------------

class SmtpError(Exception):
    pass


class Conn:
    """The smallest SMTP client: one command, one reply, no pipelining."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b''

    def reply(self, want):
        while True:
            end = self.buf.find(b'\r\n')
            while end >= 0:
                line, self.buf = self.buf[:end], self.buf[end + 2:]
                if len(line) >= 4 and line[3:4] == b' ':
                    if not line.startswith(want):
                        raise SmtpError(line.decode(errors='replace'))
                    return line
                end = self.buf.find(b'\r\n')
            chunk = self.sock.recv(65536)
            if not chunk:
                raise SmtpError('connection closed')
            self.buf += chunk

    def cmd(self, data, want):
        self.sock.sendall(data)
        return self.reply(want)


def one_session(port, ctx, auth_line, message, times, rcpts):
    """One submission; adds each phase's duration to `times` -> AUTH latency (s)."""
    clock = time.perf_counter
    t0 = clock()
    sock = socket.create_connection((HOST, port), timeout=30)
    try:
        c = Conn(sock)
        c.reply(b'220')
        t1 = clock()
        c.cmd(b'EHLO client.bench.test\r\n', b'250')
        t2 = clock()
        c.cmd(b'STARTTLS\r\n', b'220')
        c.sock = ctx.wrap_socket(sock, server_hostname='localhost')
        sock = c.sock
        c.cmd(b'EHLO client.bench.test\r\n', b'250')
        t3 = clock()
        c.cmd(auth_line, b'235')
        t4 = clock()
        c.cmd(b'MAIL FROM:<%s> SIZE=%d\r\n' % (SENDER.encode(), len(message)), b'250')
        t5 = clock()
        for r in rcpts:
            c.cmd(b'RCPT TO:<%s>\r\n' % r.encode(), b'250')
        t6 = clock()
        c.cmd(b'DATA\r\n', b'354')
        c.cmd(message + b'.\r\n', b'250')
        t7 = clock()
        c.cmd(b'QUIT\r\n', b'221')
        t8 = clock()
    finally:
        sock.close()
    for i, d in enumerate((t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5, t7 - t6,
                           t8 - t7)):
        times[i] += d
    return t4 - t3


def worker(idx, port, cafile, password, start, seconds, out, rcpts, size):
    """One client process: sessions back to back until start+seconds; results to `out`."""
    ctx = ssl.create_default_context(cafile=cafile)
    auth = base64.b64encode(b'\0' + LOGIN.encode() + b'\0' + password.encode())
    auth_line = b'AUTH PLAIN ' + auth + b'\r\n'
    head, body = make_message(size)
    stop = start + seconds
    done, ok, failed, auth_lat, times, errs = 0, 0, 0, [], [0.0] * len(PHASES), []
    now = time.time()
    if start > now:
        time.sleep(start - now)
    n = 0
    while time.time() < stop:
        n += 1
        msg = (head % (idx * 1000000 + n)) + body
        try:
            lat = one_session(port, ctx, auth_line, msg, times, rcpts)
        except (OSError, SmtpError) as e:
            failed += 1
            if len(errs) < 3:
                errs.append('%s: %s' % (type(e).__name__, e))
            time.sleep(0.05)
            continue
        ok += 1
        if time.time() <= stop:
            done += 1
            auth_lat.append(lat)
    ru = os.times()
    out.send({'done': done, 'ok': ok, 'failed': failed, 'auth': auth_lat, 'times': times,
              'sessions': n, 'cpu': ru.user + ru.system, 'errors': errs})
    out.close()


def run_round(port, cafile, password, seconds, sessions, rcpts, size):
    mp = multiprocessing.get_context('fork')
    start = time.time() + 0.5
    procs, pipes = [], []
    for i in range(sessions):
        r, w = mp.Pipe(duplex=False)
        p = mp.Process(target=worker,
                       args=(i, port, cafile, password, start, seconds, w, rcpts, size))
        p.start()
        w.close()
        procs.append(p)
        pipes.append(r)
    results = []
    try:
        for r in pipes:
            if r.poll(seconds + 120):
                results.append(r.recv())
    finally:
        for p in procs:
            p.join(5)
            if p.is_alive():
                os.kill(p.pid, 9)
                p.join()
    agg = {'done': 0, 'ok': 0, 'failed': 0, 'auth': [], 'times': [0.0] * len(PHASES), 'sessions': 0,
           'cpu': 0.0, 'errors': []}
    for res in results:
        for k in ('done', 'ok', 'failed', 'sessions', 'cpu'):
            agg[k] += res[k]
        agg['auth'] += res['auth']
        agg['errors'] += res['errors']
        agg['times'] = [x + y for x, y in zip(agg['times'], res['times'])]
    agg['failed'] += sessions - len(results)
    return agg


# ---- CPU accounting from /proc ---------------------------------------------------------

TICK = os.sysconf('SC_CLK_TCK')


def _stat(pid):
    try:
        with open('/proc/%d/stat' % pid) as f:
            return f.read().rsplit(')', 1)[1].split()
    except (OSError, IndexError):
        return None


def tree_cpu(pid):
    """CPU seconds of a Postfix master's tree: the live children, plus what the master
    has reaped (cutime/cstime), so the difference over a round counts every smtpd,
    cleanup and smtp process, also those that exited during it."""
    if not pid:
        return 0.0
    st = _stat(pid)
    if st is None:
        return 0.0
    # after ')' : state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
    total = int(st[13]) + int(st[14])
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            s = _stat(int(entry))
            if s is not None and int(s[1]) == pid:
                total += int(s[11]) + int(s[12])
    return total / TICK


def proc_cpu(pid):
    st = _stat(pid) if pid else None
    return (int(st[11]) + int(st[12])) / TICK if st else 0.0


def system_busy():
    with open('/proc/stat') as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)


def master_pid(inst):
    try:
        with open(os.path.join(inst.queue_dir, 'pid', 'master.pid')) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


# ---- lab ------------------------------------------------------------------------------

def postfix_ids():
    return pwd.getpwnam('postfix').pw_uid, grp.getgrnam('postfix').gr_gid


def sasl_plugin_dir():
    out = subprocess.run(['pkg-config', '--variable=libdir', 'libsasl2'], capture_output=True,
                         text=True)
    libdir = out.stdout.strip() if out.returncode == 0 else ''
    if not libdir:
        arch = subprocess.run(['dpkg-architecture', '-qDEB_HOST_MULTIARCH'],
                              capture_output=True, text=True).stdout.strip()
        libdir = '/usr/lib/' + arch
    return os.path.join(libdir, 'sasl2')


def to_sasldb(relay, password):
    """Turns a configured (not started) relaylab relay into the how-to's sasldb setup."""
    plugdir = sasl_plugin_dir()
    if not os.path.exists(os.path.join(plugdir, 'libsasldb.so.2')) and \
            not os.path.exists(os.path.join(plugdir, 'libsasldb.so')):
        raise RuntimeError('no sasldb plugin in %s (apt-get install libsasl2-modules-db)'
                           % plugdir)
    sasl_dir = os.path.join(relay.config_dir, 'sasl')
    db = os.path.join(sasl_dir, 'sasldb2')
    # with an empty smtpd_sasl_local_domain libsasl2 uses $myhostname as the realm
    realm = relay.postconf('-h', 'myhostname').strip()
    p = subprocess.run(['saslpasswd2', '-c', '-p', '-f', db, '-u', realm, LOGIN],
                       input=password.encode(), capture_output=True)
    if p.returncode != 0:
        raise RuntimeError('saslpasswd2 failed: ' + p.stderr.decode(errors='replace'))
    uid, gid = postfix_ids()
    os.chown(db, 0, gid)
    os.chmod(db, 0o640)
    with open(os.path.join(sasl_dir, 'smtpd.conf'), 'w') as f:
        f.write('# bench/e2e: the classic how-to, logins in sasldb (saslpasswd2)\n'
                'pwcheck_method: auxprop\nauxprop_plugin: sasldb\n'
                'sasldb_path: %s\nmech_list: plain login\n' % db)
    env = relay.postconf('-h', 'import_environment').split()
    env = [e for e in env if not e.startswith('SASL_PATH=')] + ['SASL_PATH=' + plugdir]
    relay.postconf('-e', 'import_environment=' + ' '.join(env))


def queue_count(inst):
    n = 0
    for sub in ('maildrop', 'incoming', 'active', 'deferred', 'hold'):
        for _root, _dirs, files in os.walk(os.path.join(inst.queue_dir, sub)):
            n += len(files)
    return n


def drain(instances, upstream, expect_files, timeout=120):
    """Waits until no instance holds a message and the upstream Maildir has
    `expect_files` files -> the number it holds (then empties it)."""
    deadline = time.monotonic() + timeout
    new = os.path.join(upstream.maildir, 'new')
    while True:
        files = os.listdir(new) if os.path.isdir(new) else []
        busy = sum(queue_count(i) for i in instances)
        if (busy == 0 and len(files) >= expect_files) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    for name in files:
        try:
            os.unlink(os.path.join(new, name))
        except OSError:
            pass
    return len(files), busy


def start_perf(folder, config):
    """perf record -a for the length of one round (stopped by stop_perf, by pid)."""
    os.makedirs(folder, exist_ok=True)
    out = os.path.join(folder, 'perf-%s.data' % config)
    return subprocess.Popen(['perf', 'record', '-a', '-g', '-F', '499', '-o', out, '--',
                             'sleep', '3600'], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def stop_perf(proc):
    proc.send_signal(2)   # SIGINT: perf writes its file and exits
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def pct(values, p):
    if not values:
        return float('nan')
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('build', nargs='?', default=os.path.join(TOP, 'build-bench'))
    ap.add_argument('--seconds', type=float, default=6, help='length of a round (6)')
    ap.add_argument('--sessions', type=int, default=8, help='concurrent sessions (8)')
    ap.add_argument('--rounds', type=int, default=6,
                    help='measured rounds per configuration, after one warm-up (6)')
    ap.add_argument('--configs', default='a,b,c,d', help='which of a,b,c,d to run (a,b,c,d)')
    ap.add_argument('--rcpts', type=int, default=3, help='recipients per message, 1-3 (3)')
    ap.add_argument('--size', type=int, default=None,
                    help='approximate message size in bytes (default ~4 KiB; 1024 = the small '
                         'case)')
    ap.add_argument('--keep', action='store_true', help='keep the lab folder')
    ap.add_argument('--perf', metavar='DIR',
                    help='record a system-wide perf profile of the last round of each '
                         'configuration into DIR/perf-<config>.data (perf(1) slows the run)')
    a = ap.parse_args()
    configs = [c for c in a.configs.split(',') if c]
    if not configs or any(c not in CONFIGS for c in configs):
        ap.error('--configs takes a comma-separated subset of a,b,c,d')
    if not 1 <= a.rcpts <= len(RCPTS) or (a.size is not None and a.size < 0):
        ap.error('need 1 <= --rcpts <= %d and --size >= 0' % len(RCPTS))
    rcpts = RCPTS[:a.rcpts]
    if a.rounds < 1 or a.sessions < 1 or a.seconds <= 0 or a.sessions > 200:
        ap.error('need --rounds >= 1, 1 <= --sessions <= 200, --seconds > 0')
    why = relaylab.need_root()
    if why:
        print('bench/e2e: ' + why, file=sys.stderr)
        return 2
    build = os.path.abspath(a.build)
    for f in ('admin/relay-admin', 'plugin/librelaydb.so', 'milter/relay-milter'):
        if not os.path.exists(os.path.join(build, f)):
            print('bench/e2e: %s missing (meson compile -C %s)' % (f, build), file=sys.stderr)
            return 2

    password = secrets.token_urlsafe(24)
    with relaylab.Lab(build_root=build, keep=a.keep, prefix='bench-e2e-') as lab:
        up = lab.upstream()
        relays = {}
        for c in configs:
            if c in ('c', 'd'):
                r = lab.relay(up, tls_port=False, milter=True,
                              milter_conf='log_level = warning\n')
            else:
                r = lab.relay(up, tls_port=False, start=False)
            r.add_user(LOGIN, password)
            r.admin('sender', 'add', LOGIN, SENDER)
            if c == 'a':
                to_sasldb(r, password)
            if c == 'c':
                r.admin('limit', 'set', '--default', '--messages', '100000000/1h',
                        '--recipients', '1000000000/1h', '--bytes', '1T/1d')
            elif c == 'd':
                r.admin('limit', 'set', '--default', '--messages', '100000000/1h')
            else:
                r.start()
            relays[c] = r
        instances = [up] + list(relays.values())
        cafile = lab.ca.cert

        print('bench/e2e: %d cores, %d sessions, %d x %.0f s per configuration after a '
              'warm-up round; %d RCPT, ~%d-byte messages; load average %.2f; lab %s'
              % (os.cpu_count(), a.sessions, a.rounds, a.seconds, len(rcpts),
                 len(b''.join(make_message(a.size))), os.getloadavg()[0], lab.dir), flush=True)
        res = {c: [] for c in configs}
        bad = 0
        for rnd in range(a.rounds + 1):
            for c in configs:
                relay = relays[c]
                mpid, upid = master_pid(relay), master_pid(up)
                milter_pid = relay.milter.pid if relay.milter else None
                cpu0 = (tree_cpu(mpid), proc_cpu(milter_pid), tree_cpu(upid))
                busy0 = system_busy()
                t0 = time.monotonic()
                perf = None
                if a.perf and rnd == a.rounds:
                    perf = start_perf(a.perf, c)
                try:
                    agg = run_round(relay.port, cafile, password, a.seconds, a.sessions,
                                    rcpts, a.size)
                finally:
                    if perf is not None:
                        stop_perf(perf)
                busy1 = system_busy()
                cpu1 = (tree_cpu(mpid), proc_cpu(milter_pid), tree_cpu(upid))
                delivered, stuck = drain(instances, up, len(rcpts) * agg['ok'])
                drain_s = time.monotonic() - t0 - a.seconds - 0.5
                # the drain's delivery work is part of the message's cost, so the CPU
                # counters are read again after it
                cpu2 = (tree_cpu(mpid), proc_cpu(milter_pid), tree_cpu(upid))
                agg['rate'] = agg['done'] / a.seconds
                agg['busy'] = (busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1])
                # CPU the machine spent on things other than this benchmark (other users)
                ours = agg['cpu'] + sum(y - x for x, y in zip(cpu0, cpu1))
                agg['others'] = max(0.0, ((busy1[0] - busy0[0]) / TICK - ours)
                                    / ((busy1[1] - busy0[1]) / TICK))
                agg['cpu_relay'] = cpu2[0] - cpu0[0]
                agg['cpu_milter'] = cpu2[1] - cpu0[1]
                agg['cpu_up'] = cpu2[2] - cpu0[2]
                agg['cpu_relay_in_round'] = cpu1[0] - cpu0[0]
                tag = 'warm-up' if rnd == 0 else 'round %d' % rnd
                problem = ''
                if agg['failed'] or delivered != len(rcpts) * agg['ok'] or stuck:
                    problem = ('  PROBLEM: %d failed sessions %s, %d of %d deliveries, %d '
                               'queued' % (agg['failed'], agg['errors'][:2], delivered,
                                           len(rcpts) * agg['ok'], stuck))
                    bad += 1
                print('%-8s %s %-28s %7.1f msg/s  cpu busy %3.0f%% (others %2.0f%%)  '
                      'drain %4.1f s%s' % (tag, c, CONFIGS[c], agg['rate'], 100 * agg['busy'],
                                           100 * agg['others'], drain_s, problem), flush=True)
                if rnd > 0:
                    res[c].append(agg)

        report(res, configs, a)
        if bad:
            print('bench/e2e: %d round(s) had failed sessions or missing deliveries; see '
                  'above' % bad)
            return 1
    return 0


def report(res, configs, a):
    med = {c: statistics.median(r['rate'] for r in res[c]) for c in configs}
    print()
    print('%-34s %9s  %-26s %s' % ('configuration', 'msg/s', 'rounds', 'AUTH ms p50/p90/p99'))
    for c in configs:
        lat = [x for r in res[c] for x in r['auth']]
        print('%s %-32s %9.1f  %-26s %.1f / %.1f / %.1f'
              % (c, CONFIGS[c], med[c], ' '.join('%.0f' % r['rate'] for r in res[c]),
                 1e3 * pct(lat, 50), 1e3 * pct(lat, 90), 1e3 * pct(lat, 99)))
    print()
    print('mean time per session by phase, ms (the client waits; N sessions overlap)')
    print('   ' + ''.join('%9s' % p for p in PHASES) + '%9s' % 'total')
    for c in configs:
        n = sum(r['done'] + r['failed'] for r in res[c]) or 1
        tot = [sum(r['times'][i] for r in res[c]) / n * 1e3 for i in range(len(PHASES))]
        print('%s  ' % c + ''.join('%9.2f' % t for t in tot) + '%9.2f' % sum(tot))
    print()
    print('CPU ms per message: client, relay Postfix, relay-milter, upstream, total '
          '(machine busy, of it others)')
    for c in configs:
        n = sum(r['done'] for r in res[c]) or 1
        parts = [1e3 * sum(r[k] for r in res[c]) / n
                 for k in ('cpu', 'cpu_relay', 'cpu_milter', 'cpu_up')]
        print('%s  %6.2f %6.2f %6.2f %6.2f  = %6.2f   (%3.0f%%, %2.0f%%)'
              % ((c,) + tuple(parts) + (sum(parts),
                 100 * statistics.median(r['busy'] for r in res[c]),
                 100 * statistics.median(r['others'] for r in res[c]))))
    print()
    for x, y in (('b', 'a'), ('c', 'a'), ('d', 'a'), ('c', 'b'), ('d', 'c')):
        if x in med and y in med and med[y]:
            paired = [rx['rate'] / ry['rate'] for rx, ry in zip(res[x], res[y]) if ry['rate']]
            print('%s/%s = %.3f  (median of the per-round pairs %.3f: %s)' % (
                x, y, med[x] / med[y], statistics.median(paired),
                ' '.join('%.2f' % p for p in paired)))
    cost = {c: sum(r['cpu'] + r['cpu_relay'] + r['cpu_milter'] + r['cpu_up'] for r in res[c])
            / (sum(r['done'] for r in res[c]) or 1) for c in configs}
    if 'a' in cost and len(configs) > 1:
        print('CPU-bound expectation (CPU per message of a / of x, immune to other load): %s'
              % ', '.join('%s/a %.3f' % (x, cost['a'] / cost[x]) for x in configs
                          if x != 'a' and cost[x]))
    for x in ('c', 'd'):
        if x in med and 'a' in med and med['a']:
            ok = med[x] / med['a'] >= BUDGET
            print('budget (%s/a >= %.2f): %s' % (x, BUDGET,
                                                 'budget met' if ok else 'budget MISSED'))


if __name__ == '__main__':
    sys.exit(main())
