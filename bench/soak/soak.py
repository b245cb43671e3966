#!/usr/bin/python3
"""bench/soak/soak.py — crash safety of the relay's counts and audit log, under load, with
faults injected on a schedule (issue 13).

    bench/soak/soak.py [BUILD_DIR] [--messages N] [--sessions C] [--faults LIST]
                       [--max-seconds S] [--keep]

Needs root (private Postfix instances, a tmpfs). Run by hand; never part of `meson test`
(tests/e2e/test_soak.py runs a short version of the same run through run() below).
Loopback only; every process it starts is stopped by pid, the tmpfs is unmounted.

One relaylab (tests/e2e/relaylab.py): an upstream (STARTTLS + AUTH, delivers to a Maildir)
and a relay set up by ``relay-admin setup`` with the built relay-milter. The milter's state
folder (state database, its WAL, the journal) is moved onto a small tmpfs of its own, so
that "disk full" can be made real. C client threads each hold a STARTTLS + AUTH session
and send one message after the other (a new session every PER_SESSION messages, or after
any refusal or error, after a pause of BACKOFF_S) until N messages have been tried; every message is tried once.

Faults (``--faults``, comma separated, each ``KIND@PERCENT[:SECONDS]``; the percentage is
of the N messages taken by the clients, so the schedule scales with N):
  kill@P:S      relay-milter gets SIGKILL, and is started again S seconds later
  users@P       the users database is replaced by a copy of itself (rename over it)
  diskfull@P:S  the state folder's tmpfs is filled up for S seconds, then freed
PostgreSQL is not restarted: the data layer has no PostgreSQL engine yet.

Prints: accepted by Postfix (250 after the final dot, with its queue id), delivered
upstream (Maildir files), audit records with verdict "accepted" and counted usage
(messages in the usage table) read from the state database after a clean stop of the
milter, refused with 4xx, refused with 5xx, session errors without a reply code, and the
accepted verdicts in the milter's own log. Exit status 0 only if accepted = delivered =
audited = counted and every delivered message has an audit record "accepted" with its
queue id; 1 otherwise; 2 on a setup error.
"""
import argparse
import os
import re
import shutil
import signal
import smtplib
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(TOP, 'tests', 'e2e'))
import relaylab  # noqa: E402

DEFAULT_FAULTS = 'kill@25:4,users@45,diskfull@60:4,kill@80:4'
LOGIN = 'soak'
SENDER = 'soak@example.org'
RCPT = 'rcpt@example.net'
PER_SESSION = 20
BACKOFF_S = 0.25       # a client's pause after a refusal or an error
TMPFS_SIZE = '64m'
QID_RE = re.compile(r'queued as ([0-9A-Za-z]+)')
SUBJECT_RE = re.compile(rb'^Subject: (soak-[0-9a-f]+-[0-9]+)', re.M)


def parse_faults(text):
    """'kill@25:4,users@45' -> [(fraction, kind, seconds)], sorted; ValueError if bad."""
    out = []
    for item in filter(None, (t.strip() for t in text.split(','))):
        m = re.fullmatch(r'(kill|users|diskfull)@(\d+(?:\.\d+)?)(?::(\d+(?:\.\d+)?))?', item)
        if not m or not 0 <= float(m.group(2)) < 100:
            raise ValueError('bad fault %r (KIND@PERCENT[:SECONDS], KIND kill|users|diskfull)'
                             % item)
        kind, secs = m.group(1), float(m.group(3) or 0)
        if kind in ('kill', 'diskfull') and secs <= 0:
            raise ValueError('%s needs :SECONDS' % item)
        out.append((float(m.group(2)) / 100, kind, secs))
    return sorted(out)


def message(token):
    body = ('This message is part of a soak run of the relay. ' * 20 + '\r\n') * 1
    return ('From: %s\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s@soak.relaylab.test>\r\n\r\n%s'
            % (SENDER, RCPT, token, token, body)).encode()


class Tally:
    """What the clients saw, per message token; thread safe."""

    def __init__(self, n):
        self.mu = threading.Lock()
        self.n = n
        self.next = 0
        self.accepted = {}      # token -> queue id
        self.tempfail = 0
        self.permfail = 0
        self.errors = 0
        self.first_error = None

    def take(self):
        with self.mu:
            if self.next >= self.n:
                return None
            self.next += 1
            return self.next - 1

    def taken(self):
        with self.mu:
            return self.next

    def refused(self, code):
        with self.mu:
            if 400 <= code < 500:
                self.tempfail += 1
            elif 500 <= code < 600:
                self.permfail += 1
            else:
                self.errors += 1

    def error(self, e):
        with self.mu:
            self.errors += 1
            if self.first_error is None:
                self.first_error = repr(e)

    def ok(self, token, qid):
        with self.mu:
            self.accepted[token] = qid


def client(relay, pw, run_id, tally, deadline):
    s = None
    used = 0
    while time.monotonic() < deadline:
        i = tally.take()
        if i is None:
            break
        token = 'soak-%s-%06d' % (run_id, i)
        try:
            if s is None:
                s = relay.smtp(timeout=60)
                code, text = s.login(LOGIN, pw)
                used = 0
            code, text = s.mail(SENDER)
            if code == 250:
                code, text = s.rcpt(RCPT)
            if code == 250:
                code, text = s.data(message(token))
            if code == 250:
                m = QID_RE.search(text.decode(errors='replace'))
                tally.ok(token, m.group(1) if m else '')
                used += 1
                if used >= PER_SESSION:
                    s.quit()
                    s = None
                continue
            tally.refused(code)
        except smtplib.SMTPResponseException as e:   # AUTH or DATA refused, 421 ...
            tally.refused(e.smtp_code)
        except (OSError, smtplib.SMTPException) as e:
            tally.error(e)
        # after a refusal or an error: a new session after a pause, as a client would retry
        time.sleep(BACKOFF_S)
        if s is not None:
            try:
                s.close()
            except OSError:
                pass
            s = None
    if s is not None:
        try:
            s.quit()
        except (OSError, smtplib.SMTPException):
            s.close()


class StateTmpfs:
    """The milter's state folder on a tmpfs of its own, so the disk can really fill up."""

    def __init__(self, milter):
        self.milter = milter
        self.dir = os.path.dirname(milter.state_db)
        self.mounted = False
        self.filler = os.path.join(self.dir, 'soak-filler')

    def mount(self):
        st = os.stat(self.dir)
        aside = tempfile.mkdtemp(prefix='soak-state-')
        try:
            self.milter.stop()
            for name in os.listdir(self.dir):
                shutil.move(os.path.join(self.dir, name), aside)
            subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=%s,mode=%o,uid=%d,gid=%d'
                            % (TMPFS_SIZE, st.st_mode & 0o7777, st.st_uid, st.st_gid),
                            'soak-state', self.dir], check=True)
            self.mounted = True
            for name in os.listdir(aside):
                subprocess.run(['cp', '-a', os.path.join(aside, name), self.dir], check=True)
        finally:
            shutil.rmtree(aside, ignore_errors=True)
        self.milter.start()

    def fill(self):
        """Fills the tmpfs up (ENOSPC for everyone writing there)."""
        chunk = b'\0' * (1 << 20)
        with open(self.filler, 'wb', buffering=0) as f:
            try:
                while True:
                    f.write(chunk)
            except OSError:
                pass
            small = b'\0' * 4096
            try:
                while True:
                    f.write(small)
            except OSError:
                pass

    def free(self):
        try:
            os.unlink(self.filler)
        except FileNotFoundError:
            pass

    def umount(self):
        self.free()
        if self.mounted:
            r = subprocess.run(['umount', self.dir])
            if r.returncode != 0:
                subprocess.run(['umount', '-l', self.dir])
            self.mounted = False


def replace_users_db(relay):
    """A copy of the users database renamed over it: a new inode at the same path."""
    st = os.stat(relay.db)
    tmp = relay.db + '.soak-copy'
    shutil.copy2(relay.db, tmp)
    os.chown(tmp, st.st_uid, st.st_gid)
    os.chmod(tmp, st.st_mode & 0o7777)
    os.rename(tmp, relay.db)


def run_faults(faults, tally, n, milter, tmpfs, relay, log, done):
    """Injects the faults as the clients reach each point of the schedule."""
    for frac, kind, secs in faults:
        while tally.taken() < frac * n and not done.is_set():
            time.sleep(0.02)
        if done.is_set():
            log('fault %s@%d%% not reached' % (kind, frac * 100))
            continue
        t = tally.taken()
        if kind == 'kill':
            milter.stop(signal.SIGKILL)
            log('fault: relay-milter killed (-9) at message %d; restart in %g s' % (t, secs))
            time.sleep(secs)
            milter.start()
            log('fault: relay-milter started again')
        elif kind == 'users':
            replace_users_db(relay)
            log('fault: users database replaced by a copy at message %d' % t)
        elif kind == 'diskfull':
            tmpfs.fill()
            log('fault: state folder full (tmpfs) at message %d for %g s' % (t, secs))
            time.sleep(secs)
            tmpfs.free()
            log('fault: state folder has room again')


def delivered_tokens(upstream):
    out = []
    for sub in ('new', 'cur'):
        d = os.path.join(upstream.maildir, sub)
        if not os.path.isdir(d):
            continue
        for name in os.listdir(d):
            try:
                with open(os.path.join(d, name), 'rb') as f:
                    head = f.read(8192)
            except FileNotFoundError:
                continue
            m = SUBJECT_RE.search(head)
            out.append(m.group(1).decode() if m else None)
    return out


def wait_delivery(upstream, want, quiet_s=30, max_s=300):
    """Waits until `want` messages are in the upstream Maildir, or nothing new came for
    quiet_s seconds (max_s in all) -> the tokens found."""
    start = last_change = time.monotonic()
    seen = -1
    while True:
        toks = delivered_tokens(upstream)
        now = time.monotonic()
        if len(toks) != seen:
            seen, last_change = len(toks), now
        if len(toks) >= want or now - last_change > quiet_s or now - start > max_s:
            return toks
        time.sleep(0.5)


def read_state(state_db):
    """-> (queue ids of audit records 'accepted', messages in the usage table)."""
    db = sqlite3.connect('file:%s?mode=ro' % state_db, uri=True)
    try:
        qids = [r[0] for r in db.execute("SELECT queue_id FROM audit WHERE verdict = 'accepted'")]
        counted = db.execute('SELECT coalesce(sum(messages), 0) FROM usage').fetchone()[0]
    finally:
        db.close()
    return qids, counted


def run(build_root=None, messages=10000, sessions=50, faults=DEFAULT_FAULTS,
        max_seconds=1200, milter_conf='', keep=False, log=print):
    """One soak run -> (ok, table as a dict). Raises on a setup error."""
    faults = parse_faults(faults) if isinstance(faults, str) else faults
    run_id = uuid.uuid4().hex[:8]
    lab = relaylab.Lab(build_root=build_root, keep=keep, prefix='soak-')
    tmpfs = None
    try:
        up = lab.upstream()
        relay = lab.relay(up, milter=True, milter_conf='log_level = info\n' + milter_conf)
        pw = relay.add_user(LOGIN)
        relay.admin('sender', 'add', LOGIN, SENDER)
        relay.admin('limit', 'set', LOGIN, '--messages', '100000000/1h',
                    '--recipients', '100000000/1h')
        milter = relay.milter
        if any(k == 'diskfull' for _, k, _ in faults):
            tmpfs = StateTmpfs(milter)
            tmpfs.mount()
        tally = Tally(messages)
        done = threading.Event()
        t0 = time.monotonic()
        deadline = t0 + max_seconds
        workers = [threading.Thread(target=client, args=(relay, pw, run_id, tally, deadline))
                   for _ in range(sessions)]
        for w in workers:
            w.start()
        fault_thread = threading.Thread(target=run_faults, args=(faults, tally, messages, milter,
                                                                 tmpfs, relay, log, done))
        fault_thread.start()
        for w in workers:
            w.join()
        done.set()
        fault_thread.join()
        sent_s = time.monotonic() - t0
        if milter.pid is None or not relaylab._pid_alive(milter.pid):
            milter.start()
        toks = wait_delivery(up, len(tally.accepted))
        # a clean stop writes what is queued; the state database is read after it
        stop_status = milter.stop()
        milter_log = milter.log()
        qids, counted = read_state(milter.state_db)
        audited = set(qids)
        log_verdicts = len(re.findall(r'verdict=accepted ', milter_log))
        recovered = [int(x) for x in re.findall(r'recovered (\d+) ', milter_log)]
        unknown = [t for t in toks if t not in tally.accepted]
        unaudited = [t for t in toks if t in tally.accepted and tally.accepted[t] not in audited]
        table = {
            'messages tried': tally.taken(),
            'accepted by Postfix': len(tally.accepted),
            'delivered upstream': len(toks),
            'audit records (accepted)': len(qids),
            'counted usage (messages)': counted,
            'refused with 4xx': tally.tempfail,
            'refused with 5xx': tally.permfail,
            'session errors (no reply code)': tally.errors,
            "accepted verdicts in the milter's log": log_verdicts,
            'journal records recovered at starts': sum(recovered),
            'delivered without an accepted verdict': len(unknown) + len(unaudited),
            'milter exit status at the final stop': stop_status,
            'seconds sending': round(sent_s, 1),
        }
        ok = (table['accepted by Postfix'] == table['delivered upstream'] ==
              table['audit records (accepted)'] == table['counted usage (messages)'] and
              table['delivered without an accepted verdict'] == 0)
        width = max(len(k) for k in table)
        log('soak: %d messages, %d sessions, faults %s; PostgreSQL restart: not applicable '
            '(no PostgreSQL engine yet)' % (messages, sessions, ','.join(
                '%s@%g%s' % (k, f * 100, (':%g' % s) if s else '') for f, k, s in faults)))
        for k, v in table.items():
            log('  %-*s %8s' % (width, k, v))
        if tally.first_error:
            log('  first session error: %s' % tally.first_error)
        log('RESULT: %s' % ('PASS' if ok else
                            'FAIL: accepted, delivered, audited and counted must be equal and '
                            'nothing delivered without an accepted verdict'))
        if not ok and keep:
            log('lab kept in %s' % lab.dir)
        return ok, table
    finally:
        if tmpfs is not None:
            if relay.milter is not None:
                relay.milter.stop()
            tmpfs.umount()
        lab.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('build', nargs='?', default=os.path.join(TOP, 'build'))
    ap.add_argument('--messages', type=int, default=10000)
    ap.add_argument('--sessions', type=int, default=50)
    ap.add_argument('--faults', default=DEFAULT_FAULTS)
    ap.add_argument('--max-seconds', type=int, default=1200,
                    help='stop taking new messages after this long (default 1200)')
    ap.add_argument('--keep', action='store_true', help='keep the lab folder')
    a = ap.parse_args()
    why = relaylab.need_root()
    if why:
        print('soak: %s' % why, file=sys.stderr)
        return 2
    if not 1 <= a.messages <= 1000000 or not 1 <= a.sessions <= 500:
        print('soak: --messages 1..1000000, --sessions 1..500', file=sys.stderr)
        return 2
    try:
        faults = parse_faults(a.faults)
    except ValueError as e:
        print('soak: %s' % e, file=sys.stderr)
        return 2
    try:
        ok, _ = run(a.build, a.messages, a.sessions, faults, a.max_seconds, keep=a.keep,
                    log=lambda s: print(s, flush=True))
    except (RuntimeError, OSError, subprocess.CalledProcessError) as e:
        print('soak: setup failed: %s' % e, file=sys.stderr)
        return 2
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
