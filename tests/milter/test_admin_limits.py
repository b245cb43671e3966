#!/usr/bin/python3
"""test_admin_limits.py — relay-admin limit set|show|clear, usage and log (suite 'admin').

Drives the built relay-admin on private databases: specs and their errors (exit 2, nothing
written), unknown logins (exit 3), a missing state database (exit 5), JSON shapes, and
usage/log over a state database filled through sql/state.c's schema by relay-admin init.

usage: test_admin_limits.py RELAY_ADMIN
"""
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import unittest

ADMIN = None


class AdminLimits(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix='mlt-admin-')
        self.db = os.path.join(self.tmp.name, 'users.db')
        self.state = os.path.join(self.tmp.name, 'state.db')
        self.run_ok('init', state=False)   # users db only: the state db comes later
        self.run_ok('user', 'add', 'alice', '--password-stdin', stdin='long-enough-password-123\n')

    def tearDown(self):
        self.tmp.cleanup()

    def run_admin(self, *args, stdin=None, state=True):
        argv = [ADMIN, '--db', self.db] + (['--state-db', self.state] if state else []) + list(args)
        return subprocess.run(argv, input=stdin, capture_output=True, text=True)

    def run_ok(self, *args, **kw):
        r = self.run_admin(*args, **kw)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r

    def show(self, name='alice'):
        return json.loads(self.run_ok('--json', 'limit', 'show', name).stdout)

    def test_set_show_clear(self):
        self.run_ok('limit', 'set', '--default', '--messages', '100/1h', '--messages', '1000/1d',
                    '--bytes', '50M/1d')
        self.run_ok('limit', 'set', 'alice', '--recipients', '20/10m', '--hold')
        doc = self.show()
        self.assertEqual([d['spec'] for d in doc['defaults']], ['100/1h', '1000/1d', '50M/1d'])
        login = doc['logins'][0]
        self.assertEqual(login['login'], 'alice')
        self.assertTrue(login['hold_over_limit'])
        self.assertFalse(login['rate_exempt'])
        self.assertEqual([o['spec'] for o in login['own']], ['20/10m'])
        self.assertEqual([(e['metric'], e['max'], e['window_seconds']) for e in login['effective']],
                         [('messages', 100, 3600), ('messages', 1000, 86400),
                          ('recipients', 20, 600), ('bytes', 50 << 20, 86400)])
        # replacing one metric keeps the others
        self.run_ok('limit', 'set', 'alice', '--messages', '5/1m')
        own = self.show()['logins'][0]['own']
        self.assertEqual(sorted(o['spec'] for o in own), ['20/10m', '5/1m'])
        text = self.run_ok('limit', 'show').stdout
        self.assertIn('alice (holds over limit)', text)
        self.run_ok('limit', 'clear', 'alice', '--json')
        self.assertEqual(self.show()['logins'][0]['own'], [])
        self.run_ok('limit', 'set', 'alice', '--exempt', '--no-hold')
        login = self.show()['logins'][0]
        self.assertTrue(login['rate_exempt'])
        self.assertFalse(login['hold_over_limit'])

    def test_bad_input_writes_nothing(self):
        self.run_ok('limit', 'set', 'alice', '--messages', '5/1m')
        for args in (['--messages', '5'], ['--messages', '5/0s'], ['--messages', '5/1y'],
                     ['--messages', 'x/1h'], ['--messages', '5M/1h'], ['--bytes', '5Q/1h'],
                     ['--messages', '5/1h', '--messages', '6/1h'], ['--messages', '5/400d'],
                     [], ['--bogus']):
            r = self.run_admin('limit', 'set', 'alice', *args)
            self.assertEqual(r.returncode, 2, (args, r.stderr))
            self.assertTrue(r.stderr.startswith('relay-admin: '), r.stderr)
        self.assertEqual([o['spec'] for o in self.show()['logins'][0]['own']], ['5/1m'])
        self.assertEqual(self.run_admin('limit', 'set', '--default', '--exempt').returncode, 2)
        self.assertEqual(self.run_admin('limit', 'set', 'bad name', '--messages', '1/1h').returncode, 2)

    def limit_rows(self):
        with sqlite3.connect('file:%s?mode=ro' % self.db, uri=True) as c:
            return c.execute('SELECT * FROM limits ORDER BY 1, 2, 3').fetchall()

    def file_bytes(self):
        with open(self.db, 'rb') as f:
            return f.read()

    def assert_refused_unchanged(self, *args, who):
        """`limit set ARGS` is refused (exit 2, the reason on stderr naming `who`) and the
        database file is byte for byte what it was."""
        before = self.file_bytes()
        r = self.run_admin('limit', 'set', *args)
        self.assertEqual(r.returncode, 2, r)
        self.assertIn('refused', r.stderr)
        self.assertIn(who, r.stderr)
        self.assertIn('at most 32', r.stderr)
        self.assertIn('nothing changed', r.stderr)
        self.assertEqual(r.stdout, '')
        self.assertEqual(self.file_bytes(), before, 'a refused change wrote to the database')

    def test_too_many_limits_across_calls_refused(self):
        """Issue 8: each call stayed under 32 rows, together they went over, and from then
        on the reader refused every login inheriting the defaults (relay-milter 451, limit
        show exit 5) while relay-admin had exited 0. The second call must be refused."""
        many_msgs = sum((['--messages', '%d/%dm' % (i, i)] for i in range(1, 21)), [])
        many_bytes = sum((['--bytes', '%dM/%dh' % (i, i)] for i in range(1, 21)), [])
        self.run_ok('limit', 'set', '--default', *many_msgs)
        rows = self.limit_rows()
        self.assertEqual(len(rows), 20)
        self.assert_refused_unchanged('--default', *many_bytes, who='the defaults')
        self.assertEqual(self.limit_rows(), rows)
        doc = self.show()   # limit show still works: exit 0, the 20 defaults in effect
        self.assertEqual(len(doc['defaults']), 20)
        self.assertEqual(len(doc['logins'][0]['effective']), 20)
        # a login's own rows plus the defaults it inherits count together
        self.assert_refused_unchanged('alice', *many_bytes, who='login alice')
        # so does a change of the defaults that a login with its own rows inherits
        self.run_ok('limit', 'clear', '--default')
        self.run_ok('limit', 'set', 'alice', *many_msgs)
        rows = self.limit_rows()
        self.assert_refused_unchanged('--default', *many_bytes, who='login alice')
        self.assertEqual(self.limit_rows(), rows)
        # within the limit all is well: 20 + 12 = 32
        self.run_ok('limit', 'set', '--default', *many_bytes[:24])
        self.assertEqual(len(self.show()['logins'][0]['effective']), 32)
        self.assert_refused_unchanged('alice', '--recipients', '1/1h', who='login alice')

    def test_unknown_login(self):
        for args in (['limit', 'set', 'ghost', '--messages', '1/1h'], ['limit', 'show', 'ghost'],
                     ['limit', 'clear', 'ghost']):
            r = self.run_admin(*args)
            self.assertEqual(r.returncode, 3, (args, r.stderr))
            self.assertIn('ghost', r.stderr)
        self.run_ok('init')   # the state database, for usage
        for args in (['limit', 'show', 'ghost'], ['usage', 'ghost']):
            r = self.run_admin('--json', *args)
            self.assertEqual(r.returncode, 3, (args, r.stderr))
            self.assertEqual(r.stdout, '', args)   # on failure no JSON document

    def test_usage_and_log(self):
        r = self.run_admin('usage')
        self.assertEqual(r.returncode, 5, r.stderr)            # no state database yet
        self.assertIn('no state database', r.stderr)
        self.run_ok('init')                                    # --state-db given: creates it
        self.run_ok('limit', 'set', 'alice', '--messages', '2/1h')
        now = int(time.time())
        with sqlite3.connect(self.state) as c:
            c.execute('INSERT INTO usage VALUES (?, ?, 1, 3, 300)', ('alice', now - 10))
            c.execute('INSERT INTO usage VALUES (?, ?, 1, 1, 100)', ('alice', now - 5))
            c.execute('INSERT INTO last_use VALUES (?, ?, ?)',
                      ('alice', now - 5, '192.0.2.9\x1b[31m'))
            for i, verdict in enumerate(['accepted', 'accepted', 'tempfailed']):
                c.execute('INSERT INTO audit (ts, login, client_addr, tls_version, cipher, env_from,'
                          ' header_from, rcpt_count, size, queue_id, verdict, reason) VALUES'
                          ' (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
                          (now - 20 + i, 'alice', '192.0.2.9', 'TLSv1.3', 'X', 'alice@example.com',
                           'Alice <alice@example.com>\x1b[31m', 1, 100, 'Q%d' % i, verdict, 'ok'))
        u = json.loads(self.run_ok('--json', 'usage', 'alice').stdout)[0]
        lim = u['limits'][0]
        self.assertEqual((lim['metric'], lim['used'], lim['max']), ('messages', 2, 2))
        self.assertGreater(lim['room_in_seconds'], 3000)
        self.assertIsNotNone(u['last_use'])
        text = self.run_ok('usage').stdout
        self.assertIn('room in', text)
        self.assertIn('192.0.2.9', text)
        self.assertNotIn('\x1b', text, 'the state database is the milter user\'s: escaped')
        log = json.loads(self.run_ok('log', '--json', '--user', 'alice').stdout)
        self.assertEqual([r['verdict'] for r in log], ['accepted', 'accepted', 'tempfailed'])
        log = json.loads(self.run_ok('--json', 'log', '--limit', '1').stdout)
        self.assertEqual([r['queue_id'] for r in log], ['Q2'])
        self.assertEqual(json.loads(self.run_ok('--json', 'log', '--since', '1s').stdout), [])
        text = self.run_ok('log').stdout
        self.assertNotIn('\x1b', text, 'terminal escapes from the log are neutralised')
        for bad in (['--since', 'yesterday'], ['--limit', '0'], ['--user', 'a b']):
            self.assertEqual(self.run_admin('log', *bad).returncode, 2, bad)

    # ---- limit clear says what it leaves; --no-hold clears the hold flag (issue 12) ------
    def test_clear_says_what_it_left(self):
        self.run_ok('limit', 'set', 'alice', '--messages', '5/1h', '--hold', '--exempt')
        r = self.run_ok('limit', 'clear', 'alice')
        self.assertIn('limits of alice cleared', r.stdout)
        self.assertIn('hold on over-limit still set; use limit set --no-hold', r.stdout)
        self.assertIn('exempt from limits still set; use limit set --no-exempt', r.stdout)
        doc = json.loads(self.run_ok('--json', 'limit', 'clear', 'alice').stdout)
        self.assertEqual(doc['left'], {'hold_over_limit': True, 'rate_exempt': True})
        # --no-hold clears the flag; clear then leaves only the exemption
        self.run_ok('limit', 'set', 'alice', '--no-hold')
        self.assertFalse(self.show()['logins'][0]['hold_over_limit'])
        r = self.run_ok('limit', 'clear', 'alice')
        self.assertNotIn('hold', r.stdout)
        self.assertIn('--no-exempt', r.stdout)
        self.run_ok('limit', 'set', 'alice', '--no-exempt')
        doc = json.loads(self.run_ok('--json', 'limit', 'clear', 'alice').stdout)
        self.assertEqual(doc['left'], {'hold_over_limit': False, 'rate_exempt': False})
        # the defaults have no flags: nothing is said about them
        doc = json.loads(self.run_ok('--json', 'limit', 'clear', '--default').stdout)
        self.assertNotIn('left', doc)

    # ---- usage reset (issue 12): a row in the users database, applied by the milter -----
    def fill_usage(self, now):
        with sqlite3.connect(self.state) as c:
            c.execute('INSERT INTO usage VALUES (?, ?, 2, 6, 600)', ('alice', now - 10))
            c.execute('INSERT INTO usage VALUES (?, ?, 1, 1, 100)', ('alice', now - 5))

    def used(self):
        u = json.loads(self.run_ok('--json', 'usage', 'alice').stdout)[0]
        return {lim['metric']: lim['used'] for lim in u['limits']}

    def test_usage_reset(self):
        self.run_ok('init')
        self.run_ok('limit', 'set', 'alice', '--messages', '10/1h', '--recipients', '10/1h',
                    '--bytes', '10K/1h')
        self.fill_usage(int(time.time()))
        self.assertEqual(self.used(), {'messages': 3, 'recipients': 7, 'bytes': 700})
        # one metric: the others keep their counts; `usage` takes the reset into account at
        # once (the milter deletes the rows on its next refresh)
        doc = json.loads(self.run_ok('--json', 'usage', 'reset', 'ALICE', '--metric',
                                     'recipients').stdout)
        self.assertEqual((doc['login'], doc['metrics']), ('ALICE', ['recipients']))
        self.assertTrue(doc['by'])
        self.assertEqual(self.used(), {'messages': 3, 'recipients': 0, 'bytes': 700})
        r = self.run_ok('usage', 'reset', 'alice')
        self.assertIn('counters of alice reset (messages, recipients, bytes)', r.stdout)
        self.assertEqual(self.used(), {'messages': 0, 'recipients': 0, 'bytes': 0})
        rows = sqlite3.connect(self.db).execute(
            'SELECT login, metrics, admin != \'\' FROM usage_reset ORDER BY id').fetchall()
        self.assertEqual(rows, [('alice', 2, 1), ('alice', 7, 1)])
        # usage counted after the reset counts again
        with sqlite3.connect(self.state) as c:
            c.execute('INSERT INTO usage VALUES (?, ?, 1, 2, 50)', ('alice', int(time.time()) + 2))
        self.assertEqual(self.used(), {'messages': 1, 'recipients': 2, 'bytes': 50})

    def test_usage_reset_bad_input_writes_nothing(self):
        before = self.file_bytes()
        for args, code in ((['usage', 'reset', 'alice', '--metric', 'minutes'], 2),
                           (['usage', 'reset'], 2), (['usage', 'reset', 'a b'], 2),
                           (['usage', 'reset', 'alice', 'bob'], 2),
                           (['usage', 'reset', 'ghost'], 3)):
            r = self.run_admin('--json', *args)
            self.assertEqual(r.returncode, code, (args, r.stderr))
            self.assertEqual(r.stdout, '', args)
        self.assertEqual(self.file_bytes(), before)


if __name__ == '__main__':
    ADMIN = sys.argv[1]
    del sys.argv[1]
    unittest.main(verbosity=2)
