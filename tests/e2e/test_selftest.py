#!/usr/bin/python3
"""End-to-end tests of `relay-admin selftest` and `relay-admin check` (issue 4).

Each case builds a private relay with `relay-admin setup --postfix-config` (relaylab.py) in
front of a private upstream that requires TLS and AUTH, then runs selftest and check
against it. A good relay passes every check (exit 0); the deliberately broken variants —
no TLS required, an open relay, a wrong upstream password, an unverifiable upstream
certificate — make selftest name the specific failing check and exit non-zero, and check
names the broken setting. Needs root; exits 77 (meson's "skipped") with the reason
otherwise.

Run: RELAY_BUILD_ROOT=<build dir> /usr/bin/python3 tests/e2e/test_selftest.py [-v]
"""

import json
import os
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(1, os.path.join(HERE, '..', 'selftest'))  # selftestrun.py
import relaylab  # noqa: E402
import selftestrun  # noqa: E402
from e2elib import LabCase, main, require_build  # noqa: E402

USER = 'alice'

# The classic open relay: the service trusts mynetworks (127.0.0.0/8 in the lab) ahead of
# AUTH. (A bare `permit` everywhere is no test: smtpd refuses to start with a relay
# restriction list that cannot reject, so nothing would answer at all.)
OPEN_RELAY = {
    'smtpd_client_restrictions': 'permit_mynetworks,permit_sasl_authenticated,reject',
    'smtpd_relay_restrictions': 'permit_mynetworks,permit_sasl_authenticated,reject',
    'smtpd_recipient_restrictions': 'permit_mynetworks,permit_sasl_authenticated,reject',
}


def selftest(lab, relay, password, *extra, implicit=False, upstream=None,
             upstream_password=None, upstream_ca=None, ca=True):
    """Runs selftest --json against `relay` -> (exit status, report dict, stdout). The
    relay's certificate is verified against the lab CA (--ca) unless ca is False."""
    argv = [lab.relay_admin, '--json', 'selftest', '--host', relay.host,
            '--port', str(relay.tls_port if implicit else relay.port),
            '--tls', 'implicit' if implicit else 'starttls',
            '--user', USER, '--timeout', '20'] + (['--ca', lab.ca.cert] if ca else []) + list(extra)
    env = {}
    if upstream is not None:
        argv += ['--upstream', '[%s]:%d' % (upstream.hostname, upstream.port),
                 '--upstream-user', upstream.user,
                 '--upstream-ca', upstream_ca or lab.ca.cert]
        env['RELAY_UPSTREAM_PASSWORD'] = (upstream.password if upstream_password is None
                                          else upstream_password)
    rc, report, out, _ = selftestrun.run(argv, password, env, timeout=300)
    return rc, report, out


def configured_upstream_login(relay):
    """The (user, password) the relay itself uses upstream, read back through Postfix
    (`postmap -q NEXTHOP` on the relay-upstream transport's smtp_sasl_password_maps, NEXTHOP
    from the service's content_filter): selftest then proves exactly the credentials Postfix
    will send."""
    def override(service_param):
        return relay.postconf('-P', service_param).partition('=')[2].strip()
    relayhost = override('%s/content_filter' % relay.service_name).partition(':')[2]
    maps = override('relay-upstream/unix/smtp_sasl_password_maps')
    p = subprocess.run(['postmap', '-c', relay.config_dir, '-q', relayhost, maps],
                       capture_output=True, timeout=60)
    if p.returncode != 0:
        raise AssertionError('no upstream login for %s in %s: %s' % (relayhost, maps, p.stderr))
    user, _, password = p.stdout.decode().rstrip('\n').partition(':')
    return user, password


def check(lab, relay, *extra):
    """Runs check --json against the relay's Postfix instance -> (exit status, report)."""
    state_db = os.path.join(relay.dir, 'state', 'state.db')   # absent: no milter here
    p = relay.admin('--state-db', state_db, '--json', 'check', '--postfix-config',
                    relay.config_dir, *extra, check=False)
    out = p.stdout.decode(errors='replace')
    try:
        return p.returncode, json.loads(out)
    except ValueError:
        raise AssertionError('check printed no JSON (exit %d):\n%s\n%s' % (
            p.returncode, out, p.stderr.decode(errors='replace')))


def by_status(report, status):
    return {c['id']: c for c in report['checks'] if c['status'] == status}


def explain(report):
    return '\n'.join('%s %s: %s' % (c['status'], c['id'], c['detail'])
                     for c in report['checks'])


class GoodRelay(LabCase):
    """A relay exactly as setup leaves it: every check passes."""

    @classmethod
    def setUpLab(cls):
        cls.password = cls.relay.add_user(USER)

    def test_selftest_starttls_all_pass(self):
        user, upstream_password = configured_upstream_login(self.relay)
        self.assertEqual(user, self.up.user)
        rc, rep, _ = selftest(self.lab, self.relay, self.password, upstream=self.up,
                              upstream_password=upstream_password)
        self.assertEqual(rc, 0, explain(rep))
        self.assertEqual(by_status(rep, 'fail'), {}, explain(rep))
        self.assertEqual(rep['failures'], 0)
        ids = {c['id']: c['status'] for c in rep['checks']}
        for must in ('connect', 'starttls-offered', 'no-auth-before-tls',
                     'plaintext-mail-refused', 'tls', 'certificate', 'auth-offered',
                     'unauthenticated-rcpt-refused', 'wrong-password-refused', 'auth',
                     'authenticated-relay', 'upstream-tls', 'upstream-certificate',
                     'upstream-auth'):
            self.assertIn(ids.get(must), ('ok', 'warn'), '%s\n%s' % (must, explain(rep)))
        # The only warnings allowed: the lab's two-day certificates expire soon.
        for cid, c in by_status(rep, 'warn').items():
            self.assertIn('expires in', c['detail'], cid)
        # The server's own replies are in the report.
        mail = [c for c in rep['checks'] if c['id'] == 'plaintext-mail-refused'][0]
        self.assertTrue(mail['detail'].startswith('refused: 530'), mail)
        self.assertIn('S: 530 5.7.0 Must issue a STARTTLS command first', mail['transcript'])
        cert = [c for c in rep['checks'] if c['id'] == 'certificate'][0]
        self.assertTrue(any(l.startswith('issuer:') and 'relaylab test CA' in l
                            for l in cert['lines']), cert)

    def test_selftest_never_shows_the_password(self):
        rc, rep, out = selftest(self.lab, self.relay, self.password, '--verbose',
                                upstream=self.up)
        self.assertEqual(rc, 0, explain(rep))
        self.assertNotIn(self.password, out)
        self.assertNotIn(self.up.password, out)
        self.assertIn('AUTH PLAIN <redacted>', out)

    def test_selftest_implicit_tls(self):
        rc, rep, _ = selftest(self.lab, self.relay, self.password, implicit=True)
        self.assertEqual(rc, 0, explain(rep))
        ids = {c['id']: c['status'] for c in rep['checks']}
        self.assertEqual(ids['plaintext-mail-refused'], 'skip')
        self.assertEqual(ids['auth'], 'ok')

    def test_selftest_wrong_password_names_auth(self):
        rc, rep, _ = selftest(self.lab, self.relay, 'not-' + self.password)
        self.assertEqual(set(by_status(rep, 'fail')), {'auth'}, explain(rep))
        self.assertEqual(rc, 1)

    def test_selftest_without_ca_sends_no_password(self):
        """Issue 8: the lab CA is not among the system CAs, so without --ca the relay's
        certificate does not verify and selftest must keep the password; --insecure sends
        it and says INSECURE."""
        rc, rep, out = selftest(self.lab, self.relay, self.password, ca=False)
        fails = by_status(rep, 'fail')
        self.assertEqual(set(fails), {'auth'}, explain(rep))
        self.assertIn('credentials not sent', fails['auth']['detail'])
        self.assertFalse([l for l in fails['auth']['transcript'] if l.startswith('C: AUTH')])
        self.assertIn('wrong-password-refused', by_status(rep, 'skip'), explain(rep))
        self.assertEqual(rc, 1)
        rc, rep, out = selftest(self.lab, self.relay, self.password, '--insecure', ca=False)
        self.assertEqual(rc, 0, explain(rep))
        self.assertIn('INSECURE', out)
        self.assertEqual(by_status(rep, 'warn').get('auth', {}).get('status'), 'warn',
                         explain(rep))

    def test_selftest_send_delivers(self):
        before = len(self.up.messages())
        rc, rep, _ = selftest(self.lab, self.relay, self.password,
                              '--send', 'rcpt@example.net', '--from', 'alice@example.org')
        self.assertEqual(rc, 0, explain(rep))
        self.assertEqual(by_status(rep, 'ok').get('send', {}).get('status'), 'ok',
                         explain(rep))
        msgs = self.up.wait_messages(before + 1)
        self.assertTrue(any(b'Subject: relay-admin selftest' in m for m in msgs))

    def test_selftest_usage_errors(self):
        p = subprocess.run([self.lab.relay_admin, 'selftest', '--host', '127.0.0.1'],
                           capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 2, p.stderr)
        p = subprocess.run([self.lab.relay_admin, 'selftest', '--host', '127.0.0.1',
                            '--port', str(self.relay.port), '--user', USER],
                           input=b'', capture_output=True, timeout=60,
                           env={k: v for k, v in os.environ.items() if k != 'RELAY_PASSWORD'})
        self.assertEqual(p.returncode, 2, p.stderr)   # no password anywhere

    def test_check_passes(self):
        rc, rep = check(self.lab, self.relay)
        self.assertEqual(rc, 0, explain(rep))
        self.assertEqual(by_status(rep, 'fail'), {}, explain(rep))
        ids = {c['id']: c['status'] for c in rep['checks']}
        for must in ('users-db', 'users-db-permissions', 'sasl-plugin', 'smtpd-conf',
                     'upstream-tls', 'upstream-password-map', 'postfix-check',
                     'postfix-running'):
            self.assertEqual(ids.get(must), 'ok', '%s\n%s' % (must, explain(rep)))
        svc = self.relay.service_name
        for must in ('tls-required', 'auth-only-after-tls', 'client-restrictions',
                     'relay-restrictions', 'sasl-enabled'):
            self.assertEqual(ids.get('%s@%s' % (must, svc)), 'ok', explain(rep))

    def test_check_wrong_database_named(self):
        other = os.path.join(self.relay.dir, 'db', 'other.db')
        p = subprocess.run([self.lab.relay_admin, '--db', other, '--json', 'check',
                            '--postfix-config', self.relay.config_dir],
                           capture_output=True, timeout=120)
        rep = json.loads(p.stdout)
        fails = by_status(rep, 'fail')
        self.assertIn('users-db', fails, explain(rep))
        self.assertIn('smtpd-conf', fails, explain(rep))   # relaydb_path points elsewhere
        self.assertEqual(p.returncode, len(fails))


class BrokenRelay(unittest.TestCase):
    """Deliberately broken variants: the failure is named and the exit status non-zero."""

    def setUp(self):
        require_build()
        self.lab = relaylab.Lab()

    def tearDown(self):
        self.lab.stop()

    def broken_relay(self, up=None, **options):
        """A started relay (no implicit-TLS port) to `up` (default: a new upstream) with
        `options` for lab.relay(), and the password of its login USER -> (relay, password)."""
        up = up if up is not None else self.lab.upstream()
        relay = self.lab.relay(up, tls_port=False, **options)
        return relay, relay.add_user(USER)

    def assert_check_fails(self, relay, *names):
        """relay-admin check reports each of `names` failing on the relay's service and
        exits with the number of failures."""
        rc, rep = check(self.lab, relay)
        fails = by_status(rep, 'fail')
        for name in names:
            self.assertIn('%s@%s' % (name, relay.service_name), fails, explain(rep))
        self.assertEqual(rc, len(fails))

    def test_no_tls_required(self):
        relay, pw = self.broken_relay(service_overrides=relaylab.BROKEN['no_tls'])
        rc, rep, _ = selftest(self.lab, relay, pw)
        fails = by_status(rep, 'fail')
        self.assertIn('plaintext-mail-refused', fails, explain(rep))
        self.assertIn('no-auth-before-tls', fails, explain(rep))
        self.assertIn('MAIL accepted without TLS', fails['plaintext-mail-refused']['detail'])
        self.assertEqual(rc, len(fails))
        self.assert_check_fails(relay, 'tls-required', 'auth-only-after-tls')

    def test_open_relay(self):
        relay, pw = self.broken_relay(service_overrides=OPEN_RELAY)
        rc, rep, _ = selftest(self.lab, relay, pw)
        fails = by_status(rep, 'fail')
        self.assertIn('unauthenticated-rcpt-refused', fails, explain(rep))
        self.assertIn('OPEN RELAY', fails['unauthenticated-rcpt-refused']['detail'])
        self.assertNotEqual(rc, 0)
        self.assert_check_fails(relay, 'client-restrictions', 'relay-restrictions')

    def test_wrong_upstream_password(self):
        up = self.lab.upstream()
        relay, pw = self.broken_relay(up, upstream_password='wrong-password')
        # selftest gets the credentials the relay was configured with
        user, upstream_password = configured_upstream_login(relay)
        self.assertEqual(upstream_password, 'wrong-password')
        rc, rep, _ = selftest(self.lab, relay, pw, upstream=up,
                              upstream_password=upstream_password)
        fails = by_status(rep, 'fail')
        self.assertEqual(set(fails), {'upstream-auth'}, explain(rep))
        self.assertIn('535', fails['upstream-auth']['detail'])
        self.assertEqual(rc, 1)

    def test_unverifiable_upstream_certificate(self):
        other = relaylab.make_ca(os.path.join(self.lab.dir, 'other-ca'))
        up = self.lab.upstream(cert=other.issue('upstream'))
        relay, pw = self.broken_relay(up)
        rc, rep, _ = selftest(self.lab, relay, pw, upstream=up)
        fails = by_status(rep, 'fail')
        self.assertEqual(set(fails), {'upstream-certificate'}, explain(rep))
        self.assertIn('not verified', fails['upstream-certificate']['detail'])
        # the upstream credentials never go to a server whose certificate did not verify
        # (the relay itself, at smtp_tls_security_level = secure, would not send them)
        skips = by_status(rep, 'skip')
        self.assertIn('upstream-auth', skips, explain(rep))
        self.assertIn('not sent', skips['upstream-auth']['detail'])
        self.assertEqual(rc, 1)


if __name__ == '__main__':
    sys.exit(main())
