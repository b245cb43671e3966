#!/usr/bin/python3
"""`relay-admin selftest` against a fake relay that collects passwords (suite 'admin').

Issue 8: an unverified relay certificate was only a warning, and selftest then sent the
real password (AUTH PLAIN: base64, readable to the server) — a fake server with a
self-signed certificate captured it. Here that fake server runs on 127.0.0.1 (Python's ssl,
a certificate made at run time) and records every line it receives. selftest must send it
no AUTH at all, and exit non-zero saying why, unless --insecure is given, and then its
report says INSECURE. With --ca naming the fake's certificate, the session verifies and
selftest logs in as usual (the positive control: the fake is a passable relay).

Run: RELAY_BUILD_ROOT=<build dir> /usr/bin/python3 tests/selftest/test_selftest_credentials.py
"""

import base64
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import unittest

import selftestrun  # the script's folder is on sys.path

BUILD = os.path.abspath(os.environ.get('RELAY_BUILD_ROOT') or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), '..', '..', 'build'))
RELAY_ADMIN = os.path.join(BUILD, 'admin', 'relay-admin')

USER = 'laptop'
PASSWORD = 'Correct-Horse-Battery-Staple-7d41'


class FakeRelay:
    """A one-thread SMTP server on 127.0.0.1 that behaves like a well-configured relay
    (STARTTLS, AUTH only after TLS, 530/554 without TLS/AUTH, 535 for a wrong password,
    235 for PASSWORD) and keeps every line it receives, in order, in self.lines."""

    def __init__(self, certfile, keyfile):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(certfile, keyfile)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.lines = []
        self.stopping = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def stop(self):
        self.stopping = True
        self.thread.join(30)
        self.sock.close()

    def run(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            socks = [conn]
            try:
                conn.settimeout(20)
                self.session(socks)
            except (OSError, ssl.SSLError):
                pass
            finally:
                for s in socks:
                    s.close()

    def session(self, socks):
        """One SMTP session on socks[0]; the TLS socket, once made, is appended."""
        conn = socks[0]
        f = conn.makefile('rwb')
        tls = authed = False

        def reply(text):
            f.write(text.encode() + b'\r\n')
            f.flush()

        def line():
            raw = f.readline(2048)
            if not raw:
                raise OSError('closed')
            text = raw.decode(errors='replace').rstrip('\r\n')
            self.lines.append(text)
            return text

        reply('220 fake.relay ESMTP')
        while True:
            cmd = line()
            verb = cmd.split(' ', 1)[0].upper()
            if verb == 'EHLO':
                reply('250-fake.relay\r\n' + ('250-AUTH PLAIN LOGIN\r\n' if tls else
                                              '250-STARTTLS\r\n') + '250 SIZE 10240000')
            elif verb == 'STARTTLS' and not tls:
                reply('220 2.0.0 Ready to start TLS')
                f.close()
                conn = self.ctx.wrap_socket(conn, server_side=True)
                socks.append(conn)
                f = conn.makefile('rwb')
                tls = True
            elif verb == 'AUTH':
                if not tls:
                    reply('503 5.5.1 Error: authentication not enabled')
                    continue
                words = cmd.split()
                if words[1].upper() == 'PLAIN':
                    given = base64.b64decode(words[2]).split(b'\0')[2].decode()
                else:   # LOGIN: user, then password
                    reply('334 VXNlcm5hbWU6')
                    line()
                    reply('334 UGFzc3dvcmQ6')
                    given = base64.b64decode(line()).decode()
                authed = given == PASSWORD
                reply('235 2.7.0 Authentication successful' if authed else
                      '535 5.7.8 Error: authentication failed')
            elif verb == 'MAIL':
                reply('250 2.1.0 Ok' if tls else '530 5.7.0 Must issue a STARTTLS command first')
            elif verb == 'RCPT':
                reply('250 2.1.5 Ok' if authed else '554 5.7.1 <x>: Relay access denied')
            elif verb == 'RSET':
                reply('250 2.0.0 Ok')
            elif verb == 'QUIT':
                reply('221 2.0.0 Bye')
                return
            else:
                reply('502 5.5.2 Error: command not recognized')


class SelftestCredentials(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        if not os.path.exists(RELAY_ADMIN):
            raise AssertionError('not built: ' + RELAY_ADMIN)
        cls.dir = tempfile.mkdtemp(prefix='test-selftest-cred-')
        cls.cert = os.path.join(cls.dir, 'fake.pem')
        cls.key = os.path.join(cls.dir, 'fake.key')
        # self-signed, for the very address selftest connects to: only the issuer is unknown
        subprocess.run(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt',
                        'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', cls.key,
                        '-out', cls.cert, '-days', '365', '-subj', '/CN=127.0.0.1',
                        '-addext', 'subjectAltName=IP:127.0.0.1',
                        '-addext', 'basicConstraints=critical,CA:TRUE',
                        '-addext', 'keyUsage=critical,digitalSignature,keyCertSign'],
                       check=True, capture_output=True, timeout=60)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def setUp(self):
        self.fake = FakeRelay(self.cert, self.key)

    def tearDown(self):
        self.fake.stop()

    def selftest(self, *extra):
        """Runs selftest --json against the fake -> (exit status, report, stdout+stderr)."""
        rc, report, out, err = selftestrun.run(
            [RELAY_ADMIN, '--json', 'selftest', '--host', '127.0.0.1', '--port',
             str(self.fake.port), '--user', USER, '--timeout', '20'] + list(extra), PASSWORD)
        return rc, report, out + err

    def received(self):
        return '\n'.join(self.fake.lines)

    def assert_password_not_received(self):
        got = self.received()
        plain = base64.b64encode(b'\0' + USER.encode() + b'\0' + PASSWORD.encode()).decode()
        for secret in (PASSWORD, plain, base64.b64encode(PASSWORD.encode()).decode()):
            self.assertNotIn(secret, got)

    def checks(self, report):
        return {c['id']: c for c in report['checks']}

    def test_unverified_certificate_gets_no_credentials(self):
        rc, rep, out = self.selftest()
        # the attack: the fake server collects AUTH. It must see none at all.
        self.assertFalse([l for l in self.fake.lines if l.upper().startswith('AUTH')],
                         self.received())
        self.assert_password_not_received()
        self.assertIn('STARTTLS', self.fake.lines, 'selftest did reach the TLS phase')
        self.assertNotEqual(rc, 0, out)
        c = self.checks(rep)
        self.assertEqual(c['auth']['status'], 'fail', out)
        self.assertIn('credentials not sent', c['auth']['detail'])
        self.assertIn('did not verify', c['auth']['detail'])
        self.assertIn('--ca', c['auth']['fix'])
        self.assertIn('--insecure', c['auth']['fix'])
        self.assertEqual(c['wrong-password-refused']['status'], 'skip', out)
        self.assertIn('credentials not sent', c['wrong-password-refused']['detail'])
        self.assertNotIn('INSECURE', out)

    def test_wrong_ca_gets_no_credentials(self):
        other = os.path.join(self.dir, 'other.pem')
        subprocess.run(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt',
                        'ec_paramgen_curve:prime256v1', '-nodes', '-keyout',
                        os.path.join(self.dir, 'other.key'), '-out', other, '-days', '365',
                        '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'],
                       check=True, capture_output=True, timeout=60)
        rc, rep, out = self.selftest('--ca', other)
        self.assertFalse([l for l in self.fake.lines if l.upper().startswith('AUTH')],
                         self.received())
        self.assert_password_not_received()
        self.assertNotEqual(rc, 0, out)
        self.assertEqual(self.checks(rep)['auth']['status'], 'fail', out)

    def test_insecure_sends_and_says_so(self):
        rc, rep, out = self.selftest('--insecure')
        auths = [l for l in self.fake.lines if l.upper().startswith('AUTH')]
        self.assertEqual(len(auths), 2, self.received())   # the wrong password, the right one
        self.assertIn('INSECURE', out)
        self.assertIn('INSECURE', rep['info'])
        c = self.checks(rep)
        self.assertEqual(c['auth']['status'], 'warn', out)
        self.assertIn('INSECURE', c['auth']['detail'])
        self.assertIn('INSECURE', c['certificate']['detail'])
        self.assertEqual(c['wrong-password-refused']['status'], 'ok', out)
        self.assertEqual(c['authenticated-relay']['status'], 'ok', out)
        self.assertEqual(rc, 0, out)   # warnings only: the admin asked for this

    def test_verified_with_ca(self):
        rc, rep, out = self.selftest('--ca', self.cert)
        self.assertEqual(rc, 0, out)
        c = self.checks(rep)
        self.assertEqual(c['certificate']['status'], 'ok', out)
        self.assertEqual(c['auth']['status'], 'ok', out)
        self.assertNotIn('INSECURE', out)
        self.assertEqual(len([l for l in self.fake.lines if l.upper().startswith('AUTH')]), 2)


if __name__ == '__main__':
    unittest.main(verbosity=2)
