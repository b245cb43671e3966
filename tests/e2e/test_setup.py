#!/usr/bin/python3
"""`relay-admin setup` against a private Postfix instance (issue 4): idempotent, --dry-run
touches nothing, bad input is refused with nothing changed, secrets stay off argv and out
of world-readable files, and the self-signed fallback works end to end.

Needs root; exits 77 (meson's "skipped") otherwise. The relay instance comes from
relaylab (configured by setup itself); these tests re-run setup on it.
"""

import hashlib
import os
import stat
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import relaylab  # noqa: E402
from e2elib import LabCase, auth, main, require_build, wait_delivered  # noqa: E402


def _snapshot(folder):
    """{relative path: sha256} of every file under folder (backups excluded)."""
    out = {}
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if d != 'relay-admin-backup']
        for name in files:
            path = os.path.join(root, name)
            with open(path, 'rb') as f:
                out[os.path.relpath(path, folder)] = hashlib.sha256(f.read()).hexdigest()
    return out


class Setup(LabCase):

    relay_options = {'start': False}

    def setup_cmd(self, *args, password=None, env=None):
        r = self.relay
        argv = [self.lab.relay_admin, '--db', r.db, 'setup', '--postfix-config',
                r.config_dir] + list(args)
        p = subprocess.run(argv, input=(password + '\n').encode() if password else b'',
                           capture_output=True, env=env, timeout=120)
        return p.returncode, p.stdout.decode() + p.stderr.decode()

    def same_args(self):
        r, up = self.relay, self.up
        return ['--port', '%s:%d' % (r.host, r.port), '--tls-port', '%s:%d' % (r.host, r.tls_port),
                '--cert', r.cert, '--key', r.key, '--sasl-plugin-dir', self.lab.plugin_dir,
                '--upstream', '[%s]:%d' % (up.hostname, up.port), '--upstream-tls', 'starttls',
                '--upstream-user', up.user, '--upstream-ca', self.lab.ca.cert, '--no-milter']

    def test_second_run_changes_nothing(self):
        before = _snapshot(self.relay.config_dir)
        rc, out = self.setup_cmd(*self.same_args(), password=self.up.password)
        self.assertEqual(rc, 0, out)
        self.assertIn('nothing to change', out)
        self.assertEqual(before, _snapshot(self.relay.config_dir))

    def test_password_from_environment(self):
        env = dict(os.environ, RELAY_UPSTREAM_PASSWORD=self.up.password)
        rc, out = self.setup_cmd(*self.same_args(), env=env)
        self.assertEqual(rc, 0, out)
        self.assertIn('nothing to change', out)

    def test_dry_run_touches_nothing(self):
        before = _snapshot(self.relay.config_dir)
        rc, out = self.setup_cmd('--dry-run', '--port', '%s:%d' % (self.relay.host,
                                 relaylab.free_port()), '--no-milter', '--sasl-plugin-dir',
                                 self.lab.plugin_dir, '--rate-limit', '5')
        self.assertEqual(rc, 0, out)
        self.assertIn('would master.cf: add service', out)
        self.assertIn('dry run: nothing was changed', out)
        self.assertEqual(before, _snapshot(self.relay.config_dir))

    def test_refusals_change_nothing(self):
        r = self.relay
        cases = [
            (['--port', '25'], "port 25"),
            (['--cert', r.cert], '--cert and --key go together'),
            (['--port', '2600', '--tls-port', '2600'], 'cannot speak'),
            (['--upstream', 'smtp.example.com:465', '--upstream-tls', 'starttls'], '465'),
            (['--upstream', 'smtp.example.com:587', '--upstream-tls', 'implicit'], '587'),
            (['--upstream', 'smtp.example.com', '--upstream-ca', self.lab.ca.cert,
              '--upstream-insecure'], 'contradict'),
            (['--milter', 'unix:/x.sock', '--no-milter'], 'contradict'),
            (['--upstream-user', 'x'], 'need --upstream'),
            (['--upstream', 'smtp.example.com;rm -rf /'], 'not HOST'),
            (['--sasl-plugin-dir', '/nonexistent'], 'not installed'),
            (['--upstream', 'smtp.example.com', '--upstream-user', 'u',
              '--sasl-plugin-dir', self.lab.plugin_dir], 'password'),
        ]
        before = _snapshot(r.config_dir)
        env = dict(os.environ, RELAY_UPSTREAM_PASSWORD='ends-with-space ')
        rc, out = self.setup_cmd(*self.same_args(), env=env)
        self.assertEqual(rc, 2, out)
        self.assertIn('ends with a space', out)
        for args, why in cases:
            with self.subTest(args=args):
                rc, out = self.setup_cmd(*args)
                self.assertNotEqual(rc, 0, out)
                self.assertIn(why, out)
                self.assertIn('nothing was changed', out)
        self.assertEqual(before, _snapshot(r.config_dir))

    def test_bad_certificates_refused(self):
        r = self.relay
        other_crt, other_key = self.lab.ca.issue('other')
        before = _snapshot(r.config_dir)
        common = ['--no-milter', '--sasl-plugin-dir', self.lab.plugin_dir]
        # a key that belongs to another certificate
        rc, out = self.setup_cmd('--cert', r.cert, '--key', other_key, *common)
        self.assertEqual(rc, 1, out)
        self.assertIn('does not belong', out)
        # a key every user can read
        os.chmod(other_key, 0o644)
        rc, out = self.setup_cmd('--cert', other_crt, '--key', other_key, *common)
        self.assertEqual(rc, 1, out)
        self.assertIn('every user', out)
        self.assertEqual(before, _snapshot(r.config_dir))

    def test_local_smtp_service_left_alone(self):
        """The machine's own mail service (port 25 on a real server; here a stand-in on a
        high port) and the global smtpd settings it uses are not touched by setup."""
        r = self.relay
        local = '%s:%d/inet' % (r.host, relaylab.free_port())
        entry = '%s inet n - y - - smtpd' % local[:-len('/inet')]
        r.postconf('-M', '%s=%s' % (local, entry))
        before = r.postconf('-M', local)
        rc, out = self.setup_cmd(*self.same_args(), password=self.up.password)
        self.assertEqual(rc, 0, out)
        self.assertEqual(r.postconf('-M', local), before)
        main_n = r.postconf('-n')
        for name in ('smtpd_tls_security_level', 'smtpd_tls_auth_only', 'smtpd_sasl_auth_enable',
                     'smtpd_client_restrictions', 'smtpd_recipient_restrictions',
                     'smtpd_relay_restrictions', 'smtpd_milters', 'smtpd_tls_cert_file'):
            self.assertNotIn('\n%s =' % name, '\n' + main_n, name + ' set globally')
        r.postconf('-MX', local)

    def test_port_change_removes_old_service(self):
        r = self.relay
        args = self.same_args()
        new_port = relaylab.free_port()
        i = args.index('--port')
        args[i + 1] = '%s:%d' % (r.host, new_port)
        rc, out = self.setup_cmd(*args, password=self.up.password)
        self.assertEqual(rc, 0, out)
        self.assertIn('remove service %s' % r.service_name, out)
        self.assertEqual(r.postconf('-M', r.service_name).strip(), '')
        self.assertIn('smtpd_tls_security_level=encrypt',
                      r.postconf('-M', '%s:%d/inet' % (r.host, new_port)))
        # the implicit-TLS service, still wanted, stays
        self.assertNotEqual(r.postconf('-M', r.tls_service_name).strip(), '')
        rc, out = self.setup_cmd(*self.same_args(), password=self.up.password)
        self.assertEqual(rc, 0, out)
        self.assertEqual(r.postconf('-M', '%s:%d/inet' % (r.host, new_port)).strip(), '')

    def test_secrets_not_world_readable(self):
        for name in ('relay_upstream_passwd', 'relay_upstream_passwd.db'):
            st = os.stat(os.path.join(self.relay.config_dir, name))
            self.assertEqual(stat.S_IMODE(st.st_mode), 0o600, name)
            self.assertEqual(st.st_uid, 0)
        with open(os.path.join(self.relay.config_dir, 'sasl', 'smtpd.conf')) as f:
            conf = f.read()
        self.assertIn('auxprop_plugin: relaydb', conf)
        self.assertIn('relaydb_path: %s' % self.relay.db, conf)


class SelfSigned(unittest.TestCase):
    """Without --cert/--key: a generated certificate, a warning, and a working relay."""

    def test_generated_certificate_serves_tls(self):
        require_build()
        import smtplib
        import ssl
        with relaylab.Lab() as lab:
            up = lab.upstream()
            relay = lab.relay(up, start=False, tls_port=False)
            rc_port = relaylab.free_port()
            argv = [lab.relay_admin, '--db', relay.db, 'setup', '--postfix-config',
                    relay.config_dir, '--port', '%s:%d' % (relay.host, rc_port),
                    '--hostname', 'relay.example.test', '--no-milter',
                    '--sasl-plugin-dir', lab.plugin_dir]
            p = subprocess.run(argv, capture_output=True, timeout=120)
            out = p.stdout.decode() + p.stderr.decode()
            self.assertEqual(p.returncode, 0, out)
            self.assertIn('self-signed', out)
            key = os.path.join(relay.config_dir, 'relay-key.pem')
            self.assertEqual(stat.S_IMODE(os.stat(key).st_mode), 0o640)
            relay.port = rc_port
            relay.start()
            password = relay.add_user('carol')
            ctx = ssl.create_default_context(
                cafile=os.path.join(relay.config_dir, 'relay-cert.pem'))
            ctx.check_hostname = False   # connecting to 127.0.0.1, cert names the host
            with smtplib.SMTP(relay.host, rc_port, timeout=30) as s:
                s.starttls(context=ctx)
                s.ehlo()
                cert = s.sock.getpeercert()
                self.assertIn(('DNS', 'relay.example.test'), cert['subjectAltName'])
                code, text = auth(s, 'PLAIN', 'carol', password)
                self.assertEqual(code, 235, text)


class UpstreamPasswordCharacters(unittest.TestCase):
    """The upstream password reaches the smarthost intact through the postmap'ed map:
    spaces, ':', '#' and '$' included."""

    def test_odd_password_relays(self):
        require_build()
        with relaylab.Lab() as lab:
            up = lab.upstream(password='we ird:pa#ss$word')
            relay = lab.relay(up, tls_port=False)
            pw = relay.add_user('zed')
            with relay.smtp() as s:
                s.login('zed', pw)
                s.sendmail('a@example.org', ['b@example.net'], b'Subject: odd-pw\r\n\r\nx\r\n')
            self.assertIn(b'odd-pw', up.wait_messages(1)[0])


class SetupWithMilter(unittest.TestCase):
    """setup --milter: relay-milter decides on the service; if it is down, mail waits."""

    def test_milter_policy_and_tempfail_when_down(self):
        require_build()
        import smtplib
        import uuid
        with relaylab.Lab() as lab:
            if not os.access(os.path.join(lab.build_root, 'milter', 'relay-milter'), os.X_OK):
                self.skipTest('relay-milter is not built')
            up = lab.upstream()
            relay = lab.relay(up, milter=True, tls_port=False, start=False)
            self.assertIn('smtpd_milters=' + relay.milter.sock,
                          relay.postconf('-M', relay.service_name).replace('\n', ' '))
            self.assertEqual(relay.postconf('-P', '%s/milter_default_action'
                                            % relay.service_name).split('=')[-1].strip(),
                             'tempfail')
            password = relay.add_user('mia')
            relay.admin('sender', 'add', 'mia', 'mia@example.org')
            relay.start()
            subject = 'milter-' + uuid.uuid4().hex
            with relay.smtp() as s:
                self.assertEqual(auth(s, 'PLAIN', 'mia', password)[0], 235)
                s.sendmail('mia@example.org', ['x@example.net'],
                           ('From: mia@example.org\r\nSubject: %s\r\n\r\nhi\r\n'
                            % subject).encode())
            wait_delivered(self, up, subject)
            with relay.smtp() as s:
                self.assertEqual(auth(s, 'PLAIN', 'mia', password)[0], 235)
                code, text = s.mail('boss@example.org')
                if code == 250:
                    code, text = s.rcpt('x@example.net')
                self.assertEqual(code // 100, 5, text)
            # milter down: Postfix answers 4xx (tempfail) to the session's commands —
            # from STARTTLS on — and the mail waits in the client's queue
            relay.milter.stop()
            try:
                with relay.smtp() as s:
                    code, text = auth(s, 'PLAIN', 'mia', password)
                    if code == 235:
                        code, text = s.mail('mia@example.org')
                    if code == 250:
                        code, text = s.rcpt('x@example.net')
            except smtplib.SMTPResponseException as e:
                code, text = e.smtp_code, e.smtp_error
            self.assertEqual(code // 100, 4, text)


if __name__ == '__main__':
    sys.exit(main())
