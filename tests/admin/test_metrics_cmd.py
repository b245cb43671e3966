"""test_metrics_cmd.py — `relay-admin metrics` (issue 12, item 5) on a state database.

The counters relay-milter persists (table counters, state schema 3) are written here with
SQLite directly, as the milter's user could write anything into its own file: the command
prints the documented families with # HELP/# TYPE lines, sums per name and label, zeros for
what never counted, and never prints a name outside the catalogue or a label that is not a
plain tag. The exposition parser (python3-prometheus-client) reads the output when this
Python has it; tests/e2e/test_metrics.py always does.
"""
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import unittest

RELAY_ADMIN = os.environ.get("RELAY_ADMIN", "relay-admin")
STATE_APPEND = os.environ.get("STATE_APPEND", "state-append")

FAMILIES = {
    "relay_messages_accepted_total": "counter", "relay_accepted_recipients_total": "counter",
    "relay_accepted_bytes_total": "counter", "relay_messages_refused_total": "counter",
    "relay_tempfails_total": "counter", "relay_messages_held_total": "counter",
    "relay_limit_hits_total": "counter", "relay_policy_reloads_total": "counter",
    "relay_config_reloads_total": "counter", "relay_state_writer_failures_total": "counter",
    "relay_database_errors_total": "counter",
}


class MetricsCommand(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="relay-metrics-test.")
        self.db = os.path.join(self._tmp.name, "state.db")
        subprocess.run([STATE_APPEND, self.db, "alice", "accepted", "ok"], check=True,
                       timeout=30)

    def tearDown(self):
        self._tmp.cleanup()

    def metrics(self, *extra):
        p = subprocess.run([RELAY_ADMIN, "--state-db", self.db] + list(extra) + ["metrics"],
                           capture_output=True, timeout=30)
        for marker in (b"runtime error:", b"Sanitizer"):
            self.assertNotIn(marker, p.stderr, p.stderr.decode(errors="replace"))
        return p

    def put(self, rows):
        con = sqlite3.connect(self.db)
        with con:
            con.executemany("INSERT INTO counters (name, label, value) VALUES (?, ?, ?)", rows)
        con.close()

    def samples(self, text):
        out = {}
        for line in text.splitlines():
            if line.startswith("#"):
                continue
            m = re.fullmatch(r'(\w+)(?:\{(\w+)="([^"]*)"\})? (\d+)', line)
            self.assertIsNotNone(m, line)
            out[(m.group(1), m.group(3) or "")] = int(m.group(4))
        return out

    def test_fresh_database_zeros_and_shapes(self):
        p = self.metrics()
        self.assertEqual(p.returncode, 0, p)
        text = p.stdout.decode()
        for name, typ in FAMILIES.items():
            self.assertIn("# TYPE %s %s\n" % (name, typ), text)
            self.assertIn("# HELP %s " % name, text)
        s = self.samples(text)
        self.assertEqual(s[("relay_messages_accepted_total", "")], 0)
        self.assertEqual(s[("relay_limit_hits_total", "bytes")], 0)
        self.assertEqual(s[("relay_database_errors_total", "state")], 0)
        self.assertNotIn("relay_state_writer_backlog", text)   # a live gauge: file only
        try:
            from prometheus_client.parser import text_string_to_metric_families
        except ImportError:
            return
        names = {f.name + "_total" for f in text_string_to_metric_families(text)}
        self.assertEqual(names, set(FAMILIES))

    def test_persisted_totals(self):
        self.put([("relay_messages_accepted_total", "", 7),
                  ("relay_messages_refused_total", "sender-not-allowed", 2),
                  ("relay_tempfails_total", "rate-limit", 3),
                  ("relay_limit_hits_total", "messages", 4)])
        s = self.samples(self.metrics().stdout.decode())
        self.assertEqual(s[("relay_messages_accepted_total", "")], 7)
        self.assertEqual(s[("relay_messages_refused_total", "sender-not-allowed")], 2)
        self.assertEqual(s[("relay_tempfails_total", "rate-limit")], 3)
        self.assertEqual(s[("relay_limit_hits_total", "messages")], 4)
        self.assertEqual(s[("relay_limit_hits_total", "recipients")], 0)

    def test_hostile_rows_are_not_printed(self):
        self.put([("relay_messages_refused_total", 'x"} 1\nrelay_evil_total{a="', 1),
                  ("relay_messages_refused_total", "\x1b[2J", 1),
                  ("relay_messages_refused_total", "Upper", 1),
                  ("relay_evil_total", "", 5),
                  ("relay_state_writer_backlog", "", 9),          # a gauge is never persisted
                  ("relay_messages_accepted_total", "label-on-a-plain-family", 8)])
        p = self.metrics()
        self.assertEqual(p.returncode, 0, p)
        text = p.stdout.decode()
        self.assertNotIn("evil", text)
        self.assertNotIn("\x1b", text)
        self.assertNotIn("Upper", text)
        self.assertNotIn("backlog", text)
        s = self.samples(text)
        self.assertEqual(s[("relay_messages_accepted_total", "")], 0)
        self.assertFalse([k for k in s if k[0] == "relay_messages_refused_total"])

    def test_json_is_refused(self):
        p = self.metrics("--json")
        self.assertEqual(p.returncode, 2, p)
        self.assertEqual(p.stdout, b"")

    def test_missing_state_database(self):
        os.unlink(self.db)
        p = self.metrics()
        self.assertEqual(p.returncode, 5, p)
        self.assertEqual(p.stdout, b"")

    def test_version_2_file_gives_zeros_and_a_warning(self):
        con = sqlite3.connect(self.db)
        con.executescript("DROP TABLE counters; PRAGMA user_version = 2;")
        con.close()
        p = self.metrics()
        self.assertEqual(p.returncode, 0, p)
        self.assertIn(b"predates the counters", p.stderr)
        self.assertEqual(self.samples(p.stdout.decode())[("relay_messages_accepted_total", "")],
                         0)


if __name__ == "__main__":
    sys.exit(unittest.main(verbosity=2))
