#!/usr/bin/python3
"""End-to-end: relay-milter's Prometheus metrics move with real traffic (issue 12, item 5).

A relay set up by `relay-admin setup` with the real relay-milter, whose milter.conf sets
`metrics_file` (in a folder of its own that belongs to the milter's user, as a
node_exporter textfile-collector folder would) and `metrics_interval = 1s`. Clients send
from relaylab.REMOTE (127.0.0.2): accepted mail, a refused sender, a message over a rate
limit. Both outputs are read with the Prometheus parser (python3-prometheus-client,
prometheus_client.parser.text_string_to_metric_families):

* the names, types and labels are the documented ones (relay-milter(8), relay-admin(8));
  no login is a label;
* the counters rise in the file and in `relay-admin metrics` by what was sent, and the two
  agree once both have caught up (one milter run on a fresh state database);
* after a restart of the milter the file counts from zero again while `relay-admin
  metrics`, which sums every run on the state database, keeps the totals.

Needs root; exits 77 (meson's "skipped") otherwise.
Run: RELAY_BUILD_ROOT=<build dir> /usr/bin/python3 tests/e2e/test_metrics.py [-v]
"""

import os
import pwd
import shutil
import signal
import smtplib
import sys
import tempfile
import time
import uuid

from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import relaylab  # noqa: E402
from e2elib import LabCase, main, wait_delivered  # noqa: E402

# name -> (type, label keys), as documented; the last two only in the milter's file
EXPECTED = {
    'relay_messages_accepted_total': ('counter', ()),
    'relay_accepted_recipients_total': ('counter', ()),
    'relay_accepted_bytes_total': ('counter', ()),
    'relay_messages_refused_total': ('counter', ('reason',)),
    'relay_tempfails_total': ('counter', ('reason',)),
    'relay_messages_held_total': ('counter', ()),
    'relay_limit_hits_total': ('counter', ('metric',)),
    'relay_policy_reloads_total': ('counter', ()),
    'relay_config_reloads_total': ('counter', ()),
    'relay_state_writer_failures_total': ('counter', ()),
    'relay_database_errors_total': ('counter', ('database',)),
    'relay_state_writer_backlog': ('gauge', ()),
    'relay_milter_start_time_seconds': ('gauge', ()),
}
LIVE_ONLY = {'relay_state_writer_backlog', 'relay_milter_start_time_seconds'}
WAIT = 30


def parse(text):
    """Exposition text -> ({(sample name, labels): value}, {sample name: (type, keys)})."""
    values, shapes = {}, {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            values[(s.name, tuple(sorted(s.labels.items())))] = s.value
            keys = tuple(sorted(s.labels))
            shapes.setdefault(s.name, (fam.type, keys))
            assert shapes[s.name] == (fam.type, keys), (s.name, keys)
        if not fam.samples:   # a labelled family nothing has counted yet
            shapes.setdefault(fam.name + ('_total' if fam.type == 'counter' else ''),
                              (fam.type, None))
    return values, shapes


def get(values, name, **labels):
    return values.get((name, tuple(sorted(labels.items()))), 0)


class Metrics(LabCase):
    needs = ('milter/relay-milter',)

    @classmethod
    def setUpClass(cls):
        # the textfile-collector folder: the milter's user writes there, others read
        cls.mdir = tempfile.mkdtemp(prefix='relay-metrics-')
        pw = pwd.getpwnam(relaylab.POSTFIX_USER)
        os.chown(cls.mdir, pw.pw_uid, pw.pw_gid)
        os.chmod(cls.mdir, 0o755)
        cls.prom = os.path.join(cls.mdir, 'relay.prom')
        cls.relay_options = {
            'milter': True,
            'milter_conf': 'policy_refresh_ms = 0\nstate_flush_ms = 20\nmetrics_file = %s\n'
                           'metrics_interval = 1s\n' % cls.prom,
        }
        try:
            super().setUpClass()
        except BaseException:
            shutil.rmtree(cls.mdir, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        shutil.rmtree(cls.mdir, ignore_errors=True)

    @classmethod
    def setUpLab(cls):
        cls.pw = cls.relay.add_user('alice')
        cls.relay.admin('sender', 'add', 'alice', 'alice@example.org')
        cls.bob_pw = cls.relay.add_user('bob')
        cls.relay.admin('sender', 'add', 'bob', 'bob@example.org')
        cls.relay.admin('limit', 'set', 'bob', '--messages', '1/1h')

    # ---- the two sources ------------------------------------------------------------------

    def file_text(self):
        deadline = time.monotonic() + WAIT
        while not os.path.exists(self.prom):
            self.assertLess(time.monotonic(), deadline, 'no metrics file\n' +
                            self.relay.milter.log()[-2000:])
            time.sleep(0.1)
        with open(self.prom) as f:
            return f.read()

    def admin_text(self):
        return self.relay.admin('--state-db', self.relay.milter.state_db, 'metrics').stdout.decode()

    def wait_for(self, source, check, what):
        """Polls source() until check(values) holds -> the values (fails after WAIT s)."""
        deadline = time.monotonic() + WAIT
        while True:
            values, _ = parse(source())
            if check(values):
                return values
            if time.monotonic() > deadline:
                self.fail('%s never happened: %s' % (what, values))
            time.sleep(0.2)

    # ---- traffic ----------------------------------------------------------------------------

    def send(self, user, password, sender):
        """One message from 127.0.0.2 -> the SMTP code of the answer (250 accepted)."""
        subject = 'metrics-' + uuid.uuid4().hex
        msg = ('From: <%s>\r\nTo: rcpt@example.net\r\nSubject: %s\r\n\r\nmetrics test\r\n'
               % (sender, subject)).encode()
        with self.relay.smtp(source=relaylab.REMOTE) as s:
            s.login(user, password)
            try:
                s.sendmail(sender, ['rcpt@example.net'], msg)
            except smtplib.SMTPSenderRefused as e:
                return e.smtp_code
        wait_delivered(self, self.up, subject)
        return 250

    # ---- the test -----------------------------------------------------------------------------

    def check_shapes(self, text, live):
        _, shapes = parse(text)
        want = {n: t for n, t in EXPECTED.items() if live or n not in LIVE_ONLY}
        self.assertEqual(set(shapes), set(want), text)
        for name, (typ, keys) in shapes.items():
            self.assertEqual(typ, want[name][0], name)
            if keys is not None:
                self.assertEqual(keys, want[name][1], name)

    def test_metrics_move_with_traffic(self):
        file0 = parse(self.file_text())[0]
        self.check_shapes(self.file_text(), live=True)
        self.check_shapes(self.admin_text(), live=False)
        # the file lists every reason of the milter's table from the start
        for reason in ('sender-not-allowed', 'no-auth', 'from-not-allowed'):
            self.assertIn(('relay_messages_refused_total', (('reason', reason),)), file0)
        self.assertIn(('relay_tempfails_total', (('reason', 'rate-limit'),)), file0)
        admin0 = parse(self.admin_text())[0]

        self.assertEqual(self.send('alice', self.pw, 'alice@example.org'), 250)
        self.assertEqual(self.send('alice', self.pw, 'alice@example.org'), 250)
        self.assertEqual(self.send('alice', self.pw, 'mallory@example.org'), 553)
        self.assertEqual(self.send('bob', self.bob_pw, 'bob@example.org'), 250)
        self.assertEqual(self.send('bob', self.bob_pw, 'bob@example.org'), 450)
        self.relay.admin('sender', 'add', 'alice', '@example.com')   # a policy change
        self.assertEqual(self.send('alice', self.pw, 'alice@example.com'), 250)
        os.kill(self.relay.milter.pid, signal.SIGUSR1)                # a configuration reload

        def moved(before):
            def check(v):
                d = lambda name, **lb: get(v, name, **lb) - get(before, name, **lb)  # noqa: E731
                return (d('relay_messages_accepted_total') == 4 and
                        d('relay_accepted_recipients_total') == 4 and
                        d('relay_accepted_bytes_total') >= 4 * 80 and
                        d('relay_messages_refused_total', reason='sender-not-allowed') == 1 and
                        d('relay_tempfails_total', reason='rate-limit') == 1 and
                        d('relay_limit_hits_total', metric='messages') == 1 and
                        d('relay_policy_reloads_total') >= 1 and
                        d('relay_config_reloads_total') == 1 and
                        d('relay_messages_held_total') == 0 and
                        d('relay_database_errors_total', database='users') == 0 and
                        d('relay_database_errors_total', database='state') == 0)
            return check

        live = self.wait_for(self.file_text, moved(file0), 'the metrics file counting')
        saved = self.wait_for(self.admin_text, moved(admin0), 'relay-admin metrics counting')
        # no login is a label (nor anywhere in the text)
        for text in (self.file_text(), self.admin_text()):
            self.assertNotIn('alice', text)
            self.assertNotIn('bob', text)
        self.wait_for(self.file_text, lambda v: get(v, 'relay_state_writer_backlog') == 0,
                      'the writer backlog draining')
        # written by rename: only the file itself in the folder, readable by the scraper
        self.assertEqual(os.listdir(self.mdir), ['relay.prom'])
        self.assertEqual(os.stat(self.prom).st_mode & 0o777, 0o644)
        self.assertGreater(get(live, 'relay_milter_start_time_seconds'), 1.7e9)
        # one milter run on a fresh state database: both say the same, once caught up
        persisted = [k for k in set(live) | set(saved) if k[0] not in LIVE_ONLY]
        same = self.wait_for(self.admin_text,
                             lambda v: all(get(v, k[0], **dict(k[1])) ==
                                           get(parse(self.file_text())[0], k[0], **dict(k[1]))
                                           for k in persisted), 'both sources agreeing')
        total = get(same, 'relay_messages_accepted_total')

        # a restart: the file counts this process from zero, the state database keeps totals
        self.relay.milter.stop()
        self.relay.milter.start()
        restarted = parse(self.file_text())[0]
        self.assertEqual(get(restarted, 'relay_messages_accepted_total'), 0)
        self.assertEqual(get(parse(self.admin_text())[0], 'relay_messages_accepted_total'),
                         total)
        self.assertEqual(self.send('alice', self.pw, 'alice@example.org'), 250)
        self.wait_for(self.file_text, lambda v: get(v, 'relay_messages_accepted_total') == 1,
                      'the restarted milter counting')
        self.wait_for(self.admin_text,
                      lambda v: get(v, 'relay_messages_accepted_total') == total + 1,
                      'relay-admin metrics adding the new run')


if __name__ == '__main__':
    sys.exit(main())
