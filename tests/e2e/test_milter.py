#!/usr/bin/python3
"""End-to-end tests of relay-milter through a real, private Postfix relay (issue 5).

A relay instance configured by `relay-admin setup --milter unix:...` (relaydb for AUTH,
milter_default_action = tempfail) relays to an upstream that requires TLS and AUTH; the
real relay-milter (relaylab's Milter, as user postfix) runs beside it on a socket in the
lab folder, with its own state database. Covers: spoofed envelope sender (553 5.7.1 with a clear text), spoofed header
From (550 5.7.1), 5 messages per window (6th gets 450 4.7.1, passes once the window has
room), the recipient limit counting recipients, refused mail not counted, counters across
a milter restart, hold over limit (Postfix hold queue), the milter killed with -9 (451,
nothing passes unchecked; service resumes after a restart), and with no recipient or byte
limit left the stages negotiated away (RCPT without replies, no body) with recipients still
counted in the audit log.

Needs root; exits 77 (meson's "skipped") otherwise.
Run: RELAY_BUILD_ROOT=<build dir> /usr/bin/python3 tests/e2e/test_milter.py [-v]
"""

import base64
import json
import os
import re
import signal
import smtplib
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import LabCase, main  # noqa: E402


def message(sender, to, subject, header_from=None):
    return ('From: %s\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s@relaylab.test>\r\n\r\n'
            'through the relay and the milter\r\n'
            % (header_from or sender, ', '.join(to), subject, uuid.uuid4().hex)).encode()


class MilterE2E(LabCase):
    needs = ('milter/relay-milter',)
    # relaylab's relay-milter (as user postfix, its own state database) registered by
    # relay-admin setup --milter; reads policy changes at once, flushes counters quickly
    relay_options = {'milter': True,
                     'milter_conf': 'policy_refresh_ms = 0\nstate_flush_ms = 20\n'
                                    'daemon_name = ORIGINATING\nlog_level = debug\n'}

    @classmethod
    def setUpLab(cls):
        cls.milter = cls.relay.milter
        cls.pw = {}
        for name, limits in [('alice', ['--messages', '1000/1h']),
                             ('rate5', ['--messages', '5/10s']),
                             ('rcpt3', ['--recipients', '3/1h']),
                             ('bob', ['--messages', '2/1h']),
                             ('holder', ['--messages', '1/1h', '--hold']),
                             ('kim', ['--messages', '1000/1h'])]:
            cls.pw[name] = cls.relay.add_user(name)
            cls.relay.admin('sender', 'add', name, '%s@example.org' % name)
            cls.relay.admin('limit', 'set', name, *limits)

    @classmethod
    def tearDownClass(cls):
        if os.environ.get('RELAYLAB_KEEP'):
            print(cls.milter.log(), file=sys.stderr)
        super().tearDownClass()

    def admin(self, *args):
        return self.relay.admin('--state-db', self.milter.state_db, *args)

    def session(self, login):
        s = self.relay.smtp()
        s.login(login, self.pw[login])
        return s

    def send(self, login, sender=None, to=('rcpt@example.net',), header_from=None):
        """Sends one message; returns (code, text) of the refusal, or (250, refused_rcpts)."""
        sender = sender or '%s@example.org' % login
        try:
            s = self.session(login)
        except smtplib.SMTPResponseException as e:
            return e.smtp_code, e.smtp_error.decode(errors='replace')
        with s:
            try:
                refused = s.sendmail(sender, list(to),
                                     message(sender, to, 'e2e ' + login, header_from))
                return 250, refused
            except smtplib.SMTPSenderRefused as e:
                return e.smtp_code, e.smtp_error.decode(errors='replace')
            except smtplib.SMTPRecipientsRefused as e:
                code, text = list(e.recipients.values())[0]
                return code, text.decode(errors='replace')
            except smtplib.SMTPDataError as e:
                return e.smtp_code, e.smtp_error.decode(errors='replace')

    def settle(self, login, verdict, seconds=20, count=1):
        """Waits (bounded) until the login's newest audit record has `verdict` and at least
        `count` records have it: the milter's writer commits in queue order, so every count
        queued before it is in too. `count` matters when the record before the one awaited
        has the same verdict (two accepted messages in a row): the newest alone would
        already match before the second is written."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            log = json.loads(self.admin('--json', 'log', '--user', login).stdout)
            if (log and log[-1]['verdict'] == verdict and
                    sum(r['verdict'] == verdict for r in log) >= count):
                return log
            time.sleep(0.05)
        raise AssertionError('no %d %s record(s) for %s in the audit log' % (count, verdict, login))

    def used(self, login, metric, window, last_verdict=None, count=1):
        """relay-admin usage, after the login's newest record (`last_verdict`, the
        `count`-th with that verdict) is in."""
        if last_verdict is not None:
            self.settle(login, last_verdict, count=count)
        r = self.admin('--json', 'usage', login)
        for lim in json.loads(r.stdout)[0]['limits']:
            if lim['metric'] == metric and lim['window_seconds'] == window:
                return lim['used']
        raise AssertionError('no %s limit over %d s' % (metric, window))

    def test_a_accepted_mail_is_delivered(self):
        before = len(self.up.messages())
        code, refused = self.send('alice')
        self.assertEqual((code, refused), (250, {}))
        self.up.wait_messages(before + 1)

    def test_b_spoofed_envelope_sender(self):
        code, text = self.send('alice', sender='ceo@bank.example')
        self.assertEqual(code, 553, text)
        self.assertIn('5.7.1', text)
        self.assertIn('not allowed for login alice', text)

    def test_c_spoofed_header_from(self):
        code, text = self.send('alice', header_from='"alice@example.org" <ceo@bank.example>')
        self.assertEqual(code, 550, text)
        self.assertIn('5.7.1', text)
        self.assertIn('From:', text)

    def test_d_rate_limit_and_window(self):
        for i in range(5):
            self.assertEqual(self.send('rate5')[0], 250, i)
        code, text = self.send('rate5')
        self.assertEqual(code, 450, text)
        self.assertIn('4.7.1', text)
        m = re.search(r'retry in (\d+) seconds', text)
        self.assertIsNotNone(m, text)
        # the window has room again after the wait it named: poll (bounded); a refused
        # attempt counts nothing, so polling does not delay it
        deadline = time.monotonic() + int(m.group(1)) + 30
        while True:
            code, text = self.send('rate5')
            if code == 250 or time.monotonic() > deadline:
                break
            self.assertEqual(code, 450, text)
            time.sleep(0.2)
        self.assertEqual(code, 250, text)

    def test_e_recipient_limit_counts_recipients(self):
        code, refused = self.send('rcpt3', to=('a@example.net', 'b@example.net'))
        self.assertEqual((code, refused), (250, {}))
        code, refused = self.send('rcpt3', to=('c@example.net', 'd@example.net'))
        self.assertEqual(code, 250)
        self.assertEqual(list(refused), ['d@example.net'])
        self.assertEqual(refused['d@example.net'][0], 450)
        self.assertEqual(self.used('rcpt3', 'recipients', 3600, 'accepted', count=2), 3)

    def test_f_refused_mail_not_counted(self):
        kim_before = self.used('kim', 'messages', 3600)
        self.send('kim', sender='ceo@bank.example')
        self.send('kim', header_from='ceo@bank.example')
        self.assertEqual(self.used('kim', 'messages', 3600, 'rejected'), kim_before)
        self.assertEqual(self.send('kim')[0], 250)
        self.assertEqual(self.used('kim', 'messages', 3600, 'accepted'), kim_before + 1)

    def test_g_hold_over_limit(self):
        self.assertEqual(self.send('holder')[0], 250)
        self.assertEqual(self.send('holder')[0], 250)  # over the limit: accepted, held
        out = ''
        for _ in range(50):
            out = subprocess.run(['postqueue', '-c', self.relay.config_dir, '-p'],
                                 capture_output=True, text=True).stdout
            if '!' in out:
                break
            time.sleep(0.2)
        self.assertRegex(out, r'[0-9A-F]+!', 'a message in the hold queue:\n' + out)
        for _ in range(50):
            log = json.loads(self.admin('--json', 'log', '--user', 'holder').stdout)
            if len(log) >= 2:
                break
            time.sleep(0.2)
        self.assertEqual([r['verdict'] for r in log], ['accepted', 'held'])

    def test_h_counters_survive_restart(self):
        self.assertEqual(self.send('bob')[0], 250)
        self.assertEqual(self.send('bob')[0], 250)
        self.assertEqual(self.milter.stop(), 0)
        self.milter.start()
        code, text = self.send('bob')
        self.assertEqual(code, 450, text)

    def test_i_killed_milter_fails_closed(self):
        before = len(self.up.messages())
        self.milter.stop(signal.SIGKILL)
        try:
            # Postfix cannot reach the milter: milter_default_action = tempfail answers 451
            # Implicit TLS: EHLO still says 250 (Postfix only logs it as milter-reject),
            # AUTH is refused temporarily and MAIL gets the milter default action's 451 4.7.1.
            with self.relay.smtps() as s:
                code, text = s.docmd('AUTH', 'PLAIN ' + base64.b64encode(
                    b'\0alice\0' + self.pw['alice'].encode()).decode())
                self.assertEqual(code // 100, 4, text)   # 454 4.3.0: login refused for now
                code, text = s.docmd('MAIL', 'FROM:<alice@example.org>')
                self.assertEqual(code, 451, text)
                self.assertIn(b'4.7.1', text)
            # STARTTLS service: the client is turned away with a temporary error too
            code, text = self.send('alice')
            self.assertEqual(code // 100, 4, (code, text))
            time.sleep(2)
            self.assertEqual(len(self.up.messages()), before, 'nothing passed unchecked')
        finally:
            self.milter.start()
        code, refused = self.send('alice')
        self.assertEqual((code, refused), (250, {}))
        self.up.wait_messages(before + 1)

    def test_j_stages_follow_the_policy(self):
        # without any recipient limit the milter takes RCPT without replies (and, with no
        # byte limit anywhere, no body): real Postfix must still deliver, and the audit
        # record must still count the recipients
        self.relay.admin('limit', 'clear', 'rcpt3')
        mark = len(self.milter.log())
        before = len(self.up.messages())
        to = ('one@example.net', 'two@example.net')
        code, refused = self.send('kim', to=to)
        self.assertEqual((code, refused), (250, {}))
        self.up.wait_messages(before + 1)
        rec = None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            log = json.loads(self.admin('--json', 'log', '--user', 'kim').stdout)
            if log and log[-1]['verdict'] == 'accepted':
                rec = log[-1]
                break
            time.sleep(0.1)
        self.assertIsNotNone(rec, 'no audit record for kim')
        self.assertEqual(rec['recipients'], 2, rec)
        self.assertGreater(rec['size'], 0, rec)
        self.assertIn('session negotiated: body skipped, RCPT without replies, headers sent',
                      self.milter.log()[mark:])
        # a sender the login does not own is still refused at MAIL
        code, text = self.send('kim', sender='ceo@bank.example', to=to)
        self.assertEqual(code, 553, text)


if __name__ == '__main__':
    sys.exit(main())
