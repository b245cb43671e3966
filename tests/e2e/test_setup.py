#!/usr/bin/python3
"""`relay-admin setup` against a private Postfix instance (issue 4): idempotent, --dry-run
touches nothing, bad input is refused with nothing changed, secrets stay off argv and out
of world-readable files, and the self-signed fallback works end to end. Issue 8: the
upstream and its login serve only the relay services (sendmail and port-25 mail keep their
own route), an old global layout is migrated, and the services refuse VRFY and do not end
DATA at <LF>.<CR><LF>. Issue 9: ETRN refused too, --message-size.

Needs root; exits 77 (meson's "skipped") otherwise. The relay instance comes from
relaylab (configured by setup itself); these tests re-run setup on it.
"""

import hashlib
import os
import smtplib
import stat
import subprocess
import sys
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import relaylab  # noqa: E402
from e2elib import auth, main, require_build, wait_delivered  # noqa: E402
from setuplib import SetupCase  # noqa: E402


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


class Setup(SetupCase):

    def same_args(self):
        return self.lab_args()

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

    def test_message_size(self):
        """--message-size goes on the relay services, raises main.cf's limit (cleanup
        enforces that one) and refuses what is not a size, or what local delivery cannot
        take, with nothing changed."""
        r = self.relay
        svc = r.service_name
        try:
            rc, out = self.setup_cmd(*self.lab_args('--message-size', '20M'),
                                     password=self.up.password)
            self.assertEqual(rc, 0, out)
            for name in (svc, r.tls_service_name):
                self.assertEqual(r.postconf('-Ph', '%s/message_size_limit' % name).strip(),
                                 str(20 << 20))
            self.assertEqual(r.postconf('-h', 'message_size_limit').strip(), str(20 << 20))
            before = _snapshot(r.config_dir)
            for size in ('0', '10X', '2G', '512', '-5', 'M'):
                with self.subTest(size=size):
                    rc, out = self.setup_cmd(*self.lab_args('--message-size', size),
                                             password=self.up.password)
                    self.assertEqual(rc, 2, out)
                    self.assertIn('--message-size', out)
            r.set_main(mailbox_size_limit=str(30 << 20))
            before = _snapshot(r.config_dir)
            rc, out = self.setup_cmd(*self.lab_args('--message-size', '40M'),
                                     password=self.up.password)
            self.assertEqual(rc, 1, out)
            self.assertIn('mailbox_size_limit', out)
            self.assertIn('nothing was changed', out)
            self.assertEqual(before, _snapshot(r.config_dir))
        finally:
            r.postconf('-X', 'message_size_limit', 'mailbox_size_limit')
            rc, out = self.setup_cmd(*self.lab_args(), password=self.up.password)
        self.assertEqual(rc, 0, out)
        # without the option the services take main.cf's limit (Postfix: 10240000)
        self.assertNotIn('message_size_limit', r.postconf('-M', svc))

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
                     'smtpd_relay_restrictions', 'smtpd_milters', 'smtpd_tls_cert_file',
                     # the upstream and its login belong to the relay services only
                     'relayhost', 'smtp_sasl_auth_enable', 'smtp_sasl_password_maps',
                     'smtp_tls_security_level', 'smtp_tls_CAfile', 'content_filter'):
            self.assertNotIn('\n%s =' % name, '\n' + main_n, name + ' set globally')
        r.postconf('-MX', local)

    def test_old_global_upstream_migrated(self):
        """An instance set up by an earlier version (upstream in main.cf, used by all mail):
        a re-run moves it onto the relay-upstream transport, removes what setup wrote, keeps
        the admin's own settings and a backup."""
        r, up = self.relay, self.up
        nexthop = '[%s]:%d' % (up.hostname, up.port)
        mapref = 'hash:%s/relay_upstream_passwd' % r.config_dir
        old = {'relayhost': nexthop, 'smtp_tls_wrappermode': 'no',
               'smtp_tls_security_level': 'secure', 'smtp_tls_CAfile': self.lab.ca.cert,
               'smtp_tls_protocols': '>=TLSv1.2', 'smtp_tls_mandatory_protocols': '>=TLSv1.2',
               'smtp_sasl_auth_enable': 'yes', 'smtp_sasl_password_maps': mapref,
               'smtp_sasl_security_options': 'noanonymous',
               'smtp_sasl_tls_security_options': 'noanonymous',
               'smtp_tls_loglevel': '2'}          # the admin's own: stays
        r.set_main_dict(old)
        rc, out = self.setup_cmd(*self.same_args(), password=self.up.password)
        self.assertEqual(rc, 0, out)
        self.assertIn('remove relayhost', out)
        main_n = '\n' + r.postconf('-n')
        for name in old:
            if name in ('smtp_tls_security_level', 'smtp_tls_loglevel'):
                continue
            self.assertNotIn('\n%s =' % name, main_n, name + ' left in main.cf')
        self.assertIn('\nsmtp_tls_security_level = may', main_n)
        self.assertIn('\nsmtp_tls_loglevel = 2', main_n)
        transport = r.postconf('-M', 'relay-upstream/unix')
        self.assertIn('smtp_sasl_password_maps=' + mapref, transport)
        self.assertIn('smtp_tls_security_level=secure', transport)
        self.assertIn('content_filter=relay-upstream:' + nexthop,
                      r.postconf('-M', r.service_name))
        backups = os.path.join(r.config_dir, 'relay-admin-backup')
        kept = [os.path.join(backups, d, 'main.cf') for d in os.listdir(backups)]
        self.assertTrue(any('smtp_sasl_password_maps = ' + mapref in open(f).read()
                            for f in kept if os.path.exists(f)), kept)
        rc, out = self.setup_cmd(*self.same_args(), password=self.up.password)
        self.assertEqual(rc, 0, out)
        self.assertIn('nothing to change', out)
        r.postconf('-X', 'smtp_tls_loglevel')

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


class UpstreamScope(unittest.TestCase):
    """Issue 8, item 6: the smarthost and its login serve only mail that came in through
    the relay services (and passed relay-milter there). Mail submitted with the instance's
    sendmail, or by a mynetworks client of its port-25 service, keeps the route the machine
    had before setup (here: a relayhost pointing at a plain sink) and never reaches the
    upstream. Item 8: on the relay service VRFY is refused and <LF>.<CR><LF> does not end
    DATA (SMTP smuggling)."""

    @classmethod
    def setUpClass(cls):
        require_build('milter/relay-milter')
        cls.lab = relaylab.Lab()
        try:
            cls.up = cls.lab.upstream()
            cls.sink = cls.lab.sink()
            # the machine's own mail went to its relayhost before the relay was set up
            cls.relay = cls.lab.relay(cls.up, milter=True, tls_port=False, start=False,
                                      main_before_setup={
                                          'relayhost': '[%s]:%d' % (relaylab.HOST,
                                                                    cls.sink.port)})
            # the machine's port-25 service (a stand-in on a free port): plain smtpd with
            # main.cf's settings, where mynetworks (127.0.0.0/8) may relay
            cls.local_port = relaylab.free_port()
            cls.relay.postconf('-M', '%s:%d/inet=%s:%d inet n - n - - smtpd' % (
                relaylab.HOST, cls.local_port, relaylab.HOST, cls.local_port))
            cls.password = cls.relay.add_user('ann')
            cls.relay.admin('sender', 'add', 'ann', 'ann@example.org')
            cls.relay.start()
        except BaseException:
            cls.lab.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.lab.stop()

    def where_did_it_go(self, subject):
        """Waits until `subject` shows up at the sink or the upstream -> 'sink'/'upstream'."""
        needle = subject.encode()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if any(needle in m for m in self.up.messages()):
                return 'upstream'
            if any(needle in m for m in self.sink.messages()):
                return 'sink'
            time.sleep(0.2)
        self.fail('%s went nowhere\n%s' % (subject, self.lab.logs_tail()))

    def message(self, sender, subject):
        return ('From: %s\r\nTo: x@example.net\r\nSubject: %s\r\n\r\nhello\r\n'
                % (sender, subject)).encode()

    def test_relay_service_mail_goes_upstream_with_its_login(self):
        subject = 'scope-relay-' + uuid.uuid4().hex
        with self.relay.smtp() as s:
            self.assertEqual(auth(s, 'PLAIN', 'ann', self.password)[0], 235)
            # relay-milter decides on this service: a sender ann may not use is refused
            code, text = s.mail('ceo@bank.example')
            if code == 250:
                code, text = s.rcpt('x@example.net')
            self.assertEqual(code // 100, 5, text)
            s.rset()
            s.sendmail('ann@example.org', ['x@example.net'],
                       self.message('ann@example.org', subject))
        wait_delivered(self, self.up, subject)
        msg = next(m for m in self.up.messages() if subject.encode() in m)
        # the upstream's own Received: line: TLS and AUTH (ESMTPSA) with the upstream login
        self.assertIn(b'with ESMTPSA id', msg.split(b'\n\n')[0])
        self.assertFalse(any(subject.encode() in m for m in self.sink.messages()))
        log = self.relay.admin('--state-db', self.relay.milter.state_db, 'log',
                               '--user', 'ann').stdout.decode()
        self.assertIn('ann@example.org', log)

    def test_sendmail_does_not_ride_the_upstream_login(self):
        subject = 'scope-sendmail-' + uuid.uuid4().hex
        p = subprocess.run(['sendmail', '-C', self.relay.config_dir, '-f', 'ceo@bank.example',
                            'x@example.net'], input=self.message('ceo@bank.example', subject),
                           capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(self.where_did_it_go(subject), 'sink', self.lab.logs_tail())
        self.assertFalse(self.sink.auth_seen)

    def test_port25_client_does_not_ride_the_upstream_login(self):
        subject = 'scope-port25-' + uuid.uuid4().hex
        with smtplib.SMTP(relaylab.HOST, self.local_port, timeout=30) as s:
            s.sendmail('ceo@bank.example', ['x@example.net'],
                       self.message('ceo@bank.example', subject))
        self.assertEqual(self.where_did_it_go(subject), 'sink', self.lab.logs_tail())
        self.assertFalse(self.sink.auth_seen)

    def test_vrfy_refused_after_auth(self):
        with self.relay.smtp() as s:
            self.assertEqual(auth(s, 'PLAIN', 'ann', self.password)[0], 235)
            code, text = s.docmd('VRFY', 'ann@example.org')
            self.assertEqual(code, 502, text)

    def test_etrn_refused_after_auth(self):
        """ETRN would let any client make the relay flush its queue for a domain."""
        with self.relay.smtp() as s:
            self.assertEqual(auth(s, 'PLAIN', 'ann', self.password)[0], 235)
            code, text = s.docmd('ETRN', 'example.net')
            self.assertEqual(code, 554, text)

    def test_bare_newline_dot_does_not_end_data(self):
        """<LF>.<CR><LF> inside DATA: a server that ends the message there reads the rest
        as commands — here a second MAIL FROM smuggled past the first message's checks."""
        subject = 'smuggle-' + uuid.uuid4().hex
        s = self.relay.smtp()
        try:
            self.assertEqual(auth(s, 'PLAIN', 'ann', self.password)[0], 235)
            self.assertEqual(s.mail('ann@example.org')[0], 250)
            self.assertEqual(s.rcpt('x@example.net')[0], 250)
            s.putcmd('DATA')
            self.assertEqual(s.getreply()[0], 354)
            s.send(b'From: ann@example.org\r\nSubject: ' + subject.encode() + b'\r\n\r\n'
                   b'first part\n.\r\nMAIL FROM:<ceo@bank.example>\r\n'
                   b'RCPT TO:<y@example.net>\r\n.\r\n')
            code, text = s.getreply()
            self.assertEqual(code, 250, text)
            # the next reply answers QUIT only if nothing after <LF>.<CR><LF> was a command
            s.putcmd('QUIT')
            code, text = s.getreply()
        finally:
            s.close()
        self.assertEqual(code, 221, 'the server read the message body as commands: %d %r'
                         % (code, text))
        wait_delivered(self, self.up, subject)
        msg = next(m for m in self.up.messages() if subject.encode() in m)
        self.assertIn(b'MAIL FROM:<ceo@bank.example>', msg)


if __name__ == '__main__':
    sys.exit(main())
