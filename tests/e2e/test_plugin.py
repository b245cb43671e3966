#!/usr/bin/python3
"""End-to-end tests of the relaydb plugin through real, private Postfix instances (issue 3).

A relay instance (configured by `relay-admin setup --postfix-config`, relaydb for AUTH)
relays to an upstream instance that requires TLS and AUTH and stores what it receives in a
maildir. Needs root; exits 77 (meson's "skipped") with the reason otherwise.

Run: RELAY_BUILD_ROOT=<build dir> /usr/bin/python3 tests/e2e/test_plugin.py [-v]
"""

import os
import smtplib
import sys
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import relaylab  # noqa: E402

SKIP = 77


def _missing_build():
    """None if the build holds relay-admin and the plugin, else what is missing."""
    root = os.path.abspath(os.environ.get('RELAY_BUILD_ROOT')
                           or os.path.join(relaylab._repo_root(), 'build'))
    need = [os.path.join(root, 'admin', 'relay-admin'),
            os.path.join(root, 'plugin', 'librelaydb.so')]
    missing = [p for p in need if not os.path.exists(p)]
    return ('not built: ' + ', '.join(missing)) if missing else None


def _require_build(test):
    """Skips a run by hand without a build; under meson (RELAY_BUILD_ROOT set) it fails."""
    why = _missing_build()
    if why and os.environ.get('RELAY_BUILD_ROOT'):
        raise AssertionError(why)
    if why:
        raise unittest.SkipTest(why)


def _message(subject):
    return ('From: sender@example.org\r\nTo: rcpt@example.net\r\nSubject: %s\r\n\r\n'
            'hello through the relay\r\n' % subject).encode()


def _auth(s, mech, user, password):
    """One AUTH with exactly `mech` -> (code, text), never raising on a refusal."""
    s.user, s.password = user, password
    try:
        if mech == 'PLAIN':
            return s.auth('PLAIN', s.auth_plain, initial_response_ok=True)
        return s.auth('LOGIN', s.auth_login, initial_response_ok=False)
    except smtplib.SMTPAuthenticationError as e:
        return e.smtp_code, e.smtp_error


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


class RelayWithRelaydb(unittest.TestCase):
    """Issue 3's cases 1-4 and 6 against one relay/upstream pair."""

    @classmethod
    def setUpClass(cls):
        _require_build(cls)
        cls.lab = relaylab.Lab()
        try:
            cls.up = cls.lab.upstream()
            cls.relay = cls.lab.relay(cls.up)
            cls.password = cls.relay.add_user('alice')
        except BaseException:
            cls.lab.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.lab.stop()

    def _delivered(self, subject):
        """Waits until a message with `subject` is in the upstream maildir."""
        import time
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if any(subject.encode() in m for m in self.up.messages()):
                return
            time.sleep(0.2)
        self.fail('%s never reached the upstream maildir\n%s' % (subject, self.lab.logs_tail()))

    def test_1_starttls_auth_plain_relays_to_upstream(self):
        subject = 'case1-' + uuid.uuid4().hex
        with self.relay.smtp() as s:
            self.assertIn('PLAIN', s.esmtp_features.get('auth', '').upper())
            code, text = _auth(s, 'PLAIN', 'alice', self.password)
            self.assertEqual(code, 235, text)
            self.assertEqual(s.mail('sender@example.org')[0], 250)
            self.assertEqual(s.rcpt('rcpt@example.net')[0], 250)
            code, text = s.data(_message(subject))
            self.assertEqual(code, 250, text)
        self._delivered(subject)
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
            code, text = _auth(s, 'PLAIN', 'alice', self.password + 'x')
            self.assertEqual(code, 535, text)
        with self.relay.smtp() as s:
            code, text = _auth(s, 'PLAIN', 'nobody-here', self.password)
            self.assertEqual(code, 535, text)

    def test_6a_auth_login(self):
        subject = 'case6a-' + uuid.uuid4().hex
        with self.relay.smtp() as s:
            code, text = _auth(s, 'LOGIN', 'alice', self.password)
            self.assertEqual(code, 235, text)
            s.sendmail('sender@example.org', ['rcpt@example.net'], _message(subject))
        self._delivered(subject)

    def test_6b_implicit_tls_port(self):
        subject = 'case6b-' + uuid.uuid4().hex
        with self.relay.smtps() as s:
            self.assertTrue(s.has_extn('auth'))
            code, text = _auth(s, 'PLAIN', 'alice', self.password)
            self.assertEqual(code, 235, text)
            s.sendmail('sender@example.org', ['rcpt@example.net'], _message(subject))
        self._delivered(subject)

    def test_6c_implicit_tls_port_without_auth_refused(self):
        with self.relay.smtps() as s:
            self.assertEqual(s.mail('sender@example.org')[0], 250)
            self.assertEqual(s.rcpt('rcpt@example.net')[0], 554)


class RelayDatabaseGone(unittest.TestCase):
    """Issue 3 case 5: the users database removed -> 454 4.7.0, temporary, never 535."""

    def test_5_database_removed_454(self):
        _require_build(self)
        with relaylab.Lab() as lab:
            up = lab.upstream()
            relay = lab.relay(up, start=False)
            password = relay.add_user('bob')
            os.rename(relay.db, relay.db + '.gone')
            relay.start()
            with relay.smtp() as s:
                code, text = _auth(s, 'PLAIN', 'bob', password)
                self.assertEqual(code, 454, text)
                self.assertIn(b'4.7.0', text)
            # back in place, a fresh smtpd process authenticates again
            os.rename(relay.db + '.gone', relay.db)
            relay.stop()
            relay.start()
            with relay.smtp() as s:
                code, text = _auth(s, 'PLAIN', 'bob', password)
                self.assertEqual(code, 235, text)


def main():
    why = relaylab.need_root()
    if why:
        print('SKIP: %s' % why)
        return SKIP
    prog = unittest.main(exit=False, verbosity=2)
    return 0 if prog.result.wasSuccessful() else 1


if __name__ == '__main__':
    sys.exit(main())
