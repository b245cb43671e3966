#!/usr/bin/python3
"""test_milter_pidfile.py — relay-milter writes its PID file through descriptors (issue 8).

relay-milter writes the PID file before it drops privileges, usually into a folder the
milter's user owns (/run/relay-milter). What that user (or anyone who can write a folder on
the way) plants there must not hang or steer the start:
- a FIFO under the PID file's name: the old open(O_WRONLY) waited for a reader forever,
  so the milter never listened and mail waited (milter_default_action = tempfail);
- a symbolic link on the way, in a folder others can write, to a folder holding a file of
  the same name: the old code truncated and rewrote that file, and removed it at exit.
Now both are refused at start (exit 1, the reason logged) and nothing elsewhere changes.
And the PID file it does write is removed at exit only while it is still its own.

Hermetic (temp folder); runs as any user.

usage: test_milter_pidfile.py RELAY_MILTER RELAY_ADMIN
"""
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest

MILTER = ADMIN = None
START_BOUND = 30    # seconds: a start that has not ended by then hangs (a bound, not a timing)


class PidFile(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="mlt-pidfile-")
        self.tmp = self._tmp.name
        env = dict(os.environ, RELAY_DB=self.tmp + "/users.db",
                   RELAY_STATE_DB=self.tmp + "/state.db")
        subprocess.run([ADMIN, "init"], env=env, check=True, capture_output=True)
        self.sock = os.path.join(self.tmp, "milter.sock")
        self.proc = None

    def tearDown(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._tmp.cleanup()

    def start(self, pid_file):
        conf = os.path.join(self.tmp, "milter.conf")
        with open(conf, "w") as f:
            f.write("socket = unix:%s\nusers_db = %s/users.db\nstate_db = %s/state.db\n"
                    "log = stderr\npid_file = %s\n" % (self.sock, self.tmp, self.tmp, pid_file))
        self.proc = subprocess.Popen([MILTER, "-f", "-c", conf], stderr=subprocess.PIPE)

    def wait_refused(self):
        """The start must end by itself with exit 1; returns its log."""
        try:
            _, err = self.proc.communicate(timeout=START_BOUND)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
            self.fail("relay-milter hung at start: %s" % err.decode(errors="replace"))
        self.assertEqual(self.proc.returncode, 1, err)
        return err.decode(errors="replace")

    def test_fifo_at_pid_file_is_refused(self):
        run = os.path.join(self.tmp, "run")
        os.mkdir(run)
        os.chmod(run, 0o777)   # the milter's user's folder, as far as we are concerned
        os.mkfifo(os.path.join(run, "relay-milter.pid"), 0o666)
        self.start(os.path.join(run, "relay-milter.pid"))
        log = self.wait_refused()
        self.assertIn("FIFO", log)
        self.assertFalse(os.path.exists(self.sock))

    def test_link_on_the_way_is_not_followed(self):
        run = os.path.join(self.tmp, "run")
        victim_dir = os.path.join(self.tmp, "victim")
        os.mkdir(run)
        os.chmod(run, 0o777)
        os.mkdir(victim_dir)
        victim = os.path.join(victim_dir, "relay-milter.pid")
        with open(victim, "w") as f:
            f.write("someone else's file\n")
        os.symlink(victim_dir, os.path.join(run, "sub"))
        self.start(os.path.join(run, "sub", "relay-milter.pid"))
        if not os.path.exists(self.sock):
            # the old code went on to listen; give it time to, then stop it as usual
            for _ in range(100):
                if os.path.exists(self.sock) or self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(START_BOUND)
        self.assertTrue(os.path.exists(victim), "the milter removed a file through a link")
        with open(victim) as f:
            self.assertEqual(f.read(), "someone else's file\n")
        self.assertEqual(self.proc.returncode, 1)
        self.assertIn("symbolic link", self.proc.stderr.read().decode(errors="replace"))

    def test_pid_file_written_and_removed(self):
        run = os.path.join(self.tmp, "run")
        os.mkdir(run, 0o755)
        pid_file = os.path.join(run, "relay-milter.pid")
        self.start(pid_file)
        for _ in range(200):
            if os.path.exists(self.sock) or self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.assertIsNone(self.proc.poll(), "relay-milter did not start")
        with open(pid_file) as f:
            self.assertEqual(int(f.read()), self.proc.pid)
        self.proc.send_signal(signal.SIGTERM)
        self.assertEqual(self.proc.wait(START_BOUND), 0)
        self.assertFalse(os.path.exists(pid_file))


if __name__ == "__main__":
    MILTER, ADMIN = sys.argv[1], sys.argv[2]
    del sys.argv[1:3]
    unittest.main(verbosity=2)
