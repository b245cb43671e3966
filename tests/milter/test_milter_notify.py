#!/usr/bin/python3
"""test_milter_notify.py — limit-hit notifications of relay-milter (suite 'milter').

The real daemon over the milter protocol (milterproto.py), with notify_sendmail pointing at
a fake sendmail that records each invocation (argv, environment, the message on stdin) in
the test's folder and then succeeds, fails or hangs as a mode file says. Checks: exactly
one notification for many refusals over a limit, for many held messages and for many
refused senders (once per login and kind per notify_period); argv without a shell and a
clean environment; that a failing, hanging (killed after notify_timeout) or missing
sendmail changes no verdict; and that a blocked sendmail fills the bounded queue, past which
notifications are dropped with a log line each and counted, while mail is still answered. Hermetic: temp dir, no timing asserts (sync points are log
lines and later notifications, which the one notifier thread sends in order).

usage: test_milter_notify.py RELAY_MILTER RELAY_ADMIN
"""
import glob
import json
import os
import re
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_milter_daemon as tmd  # noqa: E402
from test_milter_daemon import Daemon, admin, send  # noqa: E402
from daemoncase import PASSWORD, ClassDaemonCase  # noqa: E402

ADMIN_ADDR = "admin@example.org"
re_counts = re.compile(r"notifications: [1-9]\d* sent, [1-9]\d* failed, 2 dropped")

# The fake sendmail: records, then does what <folder>/mode says. It reads the message only
# in mode "ok", so "fail" may also meet a milter still writing (EPIPE, not SIGPIPE).
FAKE = r"""#!/usr/bin/python3
import json, os, sys, time
here = os.path.dirname(os.path.abspath(sys.argv[0]))
mode = open(os.path.join(here, "mode")).read().strip()
rec = {"argv": sys.argv, "env": dict(os.environ), "pid": os.getpid(), "mode": mode,
       "uid": os.getuid()}
if mode == "ok":
    rec["stdin"] = sys.stdin.read()
n = len(os.listdir(os.path.join(here, "calls")))
with open(os.path.join(here, "calls", "%04d-%d.json" % (n, os.getpid())), "w") as f:
    json.dump(rec, f)
if mode == "fail":
    print("fake-sendmail: refused for the test", file=sys.stderr)
    sys.exit(75)
if mode == "hang":
    time.sleep(600)
if mode == "block":   # until the test says so (a sendmail that is slow, without a clock)
    while not os.path.exists(os.path.join(here, "release")):
        time.sleep(0.05)
"""
QUEUE = 32   # MLT_NOTIFY_QUEUE


class NotifyTest(ClassDaemonCase):
    @classmethod
    def setUpClass(cls):
        t = cls.make_tmp("mlt-notify-")
        os.mkdir(t + "/calls")
        cls.fake = t + "/fake-sendmail"
        with open(cls.fake, "w") as f:
            f.write(FAKE)
        os.chmod(cls.fake, 0o755)
        cls.set_mode("ok")
        admin(t, "init")
        for name, limit in [("lim", ["--messages", "1/1h"]),
                            ("holder", ["--messages", "1/1h", "--hold"]),
                            ("spoof", ["--messages", "1000/1h"]),
                            ("failing", ["--messages", "1/1h"]),
                            ("hanging", ["--messages", "1/1h"]),
                            ("missing", ["--messages", "1/1h"]),
                            ("sync1", ["--messages", "1/1h"]),
                            ("sync2", ["--messages", "1/1h"]),
                            ("sync3", ["--messages", "1/1h"])] + \
                [("flood%02d" % k, ["--messages", "1/1h"]) for k in range(QUEUE + 3)]:
            admin(t, "user", "add", name, "--password-stdin", "--sender",
                  "%s@example.com" % name, stdin=PASSWORD)
            admin(t, "limit", "set", name, *limit)
        cls.conf_extra = ("notify_to = %s\nnotify_sendmail = %s\nnotify_refused_senders = 3\n"
                          "notify_timeout = 1s\n" % (ADMIN_ADDR, cls.fake))
        cls.d = Daemon(t, cls.conf_extra)
        cls.d.start()

    @classmethod
    def tearDownClass(cls):
        # a clean exit (sanitizer reports make it non-zero) that says what was sent
        rc = cls.d.stop()
        log = cls.d.log_text()
        super().tearDownClass()
        if rc != 0 or "runtime error" in log or "Sanitizer" in log:
            raise AssertionError("relay-milter exited %r:\n%s" % (rc, log[-4000:]))
        if not re_counts.search(log):
            raise AssertionError("no notification counts at stop:\n" + log[-2000:])

    @classmethod
    def set_mode(cls, mode):
        with open(cls.tmp + "/mode.new", "w") as f:
            f.write(mode)
        os.rename(cls.tmp + "/mode.new", cls.tmp + "/mode")

    def calls(self, login=None):
        out = []
        for p in sorted(glob.glob(self.tmp + "/calls/*.json")):
            with open(p) as f:
                rec = json.load(f)
            if login is None or "login %s " % login in rec.get("stdin", "") or \
                    rec.get("login") == login:
                out.append(rec)
        return out

    def send_n(self, login, n, sender=None):
        """n messages from `login`; the replies' first words ('eom' accepted -> 'ok')."""
        out = []
        for k in range(n):
            stage, r = send(self.d.sock, login, sender or "<%s@example.com>" % login,
                            queue_id="Q%s%d" % (login.upper(), k))
            out.append("ok" if stage == "eom" and r.code == "c" else
                       (r.smtp[:9] if r.smtp else "%s:%s" % (stage, r.code)))
        return out

    def sync(self, login):
        """A later notification of another login has been handled: the thread has dealt
        with everything queued before it (one thread, in order)."""
        mark = len(self.d.log_text())
        self.assertEqual(self.send_n(login, 2), ["ok", "450 4.7.1"])
        self.d.wait_log("login=%s event=limit" % login, since=mark)

    # ------------------------------------------------------------------------------------
    def test_one_notification_for_many_refusals(self):
        mark = len(self.d.log_text())
        self.assertEqual(self.send_n("lim", 6), ["ok"] + ["450 4.7.1"] * 5)
        self.d.wait_log("notification sent to %s: login=lim event=limit" % ADMIN_ADDR,
                        since=mark)
        self.assertEqual(self.send_n("lim", 3), ["450 4.7.1"] * 3)
        self.sync("sync2")
        calls = self.calls("lim")
        self.assertEqual(len(calls), 1, "one notification for 8 refusals: %r" % calls)
        c = calls[0]
        # no shell: argv exactly as documented; environment: PATH and nothing else
        self.assertEqual(c["argv"], [self.fake, "-i", "-f", "relay-milter", "--", ADMIN_ADDR])
        self.assertEqual(sorted(k for k in c["env"] if k not in ("PWD", "LC_CTYPE")),
                         ["PATH"], c["env"])
        self.assertEqual(c["uid"], os.getuid())
        msg = c["stdin"]
        self.assertIn("\nSubject: relay: login lim hit a rate limit\n", "\n" + msg)
        self.assertIn("To: %s\n" % ADMIN_ADDR, msg)
        for part in ("  login:   lim\n", "  event:   limit\n", "  limit:   1 messages\n",
                     "  window:  1h\n", "  client:  192.0.2.10\n", "relay-admin usage lim"):
            self.assertIn(part, msg)

    def test_held_once(self):
        mark = len(self.d.log_text())
        self.assertEqual(self.send_n("holder", 4), ["ok"] * 4)   # 1 accepted, 3 held
        self.d.wait_log("login=holder event=held", since=mark)
        self.sync("sync1")
        calls = self.calls("holder")
        self.assertEqual(len(calls), 1, calls)
        self.assertIn("is held over a limit", calls[0]["stdin"])
        self.assertIn("hold queue", calls[0]["stdin"])

    def test_refused_senders_threshold(self):
        mark = len(self.d.log_text())
        self.assertEqual(self.send_n("spoof", 2, sender="<boss@bank.example>"),
                         ["553 5.7.1"] * 2)
        # below the threshold (3): nothing yet; the third refusal notifies, later ones not
        self.assertEqual(self.send_n("spoof", 5, sender="<boss@bank.example>"),
                         ["553 5.7.1"] * 5)
        self.d.wait_log("login=spoof event=refused-senders", since=mark)
        self.sync("sync3")
        calls = self.calls("spoof")
        self.assertEqual(len(calls), 1, calls)
        self.assertIn("keeps trying refused senders", calls[0]["stdin"])
        self.assertIn("<boss@bank.example>", calls[0]["stdin"])

    def test_failing_sendmail_changes_no_verdict(self):
        self.set_mode("fail")
        try:
            mark = len(self.d.log_text())
            self.assertEqual(self.send_n("failing", 4), ["ok"] + ["450 4.7.1"] * 3)
            self.d.wait_log("notification to %s failed (login=failing event=limit): %s exited "
                            "with status 75: fake-sendmail: refused for the test"
                            % (ADMIN_ADDR, self.fake), since=mark)
            self.assertEqual(self.send_n("failing", 2), ["450 4.7.1"] * 2)
        finally:
            self.set_mode("ok")

    def test_hanging_sendmail_is_killed(self):
        self.set_mode("hang")
        try:
            mark = len(self.d.log_text())
            self.assertEqual(self.send_n("hanging", 3), ["ok"] + ["450 4.7.1"] * 2)
            self.d.wait_log("did not finish within 1s: killed", since=mark)
        finally:
            self.set_mode("ok")
        hung = [c for c in self.calls() if c["mode"] == "hang"]
        self.assertEqual(len(hung), 1)
        with self.assertRaises(ProcessLookupError, msg="the hanging sendmail was killed"):
            os.kill(hung[0]["pid"], 0)
        self.assertEqual(self.send_n("hanging", 1), ["450 4.7.1"])

    def test_full_queue_drops_with_a_log_line(self):
        """sendmail blocks: the callbacks go on answering, the queue (32) fills, and the
        two notifications beyond it are dropped, each with one log line (and counted: see
        tearDownClass); the queued ones go out once sendmail is released."""
        self.set_mode("block")
        mark = len(self.d.log_text())
        try:
            self.assertEqual(self.send_n("flood00", 2), ["ok", "450 4.7.1"])
            for _ in range(400):   # sync: the thread is inside the blocked sendmail
                if any(c["mode"] == "block" for c in self.calls()):
                    break
                time.sleep(0.05)
            else:
                self.d.fail_log("the fake sendmail was never started")
            for k in range(1, QUEUE + 3):
                self.assertEqual(self.send_n("flood%02d" % k, 2), ["ok", "450 4.7.1"])
            log = self.d.log_text()[mark:]
            for k in (QUEUE + 1, QUEUE + 2):
                self.assertIn("notification dropped (login=flood%02d event=limit): the queue is "
                              "full" % k, log)
            self.assertEqual(log.count("notification dropped"), 2, log)
        finally:
            self.set_mode("ok")
            open(self.tmp + "/release", "w").close()
        self.d.wait_log("login=flood%02d event=limit" % QUEUE, since=mark)
        sent = re.findall(r"notification sent to \S+: login=(flood\d+)", self.d.log_text()[mark:])
        self.assertEqual(sorted(sent), ["flood%02d" % k for k in range(QUEUE + 1)])

    def test_missing_sendmail_changes_no_verdict(self):
        mark = len(self.d.log_text())
        self.d.write_conf(self.conf_extra.replace(self.fake, self.tmp + "/no-such-sendmail"))
        try:
            self.d.proc.send_signal(signal.SIGUSR1)
            self.d.wait_log("configuration reloaded", since=mark)
            self.assertEqual(self.send_n("missing", 3), ["ok"] + ["450 4.7.1"] * 2)
            self.d.wait_log("notification to %s failed (login=missing event=limit): cannot run "
                            "%s/no-such-sendmail" % (ADMIN_ADDR, self.tmp), since=mark)
        finally:
            mark = len(self.d.log_text())
            self.d.write_conf(self.conf_extra)
            self.d.proc.send_signal(signal.SIGUSR1)
            self.d.wait_log("configuration reloaded", since=mark)


if __name__ == "__main__":
    tmd.MILTER, tmd.ADMIN = sys.argv[1], sys.argv[2]
    del sys.argv[1:3]
    unittest.main(verbosity=2)
