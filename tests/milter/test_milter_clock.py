#!/usr/bin/python3
"""test_milter_clock.py — rate limits across wall-clock steps (suite 'milter').

relay-milter runs with clockshim.so preloaded: its time() and clock_gettime(CLOCK_REALTIME)
are the real wall clock plus an offset the test rewrites mid-run, the way an NTP step, a VM
restore or `date -s` moves a server's clock. Driven over the real milter protocol
(milterproto.py), with private databases made by relay-admin. Checks that no step, backwards
or forwards, lets more than a limit through, that no step locks a login out for longer than
its window (the "retry in N seconds" a client is told never exceeds the window, and a short
window really frees), and that counters persisted before a step still count after a
restart. Hermetic: temp dir, loopback only, no timing asserts.

Under AddressSanitizer the sanitizer runtime must come first in LD_PRELOAD: if the milter
links libasan, the test puts that library in front of the shim.

usage: test_milter_clock.py RELAY_MILTER RELAY_ADMIN CLOCKSHIM_SO
"""
import os
import re
import sqlite3
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_milter_daemon as tmd  # noqa: E402
from test_milter_daemon import Daemon, admin, send  # noqa: E402
from daemoncase import PASSWORD, ClassDaemonCase  # noqa: E402

SHIM = None
HOUR = 3600


def preload_list(binary, shim):
    """LD_PRELOAD for `binary`: the shim, behind the ASan runtime if the binary uses one."""
    out = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
    m = re.search(r"^\s*(libasan\.so\S*)\s+=>\s+(\S+)", out, re.M)
    return (m.group(2) + ":" + shim) if m else shim


class ShimDaemon(Daemon):
    """The test daemon with its wall clock under the test's control."""

    def __init__(self, tmp, extra=""):
        super().__init__(tmp, extra)
        self.clock_file = os.path.join(tmp, "clock-offset")
        self.set_offset(0)

    def set_offset(self, seconds):
        # rename: the shim reads the file on every call and must never see half of it
        tmp = self.clock_file + ".new"
        with open(tmp, "w") as f:
            f.write("%+d\n" % seconds)
        os.rename(tmp, self.clock_file)

    def start(self):
        saved = {k: os.environ.get(k) for k in ("LD_PRELOAD", "RELAY_TEST_CLOCK_FILE")}
        os.environ["LD_PRELOAD"] = preload_list(tmd.MILTER, SHIM)
        os.environ["RELAY_TEST_CLOCK_FILE"] = self.clock_file
        try:
            super().start()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def retry_seconds(reply):
    m = re.search(r"retry in (\d+) seconds", reply.smtp)
    if m is None:
        raise AssertionError("no retry time in %r" % reply.smtp)
    return int(m.group(1))


class ClockStepTest(ClassDaemonCase):
    @classmethod
    def setUpClass(cls):
        t = cls.make_tmp("mlt-clock-")
        admin(t, "init")
        for name in ("back", "fwd", "fix", "quick", "disk"):
            admin(t, "user", "add", name, "--password-stdin", "--sender",
                  "%s@example.com" % name, stdin=PASSWORD)
            admin(t, "limit", "set", name, "--messages",
                  "1/3s" if name == "quick" else "2/1h")
        cls.d = ShimDaemon(t)
        cls.d.start()

    def setUp(self):
        self.d.set_offset(0)

    def send(self, login):
        return send(self.d.sock, login, "<%s@example.com>" % login)

    def assertAccepted(self, login, why):
        stage, r = self.send(login)
        self.assertEqual((stage, r.code), ("eom", "c"), "%s: %r" % (why, r))

    def assertLimited(self, login, window, why):
        """Refused for the rate limit, told to come back within one window."""
        stage, r = self.send(login)
        self.assertEqual(stage, "mail", "%s: %r" % (why, r))
        self.assertTrue(r.smtp.startswith("450 4.7.1"), "%s: %r" % (why, r.smtp))
        wait = retry_seconds(r)
        self.assertGreaterEqual(wait, 1, why)
        self.assertLessEqual(wait, window, "%s: locked out for longer than the window" % why)

    def newest_audit_time(self, login):
        """The daemon's wall clock as it wrote the login's last audit record."""
        time.sleep(0.2)  # the writer commits every state_flush_ms (20 ms here)
        db = sqlite3.connect("file:%s/state.db?mode=ro" % self.tmp, uri=True)
        try:
            return db.execute("SELECT ts FROM audit WHERE login = ? ORDER BY id DESC LIMIT 1",
                              (login,)).fetchone()[0]
        finally:
            db.close()

    def audit_count(self, login):
        db = sqlite3.connect("file:%s/state.db?mode=ro" % self.tmp, uri=True)
        try:
            return db.execute("SELECT count(*) FROM audit WHERE login = ?", (login,)).fetchone()[0]
        finally:
            db.close()

    def accepted(self, login, attempts):
        n = 0
        for _ in range(attempts):
            stage, r = self.send(login)
            if (stage, r.code) == ("eom", "c"):
                n += 1
            else:
                self.assertTrue(r.smtp.startswith("450 4.7.1"), r.smtp)
        return n

    def test_backward_step_still_counts_and_survives_restart(self):
        # the attack of issue 8, item 5: 2/1h, one message, then the clock is 300 s behind
        self.assertAccepted("back", "first message")
        self.d.set_offset(-300)
        self.assertEqual(self.accepted("back", 8), 1,
                         "2/1h: one more after a 300 s backward step, not 8")
        # the shim really moved the daemon's clock (also under ASan's preload)
        self.assertLess(self.newest_audit_time("back"), time.time() - 250)
        self.assertLimited("back", HOUR, "after the backward step")
        # restart with the clock still behind: the persisted rows (one of them dated 300 s
        # "in the future") must still count, and for no longer than a window
        self.assertEqual(self.d.stop(), 0, "clean stop (and no leak report under ASan)")
        self.d.start()
        self.assertLimited("back", HOUR, "after a restart behind the clock")

    def test_forward_step_is_not_time_passing(self):
        # a running milter measures its windows on its own steady clock: a jump of the wall
        # clock by two windows must not hand out two more messages
        for i in range(2):
            self.assertAccepted("fwd", "message %d" % i)
        self.d.set_offset(2 * HOUR)
        self.assertEqual(self.accepted("fwd", 4), 0, "2/1h after a 2 h forward step")
        self.assertLimited("fwd", HOUR, "after the forward step")

    def test_wrong_forward_clock_corrected(self):
        # the clock was 2 h fast (messages stamped 2 h ahead) and is then put right: what was
        # sent still counts, and the client is told to wait at most one window, not 3 h
        self.d.set_offset(2 * HOUR)
        for i in range(2):
            self.assertAccepted("fix", "message %d" % i)
        self.d.set_offset(0)
        self.assertEqual(self.accepted("fix", 4), 0, "2/1h after the correction")
        self.assertLimited("fix", HOUR, "after the correction")

    def test_state_still_written_after_a_step(self):
        # The state writer sleeps until a deadline. On the wall clock, a step back of N
        # seconds during that sleep stalls it for N seconds, usage not on disk (a crash then
        # loses it, and a restart hands the quota out again). The shim reproduces it the
        # other way round: the deadline is computed 2 h ahead of the clock the kernel waits on.
        self.d.set_offset(2 * HOUR)
        time.sleep(0.2)  # the writer's next deadline is computed on the shifted clock
        for i in range(2):
            self.assertAccepted("disk", "message %d" % i)
        for _ in range(100):  # the writer commits every 20 ms; give it 10 s
            if self.audit_count("disk") == 2:
                break
            time.sleep(0.1)
        self.assertEqual(self.audit_count("disk"), 2, "usage written while the clock is off")

    def test_lockout_ends_one_window_after_a_step(self):
        # 1/3s: sent while the clock was 2 h fast, then corrected. A limiter that dated the
        # entry by the wall clock would lock the login out for 2 h + 3 s.
        self.d.set_offset(2 * HOUR)
        self.assertAccepted("quick", "first message")
        self.d.set_offset(0)
        self.assertLimited("quick", 3, "right after the correction")
        time.sleep(4)  # one window (3 s) and a margin, in real time
        self.assertAccepted("quick", "one window after the step")


if __name__ == "__main__":
    tmd.MILTER, tmd.ADMIN, SHIM = sys.argv[1], sys.argv[2], os.path.abspath(sys.argv[3])
    del sys.argv[1:4]
    unittest.main(verbosity=2)
