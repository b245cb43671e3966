"""adminlib.py — shared helpers for the tests that drive the relay-admin binary.

The binary comes from $RELAY_ADMIN (set by tests/admin/meson.build). Every test works in
its own temporary folder; nothing touches a fixed global path.
"""
import base64
import hashlib
import hmac
import json
import os
import sqlite3
import subprocess
import tempfile
import unittest

RELAY_ADMIN = os.environ.get("RELAY_ADMIN", "relay-admin")

# Exit codes documented in relay-admin(8) and admin/adm.h.
OK, FAIL, USAGE, NOTFOUND, EXISTS, DBERR, IOERR = 0, 1, 2, 3, 4, 5, 6


class Result:
    def __init__(self, proc):
        self.rc = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr

    def json(self):
        return json.loads(self.out)

    def __repr__(self):
        return "rc=%d out=%r err=%r" % (self.rc, self.out, self.err)


class AdminTest(unittest.TestCase):
    """A temp folder with an initialised users database at self.db."""

    init_db = True

    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="relay-admin-test.")
        self.dir = self._tmp.name
        self.db = os.path.join(self.dir, "users.db")
        if self.init_db:
            r = self.admin("init")
            self.assertEqual(r.rc, OK, r)

    def tearDown(self):
        self._tmp.cleanup()

    def admin(self, *args, stdin=None, db=None, json_out=False, env=None):
        argv = [RELAY_ADMIN, "--db", db or self.db]
        if json_out:
            argv.append("--json")
        argv += list(args)
        e = dict(os.environ)
        e.pop("RELAY_DB", None)
        if env:
            e.update(env)
        proc = subprocess.run(argv, input=stdin if stdin is not None else b"",
                              capture_output=True, env=e, timeout=120)
        # Under ASan/UBSan a report is a failure even when the exit code looks right.
        for marker in (b"runtime error:", b"Sanitizer"):
            self.assertNotIn(marker, proc.stderr, proc.stderr.decode(errors="replace"))
        return Result(proc)

    def add(self, name, password, *extra):
        r = self.admin("user", "add", name, "--password-stdin", *extra,
                       stdin=password.encode() + b"\n")
        self.assertEqual(r.rc, OK, r)
        return r

    def rows(self, sql, params=()):
        con = sqlite3.connect("file:%s?mode=ro" % self.db, uri=True)
        try:
            return con.execute(sql, params).fetchall()
        finally:
            con.close()

    def assert_password(self, password, name=None):
        """The secrets stored for login `name` (None: the database's only login) are those
        of `password` (bytes), recomputed independently by check_secrets."""
        sql = "SELECT plain_secret, scram_sha256 FROM logins"
        check_secrets(self, self.rows(sql + " WHERE name = ?", (name,)) if name is not None
                      else self.rows(sql), password)

    def snapshot(self):
        """The bytes of every file in the folder: to prove that nothing was written."""
        out = {}
        for name in sorted(os.listdir(self.dir)):
            p = os.path.join(self.dir, name)
            if os.path.isfile(p):
                with open(p, "rb") as f:
                    out[name] = f.read()
        return out


def plain_secret(salt, password):
    """cmusaslsecretPLAIN, computed independently of the C code."""
    return salt + b"\0" + hashlib.md5(salt + b"sasldb" + password).digest()


def scram_verifier(password, iterations, salt):
    salted = hashlib.pbkdf2_hmac("sha256", password, salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored = hashlib.sha256(client_key).digest()
    server = hmac.new(salted, b"Server Key", "sha256").digest()
    b64 = lambda b: base64.b64encode(b).decode()
    return "SCRAM-SHA-256$%d:%s$%s:%s" % (iterations, b64(salt), b64(stored), b64(server))


def check_secrets(test, db_rows, password):
    """db_rows: [(plain_secret, scram_sha256)] of one login."""
    (plain, scram), = db_rows
    test.assertEqual(len(plain), 33)
    test.assertEqual(plain, plain_secret(plain[:16], password))
    test.assertNotEqual(plain, plain_secret(plain[:16], password + b"x"))
    head, _, keys = scram.partition("$")[2].partition("$")
    iterations, _, b64salt = head.partition(":")
    test.assertGreaterEqual(int(iterations), 4096)
    test.assertEqual(scram, scram_verifier(password, int(iterations), base64.b64decode(b64salt)))
