#!/usr/bin/python3
"""test_help.py — `relay-admin COMMAND [SUB] --help` for every command (issue 11).

The dispatcher answers --help from the command table: usage on stdout, exit 0, nothing on
stderr, and nothing opened (the database path given does not exist and is not created).
Before the command table answered it, `log --help` and `limit show --help` said "unknown
option" and exited 2.
"""
import os
import re
import subprocess
import tempfile
import unittest

from adminlib import RELAY_ADMIN, OK

# Every command relay-admin has: a command missing from the table, or from this list,
# fails test_list_matches_table.
COMMANDS = [
    "init", "grants", "copy", "user add", "user passwd", "user del", "user enable",
    "user disable", "user set", "user list", "user show", "user credential", "sender add",
    "sender del", "sender list", "limit set", "limit show", "limit clear", "usage reset",
    "usage", "held list", "held release", "held delete", "log", "metrics", "import-sasldb",
    "selftest", "check", "setup",
]


def run(*args, db):
    p = subprocess.run([RELAY_ADMIN, "--db", db, "--state-db", db + ".state", *args],
                       capture_output=True, stdin=subprocess.DEVNULL, timeout=30)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


class Help(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.db = os.path.join(self.tmp.name, "absent.db")

    def tearDown(self):
        self.tmp.cleanup()

    def table(self):
        rc, out, _ = run("--help", db=self.db)
        self.assertEqual(rc, OK)
        names = []
        for line in out.split("\n"):
            m = re.match(r"^  ([a-z][a-z-]*)(?: (add|passwd|del|enable|disable|set|list|show|clear|credential|reset|release|delete))?(?: |$)", line)
            if m:
                names.append(m.group(1) + (" " + m.group(2) if m.group(2) else ""))
        return names

    def test_list_matches_table(self):
        self.assertEqual(self.table(), COMMANDS)

    def test_every_command_help(self):
        for cmd in COMMANDS:
            words = cmd.split()
            for extra in ([], ["NAME"], ["--json"]):
                with self.subTest(cmd=cmd, extra=extra):
                    rc, out, err = run(*words, *extra, "--help", db=self.db)
                    self.assertEqual(rc, OK, (out, err))
                    self.assertEqual(err, "")
                    first = out.split("\n")[0]
                    self.assertTrue(first.startswith("usage: relay-admin "), out)
                    self.assertIn(" " + cmd + " ", first + " ")
            self.assertFalse(os.path.exists(self.db), cmd)
            self.assertFalse(os.path.exists(self.db + ".state"), cmd)

    def test_usage_names_the_options(self):
        # the options each command reads appear in its usage line(s)
        expect = {
            "log": ["--user", "--verdict", "--since", "--limit", "--follow", "--json"],
            "limit show": ["--json"],
            "limit set": ["--default", "--messages", "--recipients", "--bytes", "--exempt",
                          "--no-exempt", "--hold", "--no-hold", "--json"],
            "limit clear": ["--default", "--json"],
            "usage": ["--json"],
            "user credential": ["--json"],
            "usage reset": ["--metric", "--json"],
            "held list": ["--postfix-config", "--json"],
            "held release": ["--user", "--postfix-config", "--json"],
            "held delete": ["--user", "--postfix-config", "--json"],
            "check": ["--postfix-config", "--json", "--verbose"],
            "selftest": ["--host", "--port", "--user", "--tls", "--ca", "--tls-name", "--from",
                         "--send", "--timeout", "--insecure", "--json", "--verbose",
                         "--upstream", "--upstream-tls", "--upstream-ca", "--upstream-user"],
            "setup": ["--postfix-config", "--port", "--tls-port", "--cert", "--key",
                      "--hostname", "--db", "--sasl-plugin-dir", "--rate-limit", "--upstream",
                      "--upstream-tls", "--upstream-user", "--upstream-ca",
                      "--upstream-insecure", "--milter", "--no-milter", "--no-reload",
                      "--dry-run"],
        }
        for cmd, opts in expect.items():
            rc, out, _ = run(*cmd.split(), "--help", db=self.db)
            usage = out.split("\n\n")[0]
            for o in opts:
                self.assertRegex(usage, re.escape(o) + r"\b", (cmd, o))

    def test_help_after_double_dash_is_an_argument(self):
        # `--` ends the options: a login literally named "--help" is not a help request
        rc, out, err = run("user", "show", "--", "--help", db=self.db)
        self.assertNotEqual(rc, OK, (out, err))
        self.assertNotIn("usage: relay-admin", out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
