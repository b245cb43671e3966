"""relay-milter reading its users database from PostgreSQL (suite 'pg'): users_db =
pg:FILE (a 0600 conninfo file), the state database on SQLite as before. Played over the
milter protocol (tests/milter/milterproto.py): an allowed sender passes, a spoofed one is
refused, relay-admin's change on PostgreSQL counts at the next message (the schema's
generation counter stands in for SQLite's data_version), the server stopped -> 451
(temporary, nothing passes unchecked), started again -> accepted without restarting the
milter.

usage: test_milter_users_pg.py RELAY_MILTER RELAY_ADMIN"""

import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'lib'))
sys.path.insert(0, os.path.join(HERE, '..', 'milter'))
import pglab  # noqa: E402
import test_milter_daemon as tmd  # noqa: E402

PW = 'owner-pw-1'



class MilterUsersOnPg(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        why = pglab.need_pg()
        if why:
            raise unittest.SkipTest(why)
        cls.tmpdir = tempfile.TemporaryDirectory(prefix='mlt-pg-')
        cls.tmp = cls.tmpdir.name
        cls.pg = pglab.PgLab()
        cls.pg.create_role('relayadmin', password=PW)
        cls.pg.create_database('relay', owner='relayadmin')
        cls.name = cls.pg.write_conninfo(os.path.join(cls.tmp, 'users.conf'), 'relayadmin',
                                         'relay', password=PW)
        cls.state = os.path.join(cls.tmp, 'state.db')
        cls.admin('--state-db', cls.state, 'init')
        cls.admin('user', 'add', 'hal', '--password-stdin', '--sender', 'hal@example.com',
                  stdin=tmd.PASSWORD)
        cls.d = tmd.Daemon(cls.tmp, users_db=cls.name, state_db=cls.state)
        cls.d.start()

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()
        cls.pg.close()
        cls.tmpdir.cleanup()

    @classmethod
    def admin(cls, *args, stdin=None):
        r = subprocess.run([tmd.ADMIN, '--db', cls.name] + list(args), input=stdin,
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise AssertionError('relay-admin %s: %s' % (' '.join(args), r.stderr))
        return r

    def send(self, sender, login='hal'):
        return tmd.send(self.d.sock, login, sender)

    def test_1_allowed_and_spoofed(self):
        stage, r = self.send('<hal@example.com>')
        self.assertEqual((stage, r.code), ('eom', 'c'), r)
        stage, r = self.send('<ceo@bank.example>')
        self.assertEqual(stage, 'mail')
        self.assertTrue(r.smtp.startswith('553 5.7.1 '), r.smtp)

    def test_2_change_counts_at_once(self):
        stage, r = self.send('<boss@corp.example>')
        self.assertEqual(stage, 'mail', 'not allowed yet: %r' % r)
        self.admin('sender', 'add', 'hal', '@corp.example')
        stage, r = self.send('<boss@corp.example>')
        self.assertEqual((stage, r.code), ('eom', 'c'), 'allowed after relay-admin: %r' % r)

    def test_3_server_down_tempfails(self):
        mark = len(self.d.log_text())
        self.pg.stop()
        try:
            stage, r = self.send('<hal@example.com>')
            self.assertEqual(stage, 'mail', r)
            self.assertTrue(r.smtp.startswith('451 4.'), 'temporary while down: %r' % r.smtp)
            stage, r = self.send('<hal@example.com>', login='nobody')
            self.assertTrue(r.smtp.startswith('451 4.'), 'an unknown login too: %r' % r.smtp)
            self.assertIn('unreachable', self.d.log_text()[mark:])
        finally:
            self.pg.start()
        stage, r = self.send('<hal@example.com>')
        self.assertEqual((stage, r.code), ('eom', 'c'),
                         'accepted again without restarting the milter: %r' % r)


if __name__ == '__main__':
    tmd.MILTER, tmd.ADMIN = sys.argv[1], sys.argv[2]
    unittest.main(argv=sys.argv[:1], verbosity=2)
