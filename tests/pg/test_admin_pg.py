"""relay-admin on PostgreSQL (suite 'pg'), against one pglab server for the whole file:
the user/sender/limit commands with --db postgresql://…, init and its role advice, copy
SQLite -> PostgreSQL -> SQLite giving the same data (the same password still verifies
against the secrets that come back), a non-empty target refused without --replace, the
pg: conninfo file (refused when others may read it; its password used without ever
being on a command line), and a stopped server reported as a database error."""

import json
import os
import sqlite3
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'lib'))
sys.path.insert(0, os.path.join(HERE, '..', 'admin'))
import pglab  # noqa: E402
import adminlib  # noqa: E402
from adminlib import OK, USAGE, NOTFOUND, EXISTS, DBERR  # noqa: E402

PG = None
PW = 'relay-admin-pw'
N = [0]


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


class PgAdminTest(adminlib.AdminTest):
    """A fresh PostgreSQL database per test (self.uri), initialised, plus the temp folder
    and SQLite helpers of adminlib.AdminTest (self.db is an SQLite path there)."""

    init_db = False

    def setUp(self):
        super().setUp()
        N[0] += 1
        self.dbname = 'relay%d' % N[0]
        PG.create_database(self.dbname, owner='relayadmin')
        self.passfile = PG.write_passfile(os.path.join(self.dir, 'pgpass'), 'relayadmin', PW)
        self.env = {'PGPASSFILE': self.passfile}
        self.uri = PG.uri('relayadmin', self.dbname)
        r = self.pg('init')
        self.assertEqual(r.rc, OK, r)

    def pg(self, *args, stdin=None, json_out=False, db=None):
        return self.admin(*args, stdin=stdin, db=db or self.uri, json_out=json_out,
                          env=self.env)

    def sq(self, *args, stdin=None, json_out=False, db=None):
        return self.admin(*args, stdin=stdin, db=db or self.db, json_out=json_out)


class TestCommands(PgAdminTest):
    def test_init_says_which_role_needs_what(self):
        r = self.pg('init')
        self.assertEqual(r.rc, OK, r)
        self.assertIn('up to date (schema version', r.out.decode())
        self.assertIn('relay-admin grants --plugin ROLE', r.out.decode())
        self.assertNotIn(PW, r.out.decode())
        r = self.pg('init', json_out=True)
        self.assertEqual(r.json()['engine'], 'postgresql')
        self.assertEqual(r.json()['action'], 'unchanged')

    def test_users_senders_limits(self):
        self.assertEqual(self.pg('user', 'add', 'Alice', '--password-stdin', '--note', 'hi',
                                 stdin=b'a long enough password 42\n').rc, OK)
        r = self.pg('user', 'add', 'alice', '--password-stdin', stdin=b'another password 99\n')
        self.assertEqual(r.rc, EXISTS, r)
        self.assertEqual(self.pg('user', 'add', 'bad name').rc, USAGE)
        r = self.pg('user', 'add', 'bob@example.org')
        self.assertEqual(r.rc, OK, r)
        self.assertIn('password (shown once)', r.out.decode())
        rows = self.pg('user', 'list', json_out=True).json()
        names = [u['name'] for u in (rows['logins'] if isinstance(rows, dict) else rows)]
        self.assertEqual(names, ['Alice', 'bob@example.org'])
        self.assertEqual(self.pg('user', 'passwd', 'alice', '--password-stdin',
                                 stdin=b'a new long password 77\n').rc, OK)
        self.assertEqual(self.pg('user', 'disable', 'ALICE').rc, OK)
        self.assertEqual(self.pg('user', 'set', 'alice', '--expires', '2031-01-01',
                                 '--note', 'changed').rc, OK)
        show = self.pg('user', 'show', 'alice', json_out=True).json()
        self.assertEqual(show['note'], 'changed')
        self.assertEqual(show['state'], 'disabled')
        self.assertEqual(self.pg('user', 'enable', 'alice').rc, OK)
        self.assertEqual(self.pg('user', 'show', 'alice', json_out=True).json()['state'],
                         'active')
        self.assertEqual(self.pg('user', 'show', 'nobody').rc, NOTFOUND)

        self.assertEqual(self.pg('sender', 'add', 'alice', 'A@Example.org').rc, OK)
        self.assertEqual(self.pg('sender', 'add', 'alice', 'a@example.org').rc, EXISTS)
        self.assertEqual(self.pg('sender', 'add', 'alice', '@example.net').rc, OK)
        self.assertEqual(self.pg('sender', 'add', 'nobody', '@x.org').rc, NOTFOUND)
        self.assertEqual(self.pg('sender', 'list', 'alice').out.decode().split(),
                         ['@example.net', 'a@example.org'])
        self.assertEqual(self.pg('sender', 'del', 'alice', '@example.net').rc, OK)
        self.assertEqual(self.pg('sender', 'del', 'alice', '@example.net').rc, NOTFOUND)

        self.assertEqual(self.pg('limit', 'set', '--default', '--messages', '100/1h',
                                 '--recipients', '1000/1d').rc, OK)
        self.assertEqual(self.pg('limit', 'set', 'alice', '--messages', '10/1m',
                                 '--exempt').rc, OK)
        lim = self.pg('limit', 'show', 'alice', json_out=True).json()
        self.assertIn('10', json.dumps(lim))
        many = []
        for i in range(32):
            many += ['--bytes', '1M/%ds' % (i + 1)]
        r = self.pg('limit', 'set', 'bob@example.org', *many)
        self.assertEqual(r.rc, USAGE, r)
        self.assertIn('would have', r.err.decode())
        self.assertEqual(self.pg('limit', 'clear', 'alice').rc, OK)
        self.assertEqual(self.pg('limit', 'clear', '--default').rc, OK)
        self.assertEqual(self.pg('user', 'del', 'alice').rc, OK)
        self.assertEqual(self.pg('user', 'del', 'alice').rc, NOTFOUND)
        self.assertEqual(self.pg('sender', 'list', 'alice').rc, NOTFOUND)

    def test_server_down_is_a_database_error(self):
        self.assertEqual(self.pg('user', 'add', 'carol', '--password-stdin',
                                 stdin=b'carol long password 1\n').rc, OK)
        PG.stop()
        try:
            r = self.pg('user', 'show', 'carol')
            self.assertEqual(r.rc, DBERR, r)
            self.assertIn('unreachable', r.err.decode())
            r = self.pg('user', 'show', 'nobody')
            self.assertEqual(r.rc, DBERR, 'never "no such login" while down: %r' % r)
        finally:
            PG.start()
        self.assertEqual(self.pg('user', 'show', 'carol').rc, OK)


class TestCheck(PgAdminTest):
    def test_check_on_postgresql(self):
        uri = PG.uri('relayadmin', self.dbname, password=PW)
        r = self.admin('--state-db', os.path.join(self.dir, 'state.db'), 'check',
                       '--postfix-config', self.dir, db=uri, json_out=True)
        self.assertNotIn(PW, r.out.decode() + r.err.decode(),
                         'a password in the URI is never shown')
        checks = {c['id']: c for c in r.json()['checks']}
        self.assertEqual(checks['users-db']['status'], 'ok', checks['users-db'])
        self.assertEqual(checks['users-db-permissions']['status'], 'skip')
        self.assertIn('grants', checks['users-db-permissions']['detail'])
        self.assertEqual(checks['users-db-limits']['status'], 'ok')


class TestConninfoFile(PgAdminTest):
    def test_pg_file(self):
        conf = os.path.join(self.dir, 'db.conf')
        name = PG.write_conninfo(conf, 'relayadmin', self.dbname, password=PW, mode=0o644)
        noenv = {'PGPASSFILE': os.devnull}
        r = self.admin('user', 'list', db=name, env=noenv)
        self.assertEqual(r.rc, DBERR, r)
        self.assertIn('readable or writable by group or others', r.err.decode())
        self.assertIn('chmod 600', r.err.decode())
        os.chmod(conf, 0o640)
        self.assertEqual(self.admin('user', 'list', db=name, env=noenv).rc, DBERR)
        os.chmod(conf, 0o600)
        argv_seen = [name, 'user', 'add', 'dave', '--password-stdin']
        self.assertNotIn(PW, ' '.join(argv_seen))
        r = self.admin('user', 'add', 'dave', '--password-stdin', db=name, env=noenv,
                       stdin=b'dave long password 22\n')
        self.assertEqual(r.rc, OK, 'the password from the 0600 file, none in argv: %r' % r)
        self.assertNotIn(PW, r.out.decode() + r.err.decode())
        self.assertEqual(self.pg('user', 'show', 'dave').rc, OK)


def table_rows(path):
    c = sqlite3.connect(path)
    try:
        return {
            'logins': c.execute('SELECT * FROM logins ORDER BY id').fetchall(),
            'senders': c.execute('SELECT * FROM senders ORDER BY login_id, pattern').fetchall(),
            'limits': c.execute('SELECT * FROM limits ORDER BY 1, 2, 3').fetchall(),
            'site_secret': c.execute('SELECT * FROM site_secret').fetchall(),
            'credentials': c.execute('SELECT * FROM credentials ORDER BY id').fetchall(),
        }
    finally:
        c.close()


class TestCopy(PgAdminTest):
    def fill(self):
        self.assertEqual(self.sq('init').rc, OK)
        self.assertEqual(self.sq('user', 'add', 'alice', '--password-stdin', '--note',
                                 'née à Zürich', stdin=b'alice round trip pw 1\n').rc, OK)
        self.assertEqual(self.sq('user', 'add', 'Bob@Example.org', '--password-stdin',
                                 '--expires', '2031-05-01', stdin=b'bob round trip pw 2\n').rc, OK)
        self.assertEqual(self.sq('user', 'add', 'carol', '--password-stdin',
                                 stdin=b'carol round trip pw 3\n').rc, OK)
        self.assertEqual(self.sq('user', 'disable', 'carol').rc, OK)
        self.assertEqual(self.sq('user', 'del', 'carol').rc, OK)  # a hole in the ids
        self.assertEqual(self.sq('user', 'add', 'dave', '--password-stdin',
                                 stdin=b'dave round trip pw 4\n').rc, OK)
        self.assertEqual(self.sq('user', 'disable', 'dave').rc, OK)
        for s in ('a@example.org', '@example.net', '<>'):
            self.assertEqual(self.sq('sender', 'add', 'alice', s).rc, OK)
        self.assertEqual(self.sq('sender', 'add', 'bob@example.org', '@example.org').rc, OK)
        self.assertEqual(self.sq('limit', 'set', '--default', '--messages', '100/1h').rc, OK)
        self.assertEqual(self.sq('limit', 'set', 'alice', '--messages', '5/1m', '--messages',
                                 '50/1h', '--bytes', '10M/1d', '--hold').rc, OK)
        self.assertEqual(self.sq('limit', 'set', 'dave', '--recipients', '7/1h',
                                 '--exempt').rc, OK)
        # app credentials, with a hole in their ids too
        for name, label in (('alice', 'phone'), ('alice', 'old'), ('bob@example.org', 'cron')):
            r = self.sq('user', 'credential', 'add', name, label, json_out=True)
            self.assertEqual(r.rc, OK, r)
            if label == 'phone':
                self.phone_secret = r.json()['secret']
        self.assertEqual(self.sq('user', 'credential', 'revoke', 'alice', 'old').rc, OK)

    def views(self, run):
        out = {'list': run('user', 'list', json_out=True).json(),
               'defaults': run('limit', 'show', json_out=True).json()}
        for n in ('alice', 'bob@example.org', 'dave'):
            out['show ' + n] = run('user', 'show', n, json_out=True).json()
            out['limits ' + n] = run('limit', 'show', n, json_out=True).json()
            out['credentials ' + n] = run('user', 'credential', 'list', n,
                                          json_out=True).json()
        return out

    def test_round_trip(self):
        self.fill()
        before = self.views(self.sq)
        r = self.admin('copy', '--from', self.db, '--to', self.uri, env=self.env)
        self.assertEqual(r.rc, OK, r)
        self.assertIn('3 logins, 4 senders, 5 limits, 2 app credentials', r.out.decode())
        self.assertEqual(self.views(self.pg), before, 'PostgreSQL shows what SQLite showed')
        # a login added on PostgreSQL after the copy gets a fresh id (the identity goes on)
        self.assertEqual(self.pg('user', 'add', 'erin', '--password-stdin',
                                 stdin=b'erin pw after copy 5\n').rc, OK)
        self.assertEqual(self.pg('user', 'credential', 'add', 'erin', 'x').rc, OK,
                         'and a credential too')
        self.assertEqual(self.pg('user', 'del', 'erin').rc, OK)

        back = os.path.join(self.dir, 'back.db')
        self.assertEqual(self.sq('init', db=back).rc, OK)
        r = self.admin('copy', '--from', self.uri, '--to', back, '--json', env=self.env)
        self.assertEqual(r.rc, OK, r)
        self.assertEqual((r.json()['logins'], r.json()['senders'], r.json()['limits'],
                          r.json()['credentials']), (3, 4, 5, 2))
        self.assertEqual(self.views(lambda *a, **k: self.sq(*a, db=back, **k)), before,
                         'and back on SQLite, the same again')
        self.assertEqual(table_rows(back), table_rows(self.db),
                         'SQLite -> PostgreSQL -> SQLite: every row identical, ids, '
                         'secrets and the decoy key included')
        # the same password still verifies against the secrets that came back
        c = sqlite3.connect(back)
        rows = c.execute('SELECT plain_secret, scram_sha256 FROM logins WHERE name = ?',
                         ('alice',)).fetchall()
        c.close()
        adminlib.check_secrets(self, rows, b'alice round trip pw 1')
        c = sqlite3.connect(back)
        rows = c.execute('SELECT plain_secret, scram_sha256 FROM credentials'
                         ' WHERE authname = ?', ('alice+phone',)).fetchall()
        c.close()
        adminlib.check_secrets(self, rows, self.phone_secret.encode())

    def test_non_empty_target(self):
        self.fill()
        self.assertEqual(self.pg('user', 'add', 'zed', '--password-stdin',
                                 stdin=b'zed is already here 9\n').rc, OK)
        r = self.admin('copy', '--from', self.db, '--to', self.uri, env=self.env)
        self.assertEqual(r.rc, EXISTS, r)
        self.assertIn('--replace', r.err.decode())
        self.assertEqual(self.pg('user', 'show', 'zed').rc, OK, 'nothing changed')
        self.assertEqual(self.pg('user', 'show', 'alice').rc, NOTFOUND, 'nothing copied')
        r = self.admin('copy', '--from', self.db, '--to', self.uri, '--replace', env=self.env)
        self.assertEqual(r.rc, OK, r)
        self.assertEqual(self.pg('user', 'show', 'zed').rc, NOTFOUND)
        self.assertEqual(self.views(self.pg), self.views(self.sq))

    def test_target_without_schema(self):
        self.fill()
        PG.create_database(self.dbname + 'x', owner='relayadmin')
        r = self.admin('copy', '--from', self.db, '--to',
                       PG.uri('relayadmin', self.dbname + 'x'), env=self.env)
        self.assertEqual(r.rc, DBERR, r)
        self.assertIn('relay-admin init', r.err.decode())


if __name__ == '__main__':
    unittest.main(verbosity=2)
