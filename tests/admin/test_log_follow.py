"""test_log_follow.py — `relay-admin log --follow` (issue 12, item 6) as a subprocess.

Records are committed by tests/admin/state-append (the data layer, as relay-milter's
writer commits them); the follower's stdout is read line by line as it appears. Checks:
new records come as JSON lines, --verdict/--user/--since filter, a replaced and a missing
state database are followed by path, SIGTERM and SIGINT end it with status 0, and so does
a closed stdout, also while nothing is being printed. Every process is stopped by pid.
"""
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

RELAY_ADMIN = os.environ.get("RELAY_ADMIN", "relay-admin")
STATE_APPEND = os.environ.get("STATE_APPEND", "state-append")
WAIT = 10          # seconds to wait for a line that must come
QUIET = 1.5        # seconds during which a line that must not come does not


class Follower:
    """`relay-admin --state-db DB [--json] log --follow ARGS` with its stdout in a queue."""

    def __init__(self, db, *args, json_out=True):
        argv = [RELAY_ADMIN, "--state-db", db] + (["--json"] if json_out else [])
        argv += ["log", "--follow"] + list(args)
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def next(self, timeout=WAIT):
        """The next line, decoded as JSON (AssertionError if none comes in time)."""
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no line from log --follow within %s s" % timeout)
        if line is None:
            raise AssertionError("log --follow ended: %r" % self.proc.stderr.read())
        return json.loads(line)

    def nothing(self, timeout=QUIET):
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            return
        raise AssertionError("unexpected line from log --follow: %r" % line)

    def stop(self, sig=signal.SIGTERM):
        """Sends sig to our child by pid -> its exit status."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
        try:
            return self.proc.wait(timeout=WAIT)
        finally:
            if self.proc.poll() is None:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            self.err = self.proc.stderr.read()
            self.proc.stderr.close()


class FollowTest(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="relay-follow-test.")
        self.db = os.path.join(self._tmp.name, "state.db")
        self.followers = []

    def tearDown(self):
        for f in self.followers:
            if f.proc.poll() is None:
                f.stop(signal.SIGKILL)
        self._tmp.cleanup()

    def append(self, login, verdict, reason, n=1, age=0, db=None):
        subprocess.run([STATE_APPEND, db or self.db, login, verdict, reason, str(n), str(age)],
                       check=True, timeout=30)

    def follow(self, *args, **kw):
        f = Follower(self.db, *args, **kw)
        self.followers.append(f)
        return f

    def wait_listening(self, f):
        """The follower has read the file once (its first listing came, or a sentinel)."""
        self.append("sentinel", "accepted", "ok")
        while f.next()["login"] != "sentinel":
            pass

    def test_new_records_as_json_lines(self):
        self.append("alice", "accepted", "ok", n=3)
        f = self.follow()
        first = [f.next() for _ in range(3)]
        self.assertEqual([r["login"] for r in first], ["alice"] * 3)
        self.append("carol", "held", "held-over-limit")
        rec = f.next()
        self.assertEqual((rec["login"], rec["verdict"], rec["reason"]),
                         ("carol", "held", "held-over-limit"))
        self.assertGreater(rec["id"], first[-1]["id"])
        self.append("dave", "accepted", "ok", n=2)
        self.assertEqual([f.next()["login"] for _ in range(2)], ["dave", "dave"])
        self.assertEqual(f.stop(signal.SIGTERM), 0)

    def test_limit_of_the_first_listing(self):
        self.append("alice", "accepted", "ok", n=15)
        f = self.follow()
        ids = [f.next()["id"] for _ in range(10)]   # default 10, as tail -f
        f.nothing()
        self.assertEqual(ids, sorted(ids))
        self.assertEqual(f.stop(signal.SIGINT), 0)
        g = self.follow("--limit", "2")
        self.assertEqual([g.next()["id"] for _ in range(2)], ids[-2:])
        g.nothing()
        self.assertEqual(g.stop(), 0)

    def test_verdict_and_user_filters(self):
        self.append("bob", "rejected", "sender-not-allowed")
        self.append("bob", "accepted", "ok")
        f = self.follow("--verdict", "refused", "--user", "BOB")
        self.assertEqual(f.next()["verdict"], "rejected")
        self.append("bob", "accepted", "ok")
        self.append("alice", "rejected", "no-tls")
        self.append("bob", "tempfailed", "rate-limit")
        self.append("bob", "rejected", "from-not-allowed")
        rec = f.next()
        self.assertEqual((rec["login"], rec["reason"]), ("bob", "from-not-allowed"))
        f.nothing()
        self.assertEqual(f.stop(), 0)
        g = self.follow("--verdict", "tempfail", "--limit", "100")
        self.assertEqual(g.next()["reason"], "rate-limit")
        g.nothing()
        self.assertEqual(g.stop(), 0)

    def test_since(self):
        self.append("old", "accepted", "ok", age=7200)
        self.append("new", "accepted", "ok")
        f = self.follow("--since", "1h")
        self.assertEqual(f.next()["login"], "new")
        self.append("old2", "accepted", "ok", age=7200)   # committed now, dated before --since
        self.append("new2", "accepted", "ok")
        self.assertEqual(f.next()["login"], "new2")
        self.assertEqual(f.stop(), 0)

    def test_bad_verdict_is_a_usage_error(self):
        self.append("alice", "accepted", "ok")
        p = subprocess.run([RELAY_ADMIN, "--state-db", self.db, "log", "--follow", "--verdict",
                            "maybe"], capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 2, p)
        self.assertIn(b"--verdict", p.stderr)
        self.assertEqual(p.stdout, b"")

    def test_replaced_state_database(self):
        self.append("alice", "accepted", "ok")
        f = self.follow()
        self.assertEqual(f.next()["login"], "alice")
        # a restore: another file put in place, holding an old record of its own
        other = os.path.join(self._tmp.name, "restore.db")
        self.append("from-backup", "accepted", "ok", age=3600, db=other)
        os.rename(other, self.db)
        self.append("after-restore", "accepted", "ok")
        self.assertEqual(f.next()["login"], "after-restore")
        # gone for a while, then a fresh file at the path
        # (whether the follower sees the gap depends on scheduling: both ways must work)
        os.rename(self.db, self.db + ".moved")
        time.sleep(0.6)
        self.append("fresh", "rejected", "no-auth")
        self.assertEqual(f.next()["login"], "fresh")
        f.nothing()
        self.assertEqual(f.stop(), 0)

    def closed_stdout(self, then_append):
        """stdout is a pipe whose reader (this test) goes away: status 0, whether the
        follower is idle (poll reports it) or writing (EPIPE)."""
        self.append("alice", "accepted", "ok")
        r, w = os.pipe()
        proc = subprocess.Popen([RELAY_ADMIN, "--state-db", self.db, "--json", "log",
                                 "--follow"], stdout=w, stderr=subprocess.PIPE)
        os.close(w)
        try:
            got = b""
            deadline = time.monotonic() + WAIT
            while b"\n" not in got and time.monotonic() < deadline:
                got += os.read(r, 4096)
            self.assertIn(b'"alice"', got)
            os.close(r)
            r = None
            if then_append:
                self.append("bob", "accepted", "ok", n=50)
            self.assertEqual(proc.wait(timeout=WAIT), 0, proc.stderr.read())
            self.assertEqual(proc.stderr.read(), b"")
        finally:
            if r is not None:
                os.close(r)
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
            proc.stderr.close()

    def test_closed_stdout_while_idle_ends_it(self):
        self.closed_stdout(then_append=False)

    def test_closed_stdout_while_writing_ends_it(self):
        self.closed_stdout(then_append=True)

    def test_text_output(self):
        self.append("alice", "accepted", "ok")
        f = self.follow(json_out=False)
        line = f.lines.get(timeout=WAIT)
        self.assertRegex(line, rb"^\d{4}-\d\d-\d\dT\S+Z accepted login=alice ")
        self.assertEqual(f.stop(), 0)


if __name__ == "__main__":
    sys.exit(unittest.main(verbosity=2))
