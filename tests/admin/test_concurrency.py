#!/usr/bin/python3
"""test_concurrency.py — relay-admin processes writing at the same time lose nothing.

Several writers add logins and senders concurrently (each run is its own process and
connection); every write must land, and the file must pass SQLite's integrity check.
"""
import subprocess
import threading
import unittest

from adminlib import AdminTest, OK, RELAY_ADMIN

WRITERS = 4
PER_WRITER = 15


class Concurrency(AdminTest):
    def run_writers(self, make_argv):
        failures = []

        def writer(w):
            for i in range(PER_WRITER):
                p = subprocess.run([RELAY_ADMIN, "--db", self.db] + make_argv(w, i),
                                   input=b"a long enough password for tests\n",
                                   capture_output=True, timeout=120)
                if p.returncode != OK:
                    failures.append((w, i, p.returncode, p.stderr))

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(failures, [])

    def test_concurrent_adds(self):
        self.run_writers(lambda w, i: ["user", "add", "w%d-u%d@example.com" % (w, i),
                                       "--password-stdin", "--sender", "@w%d.example" % w])
        self.assertEqual(self.rows("SELECT count(*) FROM logins"), [(WRITERS * PER_WRITER,)])
        self.assertEqual(self.rows("SELECT count(*) FROM senders"), [(WRITERS * PER_WRITER,)])
        self.assertEqual(self.rows("PRAGMA integrity_check"), [("ok",)])

    def test_concurrent_senders_on_one_login(self):
        self.add("shared", "a long enough password")
        self.run_writers(lambda w, i: ["sender", "add", "shared", "s%d-%d@example.com" % (w, i)])
        self.assertEqual(self.rows("SELECT count(*) FROM senders"), [(WRITERS * PER_WRITER,)])
        self.assertEqual(self.rows("PRAGMA integrity_check"), [("ok",)])


if __name__ == "__main__":
    unittest.main(verbosity=2)
