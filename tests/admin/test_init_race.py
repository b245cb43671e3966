#!/usr/bin/python3
"""test_init_race.py — `relay-admin init --milter-user` cannot be raced into giving a
root-owned file to the milter's user (issue 8).

The state folder belongs to the milter's user. The attack: that user swaps state.db and a
symbolic link to a file of root's, back and forth with renameat2(RENAME_EXCHANGE), while
root runs init; a chown/chmod by path lands on the link's target. Here a swapper process
running as `nobody` does exactly that while init runs up to RUNS times (or DEADLINE
seconds); the victim's owner, group, mode and content must never change. Needs root (to
become nobody and to run init --milter-user); skipped otherwise.
"""
import ctypes
import hashlib
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
import time
import unittest

from adminlib import OK, RELAY_ADMIN

RUNS = 300
DEADLINE = 60.0          # seconds of init runs at most (a bound, not an assertion)
SWAPPER_LIFETIME = 100   # the swapper exits by itself even if this test dies
RENAME_EXCHANGE = 2
AT_FDCWD = -100


def swapper(folder, uid, gid, names):
    """Child process: become uid/gid, then exchange each name with its link, forever."""
    try:
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
        os.chdir(folder)
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
        pairs = [(n.encode(), (n + ".lnk").encode()) for n in names]
        end = time.monotonic() + SWAPPER_LIFETIME
        while time.monotonic() < end:
            for _ in range(2000):
                for a, b in pairs:
                    renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE)
    finally:
        os._exit(0)


def snapshot(path):
    st = os.lstat(path)
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    return (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), st.st_nlink, digest)


@unittest.skipUnless(os.geteuid() == 0, "needs root")
class InitRace(unittest.TestCase):
    def setUp(self):
        self.top = tempfile.mkdtemp(prefix="relay-init-race.")
        os.chmod(self.top, 0o711)     # nobody must reach the state folder, nothing more
        self.nobody = pwd.getpwnam("nobody")
        self.state_dir = os.path.join(self.top, "state")
        self.state = os.path.join(self.state_dir, "state.db")
        self.victim = os.path.join(self.top, "victim")
        with open(self.victim, "wb") as f:
            f.write(b"root's file: must keep its owner\n")
        os.chmod(self.victim, 0o600)
        self.pid = None

    def tearDown(self):
        if self.pid is not None:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        shutil.rmtree(self.top)

    def init(self):
        env = dict(os.environ)
        env.pop("RELAY_DB", None)
        env.pop("RELAY_STATE_DB", None)
        return subprocess.run([RELAY_ADMIN, "--db", os.path.join(self.top, "users.db"),
                               "--state-db", self.state, "init", "--milter-user", "nobody"],
                              capture_output=True, timeout=60, env=env)

    def test_swapped_state_db_never_steals_a_file(self):
        p = self.init()
        self.assertEqual(p.returncode, OK, p.stderr)
        st = os.stat(self.state_dir)
        self.assertEqual((st.st_uid, stat.S_IMODE(st.st_mode)), (self.nobody.pw_uid, 0o750))
        # the milter's user plants its links (as it could) and starts swapping
        for name in ("state.db", "state.db-wal"):
            os.symlink(self.victim, os.path.join(self.state_dir, name + ".lnk"))
            os.lchown(os.path.join(self.state_dir, name + ".lnk"), self.nobody.pw_uid,
                      self.nobody.pw_gid)
        before = snapshot(self.victim)
        self.pid = os.fork()
        if self.pid == 0:
            swapper(self.state_dir, self.nobody.pw_uid, self.nobody.pw_gid,
                    ["state.db", "state.db-wal"])
        runs, codes, stolen = 0, {}, None
        end = time.monotonic() + DEADLINE
        while runs < RUNS and time.monotonic() < end:
            p = self.init()
            runs += 1
            codes[p.returncode] = codes.get(p.returncode, 0) + 1
            for marker in (b"runtime error:", b"Sanitizer"):
                self.assertNotIn(marker, p.stderr, p.stderr.decode(errors="replace"))
            if snapshot(self.victim) != before:
                stolen = (runs, snapshot(self.victim), p.stderr)
                break
        print("# %d init runs against the swapper; exit codes %s" % (runs, codes))
        self.assertIsNone(stolen, "after %s runs the victim changed: %s" % (
            stolen and stolen[0], stolen))
        # the refusals say why (a link or the database's own symlink check), never crash
        self.assertTrue(set(codes) <= {OK, 5, 6}, codes)
        self.assertIn(OK, codes, "init never got through while raced: %s" % codes)


if __name__ == "__main__":
    unittest.main()
