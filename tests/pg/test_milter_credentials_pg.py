"""relay-milter with both databases on PostgreSQL and an app credential (suite 'pg'):
users_db = pg:FILE as a role holding only what `relay-admin grants --milter` prints (so the
credential -> login lookup runs without any secret column), state_db on the same database
(exact admission). Played over the milter protocol (tests/milter/milterproto.py): a
message through the credential's authentication name is the login's (its senders pass,
others are refused), the audit record in PostgreSQL names the credential, the
credential's last use is recorded there and `relay-admin user credential list` shows it;
after the revoke (relay-admin on PostgreSQL) the name is unknown to the milter. A counter
reset (`relay-admin usage reset`, users schema 4 on PostgreSQL) reaches the running milter
through the generation counter: its writer zeroes the login's usage rows in PostgreSQL
and writes one audit record, which a restart does not write again (the shared reset
mark, state schema 5).

usage: test_milter_credentials_pg.py RELAY_MILTER RELAY_ADMIN"""

import json
import os
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'lib'))
sys.path.insert(0, os.path.join(HERE, '..', 'milter'))
import pglab  # noqa: E402
import test_milter_daemon as tmd  # noqa: E402

PW = 'owner-pw-1'
MPW = 'milter-pw-2'



class MilterCredentialOnPg(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        why = pglab.need_pg()
        if why:
            raise unittest.SkipTest(why)
        cls.tmpdir = tempfile.TemporaryDirectory(prefix='mlt-pg-cred-')
        cls.tmp = cls.tmpdir.name
        cls.pg = pglab.PgLab()
        cls.pg.create_role('relayadmin', password=PW)
        cls.pg.create_role('relay_milter', password=MPW)
        cls.pg.create_database('relay', owner='relayadmin')
        cls.owner = cls.pg.write_conninfo(os.path.join(cls.tmp, 'owner.conf'), 'relayadmin',
                                          'relay', password=PW)
        cls.users = cls.pg.write_conninfo(os.path.join(cls.tmp, 'users.conf'), 'relay_milter',
                                          'relay', password=MPW)
        cls.admin('--state-db', cls.owner, 'init')
        grants = cls.admin('grants', '--milter', 'relay_milter').stdout
        cls.pg.psql(grants, db='relay', user='relayadmin')
        cls.admin('user', 'add', 'hal', '--password-stdin', '--sender', 'hal@example.com',
                  stdin=tmd.PASSWORD)
        cls.admin('user', 'credential', 'add', 'hal', 'phone')
        # the state as the owner (tests/pg/test_state_grants_pg.py runs it as the milter's role)
        cls.d = tmd.Daemon(cls.tmp, users_db=cls.users, state_db=cls.owner)
        cls.d.start()

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()
        cls.pg.close()
        cls.tmpdir.cleanup()

    @classmethod
    def admin(cls, *args, stdin=None):
        r = subprocess.run([tmd.ADMIN, '--db', cls.owner, '--state-db', cls.owner] + list(args),
                           input=stdin, capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise AssertionError('relay-admin %s: %s' % (' '.join(args), r.stderr))
        return r

    def sql(self, text):
        return self.pg.psql(text, db='relay', user='relayadmin')

    def wait_sql(self, text, want, seconds=20):
        got = None
        for _ in range(int(seconds / 0.1)):
            got = self.sql(text)
            if got == want:
                return
            time.sleep(0.1)
        self.assertEqual(got, want, text)

    def test_credential_is_its_login(self):
        self._credential_is_its_login()
        self._usage_reset()

    def _usage_reset(self):
        stage, r = tmd.send(self.d.sock, 'hal', '<hal@example.com>')
        self.assertEqual((stage, r.code), ('eom', 'c'), r)
        self.wait_sql("SELECT sum(messages) > 0 FROM usage WHERE lower(login) = 'hal'", 't')
        r = self.admin('usage', 'reset', 'HAL')
        self.assertIn('counters of HAL reset', r.stdout)
        self.assertEqual(self.sql("SELECT lower(login) || ' ' || metrics FROM usage_reset"),
                         'hal 7')
        # the milter's next policy refresh (at its next lookup: a refused message here,
        # which counts nothing) sees it; its writer applies it in PostgreSQL
        stage, r = tmd.send(self.d.sock, 'hal', '<ceo@bank.example>')
        self.assertEqual(stage, 'mail', r)
        self.wait_sql("SELECT coalesce(sum(messages), 0) FROM usage"
                      " WHERE lower(login) = 'hal'", '0')
        self.wait_sql("SELECT count(*) FROM audit WHERE verdict = 'admin'", '1')
        self.assertEqual(self.sql("SELECT reset_id = (SELECT max(id) FROM usage_reset)"
                                  " FROM reset_mark"), 't')
        # a restart pushes the reset again: idempotent, audited once
        self.d.stop()
        self.d.start()
        stage, r = tmd.send(self.d.sock, 'hal', '<hal@example.com>')
        self.assertEqual((stage, r.code), ('eom', 'c'), r)
        self.wait_sql("SELECT sum(messages) FROM usage WHERE lower(login) = 'hal'", '1')
        self.assertEqual(self.sql("SELECT count(*) FROM audit WHERE verdict = 'admin'"), '1')

    def _credential_is_its_login(self):
        stage, r = tmd.send(self.d.sock, 'HAL+phone', '<hal@example.com>', queue_id='QCRED1')
        self.assertEqual((stage, r.code), ('eom', 'c'), r)
        stage, r = tmd.send(self.d.sock, 'hal+phone', '<ceo@bank.example>')
        self.assertEqual(stage, 'mail')
        self.assertTrue(r.smtp.startswith('553 5.7.1 '), r.smtp)
        # the writer batches audit and last use into PostgreSQL every state_flush_ms
        self.wait_sql("SELECT login || ' ' || credential || ' ' || verdict FROM audit"
                      " WHERE queue_id = 'QCRED1'", 'hal phone accepted')
        self.wait_sql("SELECT lower(login) || ' ' || label FROM credential_use",
                      'hal phone')
        # a message counted in usage, by the login (exact admission on PostgreSQL)
        self.wait_sql("SELECT sum(messages) FROM usage WHERE lower(login) = 'hal'", '1')
        j = json.loads(self.admin('--json', 'user', 'credential', 'list', 'hal').stdout)
        self.assertIsNotNone(j['credentials'][0]['last_used'])
        self.assertEqual(j['credentials'][0]['last_client'], '192.0.2.10')
        # revoked on PostgreSQL: the milter no longer knows the name
        self.admin('user', 'credential', 'revoke', 'hal', 'phone')
        stage, r = tmd.send(self.d.sock, 'hal+phone', '<hal@example.com>')
        self.assertEqual(stage, 'mail', r)
        self.assertFalse(r.code == 'c', r)
        stage, r = tmd.send(self.d.sock, 'hal', '<hal@example.com>')
        self.assertEqual((stage, r.code), ('eom', 'c'), 'the login itself still works: %r' % r)


if __name__ == '__main__':
    tmd.MILTER, tmd.ADMIN = sys.argv[1], sys.argv[2]
    unittest.main(argv=sys.argv[:1], verbosity=2)
