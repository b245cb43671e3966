#!/usr/bin/python3
"""test_users.py — relay-admin init, user and sender commands, global options, exit codes.

Includes the acceptance checks of issue 2: no file of the database holds the password or
its base64; `--json user list` lists alice; the stored PLAIN secret equals one computed
independently (hashlib) from the stored salt.
"""
import base64
import grp
import os
import pwd
import pty
import select
import sqlite3
import stat
import subprocess
import unittest

from adminlib import AdminTest, OK, USAGE, NOTFOUND, EXISTS, DBERR, RELAY_ADMIN

PASSWORD = "correct horse battery staple"


class Init(AdminTest):
    init_db = False

    def test_creates_then_up_to_date(self):
        r = self.admin("init")
        self.assertEqual(r.rc, OK, r)
        self.assertIn("created", r.out.decode())
        r = self.admin("init")
        self.assertEqual(r.rc, OK, r)
        self.assertIn("up to date", r.out.decode())
        r = self.admin("init", json_out=True)
        self.assertEqual(r.json()["action"], "unchanged")
        self.assertEqual(r.json()["schema_version"], 4)
        self.assertEqual(self.rows("PRAGMA application_id"), [(1919706212,)])
        key, = self.rows("SELECT decoy_key FROM site_secret")
        self.assertEqual(len(key[0]), 32, "a new database gets its SCRAM decoy key")

    def test_migrates_version_1(self):
        # a version 1 file as relay-admin init of version 1 made it: today's schema.sql
        # less what migrations/003.sql and 002.sql add (no copy of the old schema is kept)
        here = os.path.dirname(os.path.abspath(__file__))
        with open(os.path.join(here, "..", "..", "sql", "schema.sql")) as f:
            schema = f.read()
        con = sqlite3.connect(self.db)
        con.executescript(schema)
        con.executescript("DROP TRIGGER logins_name_free; DROP TRIGGER credentials_name_free;"
                          " DROP TABLE credentials; DROP TABLE usage_reset;"
                          " DROP TRIGGER limits_per_login_max; DROP TABLE site_secret;"
                          " PRAGMA user_version = 1;")
        con.close()
        # ... relay-admin's other commands refuse it until it is migrated
        r = self.admin("user", "list")
        self.assertEqual(r.rc, DBERR, r)
        self.assertIn("schema version 1 is older than 4: run relay-admin init", r.err.decode())
        # ... so users made by the version 1 code go in through SQL, like that code wrote them
        con = sqlite3.connect(self.db)
        con.execute("INSERT INTO logins (name, plain_secret, scram_sha256, created_at,"
                    " updated_at, password_changed_at) VALUES (?, ?, NULL, 1, 1, 1)",
                    ("kim", bytes(33)))
        con.commit()
        con.close()
        r = self.admin("init", json_out=True)
        self.assertEqual(r.rc, OK, r)
        self.assertEqual((r.json()["action"], r.json()["from_version"], r.json()["schema_version"]),
                         ("migrated", 1, 4))
        self.assertEqual(self.rows("PRAGMA user_version"), [(4,)])
        key, = self.rows("SELECT decoy_key FROM site_secret")
        self.assertEqual(len(key[0]), 32)
        r = self.admin("user", "list", json_out=True)
        self.assertEqual(r.rc, OK, r)
        self.assertEqual([u["name"] for u in r.json()["logins"]], ["kim"], "the login survived")
        r = self.admin("init")
        self.assertIn("up to date (schema version 4)", r.out.decode())

    def test_creates_missing_folders(self):
        db = os.path.join(self.dir, "a", "b", "users.db")
        r = self.admin("init", db=db)
        self.assertEqual(r.rc, OK, r)
        self.assertEqual(stat.S_IMODE(os.stat(os.path.dirname(db)).st_mode), 0o750)
        self.assertEqual(os.stat(db).st_mode & 0o007, 0, "database not world-accessible")

    @unittest.skipUnless(os.geteuid() == 0, "needs root")
    def test_root_ownership(self):
        try:
            gid = grp.getgrnam("postfix").gr_gid
        except KeyError:
            self.skipTest("no postfix group")
        db = os.path.join(self.dir, "relay", "users.db")
        r = self.admin("init", db=db)
        self.assertEqual(r.rc, OK, r)
        st = os.stat(db)
        self.assertEqual((st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)), (0, gid, 0o640))
        st = os.stat(os.path.dirname(db))
        self.assertEqual((st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)), (0, gid, 0o750))
        # an existing folder that is not ours keeps its mode
        self.assertEqual(stat.S_IMODE(os.stat(self.dir).st_mode), 0o700)

    def assert_refused(self, why):
        """init refuses the file at self.db (exit 5, `why` on stderr) and changes nothing;
        user list refuses it too -> the user list Result."""
        before = self.snapshot()
        r = self.admin("init")
        self.assertEqual(r.rc, DBERR, r)
        self.assertIn(why, r.err.decode())
        self.assertEqual(self.snapshot(), before)
        r = self.admin("user", "list")
        self.assertEqual(r.rc, DBERR, r)
        return r

    def test_refuses_text_file(self):
        with open(self.db, "w") as f:
            f.write("not a database at all, just some text\n" * 10)
        self.assert_refused("not an SQLite database")

    def test_refuses_foreign_sqlite(self):
        con = sqlite3.connect(self.db)
        con.execute("CREATE TABLE mine (x)")
        con.commit()
        con.close()
        self.assert_refused("not an smtp-relay users database")

    def test_refuses_newer_schema(self):
        self.assertEqual(self.admin("init").rc, OK)
        con = sqlite3.connect(self.db)
        con.execute("PRAGMA user_version = 7")
        con.close()
        r = self.assert_refused("newer")
        self.assertIn("newer", r.err.decode())

    def test_missing_database(self):
        r = self.admin("user", "list")
        self.assertEqual(r.rc, DBERR, r)
        self.assertIn("no such file", r.err.decode())
        self.assertIn("relay-admin init", r.err.decode())
        self.assertFalse(os.path.exists(self.db))
        r = self.admin("user", "add", "alice")
        self.assertEqual(r.rc, DBERR, r)
        self.assertFalse(os.path.exists(self.db))

    def test_init_takes_no_arguments(self):
        self.assertEqual(self.admin("init", "extra").rc, USAGE)
        self.assertEqual(self.admin("init", "--bogus").rc, USAGE)
        self.assertEqual(self.admin("init", "--milter-user", "nobody").rc, USAGE)

    def test_state_database(self):
        # --db alone: the machine's default state path is not touched
        r = self.admin("init")
        self.assertEqual(r.rc, OK, r)
        self.assertIn("state database not touched", r.out.decode())
        state = os.path.join(self.dir, "state", "state.db")
        r = self.admin("--state-db", state, "init", json_out=True)
        self.assertEqual(r.rc, OK, r)
        self.assertEqual((r.json()["state_db"], r.json()["state_action"]), (state, "created"))
        self.assertEqual(stat.S_IMODE(os.stat(os.path.dirname(state)).st_mode), 0o750)
        con = sqlite3.connect(state)
        self.assertEqual(con.execute("PRAGMA journal_mode").fetchone(), ("wal",))
        # what relay-milter records when a login sends
        con.execute("INSERT INTO last_use (login, ts, client_addr) VALUES ('bob', 1800000000, '192.0.2.7')")
        con.commit()
        con.close()
        r = self.admin("user", "add", "bob")
        self.assertEqual(r.rc, OK, r)
        r = self.admin("--state-db", state, "user", "list", json_out=True)
        login = r.json()["logins"][0]
        self.assertEqual((login["last_used"], login["last_client"]),
                         ("2027-01-15T08:00:00Z", "192.0.2.7"))
        r = self.admin("--state-db", state, "user", "show", "bob")
        self.assertIn("last used:        2027-01-15T08:00:00Z from 192.0.2.7", r.out.decode())
        # without --state-db (and with --db) the state is not consulted
        r = self.admin("user", "list", json_out=True)
        self.assertIsNone(r.json()["logins"][0]["last_used"])
        r = self.admin("--state-db", state, "init")
        self.assertIn("state database checked", r.out.decode())
        # a foreign file where the state database should be is refused
        bad = os.path.join(self.dir, "bad-state.db")
        with open(bad, "w") as f:
            f.write("text " * 100)
        self.assertEqual(self.admin("--state-db", bad, "init").rc, DBERR)

    @unittest.skipUnless(os.geteuid() == 0, "needs root")
    def test_state_owner(self):
        state = os.path.join(self.dir, "st", "state.db")
        r = self.admin("--state-db", state, "init", "--milter-user", "nobody")
        self.assertEqual(r.rc, OK, r)
        nobody = pwd.getpwnam("nobody")
        for p, mode in ((state, 0o640), (os.path.dirname(state), 0o750)):
            st = os.stat(p)
            self.assertEqual((st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)),
                             (nobody.pw_uid, nobody.pw_gid, mode), p)
        r = self.admin("--state-db", state, "init", "--milter-user", "no-such-user-x")
        self.assertEqual(r.rc, USAGE, r)
        # relay-milter's crash journal, left by a milter run as root: given to the milter's
        # user too, or the milter would refuse to start on a file it cannot open
        for k in (0, 1):
            with open(f"{state}.journal-{k}", "wb"):
                pass
        r = self.admin("--state-db", state, "init", "--milter-user", "nobody")
        self.assertEqual(r.rc, OK, r)
        for k in (0, 1):
            st = os.stat(f"{state}.journal-{k}")
            self.assertEqual((st.st_uid, st.st_gid), (nobody.pw_uid, nobody.pw_gid), k)


class Acceptance(AdminTest):
    def test_issue_acceptance(self):
        r = self.admin("user", "add", "alice@example.com", "--password-stdin",
                       stdin=(PASSWORD + "\n").encode())
        self.assertEqual(r.rc, OK, r)
        # never echoed back
        self.assertNotIn(PASSWORD.encode(), r.out + r.err)
        # no file of the database holds the password or its base64
        needles = [PASSWORD.encode(), base64.b64encode(PASSWORD.encode()),
                   base64.b64encode(PASSWORD.encode()).rstrip(b"=")]
        for name, data in self.snapshot().items():
            for n in needles:
                self.assertNotIn(n, data, "%s holds %r" % (name, n))
        # --json user list lists alice
        r = self.admin("user", "list", json_out=True)
        self.assertEqual(r.rc, OK, r)
        names = [l["name"] for l in r.json()["logins"]]
        self.assertEqual(names, ["alice@example.com"])
        # the stored secrets equal ones computed independently from the stored salts
        self.assert_password(PASSWORD.encode(), "alice@example.com")


class Users(AdminTest):
    def test_generated_password(self):
        r = self.admin("user", "add", "app1@example.com")
        self.assertEqual(r.rc, OK, r)
        lines = [l for l in r.out.decode().splitlines() if l.startswith("password")]
        self.assertEqual(len(lines), 1, r)
        pw = lines[0].split(": ", 1)[1]
        self.assertEqual(len(pw), 34)
        self.assert_password(pw.encode())
        # JSON: the password appears once, in the document
        r = self.admin("user", "add", "app2@example.com", json_out=True)
        self.assertEqual(r.rc, OK, r)
        doc = r.json()
        self.assertEqual(doc["name"], "app2@example.com")
        self.assert_password(doc["password"].encode(), "app2@example.com")
        self.assertNotEqual(doc["password"], pw)

    def test_weak_password(self):
        before = self.snapshot()
        r = self.admin("user", "add", "bob", "--password-stdin", stdin=b"short\n")
        self.assertEqual(r.rc, USAGE, r)
        self.assertIn("shorter than 16", r.err.decode())
        self.assertEqual(self.snapshot(), before)
        # 15 characters of UTF-8 (more than 16 bytes) are still weak
        r = self.admin("user", "add", "bob", "--password-stdin",
                       stdin=("\u00e9" * 15 + "\n").encode())
        self.assertEqual(r.rc, USAGE, r)
        r = self.admin("user", "add", "bob", "--password-stdin", "--allow-weak", stdin=b"short\n")
        self.assertEqual(r.rc, OK, r)
        self.assert_password(b"short")

    def test_bad_stdin_passwords(self):
        before = self.snapshot()
        for data in [b"", b"\n", b"a\0bcdefghijklmnopqrstu\n", b"x" * 5000 + b"\n"]:
            r = self.admin("user", "add", "bob", "--password-stdin", stdin=data)
            self.assertEqual(r.rc, USAGE, (data[:20], r))
        self.assertEqual(self.snapshot(), before)

    def test_crlf_and_no_newline(self):
        r = self.admin("user", "add", "crlf", "--password-stdin", stdin=(PASSWORD + "\r\n").encode())
        self.assertEqual(r.rc, OK, r)
        self.assert_password(PASSWORD.encode(), "crlf")
        r = self.admin("user", "add", "nonl", "--password-stdin", stdin=PASSWORD.encode())
        self.assertEqual(r.rc, OK, r)
        self.assert_password(PASSWORD.encode(), "nonl")

    def test_hostile_names(self):
        before = self.snapshot()
        bad = ["al ice", "al'ice", "' UNION SELECT 123 --", 'a"b', "a\\b", "a\tb", "a\nb",
               "a\x01b", "a" * 256, "@realm", "alice@", "a@b@c", "a;b", "a:b", "<a>", ""]
        for name in bad:
            r = self.admin("user", "add", name)
            self.assertEqual(r.rc, USAGE, (name, r))
            self.assertIn("invalid login name", r.err.decode())
            for cmd in (["user", "del"], ["user", "show"], ["user", "passwd"],
                        ["sender", "list"]):
                self.assertEqual(self.admin(*cmd, name).rc, USAGE, (cmd, name))
        # invalid UTF-8 and other raw bytes, straight through argv
        for raw in [b"al\xff\xfe", b"caf\xc3\xa9", b"\x1b[2Jx"]:
            r = self.admin("user", "add", os.fsdecode(raw))
            self.assertEqual(r.rc, USAGE, (raw, r))
        self.assertEqual(self.snapshot(), before)
        self.assertEqual(self.admin("user", "add", "a" * 255).rc, OK)

    def test_exists_and_case(self):
        self.add("Alice@Example.com", PASSWORD)
        r = self.admin("user", "add", "alice@example.COM", "--password-stdin",
                       stdin=(PASSWORD + "\n").encode())
        self.assertEqual(r.rc, EXISTS, r)
        self.assertIn("login already exists: Alice@Example.com", r.err.decode())
        r = self.admin("user", "show", "ALICE@EXAMPLE.COM", json_out=True)
        self.assertEqual(r.rc, OK, r)
        self.assertEqual(r.json()["name"], "Alice@Example.com")

    def test_not_found_messages(self):
        for cmd in (["user", "del", "bob"], ["user", "enable", "bob"], ["user", "disable", "bob"],
                    ["user", "show", "bob"], ["user", "passwd", "bob"],
                    ["user", "set", "bob", "--note", "x"], ["sender", "list", "bob"],
                    ["sender", "add", "bob", "@example.com"],
                    ["sender", "del", "bob", "@example.com"]):
            r = self.admin(*cmd)
            self.assertEqual(r.rc, NOTFOUND, (cmd, r))
            self.assertEqual(r.err.decode(), "relay-admin: no such login: bob\n", cmd)

    def test_passwd(self):
        self.add("bob", PASSWORD)
        old = self.rows("SELECT plain_secret FROM logins")
        r = self.admin("user", "passwd", "bob", "--password-stdin", stdin=b"another long password\n")
        self.assertEqual(r.rc, OK, r)
        self.assertNotIn(b"another long password", r.out + r.err)
        self.assert_password(b"another long password")
        r = self.admin("user", "passwd", "bob", "--password-stdin", stdin=b"weak\n")
        self.assertEqual(r.rc, USAGE, r)
        r = self.admin("user", "passwd", "bob", json_out=True)
        self.assertEqual(r.rc, OK, r)
        self.assert_password(r.json()["password"].encode())
        self.assertNotEqual(self.rows("SELECT plain_secret FROM logins"), old)

    def test_enable_disable_del_show(self):
        self.add("bob", PASSWORD, "--note", "printer \u20ac", "--expires", "2031-02-03")
        r = self.admin("user", "show", "bob")
        self.assertEqual(r.rc, OK, r)
        self.assertIn("2031-02-03T00:00:00Z", r.out.decode())
        self.assertIn("printer \\xe2\\x82\\xac", r.out.decode())  # non-ASCII escaped on a terminal
        r = self.admin("user", "show", "bob", json_out=True)
        doc = r.json()
        self.assertEqual((doc["state"], doc["note"], doc["expires_at"], doc["source"]),
                         ("active", "printer \u20ac", "2031-02-03T00:00:00Z", "admin"))
        self.assertEqual(self.admin("user", "disable", "bob").rc, OK)
        self.assertEqual(self.admin("user", "show", "bob", json_out=True).json()["state"], "disabled")
        self.assertEqual(self.rows("SELECT enabled FROM logins"), [(0,)])
        self.assertEqual(self.admin("user", "enable", "bob").rc, OK)
        self.assertEqual(self.rows("SELECT enabled FROM logins"), [(1,)])
        r = self.admin("user", "set", "bob", "--expires", "2001-01-01")
        self.assertEqual(r.rc, OK, r)
        self.assertIn("not in the future", r.err.decode())
        self.assertEqual(self.admin("user", "show", "bob", json_out=True).json()["state"], "expired")
        self.assertEqual(self.admin("user", "set", "bob", "--expires", "never").rc, OK)
        self.assertEqual(self.rows("SELECT expires_at FROM logins"), [(None,)])
        self.assertEqual(self.admin("user", "set", "bob", "--note", "").rc, OK)
        self.assertEqual(self.rows("SELECT note FROM logins"), [("",)])
        self.assertEqual(self.admin("user", "set", "bob").rc, USAGE)
        self.assertEqual(self.admin("user", "set", "bob", "--note", "a\nb").rc, USAGE)
        r = self.admin("user", "del", "bob", json_out=True)
        self.assertEqual((r.rc, r.json()), (OK, {"name": "bob", "deleted": True}))
        self.assertEqual(self.admin("user", "del", "bob").rc, NOTFOUND)

    def test_bad_dates(self):
        before = self.snapshot()
        for d in ["2026-02-30", "2025-02-29", "2026-13-01", "26-01-01", "2026-1-1", "tomorrow",
                  "2026-01-01T25:00:00Z", "2026-01-01 00:00:00", "never"]:
            r = self.admin("user", "add", "bob", "--expires", d)
            self.assertEqual(r.rc, USAGE, (d, r))
        self.assertEqual(self.snapshot(), before)
        r = self.admin("user", "add", "bob", "--expires", "2028-02-29T12:30:00Z")
        self.assertEqual(r.rc, OK, r)
        self.assertEqual(self.rows("SELECT expires_at FROM logins"), [(1835440200,)])

    def test_bad_note(self):
        before = self.snapshot()
        for note in ["a\nb", "esc\x1b[0m", "x" * 1025, os.fsdecode(b"bad\xff")]:
            self.assertEqual(self.admin("user", "add", "bob", "--note", note).rc, USAGE, note)
        self.assertEqual(self.snapshot(), before)

    def test_list(self):
        r = self.admin("user", "list", json_out=True)
        self.assertEqual(r.json(), {"logins": []})
        self.add("zed", PASSWORD)
        self.add("Alice", PASSWORD, "--sender", "alice@example.com", "--sender", "@example.org")
        r = self.admin("user", "list")
        self.assertEqual(r.rc, OK, r)
        lines = r.out.decode().splitlines()
        self.assertTrue(lines[0].startswith("NAME"))
        self.assertTrue(lines[1].startswith("Alice"))
        self.assertTrue(lines[2].startswith("zed"))
        doc = self.admin("user", "list", json_out=True).json()
        self.assertEqual([l["name"] for l in doc["logins"]], ["Alice", "zed"])
        self.assertEqual(doc["logins"][0]["senders"], ["@example.org", "alice@example.com"])
        self.assertEqual(self.admin("user", "list", "extra").rc, USAGE)


class Terminal(AdminTest):
    """--password-stdin from a terminal: prompts on stderr, no echo, asked twice."""

    def read(self, fd, pid):
        if not select.select([fd], [], [], 30)[0]:
            os.kill(pid, 9)
            self.fail("relay-admin stopped answering on the terminal")
        return os.read(fd, 1024)

    def converse(self, name, answers):
        pid, fd = pty.fork()
        if pid == 0:
            os.execv(RELAY_ADMIN, [RELAY_ADMIN, "--db", self.db, "user", "add", name,
                                   "--password-stdin"])
        seen = b""
        try:
            for answer in answers:
                while not seen.rstrip().endswith(b":"):
                    chunk = self.read(fd, pid)
                    if not chunk:
                        break
                    seen += chunk
                os.write(fd, answer + b"\n")
                seen += b"|"
            while True:
                try:
                    chunk = self.read(fd, pid)
                except OSError:
                    break
                if not chunk:
                    break
                seen += chunk
        finally:
            _, status = os.waitpid(pid, 0)
            os.close(fd)
        return os.waitstatus_to_exitcode(status), seen

    def test_prompt_twice_without_echo(self):
        rc, seen = self.converse("tty1", [PASSWORD.encode(), PASSWORD.encode()])
        self.assertEqual(rc, OK, seen)
        self.assertIn(b"Password:", seen)
        self.assertIn(b"Again:", seen)
        self.assertNotIn(PASSWORD.encode(), seen)
        self.assert_password(PASSWORD.encode())

    def test_mismatch(self):
        rc, seen = self.converse("tty2", [PASSWORD.encode(), b"something else entirely"])
        self.assertEqual(rc, USAGE, seen)
        self.assertIn(b"do not match", seen)
        self.assertEqual(self.rows("SELECT count(*) FROM logins"), [(0,)])


class Senders(AdminTest):
    def setUp(self):
        super().setUp()
        self.add("bob", PASSWORD)

    def test_add_del_list(self):
        self.assertEqual(self.admin("sender", "add", "bob", "Bob@Example.COM").rc, OK)
        self.assertEqual(self.admin("sender", "add", "bob", "@example.org").rc, OK)
        self.assertEqual(self.admin("sender", "add", "bob", "<>").rc, OK)
        r = self.admin("sender", "add", "bob", "bob@example.com")
        self.assertEqual(r.rc, EXISTS, r)
        r = self.admin("sender", "list", "BOB")
        self.assertEqual(r.out.decode().split(), ["<>", "@example.org", "bob@example.com"])
        r = self.admin("sender", "list", "bob", json_out=True)
        self.assertEqual(r.json(), {"name": "bob", "senders": ["<>", "@example.org", "bob@example.com"]})
        r = self.admin("sender", "del", "bob", "<>", json_out=True)
        self.assertEqual(r.rc, OK, r)
        r = self.admin("sender", "del", "bob", "<>")
        self.assertEqual(r.rc, NOTFOUND, r)
        self.assertIn("has no sender <>", r.err.decode())
        self.assertEqual(self.admin("user", "del", "bob").rc, OK)
        self.assertEqual(self.rows("SELECT count(*) FROM senders"), [(0,)])

    def test_malformed_patterns(self):
        before = self.snapshot()
        for p in ["example.com", "a b@example.com", '"a"@example.com', "a@@example.com",
                  "a@example..com", "a@-x.com", "a@x.com.", "a@x.com\n", "@", "", "<x>",
                  "a@[127.0.0.1]", "x" * 250 + "@example.com", os.fsdecode(b"\xc3\xa9@x.org")]:
            r = self.admin("sender", "add", "bob", p)
            self.assertEqual(r.rc, USAGE, (p, r))
            self.assertIn("invalid sender pattern", r.err.decode())
            r = self.admin("user", "add", "carol", "--sender", p)
            self.assertEqual(r.rc, USAGE, (p, r))
        self.assertEqual(self.snapshot(), before)

    def test_usage(self):
        self.assertEqual(self.admin("sender", "add", "bob").rc, USAGE)
        self.assertEqual(self.admin("sender", "list").rc, USAGE)
        self.assertEqual(self.admin("sender", "list", "bob", "x").rc, USAGE)


class Cli(AdminTest):
    def test_usage_errors(self):
        cases = [[], ["nosuch"], ["user"], ["user", "nosuch"], ["sender"],
                 ["user", "add"], ["user", "add", "a", "b"], ["user", "add", "a", "--bogus"],
                 ["user", "add", "a", "--expires"], ["--bogus", "user", "list"]]
        for args in cases:
            r = self.admin(*args)
            self.assertEqual(r.rc, USAGE, (args, r))
            self.assertTrue(r.err.startswith(b"relay-admin: ") or b"usage:" in r.err, (args, r))
        r = self.admin("user")
        self.assertIn("add", r.err.decode())

    def test_help_version(self):
        for args in (["--help"], ["help"]):
            r = self.admin(*args)
            self.assertEqual(r.rc, OK, r)
            for word in ("user add", "sender list", "import-sasldb", "exit codes"):
                self.assertIn(word, r.out.decode())
        r = self.admin("--version")
        self.assertEqual(r.rc, OK)
        self.assertTrue(r.out.startswith(b"relay-admin "))

    def test_env_db(self):
        env = dict(os.environ, RELAY_DB=self.db)
        p = subprocess.run([RELAY_ADMIN, "--json", "user", "list"],
                           capture_output=True, env=env)
        self.assertEqual(p.returncode, OK, p)
        env["RELAY_DB"] = os.path.join(self.dir, "other.db")
        p = subprocess.run([RELAY_ADMIN, "user", "list"],
                           capture_output=True, env=env)
        self.assertEqual(p.returncode, DBERR, p)
        self.assertIn(b"other.db", p.stderr)

    def test_unreadable_database(self):
        if os.geteuid() == 0:
            self.skipTest("root reads anything")
        os.chmod(self.db, 0)
        self.assertEqual(self.admin("user", "list").rc, DBERR)


if __name__ == "__main__":
    unittest.main(verbosity=2)
