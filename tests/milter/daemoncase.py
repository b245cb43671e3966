"""daemoncase.py — the test-case plumbing the relay-milter daemon tests share (suite 'milter').

test_milter_daemon.py and test_milter_clock.py both run one daemon per class, and several
daemon tests make a private folder with a state database per test; the setup and teardown
live here once, so a change to how a daemon is stopped or its log kept applies to all.
Standard library only; the daemon itself is test_milter_daemon.Daemon.
"""
import os
import sys
import tempfile
import unittest

# The password the daemon tests give their logins (long enough for relay-admin's check).
PASSWORD = "A-long-enough-test-password-1234\n"


class ClassDaemonCase(unittest.TestCase):
    """One daemon (cls.d) in a private folder (cls.tmp) for the whole class; its log goes
    to stderr when MLT_KEEP is set, for a failure that needs reading."""

    @classmethod
    def make_tmp(cls, prefix):
        cls.tmpdir = tempfile.TemporaryDirectory(prefix=prefix)
        cls.tmp = cls.tmpdir.name
        return cls.tmp

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()
        if os.environ.get("MLT_KEEP"):
            print(open(cls.d.log).read(), file=sys.stderr)
        cls.tmpdir.cleanup()


def private_dir(test, prefix):
    """A folder for this one test (test.tmp), removed when it ends."""
    test.tmpdir = tempfile.TemporaryDirectory(prefix=prefix)
    test.addCleanup(test.tmpdir.cleanup)
    test.tmp = test.tmpdir.name
    return test.tmp


def private_state(test, prefix):
    """private_dir() with a state/ folder in it; test.state is the state database's path
    (not made yet: relay-admin init makes it)."""
    t = private_dir(test, prefix)
    os.mkdir(t + "/state")
    test.state = t + "/state/state.db"
    return t
