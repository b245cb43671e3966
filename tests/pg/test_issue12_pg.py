"""The issue-12 commands of relay-admin on PostgreSQL (suite 'pg'), one pglab server for
the file: app credentials (user credential add|list|revoke, the one namespace of logins
and credentials, kept by the schema's triggers too, last use from a PostgreSQL state
database), `relay-admin metrics` on the counters of a PostgreSQL state database, `log
--follow` on one (records committed by tests/admin/state-append appear, SIGTERM ends it
with status 0), `usage reset` and `held list` on PostgreSQL, and the migrations of a
version-2 users schema to 4 and a version-2 state schema to 5 (the schemas pg-engine's
relay-admin init created)."""

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'lib'))
sys.path.insert(0, os.path.join(HERE, '..', 'admin'))
import pglab  # noqa: E402
import adminlib  # noqa: E402
from adminlib import OK, USAGE, NOTFOUND, EXISTS  # noqa: E402

STATE_APPEND = os.environ.get('STATE_APPEND', 'state-append')
PG = None
PW = 'relay-admin-pw'
N = [0]
SECRET = re.compile(r'^secret \(shown once\): ([A-Za-z0-9-]+)$', re.M)
WAIT = 15


def setUpModule():
    global PG
    why = pglab.need_pg()
    if why:
        raise unittest.SkipTest(why)
    PG = pglab.PgLab()
    PG.create_role('relayadmin', password=PW)


def tearDownModule():
    if PG is not None:
        PG.close()


class PgCase(adminlib.AdminTest):
    """A fresh PostgreSQL database per test holding both kinds: self.uri is the users and
    the state database (they share one, as the README's example does)."""

    init_db = False

    def setUp(self):
        super().setUp()
        N[0] += 1
        self.dbname = 'relay12_%d' % N[0]
        PG.create_database(self.dbname, owner='relayadmin')
        self.passfile = PG.write_passfile(os.path.join(self.dir, 'pgpass'), 'relayadmin', PW)
        self.env = {'PGPASSFILE': self.passfile}
        self.uri = PG.uri('relayadmin', self.dbname)
        r = self.pg('--state-db', self.uri, 'init')
        self.assertEqual(r.rc, OK, r)

    def pg(self, *args, stdin=None, json_out=False):
        return self.admin('--state-db', self.uri, *args, stdin=stdin, db=self.uri,
                          json_out=json_out, env=self.env)

    def sql(self, text, check=True):
        return PG.psql(text, db=self.dbname, user='relayadmin', check=check)

    def add_login(self, name):
        r = self.pg('user', 'add', name, '--password-stdin',
                    stdin=b'a long enough password 42\n')
        self.assertEqual(r.rc, OK, r)

    def add_cred(self, name, label):
        r = self.pg('user', 'credential', 'add', name, label)
        self.assertEqual(r.rc, OK, r)
        m = SECRET.search(r.out.decode())
        self.assertIsNotNone(m, r)
        return m.group(1), r


class TestCredentials(PgCase):
    def test_add_list_revoke(self):
        self.add_login('alice')
        self.add_login('bob@example.org')
        secret, r = self.add_cred('alice', 'phone')
        self.assertIn('authentication name: alice+phone', r.out.decode())
        self.assertGreaterEqual(len(secret), 34)
        self.add_cred('alice', 'printer')
        r = self.pg('user', 'credential', 'add', 'bob@example.org', 'cron', json_out=True)
        self.assertEqual(r.rc, OK, r)
        self.assertEqual(r.json()['authname'], 'bob+cron@example.org')
        # stored only as its two derived forms, never in clear
        rows = self.sql("SELECT encode(plain_secret, 'hex') || ' ' || scram_sha256"
                        " FROM credentials WHERE label = 'phone'")
        self.assertNotIn(secret, rows)
        self.assertTrue(rows.split()[1].startswith('SCRAM-SHA-256$'), rows)

        r = self.pg('user', 'credential', 'list', 'ALICE')
        self.assertEqual(r.rc, OK, r)
        lines = r.out.decode().splitlines()
        self.assertRegex(lines[0], r'^LABEL\s+AUTHENTICATION NAME\s+CREATED\s+LAST USED$')
        self.assertRegex(lines[1], r'^phone\s+alice\+phone\s+\d{4}-\S+Z\s+-$')
        self.assertRegex(lines[2], r'^printer\s+alice\+printer\s+\d{4}-\S+Z\s+-$')
        self.assertEqual(len(lines), 3, "bob's credential is not alice's")

        # refusals change nothing
        before = self.sql('SELECT count(*) FROM credentials')
        for args, rc, msg in [
                (('add', 'alice', 'phone'), EXISTS, 'already has a credential phone'),
                (('add', 'carol', 'phone'), NOTFOUND, 'no such login: carol'),
                (('add', 'alice', 'Bad_Label'), USAGE, 'invalid label'),
                (('revoke', 'alice', 'tablet'), NOTFOUND, 'alice has no credential tablet'),
                (('list', 'carol'), NOTFOUND, 'no such login: carol')]:
            with self.subTest(args=args):
                r = self.pg('user', 'credential', *args)
                self.assertEqual(r.rc, rc, r)
                self.assertIn(msg, r.err.decode())
        self.assertEqual(self.sql('SELECT count(*) FROM credentials'), before)

        r = self.pg('user', 'credential', 'revoke', 'alice', 'phone')
        self.assertEqual(r.rc, OK, r)
        self.assertIn('revoked credential phone of alice', r.out.decode())
        self.assertEqual(self.sql("SELECT authname FROM credentials ORDER BY authname"),
                         'alice+printer\nbob+cron@example.org')
        self.assertEqual(self.pg('user', 'credential', 'revoke', 'alice', 'phone').rc,
                         NOTFOUND)
        # deleting the login takes its credentials along (ON DELETE CASCADE)
        self.assertEqual(self.pg('user', 'del', 'alice').rc, OK)
        self.assertEqual(self.sql('SELECT authname FROM credentials'), 'bob+cron@example.org')

    def test_one_namespace(self):
        self.add_login('alice')
        self.add_cred('alice', 'phone')
        r = self.pg('user', 'add', 'ALICE+PHONE', '--password-stdin',
                    stdin=b'a long enough password 42\n')
        self.assertEqual(r.rc, EXISTS, r)
        self.assertIn('authentication name of an app credential', r.err.decode())
        self.add_login('dave+app')
        self.add_login('dave')
        r = self.pg('user', 'credential', 'add', 'dave', 'app')
        self.assertEqual(r.rc, EXISTS, r)
        self.assertIn("already a login's name", r.err.decode())
        # the schema keeps it true whatever writes the database: the triggers
        for text, why in [
                ("INSERT INTO credentials (login_id, label, authname, plain_secret,"
                 " scram_sha256, created_at) SELECT id, 'x', 'DAVE+APP',"
                 " decode(repeat('00', 33), 'hex'), 'SCRAM-SHA-256$x', 0"
                 " FROM logins WHERE name = 'dave'", 'authentication name taken by a login'),
                ("INSERT INTO logins (name, plain_secret, created_at, updated_at,"
                 " password_changed_at) VALUES ('Alice+Phone', decode(repeat('00', 33), 'hex'),"
                 " 0, 0, 0)", 'login name taken by an app credential')]:
            with self.assertRaises(subprocess.CalledProcessError) as cm:
                self.sql(text, check=False)
            self.assertIn(why, cm.exception.stderr.decode())

    def test_last_use_from_a_postgresql_state_db(self):
        self.add_login('alice')
        self.add_cred('alice', 'phone')
        self.add_cred('alice', 'printer')
        created = int(self.sql("SELECT created_at FROM credentials WHERE label = 'phone'"))
        # relay-milter's writer records it; here the row is written as it would be
        self.sql("INSERT INTO credential_use VALUES ('ALICE', 'phone', %d, '192.0.2.7')"
                 % (created + 60))
        r = self.pg('user', 'credential', 'list', 'alice', json_out=True)
        self.assertEqual(r.rc, OK, r)
        creds = {c['label']: c for c in r.json()['credentials']}
        self.assertRegex(creds['phone']['last_used'], r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$')
        self.assertEqual(creds['phone']['last_client'], '192.0.2.7')
        self.assertIsNone(creds['printer']['last_used'])


class TestMetricsAndFollow(PgCase):
    def metrics(self):
        r = self.pg('metrics')
        self.assertEqual(r.rc, OK, r)
        out = {}
        for line in r.out.decode().splitlines():
            if line.startswith('#'):
                continue
            m = re.fullmatch(r'(\w+)(?:\{(\w+)="([^"]*)"\})? (\d+)', line)
            self.assertIsNotNone(m, line)
            out[(m.group(1), m.group(3) or '')] = int(m.group(4))
        return out, r.out.decode()

    def test_metrics(self):
        s, text = self.metrics()
        self.assertIn('# TYPE relay_messages_accepted_total counter', text)
        self.assertEqual(s[('relay_messages_accepted_total', '')], 0)
        # the writers of two nodes add to the same rows
        self.sql("INSERT INTO counters (name, label, value) VALUES"
                 " ('relay_messages_accepted_total', '', 7),"
                 " ('relay_limit_hits_total', 'messages', 2),"
                 " ('relay_evil\"} 1\\nx', '', 5)")
        s, text = self.metrics()
        self.assertEqual(s[('relay_messages_accepted_total', '')], 7)
        self.assertEqual(s[('relay_limit_hits_total', 'messages')], 2)
        self.assertNotIn('relay_evil', text)

    def test_follow(self):
        subprocess.run([STATE_APPEND, self.uri, 'alice', 'accepted', 'old', '3'], check=True,
                       env=dict(os.environ, **self.env), timeout=60)
        argv = [adminlib.RELAY_ADMIN, '--state-db', self.uri, '--json', 'log', '--follow',
                '--limit', '2']
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=dict(os.environ, **self.env))
        lines = queue.Queue()

        def read():
            for line in proc.stdout:
                lines.put(line)
            lines.put(None)
        threading.Thread(target=read, daemon=True).start()

        def nxt():
            try:
                line = lines.get(timeout=WAIT)
            except queue.Empty:
                raise AssertionError('no line from log --follow within %d s' % WAIT)
            if line is None:
                raise AssertionError('log --follow ended: %r' % proc.stderr.read())
            return json.loads(line)
        try:
            first = [nxt(), nxt()]
            self.assertEqual([r['reason'] for r in first], ['old', 'old'], 'the newest 2')
            for n, who in enumerate(('bob', 'carol')):
                subprocess.run([STATE_APPEND, self.uri, who, 'rejected', 'new%d' % n],
                               check=True, env=dict(os.environ, **self.env), timeout=60)
                rec = nxt()
                self.assertEqual((rec['login'], rec['reason']), (who, 'new%d' % n))
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                rc = proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(30)
                rc = None
        err = proc.stderr.read()
        self.assertEqual(rc, 0, err)
        # a database name is no file: nothing is "missing" or reopened
        self.assertNotIn(b'missing', err)
        for marker in (b'runtime error:', b'Sanitizer'):
            self.assertNotIn(marker, err)


class TestMigrations(PgCase):
    def test_users_2_to_4_and_state_2_to_5(self):
        self.add_login('alice')
        self.add_cred('alice', 'phone')
        # back to what pg-engine's init made: users version 2, state version 2
        self.sql("DROP TABLE credentials; DROP FUNCTION relay_credentials_name_free() CASCADE;"
                 " DROP FUNCTION relay_logins_name_free() CASCADE; DROP TABLE usage_reset;"
                 " UPDATE relay_schema SET version = 2 WHERE kind = 'users';"
                 " DROP TABLE counters; DROP TABLE credential_use; DROP TABLE reset_mark;"
                 " ALTER TABLE audit DROP COLUMN credential;"
                 " UPDATE relay_schema SET version = 2 WHERE kind = 'state';")
        r = self.pg('user', 'list')
        self.assertNotEqual(r.rc, OK, r)
        self.assertIn('older than 4: run relay-admin init', r.err.decode())
        r = self.pg('metrics')
        self.assertNotEqual(r.rc, OK, r)
        self.assertIn('older than 5: run relay-admin init', r.err.decode())
        r = self.pg('init')
        self.assertEqual(r.rc, OK, r)
        self.assertEqual(self.sql("SELECT kind || ' ' || version FROM relay_schema"
                                  " ORDER BY kind"), 'state 5\nusers 4')
        self.add_cred('alice', 'phone')
        s = self.pg('metrics')
        self.assertEqual(s.rc, OK, s)
        subprocess.run([STATE_APPEND, self.uri, 'alice', 'accepted', 'after'], check=True,
                       env=dict(os.environ, **self.env), timeout=60)
        r = self.pg('log', json_out=True)
        self.assertEqual(r.rc, OK, r)
        self.assertEqual([(a['reason'], a.get('credential')) for a in r.json()],
                         [('after', '')])


if __name__ == '__main__':
    unittest.main()
