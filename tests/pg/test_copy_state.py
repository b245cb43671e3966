#!/usr/bin/python3
"""test_copy_state.py — `relay-admin copy --state` (admin/copy_state.c): SQLite →
PostgreSQL → SQLite keeps every usage, last-use and audit row (counts and values), a
second copy into a database that already holds state is refused and changes nothing, and
the copy on PostgreSQL reads back through relay-admin log. Suite 'pg'; a private
PostgreSQL from tests/lib/pglab.py; loopback only.

usage: test_copy_state.py RELAY_ADMIN
"""
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'lib'))
import pglab  # noqa: E402

ADMIN = None


class CopyStateTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmpdir = tempfile.TemporaryDirectory(prefix="pg-copy-state-")
        cls.tmp = cls.tmpdir.name
        cls.pg = pglab.PgLab(prefix="pg-copy-state-lab-")
        cls.pg.create_role("relay", password="relay-copy-pw")
        cls.pg.create_database("relay", owner="relay")
        os.environ["PGPASSFILE"] = cls.pg.write_passfile(os.path.join(cls.tmp, "pgpass"),
                                                         "relay", "relay-copy-pw")
        cls.uri = cls.pg.uri("relay", "relay")

    @classmethod
    def tearDownClass(cls):
        cls.pg.close()
        cls.tmpdir.cleanup()

    def admin(self, *args, state):
        env = dict(os.environ, RELAY_DB=os.path.join(self.tmp, "users.db"), RELAY_STATE_DB=state)
        return subprocess.run([ADMIN] + list(args), env=env, capture_output=True, text=True,
                              timeout=60)

    def copy(self, src, dst):
        return subprocess.run([ADMIN, "--json", "copy", "--state", "--from", src, "--to", dst],
                              capture_output=True, text=True, timeout=60)

    def counts(self, r):
        self.assertEqual(r.returncode, 0, r.stderr)
        got = json.loads(r.stdout)
        return (got["usage"], got["last_use"], got["audit"], got["credential_use"],
                got["counters"])

    def rows(self, path):
        with sqlite3.connect(path) as db:
            return (db.execute("SELECT lower(login), ts, messages, recipients, bytes FROM usage"
                               " ORDER BY 1, 2").fetchall(),
                    db.execute("SELECT lower(login), ts, client_addr FROM last_use"
                               " ORDER BY 1").fetchall(),
                    db.execute("SELECT ts, login, client_addr, tls_version, cipher, env_from,"
                               " header_from, rcpt_count, size, queue_id, verdict, reason,"
                               " credential FROM audit ORDER BY id").fetchall(),
                    db.execute("SELECT lower(login), label, ts, client_addr FROM credential_use"
                               " ORDER BY 1, 2").fetchall(),
                    db.execute("SELECT name, label, value FROM counters ORDER BY 1, 2")
                    .fetchall())

    def test_sqlite_to_pg_and_back(self):
        src = os.path.join(self.tmp, "state.db")
        r = self.admin("init", state=src)
        self.assertEqual(r.returncode, 0, r.stderr)
        now = int(time.time())
        with sqlite3.connect(src) as db:
            db.executemany("INSERT INTO usage VALUES (?, ?, ?, ?, ?)",
                           [("alice", now - 10, 2, 5, 3000), ("alice", now - 5, 1, 1, 900),
                            ("Bob", now - 100, 4, 4, 12000)])
            db.executemany("INSERT INTO last_use VALUES (?, ?, ?)",
                           [("alice", now - 5, "192.0.2.1"), ("Bob", now - 100, "2001:db8::1")])
            db.executemany("INSERT INTO audit (ts, login, client_addr, tls_version, cipher,"
                           " env_from, header_from, rcpt_count, size, queue_id, verdict, reason)"
                           " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           [(now - 10 + k, "alice", "192.0.2.1", "TLSv1.3", "X", "a@example.com",
                             "a@example.com", 1, 100 + k, "Q%d" % k, "accepted", "ok")
                            for k in range(5)] +
                           [(now - 1, "Bob", "2001:db8::1", "TLSv1.2", "Y", "b@example.com", "",
                             0, 0, "", "rejected", "sender-not-allowed")])
            # issue 12: the credential a message came through, its last use, the counters
            db.execute("UPDATE audit SET credential = 'phone' WHERE queue_id = 'Q4'")
            db.execute("INSERT INTO credential_use VALUES ('alice', 'phone', ?, '192.0.2.1')",
                       (now - 6,))
            db.executemany("INSERT INTO counters VALUES (?, ?, ?)",
                           [("relay_messages_accepted_total", "", 5),
                            ("relay_limit_hits_total", "messages", 2)])
        want = self.rows(src)

        self.assertEqual(self.counts(self.copy(src, self.uri)), (3, 2, 6, 1, 2))
        self.assertEqual(self.pg.psql("SELECT credential FROM audit WHERE queue_id = 'Q4'",
                                      db="relay"), "phone")
        self.assertEqual(self.pg.psql("SELECT count(*), sum(messages), sum(bytes) FROM usage",
                                      db="relay"), "3|7|15900")
        self.assertEqual(self.pg.psql("SELECT string_agg(queue_id, ',' ORDER BY id) FROM audit",
                                      db="relay"), "Q0,Q1,Q2,Q3,Q4,")
        r = self.admin("log", "--user", "alice", state=self.uri)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("Q4", r.stdout)
        r = self.admin("--json", "usage", state=self.uri)
        self.assertEqual(r.returncode, 0, r.stderr)

        # a second copy into a database that already holds state: refused, nothing added
        r = self.copy(src, self.uri)
        self.assertEqual(r.returncode, 5, r.stderr)
        self.assertIn("already holds state", r.stderr)
        self.assertEqual(self.pg.psql("SELECT count(*) FROM audit", db="relay"), "6")

        # and back into a fresh SQLite file: the same rows
        back = os.path.join(self.tmp, "back.db")
        self.assertEqual(self.counts(self.copy(self.uri, back)), (3, 2, 6, 1, 2))
        self.assertEqual(self.rows(back), want)


if __name__ == "__main__":
    ADMIN = sys.argv[1]
    why = pglab.need_pg()
    if why:
        print("SKIP: " + why)
        sys.exit(77)
    unittest.main(argv=sys.argv[:1], verbosity=2)
