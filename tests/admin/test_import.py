#!/usr/bin/python3
"""test_import.py — relay-admin import-sasldb on files made by Cyrus's own saslpasswd2.

Acceptance of issue 2: a file made with `saslpasswd2 -c -f FILE -u realm.test -a smtpauth
bob` imports bob@realm.test with his password, checked by recomputing the secrets.
"""
import os
import shutil
import subprocess
import unittest

from adminlib import AdminTest, OK, FAIL, USAGE, DBERR, IOERR

SASLPASSWD2 = shutil.which("saslpasswd2") or "/usr/sbin/saslpasswd2"


def saslpasswd2(path, realm, user, password):
    # -p: read the password from stdin without prompting (the how-to's command, scripted)
    subprocess.run([SASLPASSWD2, "-p", "-c", "-f", path, "-u", realm, "-a", "smtpauth", user],
                   input=password.encode(), check=True, capture_output=True)


@unittest.skipUnless(os.path.exists(SASLPASSWD2), "saslpasswd2 (sasl2-bin) not installed")
class Import(AdminTest):
    def setUp(self):
        super().setUp()
        self.sasldb = os.path.join(self.dir, "sasldb2")

    def test_acceptance_bob(self):
        saslpasswd2(self.sasldb, "realm.test", "bob", "bobs secret password")
        source = self.snapshot()["sasldb2"]
        r = self.admin("import-sasldb", self.sasldb)
        self.assertEqual(r.rc, OK, r)
        self.assertIn("imported bob@realm.test", r.out.decode())
        self.assertEqual(self.snapshot()["sasldb2"], source, "the sasldb file is only read")
        self.assertEqual(sorted(os.listdir(self.dir)), ["sasldb2", "users.db"])
        self.assertNotIn(b"bobs secret password", r.out + r.err)
        self.assertEqual(self.rows("SELECT name, source FROM logins"), [("bob@realm.test", "sasldb")])
        self.assert_password(b"bobs secret password")
        for name, data in self.snapshot().items():
            if name != "sasldb2":
                self.assertNotIn(b"bobs secret password", data, name)

    def test_several_and_rerun(self):
        saslpasswd2(self.sasldb, "realm.test", "bob", "bobs secret password")
        saslpasswd2(self.sasldb, "other.example", "carol", "short")
        saslpasswd2(self.sasldb, "realm.test", "dave", "p\u00e4ssw\u00f6rd with umlauts")
        self.add("dave@realm.test", "a different password")
        r = self.admin("import-sasldb", self.sasldb, json_out=True)
        self.assertEqual(r.rc, OK, r)
        got = {l["name"]: l for l in r.json()["logins"]}
        self.assertEqual(set(got), {"bob@realm.test", "carol@other.example", "dave@realm.test"})
        self.assertEqual(got["bob@realm.test"]["result"], "imported")
        self.assertTrue(got["carol@other.example"]["weak_password"])
        self.assertEqual(got["dave@realm.test"]["result"], "exists")
        self.assert_password(b"short", "carol@other.example")
        # the existing login kept its own password
        self.assert_password(b"a different password", "dave@realm.test")
        r = self.admin("import-sasldb", self.sasldb)
        self.assertEqual(r.rc, OK, r)
        self.assertIn("0 imported, 3 already present, 0 skipped", r.out.decode())

    def test_unusable_name_is_skipped(self):
        saslpasswd2(self.sasldb, "realm.test", "bob", "bobs secret password")
        saslpasswd2(self.sasldb, "realm.test", "o'neil", "another secret password")
        r = self.admin("import-sasldb", self.sasldb)
        self.assertEqual(r.rc, FAIL, r)
        self.assertIn("skipped o'neil@realm.test: invalid login name", r.out.decode())
        self.assertEqual(self.rows("SELECT name FROM logins"), [("bob@realm.test",)])

    def test_bad_files(self):
        before = self.snapshot()
        r = self.admin("import-sasldb", os.path.join(self.dir, "missing"))
        self.assertEqual(r.rc, IOERR, r)
        with open(self.sasldb, "w") as f:
            f.write("not a berkeley db\n" * 100)
        r = self.admin("import-sasldb", self.sasldb)
        self.assertEqual(r.rc, IOERR, r)
        self.assertIn("cannot read", r.err.decode())
        r = self.admin("import-sasldb", self.dir)
        self.assertEqual(r.rc, IOERR, r)
        self.assertEqual(self.admin("import-sasldb").rc, USAGE)
        self.assertEqual(self.admin("import-sasldb", "a", "b").rc, USAGE)
        after = self.snapshot()
        after.pop("sasldb2")
        self.assertEqual(after, before)

    def test_needs_our_database(self):
        saslpasswd2(self.sasldb, "realm.test", "bob", "bobs secret password")
        r = self.admin("import-sasldb", self.sasldb, db=os.path.join(self.dir, "none.db"))
        self.assertEqual(r.rc, DBERR, r)


if __name__ == "__main__":
    unittest.main(verbosity=2)
