"""`relay-admin grants` makes every role work (suite 'pg'), the state tables included.

One database holds both schemas, made by an owner role (relay_owner: `relay-admin init`
for users and state). `relay-admin grants --milter relay_milter --admin relay_ops`, piped
into psql as the owner, is all the other two roles get. Then:
- relay-milter connects as relay_milter for users_db AND state_db: admission (a limit of
  1 message an hour: the first accepted, the second 450), the audit records, the metrics'
  counters and the last use land in PostgreSQL; a counter reset (`relay-admin usage
  reset`, run as relay_ops) is applied by the milter's writer (usage zeroed, the reset
  mark moved, one audit record) and the login may send again;
- relay-admin as relay_ops reads the state: usage, log, metrics.
Before the fix `grants` printed the users tables' grants only: relay_milter could not
touch usage/reservations (every MAIL 451) and relay_ops could not read the audit log.

usage: test_state_grants_pg.py RELAY_MILTER RELAY_ADMIN"""

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

OWNER_PW = 'owner-pw-1'
MILTER_PW = 'milter-pw-2'
OPS_PW = 'ops-pw-3'



class StateGrants(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        why = pglab.need_pg()
        if why:
            raise unittest.SkipTest(why)
        cls.tmpdir = tempfile.TemporaryDirectory(prefix='pg-state-grants-')
        cls.tmp = cls.tmpdir.name
        cls.d = None
        cls.pg = pglab.PgLab()
        try:
            cls._setup()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def _setup(cls):
        cls.pg.create_role('relay_owner', password=OWNER_PW)
        cls.pg.create_role('relay_milter', password=MILTER_PW)
        cls.pg.create_role('relay_ops', password=OPS_PW)
        cls.pg.create_database('relay', owner='relay_owner')
        cls.owner = cls.pg.write_conninfo(os.path.join(cls.tmp, 'owner.conninfo'), 'relay_owner',
                                          'relay', password=OWNER_PW)
        cls.milter = cls.pg.write_conninfo(os.path.join(cls.tmp, 'milter.conninfo'),
                                           'relay_milter', 'relay', password=MILTER_PW)
        cls.ops = cls.pg.write_conninfo(os.path.join(cls.tmp, 'ops.conninfo'), 'relay_ops',
                                        'relay', password=OPS_PW)
        cls.admin(cls.owner, '--state-db', cls.owner, 'init')
        grants = cls.admin(cls.owner, 'grants', '--milter', 'relay_milter',
                           '--admin', 'relay_ops').stdout
        # exactly what was printed, nothing more, run by the tables' owner
        cls.pg.psql(grants, db='relay', user='relay_owner')
        cls.admin(cls.ops, 'user', 'add', 'hal', '--password-stdin', '--sender',
                  'hal@example.com', stdin=tmd.PASSWORD)
        cls.admin(cls.ops, 'limit', 'set', 'hal', '--messages', '1/1h')
        cls.d = tmd.Daemon(cls.tmp, users_db=cls.milter, state_db=cls.milter)
        cls.d.start()

    @classmethod
    def tearDownClass(cls):
        if cls.d is not None:
            cls.d.stop()
        cls.pg.close()
        cls.tmpdir.cleanup()

    @classmethod
    def admin(cls, db, *args, stdin=None, check=True):
        r = subprocess.run([tmd.ADMIN, '--db', db] + list(args), input=stdin,
                           capture_output=True, text=True, timeout=60)
        if check and r.returncode != 0:
            raise AssertionError('relay-admin %s: %s' % (' '.join(args), r.stderr))
        return r

    def ops_state(self, *args):
        return self.admin(self.ops, '--state-db', self.ops, *args)

    def sql(self, text):
        return self.pg.psql(text, db='relay', user='relay_owner')

    def wait_sql(self, text, want, seconds=20):
        got = None
        for _ in range(int(seconds / 0.1)):
            got = self.sql(text)
            if got == want:
                return
            time.sleep(0.1)
        self.assertEqual(got, want, text)

    def test_milter_and_admin_roles_work_on_the_state(self):
        # admission as relay_milter: reservation, count at end of message, then the limit
        stage, r = tmd.send(self.d.sock, 'hal', '<hal@example.com>', queue_id='QGRANT1')
        self.assertEqual((stage, r.code), ('eom', 'c'), '%r\n%s' % (r, self.d.log_text()))
        self.wait_sql("SELECT sum(messages) FROM usage WHERE lower(login) = 'hal'", '1')
        stage, r = tmd.send(self.d.sock, 'hal', '<hal@example.com>')
        self.assertEqual(stage, 'mail', r)
        self.assertTrue(r.smtp.startswith('450 4.7.1'), r.smtp)
        # the writer's batches: audit, counters, last use
        self.wait_sql("SELECT verdict FROM audit WHERE queue_id = 'QGRANT1'", 'accepted')
        self.wait_sql("SELECT value > 0 FROM counters"
                      " WHERE name = 'relay_messages_accepted_total' AND label = ''", 't')
        self.wait_sql("SELECT count(*) FROM last_use WHERE lower(login) = 'hal'", '1')
        # relay-admin as relay_ops reads it all
        u = json.loads(self.ops_state('--json', 'usage', 'hal').stdout)
        self.assertIn('1', json.dumps(u))
        log = self.ops_state('log', '--user', 'hal').stdout
        self.assertIn('QGRANT1', log)
        self.assertIn('accepted', log)
        metrics = self.ops_state('metrics').stdout
        self.assertRegex(metrics, r'(?m)^relay_messages_accepted_total [1-9]')
        # a counter reset by relay_ops, applied by the milter's writer as relay_milter
        self.assertIn('counters of hal reset', self.ops_state('usage', 'reset', 'hal').stdout)
        stage, r = tmd.send(self.d.sock, 'hal', '<ceo@bank.example>')  # refresh the policy
        self.assertEqual(stage, 'mail', r)
        self.wait_sql("SELECT coalesce(sum(messages), 0) FROM usage"
                      " WHERE lower(login) = 'hal'", '0')
        self.wait_sql("SELECT count(*) FROM audit WHERE verdict = 'admin'", '1')
        self.assertEqual(self.sql("SELECT reset_id = (SELECT max(id) FROM usage_reset)"
                                  " FROM reset_mark"), 't')
        stage, r = tmd.send(self.d.sock, 'hal', '<hal@example.com>')
        self.assertEqual((stage, r.code), ('eom', 'c'), r)
        self.assertNotIn('permission denied', self.d.log_text())

    def test_only_one_kind(self):
        users = self.admin(self.owner, 'grants', '--milter', 'm', '--only', 'users').stdout
        state = self.admin(self.owner, 'grants', '--milter', 'm', '--only', 'state').stdout
        self.assertIn(' ON logins ', users)
        self.assertNotIn('reservations', users)
        self.assertIn('reservations', state)
        self.assertNotIn(' ON logins ', state)
        # the plugin needs no state table
        self.assertEqual(self.admin(self.owner, 'grants', '--plugin', 'p', '--only',
                                    'state').stdout, '')
        r = self.admin(self.owner, 'grants', '--milter', 'm', '--only', 'both', check=False)
        self.assertEqual(r.returncode, 2, r)


if __name__ == '__main__':
    tmd.MILTER, tmd.ADMIN = sys.argv[1], sys.argv[2]
    unittest.main(argv=sys.argv[:1], verbosity=2)
