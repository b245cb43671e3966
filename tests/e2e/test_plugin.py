#!/usr/bin/python3
"""End-to-end tests of the relaydb plugin through real, private Postfix instances (issue 3).

A relay instance (configured by `relay-admin setup --postfix-config`, relaydb for AUTH)
relays to an upstream instance that requires TLS and AUTH and stores what it receives in a
maildir. Needs root; exits 77 (meson's "skipped") with the reason otherwise.

Run: RELAY_BUILD_ROOT=<build dir> /usr/bin/python3 tests/e2e/test_plugin.py [-v]
"""

import base64
import hashlib
import hmac
import os
import re
import smtplib
import sys
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import relaylab  # noqa: E402
from e2elib import LabCase, auth, main, require_build, wait_delivered  # noqa: E402


def _message(subject):
    return ('From: sender@example.org\r\nTo: rcpt@example.net\r\nSubject: %s\r\n\r\n'
            'hello through the relay\r\n' % subject).encode()


class UpstreamHarness(unittest.TestCase):
    """The harness itself: the upstream demands TLS and AUTH and fills its maildir."""

    def test_upstream_requires_tls_auth_and_delivers(self):
        with relaylab.Lab() as lab:
            up = lab.upstream()
            with smtplib.SMTP(up.host, up.port, timeout=30) as s:
                s.ehlo()
                self.assertFalse(s.has_extn('auth'), 'upstream offers AUTH before TLS')
                s.starttls(context=lab.ca.context())
                s.ehlo()
                self.assertTrue(s.has_extn('auth'))
                code, _ = s.mail('a@example.org')
                self.assertEqual(code, 250)
                code, _ = s.rcpt('b@example.net')
                self.assertEqual(code, 554, 'upstream accepts RCPT without AUTH')
                s.rset()
                s.login(up.user, up.password)
                s.sendmail('a@example.org', ['b@example.net'], _message('upstream-smoke'))
            msgs = up.wait_messages(1)
            self.assertIn(b'upstream-smoke', msgs[0])


class RelayWithRelaydb(LabCase):
    """Issue 3's cases 1-4 and 6 against one relay/upstream pair."""

    @classmethod
    def setUpLab(cls):
        cls.password = cls.relay.add_user('alice')

    def test_1_starttls_auth_plain_relays_to_upstream(self):
        subject = 'case1-' + uuid.uuid4().hex
        with self.relay.smtp() as s:
            self.assertIn('PLAIN', s.esmtp_features.get('auth', '').upper())
            code, text = auth(s, 'PLAIN', 'alice', self.password)
            self.assertEqual(code, 235, text)
            self.assertEqual(s.mail('sender@example.org')[0], 250)
            self.assertEqual(s.rcpt('rcpt@example.net')[0], 250)
            code, text = s.data(_message(subject))
            self.assertEqual(code, 250, text)
        wait_delivered(self, self.up, subject)
        # the relay verified the upstream's certificate (smtp_tls_security_level=secure)
        self.relay.wait_log(r'Verified TLS connection established to localhost')

    def test_2_plaintext_no_auth_offered_mail_refused(self):
        with self.relay.smtp(starttls=False) as s:
            self.assertTrue(s.has_extn('starttls'))
            self.assertFalse(s.has_extn('auth'), 'AUTH offered before STARTTLS')
            code, text = s.mail('sender@example.org')
            self.assertEqual(code, 530, text)
            self.assertIn(b'5.7.0', text)

    def test_3_tls_without_auth_refused_at_rcpt(self):
        with self.relay.smtp() as s:
            self.assertEqual(s.mail('sender@example.org')[0], 250)
            code, text = s.rcpt('rcpt@example.net')
            self.assertEqual(code, 554, text)
            self.assertIn(b'5.7.1', text)

    def test_4_wrong_password_535(self):
        with self.relay.smtp() as s:
            code, text = auth(s, 'PLAIN', 'alice', self.password + 'x')
            self.assertEqual(code, 535, text)
        with self.relay.smtp() as s:
            code, text = auth(s, 'PLAIN', 'nobody-here', self.password)
            self.assertEqual(code, 535, text)

    def test_6a_auth_login(self):
        subject = 'case6a-' + uuid.uuid4().hex
        with self.relay.smtp() as s:
            code, text = auth(s, 'LOGIN', 'alice', self.password)
            self.assertEqual(code, 235, text)
            s.sendmail('sender@example.org', ['rcpt@example.net'], _message(subject))
        wait_delivered(self, self.up, subject)

    def test_6b_implicit_tls_port(self):
        subject = 'case6b-' + uuid.uuid4().hex
        with self.relay.smtps() as s:
            self.assertTrue(s.has_extn('auth'))
            code, text = auth(s, 'PLAIN', 'alice', self.password)
            self.assertEqual(code, 235, text)
            s.sendmail('sender@example.org', ['rcpt@example.net'], _message(subject))
        wait_delivered(self, self.up, subject)

    def test_6c_implicit_tls_port_without_auth_refused(self):
        with self.relay.smtps() as s:
            self.assertEqual(s.mail('sender@example.org')[0], 250)
            self.assertEqual(s.rcpt('rcpt@example.net')[0], 554)


def _b64(data):
    return base64.b64encode(data).decode('ascii')


def _scram_client_final(password, client_first_bare, server_first):
    """RFC 5802 client-final-message (SCRAM-SHA-256, no channel binding) for `password`."""
    attrs = dict(kv.split('=', 1) for kv in server_first.split(','))
    salted = hashlib.pbkdf2_hmac('sha256', password.encode(), base64.b64decode(attrs['s']),
                                 int(attrs['i']))
    client_key = hmac.new(salted, b'Client Key', hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    without_proof = 'c=biws,r=' + attrs['r']
    auth_message = ','.join((client_first_bare, server_first, without_proof)).encode()
    signature = hmac.new(stored_key, auth_message, hashlib.sha256).digest()
    proof = bytes(a ^ b for a, b in zip(client_key, signature))
    return without_proof + ',p=' + _b64(proof)


# What a server-first-message for one of our verifiers looks like: the client's nonce plus
# the server's, a 16-byte salt, 4096 iterations.
SERVER_FIRST = re.compile(r'^r=abc[^,]+,s=([A-Za-z0-9+/]{22}==),i=4096$')


class RelayScramNoEnumeration(LabCase):
    """Issue 8 item 2: SCRAM-SHA-256 through Postfix must not tell which logins exist.

    The attack: AUTH SCRAM-SHA-256 with base64("n,,n=NAME,r=abc") and no password. Before
    the fix an active login got 334 with its salt and iteration count, an unknown, disabled
    or expired one 535 at once. Now all four get 334 with the same shape, and all but the
    active login fail at the proof, with their right password, exactly like a wrong one."""

    @classmethod
    def setUpLab(cls):
        cls.passwords = {name: cls.relay.add_user(name) for name in ('kim', 'dora', 'exi')}
        cls.passwords['nosuch'] = 'not-a-login-' + uuid.uuid4().hex
        cls.relay.admin('user', 'disable', 'dora')
        cls.relay.admin('user', 'set', 'exi', '--expires', '2001-01-01')

    def first_step(self, s, name, cancel=False):
        """AUTH SCRAM-SHA-256 with n,,n=NAME,r=abc -> (code, decoded server-first or text).
        With `cancel`, a 334 is followed by "*" (RFC 4954 cancel), so the session can QUIT."""
        code, text = s.docmd('AUTH', 'SCRAM-SHA-256 ' + _b64(('n,,n=%s,r=abc' % name).encode()))
        if code != 334:
            return code, text
        if cancel:
            self.assertEqual(s.docmd('*')[0], 501)
        return code, base64.b64decode(text).decode('ascii')

    def test_first_step_same_for_all_kinds(self):
        for name in ('kim', 'nosuch', 'dora', 'exi'):
            with self.subTest(login=name), self.relay.smtp() as s:
                self.assertIn('SCRAM-SHA-256', s.esmtp_features.get('auth', '').upper())
                code, first = self.first_step(s, name, cancel=True)
                self.assertEqual(code, 334, '%s: first step answered %s' % (name, first))
                self.assertRegex(first, SERVER_FIRST, name)

    def test_decoy_salt_is_stable(self):
        salts = []
        for name in ('nosuch', 'nosuch', 'NoSuch'):
            with self.relay.smtp() as s:
                code, first = self.first_step(s, name, cancel=True)
                self.assertEqual(code, 334, first)
                salts.append(SERVER_FIRST.match(first).group(1))
        self.assertEqual(len(set(salts)), 1, 'an unknown login shows one salt: %s' % salts)

    def test_only_active_login_passes_the_proof(self):
        for name, want in (('kim', 235), ('nosuch', 535), ('dora', 535), ('exi', 535)):
            with self.subTest(login=name), self.relay.smtp() as s:
                code, first = self.first_step(s, name)
                self.assertEqual(code, 334, first)
                final = _scram_client_final(self.passwords[name], 'n=%s,r=abc' % name, first)
                code, text = s.docmd(_b64(final.encode()))
                if code == 334:     # server-final (v=...) sent as a challenge first
                    code, text = s.docmd('')
                self.assertEqual(code, want, '%s: %s' % (name, text))
        with self.relay.smtp() as s:     # and a wrong password for the active one: the same 535
            code, first = self.first_step(s, 'kim')
            final = _scram_client_final('wrong', 'n=kim,r=abc', first)
            code, text = s.docmd(_b64(final.encode()))
            self.assertEqual(code, 535, text)


class RelayDatabaseGone(unittest.TestCase):
    """Issue 3 case 5: the users database removed -> 454 4.7.0, temporary, never 535."""

    def test_5_database_removed_454(self):
        require_build()
        with relaylab.Lab() as lab:
            up = lab.upstream()
            relay = lab.relay(up, start=False)
            password = relay.add_user('bob')
            os.rename(relay.db, relay.db + '.gone')
            relay.start()
            with relay.smtp() as s:
                code, text = auth(s, 'PLAIN', 'bob', password)
                self.assertEqual(code, 454, text)
                self.assertIn(b'4.7.0', text)
            # back in place, a fresh smtpd process authenticates again
            os.rename(relay.db + '.gone', relay.db)
            relay.stop()
            relay.start()
            with relay.smtp() as s:
                code, text = auth(s, 'PLAIN', 'bob', password)
                self.assertEqual(code, 235, text)


if __name__ == '__main__':
    sys.exit(main())
