#!/usr/bin/python3
"""End-to-end: app credentials through a real, private Postfix relay (issue 12, item 1).

A relay made by `relay-admin setup --milter` (relaydb for AUTH, relay-milter on the
service), clients from 127.0.0.2 (a remote address to Postfix). A login gets credentials
with `relay-admin user credential add`; a client authenticates as LOGIN+LABEL with the
printed secret:
  - on both relay ports (STARTTLS and implicit TLS), with PLAIN, LOGIN and SCRAM-SHA-256,
    and the mail reaches the upstream;
  - the mail is checked against the login's senders and limits (a credential and the
    login's own password share one limit); the audit log records the login and names the
    credential; `credential list` shows its last use;
  - after `credential revoke` the credential gets 535 with every mechanism (SCRAM: 334 at
    the first step, 535 at the proof, like a wrong password) while the login's other
    credential still works.

Needs root; exits 77 (meson's "skipped") otherwise.
Run: RELAY_BUILD_ROOT=<build dir> /usr/bin/python3 tests/e2e/test_credentials.py [-v]
"""

import base64
import json
import os
import smtplib
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import relaylab  # noqa: E402
from e2elib import LabCase, auth, main, wait_delivered  # noqa: E402
from test_plugin import SERVER_FIRST, _b64, _scram_client_final  # noqa: E402

MECHS = ('PLAIN', 'LOGIN', 'SCRAM-SHA-256')


def message(sender, subject):
    return ('From: %s\r\nTo: rcpt@example.net\r\nSubject: %s\r\n\r\nthrough a credential\r\n'
            % (sender, subject)).encode()


def scram_first(s, user):
    """AUTH SCRAM-SHA-256, first step -> (code, server-first decoded, or the text)."""
    code, text = s.docmd('AUTH', 'SCRAM-SHA-256 ' + _b64(('n,,n=%s,r=abc' % user).encode()))
    return code, (base64.b64decode(text).decode('ascii') if code == 334 else text)


def scram_auth(s, user, password):
    """One SCRAM-SHA-256 exchange -> (code, text); `first` is the first step's answer."""
    code, first = scram_first(s, user)
    if code != 334:
        return code, first
    final = _scram_client_final(password, 'n=%s,r=abc' % user, first)
    code, text = s.docmd(_b64(final.encode()))
    if code == 334:     # server-final (v=...) sent as a challenge first
        code, text = s.docmd('')
    return code, text


def login_with(s, mech, user, password):
    if mech == 'SCRAM-SHA-256':
        return scram_auth(s, user, password)
    return auth(s, mech, user, password)


class CredentialsE2E(LabCase):
    needs = ('milter/relay-milter',)
    relay_options = {'milter': True,
                     'milter_conf': 'policy_refresh_ms = 0\nstate_flush_ms = 20\n'
                                    'daemon_name = ORIGINATING\n'}

    @classmethod
    def setUpLab(cls):
        cls.milter = cls.relay.milter
        cls.own = {}
        for name, limit in (('alice', '1000/1h'), ('lim', '2/1h')):
            cls.own[name] = cls.relay.add_user(name)
            cls.relay.admin('sender', 'add', name, '%s@example.org' % name)
            cls.relay.admin('limit', 'set', name, '--messages', limit)
        cls.secret = {}
        for name, label in (('alice', 'phone'), ('alice', 'printer'), ('lim', 'app')):
            out = json.loads(cls.relay.admin('--json', 'user', 'credential', 'add',
                                             name, label).stdout)
            cls.secret[out['authname']] = out['secret']

    def admin(self, *args):
        return self.relay.admin('--state-db', self.milter.state_db, *args)

    def connect(self, port):
        if port == 'smtps':
            return self.relay.smtps(source=relaylab.REMOTE)
        return self.relay.smtp(source=relaylab.REMOTE)

    def send(self, port, mech, user, password, sender, subject):
        """AUTH then one message -> (code, text) of the first refusal, or (250, '')."""
        with self.connect(port) as s:
            code, text = login_with(s, mech, user, password)
            if code != 235:
                return code, text
            try:
                s.sendmail(sender, ['rcpt@example.net'], message(sender, subject))
            except smtplib.SMTPSenderRefused as e:
                return e.smtp_code, e.smtp_error.decode(errors='replace')
            except smtplib.SMTPResponseException as e:
                return e.smtp_code, e.smtp_error.decode(errors='replace')
        return 250, ''

    def audit(self, login, n, seconds=20):
        """The login's audit log once it has at least n records (the writer is batched)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            log = json.loads(self.admin('--json', 'log', '--user', login).stdout)
            if len(log) >= n:
                return log
            time.sleep(0.05)
        raise AssertionError('fewer than %d audit records for %s' % (n, login))

    def test_a_every_mechanism_on_both_ports(self):
        sent = []
        for port in ('smtp', 'smtps'):
            for mech in MECHS:
                with self.subTest(port=port, mech=mech):
                    subject = 'cred-%s-%s-%s' % (port, mech, uuid.uuid4().hex)
                    code, text = self.send(port, mech, 'alice+phone', self.secret['alice+phone'],
                                           'alice@example.org', subject)
                    self.assertEqual(code, 250, text)
                    sent.append(subject)
        for subject in sent:
            wait_delivered(self, self.up, subject)
        # the audit records are the login's and name the credential
        log = self.audit('alice', len(sent))
        mine = [r for r in log if r['credential'] == 'phone']
        self.assertEqual(len(mine), len(sent), log)
        self.assertTrue(all(r['login'] == 'alice' and r['verdict'] == 'accepted' for r in mine))
        self.assertTrue(all(r['client_addr'] == relaylab.REMOTE for r in mine), mine)
        # ... and credential list shows when it was last used
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            creds = {c['label']: c for c in json.loads(
                self.admin('--json', 'user', 'credential', 'list', 'alice').stdout)['credentials']}
            if creds['phone']['last_used'] is not None:
                break
            time.sleep(0.05)
        self.assertIsNotNone(creds['phone']['last_used'], creds)
        self.assertEqual(creds['phone']['last_client'], relaylab.REMOTE)

    def test_b_the_logins_senders(self):
        code, text = self.send('smtp', 'PLAIN', 'alice+printer', self.secret['alice+printer'],
                               'ceo@bank.example', 'cred-spoof')
        self.assertEqual(code, 553, text)
        # the credential's name is no address the login may send as either
        code, text = self.send('smtp', 'PLAIN', 'alice+printer', self.secret['alice+printer'],
                               'lim@example.org', 'cred-other-login')
        self.assertEqual(code, 553, text)

    def test_c_the_logins_limits(self):
        # lim: 2 messages an hour, whichever secret sends them
        code, text = self.send('smtp', 'PLAIN', 'lim+app', self.secret['lim+app'],
                               'lim@example.org', 'cred-lim-1')
        self.assertEqual(code, 250, text)
        code, text = self.send('smtp', 'PLAIN', 'lim', self.own['lim'],
                               'lim@example.org', 'cred-lim-2')
        self.assertEqual(code, 250, text)
        self.audit('lim', 2)
        code, text = self.send('smtps', 'LOGIN', 'lim+app', self.secret['lim+app'],
                               'lim@example.org', 'cred-lim-3')
        self.assertEqual(code, 450, text)
        log = self.audit('lim', 3)
        self.assertEqual([(r['verdict'], r['credential']) for r in log],
                         [('accepted', 'app'), ('accepted', ''), ('tempfailed', 'app')])
        usage = json.loads(self.admin('--json', 'usage', 'lim').stdout)
        self.assertEqual(usage[0]['limits'][0]['used'], 2, usage)

    def test_d_revoked_gets_535_the_other_still_works(self):
        out = json.loads(self.relay.admin('--json', 'user', 'credential', 'add',
                                          'alice', 'tmp').stdout)
        tmp = out['secret']
        code, text = self.send('smtp', 'PLAIN', 'alice+tmp', tmp, 'alice@example.org',
                               'cred-tmp-' + uuid.uuid4().hex)
        self.assertEqual(code, 250, text)
        self.relay.admin('user', 'credential', 'revoke', 'alice', 'tmp')
        for port in ('smtp', 'smtps'):
            for mech in MECHS:
                with self.subTest(port=port, mech=mech), self.connect(port) as s:
                    code, text = login_with(s, mech, 'alice+tmp', tmp)
                    self.assertEqual(code, 535, text)
        # SCRAM's first step does not tell a revoked credential from a live one
        for user in ('alice+tmp', 'alice+printer'):
            with self.subTest(user=user), self.connect('smtp') as s:
                code, first = scram_first(s, user)
                self.assertEqual(code, 334, first)
                self.assertRegex(first, SERVER_FIRST)
                self.assertEqual(s.docmd('*')[0], 501)
        # the other credential and the login's own password still work
        for user, password in (('alice+printer', self.secret['alice+printer']),
                               ('alice', self.own['alice'])):
            for mech in MECHS:
                with self.subTest(user=user, mech=mech), self.connect('smtp') as s:
                    code, text = login_with(s, mech, user, password)
                    self.assertEqual(code, 235, text)


if __name__ == '__main__':
    sys.exit(main())
