#!/usr/bin/python3
"""test_credentials.py — relay-admin user credential add|list|revoke (issue 12, item 1).

An app credential is a second (third, ...) secret for a login, with its own authentication
name (NAME+LABEL, local+LABEL@domain): the secret is generated and printed once, stored
only in its two derived forms (checked against forms computed here with hashlib), listed
with its created and last-used times, revoked alone. Bad labels are refused with a clear
error and change nothing; logins and credentials never share an authentication name;
deleting the login deletes its credentials; `relay-admin log` names the credential a
message came through.
"""
import base64
import os
import re
import shutil
import sqlite3
import subprocess
import unittest

from adminlib import AdminTest, OK, USAGE, NOTFOUND, EXISTS, check_secrets

PASSWORD = "correct horse battery staple"
SASLPASSWD2 = shutil.which("saslpasswd2") or "/usr/sbin/saslpasswd2"
SECRET = re.compile(r"^secret \(shown once\): ([A-Za-z0-9-]+)$", re.M)


class Credentials(AdminTest):
    def setUp(self):
        super().setUp()
        self.add("alice", PASSWORD)
        self.add("bob@example.org", PASSWORD + "!")
        self.state = os.path.join(self.dir, "state.db")
        r = self.admin("--state-db", self.state, "init")
        self.assertEqual(r.rc, OK, r)

    def cred(self, *args, json_out=False):
        return self.admin("--state-db", self.state, "user", "credential", *args,
                          json_out=json_out)

    def add_cred(self, name, label):
        r = self.cred("add", name, label)
        self.assertEqual(r.rc, OK, r)
        m = SECRET.search(r.out.decode())
        self.assertIsNotNone(m, r)
        return m.group(1), r

    def users_db(self):
        """The users database's bytes (a reader of the state database may create its -shm)."""
        return self.snapshot()["users.db"]

    def cred_rows(self, label):
        return self.rows("SELECT plain_secret, scram_sha256 FROM credentials WHERE label = ?",
                         (label,))

    def test_add_prints_the_secret_once_and_stores_only_its_forms(self):
        before = self.rows("SELECT plain_secret, scram_sha256 FROM logins WHERE name = 'alice'")
        secret, r = self.add_cred("alice", "phone")
        out = r.out.decode()
        self.assertIn("added credential phone to alice", out)
        self.assertIn("authentication name: alice+phone", out)
        self.assertEqual(out.count(secret), 1, "printed once")
        self.assertNotIn(secret, r.err.decode())
        self.assertGreaterEqual(len(secret), 34, "a generated secret: >= 128 bits")
        # stored as the two forms libsasl2 verifies, computed independently here
        check_secrets(self, self.cred_rows("phone"), secret.encode())
        # ... and nowhere in clear (nor its base64) in any file of the folder
        for name, data in self.snapshot().items():
            self.assertNotIn(secret.encode(), data, name)
            self.assertNotIn(base64.b64encode(secret.encode()), data, name)
        # the login's own password is untouched
        self.assertEqual(self.rows("SELECT plain_secret, scram_sha256 FROM logins"
                                   " WHERE name = 'alice'"), before)
        self.assert_password(PASSWORD.encode(), "alice")
        # a second credential gets another secret
        secret2, _ = self.add_cred("alice", "printer")
        self.assertNotEqual(secret, secret2)

    def test_add_json(self):
        r = self.cred("add", "bob@example.org", "cron", json_out=True)
        self.assertEqual(r.rc, OK, r)
        j = r.json()
        self.assertEqual((j["name"], j["label"], j["authname"]),
                         ("bob@example.org", "cron", "bob+cron@example.org"))
        self.assertRegex(j["created"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        check_secrets(self, self.cred_rows("cron"), j["secret"].encode())
        # --json after the operands works too
        r = self.cred("add", "alice", "tablet", "--json")
        self.assertEqual(r.rc, OK, r)
        self.assertEqual(r.json()["authname"], "alice+tablet")

    def test_bad_labels_are_refused_and_change_nothing(self):
        self.add_cred("alice", "phone")
        before = self.users_db()
        for label in ("Phone", "a+b", "a@b", "a b", "", "x" * 33, "../x", "caf\u00e9", "a_b"):
            with self.subTest(label=label):
                r = self.cred("add", "alice", label)
                self.assertEqual(r.rc, USAGE, r)
                self.assertIn("invalid label", r.err.decode())
                self.assertEqual(r.out, b"", "no secret printed")
                r = self.cred("revoke", "alice", label)
                self.assertEqual(r.rc, USAGE, r)
        self.assertEqual(self.users_db(), before, "nothing written")

    def test_other_refusals_change_nothing(self):
        self.add_cred("alice", "phone")
        before = self.users_db()
        cases = [
            (("add", "alice", "phone"), EXISTS, "already has a credential phone"),
            (("add", "carol", "phone"), NOTFOUND, "no such login: carol"),
            (("add", "b'ad", "phone"), USAGE, "invalid login name"),
            (("add", "alice"), USAGE, "expected a login name and a label"),
            (("add", "alice", "x", "y"), USAGE, "expected a login name and a label"),
            (("add", "alice", "x", "--secret"), USAGE, "unknown option"),
            (("revoke", "alice", "tablet"), NOTFOUND, "alice has no credential tablet"),
            (("list", "carol"), NOTFOUND, "no such login: carol"),
            (("frobnicate", "alice"), USAGE, "needs one of: add, list, revoke"),
            ((), USAGE, "needs one of: add, list, revoke"),
        ]
        for args, rc, msg in cases:
            with self.subTest(args=args):
                r = self.cred(*args)
                self.assertEqual(r.rc, rc, r)
                self.assertIn(msg, r.err.decode())
                self.assertEqual(r.out, b"")
        self.assertEqual(self.users_db(), before, "nothing written")

    def test_one_namespace_for_logins_and_credentials(self):
        self.add_cred("alice", "phone")
        r = self.admin("user", "add", "alice+phone", "--password-stdin",
                       stdin=(PASSWORD + "\n").encode())
        self.assertEqual(r.rc, EXISTS, r)
        self.assertIn("authentication name of an app credential", r.err.decode())
        r = self.admin("user", "add", "ALICE+PHONE", "--password-stdin",
                       stdin=(PASSWORD + "\n").encode())
        self.assertEqual(r.rc, EXISTS, r)
        self.add("dave+app", PASSWORD)
        self.add("dave", PASSWORD)
        r = self.cred("add", "dave", "app")
        self.assertEqual(r.rc, EXISTS, r)
        self.assertIn("already a login's name", r.err.decode())
        self.assertEqual(self.rows("SELECT count(*) FROM credentials WHERE label = 'app'"),
                         [(0,)])

    @unittest.skipUnless(os.path.exists(SASLPASSWD2), "saslpasswd2 (sasl2-bin) not installed")
    def test_import_sasldb_keeps_working(self):
        # a sasldb login named like an existing credential is left out, and says why; the
        # others are imported as before
        self.add("kim@realm.test", PASSWORD)
        self.add_cred("kim@realm.test", "app")
        sasldb = os.path.join(self.dir, "sasldb2")
        for user, pw in (("kim+app", "would shadow the credential"), ("lou", "lous password 1")):
            subprocess.run([SASLPASSWD2, "-p", "-c", "-f", sasldb, "-u", "realm.test", "-a",
                            "smtpauth", user], input=pw.encode(), check=True, capture_output=True)
        r = self.admin("import-sasldb", sasldb, json_out=True)
        self.assertEqual(r.rc, OK, r)
        got = {x["name"]: x for x in r.json()["logins"]}
        self.assertEqual(got["lou@realm.test"]["result"], "imported")
        self.assertEqual(got["kim+app@realm.test"]["result"], "exists")
        self.assertIn("authentication name of an app credential",
                      got["kim+app@realm.test"]["reason"])
        self.assertEqual(self.rows("SELECT count(*) FROM logins WHERE name = 'kim+app@realm.test'"),
                         [(0,)])
        self.assert_password(b"lous password 1", "lou@realm.test")

    def test_list_and_last_use(self):
        self.add_cred("alice", "phone")
        self.add_cred("alice", "printer")
        self.add_cred("bob@example.org", "cron")
        r = self.cred("list", "alice")
        self.assertEqual(r.rc, OK, r)
        lines = r.out.decode().splitlines()
        self.assertRegex(lines[0], r"^LABEL\s+AUTHENTICATION NAME\s+CREATED\s+LAST USED$")
        self.assertRegex(lines[1], r"^phone\s+alice\+phone\s+\d{4}-\S+Z\s+-$")
        self.assertRegex(lines[2], r"^printer\s+alice\+printer\s+\d{4}-\S+Z\s+-$")
        self.assertEqual(len(lines), 3, "bob's credential is not alice's")
        # relay-milter records the last use of each credential in the state database
        created, = self.rows("SELECT created_at FROM credentials WHERE label = 'phone'")[0]
        con = sqlite3.connect(self.state)
        con.execute("INSERT INTO credential_use VALUES ('alice', 'phone', ?, '192.0.2.7')",
                    (created + 60,))
        # a use from before `printer` was made belongs to an earlier credential of that label
        con.execute("INSERT INTO credential_use VALUES ('alice', 'printer', ?, '192.0.2.8')",
                    (created - 3600,))
        con.commit()
        con.close()
        r = self.cred("list", "alice", json_out=True)
        self.assertEqual(r.rc, OK, r)
        j = r.json()
        self.assertEqual(j["name"], "alice")
        creds = {c["label"]: c for c in j["credentials"]}
        self.assertEqual(sorted(creds), ["phone", "printer"])
        self.assertEqual(creds["phone"]["authname"], "alice+phone")
        self.assertRegex(creds["phone"]["last_used"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertEqual(creds["phone"]["last_client"], "192.0.2.7")
        self.assertIsNone(creds["printer"]["last_used"])
        for c in j["credentials"]:
            self.assertNotIn("secret", c, "list never shows a secret")
        r = self.cred("list", "bob@example.org")
        self.assertIn("bob+cron@example.org", r.out.decode())

    def test_revoke_only_that_one(self):
        self.add_cred("alice", "phone")
        self.add_cred("alice", "printer")
        printer = self.cred_rows("printer")
        r = self.cred("revoke", "alice", "phone")
        self.assertEqual(r.rc, OK, r)
        self.assertIn("revoked credential phone of alice", r.out.decode())
        self.assertEqual(self.cred_rows("phone"), [])
        self.assertEqual(self.cred_rows("printer"), printer, "the other credential stays")
        self.assert_password(PASSWORD.encode(), "alice")
        r = self.cred("revoke", "alice", "phone")
        self.assertEqual(r.rc, NOTFOUND, r)
        r = self.cred("revoke", "alice", "printer", json_out=True)
        self.assertEqual(r.json(), {"name": "alice", "label": "printer", "revoked": True})

    def test_deleting_the_login_deletes_its_credentials(self):
        self.add_cred("alice", "phone")
        self.add_cred("bob@example.org", "cron")
        r = self.admin("user", "del", "alice")
        self.assertEqual(r.rc, OK, r)
        self.assertEqual(self.rows("SELECT authname FROM credentials"),
                         [("bob+cron@example.org",)])
        # the name is free again
        self.add("alice+phone", PASSWORD)

    def test_log_names_the_credential(self):
        con = sqlite3.connect(self.state)
        for cred in ("phone", ""):
            con.execute("INSERT INTO audit (ts, login, client_addr, tls_version, cipher,"
                        " env_from, header_from, rcpt_count, size, queue_id, verdict, reason,"
                        " credential) VALUES (1700000000, 'alice', '192.0.2.7', 'TLSv1.3',"
                        " 'X', 'alice@example.com', '', 1, 10, 'Q1', 'accepted', 'ok', ?)",
                        (cred,))
        con.commit()
        con.close()
        r = self.admin("--state-db", self.state, "log")
        self.assertEqual(r.rc, OK, r)
        lines = r.out.decode().splitlines()
        self.assertIn("login=alice credential=phone ", lines[0])
        self.assertNotIn("credential=", lines[1], "the login's own password names none")
        r = self.admin("--state-db", self.state, "log", json_out=True)
        self.assertEqual([x["credential"] for x in r.json()], ["phone", ""])


if __name__ == "__main__":
    unittest.main(verbosity=2)
