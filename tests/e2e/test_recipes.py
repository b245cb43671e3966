#!/usr/bin/python3
"""Every client recipe in README.md, run as printed against a private relay (issue 9, item 8).

The README's "Client settings" section marks each recipe block with a comment line just
before its fence: `<!-- recipe: ~/.FILE -->` (the block is that file, written with mode
0600 into a temporary home folder), `<!-- recipe: sh -->` (run with /bin/sh -e in that
folder) or `<!-- recipe: python -->` (run with python3). The block text is used with only
the placeholders the README documents replaced (PLACEHOLDERS below: host, the two ports,
the CA file, s-nail's password); the password itself lives in ~/.relay-password, as the
README says. Real clients — msmtp (SCRAM-SHA-256, PLAIN and LOGIN, each through STARTTLS
and implicit TLS), s-nail, swaks, curl, Python's smtplib — talk to a relay configured by
`relay-admin setup` with relay-milter, relaying to an upstream that stores what it gets.

Also checks the "What your client will show" table: each reply code and text in it is the
one a client sees (the README's table row is compared with what the relay answered).

Needs root (private Postfix instances); exits 77 otherwise.
Run: RELAY_BUILD_ROOT=<build dir> /usr/bin/python3 tests/e2e/test_recipes.py [-v]
"""

import os
import re
import shutil
import smtplib
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import LabCase, main  # noqa: E402

README = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'README.md')
MARK = re.compile(r'^<!-- recipe: (\S+) -->\n```\w*\n(.*?)^```$', re.M | re.S)
USER, SENDER = 'laptop', 'me@example.org'
DOWN = 'relay-milter down (not started, stopped, crashed)'   # the README's table row


def recipes():
    """[(label, text)] of the README's recipe blocks, in order."""
    with open(README) as f:
        return MARK.findall(f.read())


def section(title):
    """The README text from heading `title` to the next heading of the same level."""
    with open(README) as f:
        text = f.read()
    level = title.split(' ')[0]
    start = text.index(title + '\n')
    end = text.find('\n' + level + ' ', start + len(title))
    return text[start:end if end > 0 else None]


class Recipes(LabCase):
    needs = ('milter/relay-milter',)
    relay_options = {'milter': True, 'milter_conf': 'policy_refresh_ms = 0\n'}

    @classmethod
    def setUpLab(cls):
        cls.password = cls.relay.add_user(USER)
        cls.relay.admin('sender', 'add', USER, SENDER)
        cls.home = tempfile.mkdtemp(prefix='recipes-home-', dir=cls.lab.dir)
        pwfile = os.path.join(cls.home, '.relay-password')
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, 'w') as f:
            f.write(cls.password + '\n')
        # the README's placeholders, and only those (its table lists them)
        cls.placeholders = [
            ('relay.example.org', 'localhost'),
            ('/etc/ssl/certs/ca-certificates.crt', cls.lab.ca.cert),
            ('the password', cls.password),
            (re.compile(r'\b443\b'), str(cls.relay.port)),
            (re.compile(r'\b465\b'), str(cls.relay.tls_port)),
        ]

    def fill(self, text):
        for old, new in self.placeholders:
            text = old.sub(new, text) if hasattr(old, 'sub') else text.replace(old, new)
        return text

    def run_block(self, label, text):
        """Writes or runs one recipe block -> CompletedProcess (None for a file)."""
        # s-nail takes the home folder from the password database, not $HOME: MAILRC
        # names the same ~/.mailrc (README, the placeholder paragraph)
        env = {'HOME': self.home, 'PATH': '/usr/sbin:/usr/bin:/sbin:/bin', 'LANG': 'C.UTF-8',
               'MAILRC': os.path.join(self.home, '.mailrc')}
        if label.startswith('~/'):
            path = os.path.join(self.home, label[2:])
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, 'w') as f:
                f.write(text)
            return None
        argv = {'sh': ['/bin/sh', '-e', '-c', text],
                'python': ['/usr/bin/python3', '-c', text]}[label]
        return subprocess.run(argv, cwd=self.home, env=env, capture_output=True, text=True,
                              timeout=60, stdin=subprocess.DEVNULL)

    def delivered_since(self, before, n, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.up.messages()) >= before + n:
                return
            time.sleep(0.2)
        self.fail('%d messages expected upstream, %d arrived\n%s' % (
            n, len(self.up.messages()) - before, self.lab.logs_tail()))

    def sasl_methods_since(self, mark):
        return re.findall(r'sasl_method=([A-Z0-9-]+), sasl_username=' + USER,
                          self.relay.log()[mark:])

    def test_blocks_found(self):
        labels = [label for label, _ in recipes()]
        self.assertEqual(labels, ['~/.msmtprc', 'sh', '~/.mailrc', 'sh', 'sh', 'sh', 'python'],
                         'README recipe blocks changed: update this test')

    def test_every_recipe(self):
        """Each block in order (files first written, then the commands that use them)."""
        for label, text in recipes():
            filled = self.fill(text)
            if label.startswith('~/'):
                self.run_block(label, filled)
                continue
            with self.subTest(recipe=text.splitlines()[0][:60]):
                before, mark = len(self.up.messages()), len(self.relay.log())
                p = self.run_block(label, filled)
                self.assertEqual(p.returncode, 0, '%s\n%s\n%s' % (filled, p.stdout, p.stderr))
                # every block sends two messages (STARTTLS, implicit TLS) but s-nail's
                self.delivered_since(before, 1 if 's-nail' in text else 2)
                self.assertTrue(self.sasl_methods_since(mark), 'no AUTH seen')

    def test_msmtp_each_mechanism(self):
        """The README's msmtprc with each `auth` value it names, through both accounts."""
        (conf,) = [t for label, t in recipes() if label == '~/.msmtprc']
        (send,) = [t for label, t in recipes() if label == 'sh' and 'msmtp ' in t]
        self.assertIn('auth scram-sha-256\n', conf)
        for mech in ('scram-sha-256', 'plain', 'login'):
            with self.subTest(mech=mech):
                self.run_block('~/.msmtprc', self.fill(conf).replace(
                    'auth scram-sha-256\n', 'auth %s\n' % mech))
                before, mark = len(self.up.messages()), len(self.relay.log())
                p = self.run_block('sh', self.fill(send))
                self.assertEqual(p.returncode, 0, p.stderr)
                self.delivered_since(before, 2)
                deadline = time.monotonic() + 20   # smtpd logs the AUTH line as it goes
                while (len(self.sasl_methods_since(mark)) < 2 and
                       time.monotonic() < deadline):
                    time.sleep(0.2)
                self.assertEqual(self.sasl_methods_since(mark), [mech.upper()] * 2)

    def test_snail_without_port_in_name_fails(self):
        """The README's old s-nail config (password-USER@HOST, a port in the URL) never
        authenticated: s-nail asks for a password, and has none."""
        (conf,) = [t for label, t in recipes() if label == '~/.mailrc']
        old = self.fill(conf).replace('password-laptop@localhost:%d=' % self.relay.port,
                                      'password-laptop@localhost=')
        self.assertNotEqual(old, self.fill(conf))
        self.run_block('~/.mailrc', old)
        p = self.run_block('sh', "echo x | s-nail -A myrelay -s old someone@example.net")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn('password', p.stderr.lower())
        self.run_block('~/.mailrc', self.fill(conf))

    # ---- "What your client will show": the reply each row names -------------------------

    def table(self):
        rows = {}
        for line in section('### What your client will show').splitlines():
            cells = [c.strip() for c in line.strip('|').split('|')]
            if line.startswith('|') and len(cells) == 3 and not cells[0].startswith('-'):
                rows[cells[0]] = (cells[1], cells[2])
        return rows

    def assertRow(self, situation, code, text):
        """The README's row for `situation` names the reply the relay gave."""
        row = self.table()[situation][0]
        got = '%d %s' % (code, text.decode() if isinstance(text, bytes) else text)
        # "…" and "N" in the README stand for the address and the seconds
        pattern = re.escape(re.search(r'`([^`]*)`', row).group(1))
        pattern = pattern.replace('…', '.*').replace(r'\ N\ ', r'\ \d+\ ')
        self.assertRegex(got, '^' + pattern, 'README row %r, relay said %r' % (row, got))

    def session(self, tls=True, login=True):
        s = self.relay.smtp(starttls=tls)
        if login:
            s.login(USER, self.password)
        return s

    def test_table_no_tls(self):
        with self.session(tls=False, login=False) as s:
            self.assertRow('no TLS (plaintext MAIL)', *s.docmd('MAIL FROM:<%s>' % SENDER))

    def test_table_no_auth(self):
        with self.session(login=False) as s:
            self.assertRow('TLS, but no AUTH', *s.docmd('MAIL FROM:<%s>' % SENDER))

    def test_table_wrong_password(self):
        with self.session(login=False) as s:
            with self.assertRaises(smtplib.SMTPAuthenticationError) as e:
                s.login(USER, 'not-the-password-at-all')
            self.assertRow('wrong password (or unknown, disabled, expired login)',
                           e.exception.smtp_code, e.exception.smtp_error)

    def test_table_envelope_sender(self):
        with self.session() as s:
            self.assertRow('envelope sender not allowed for the login',
                           *s.docmd('MAIL FROM:<other@example.org>'))

    def test_table_header_from(self):
        with self.session() as s:
            with self.assertRaises(smtplib.SMTPDataError) as e:
                s.sendmail(SENDER, ['someone@example.net'],
                           b'From: other@example.org\r\nSubject: x\r\n\r\nx\r\n')
            self.assertRow('a `From:` address not allowed for the login',
                           e.exception.smtp_code, e.exception.smtp_error)

    def test_table_rate_limit_and_msmtp_exit(self):
        """Over a limit: 450 at MAIL; msmtp exits 69 and does not queue (README)."""
        name = 'limited'
        pw = self.relay.add_user(name)
        self.relay.admin('sender', 'add', name, SENDER)
        self.relay.admin('--state-db', self.relay.milter.state_db, 'limit', 'set', name,
                         '--messages', '1/1h')
        with self.relay.smtp() as s:
            s.login(name, pw)
            s.sendmail(SENDER, ['someone@example.net'], b'Subject: one\r\n\r\nx\r\n')
        deadline = time.monotonic() + 20      # the count is written a moment after
        while True:
            with self.relay.smtp() as s:
                s.login(name, pw)
                code, text = s.docmd('MAIL FROM:<%s>' % SENDER)
            if code != 250 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.assertRow('over a rate limit', code, text)
        conf = os.path.join(self.home, 'msmtprc-limited')
        with open(os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 'w') as f:
            f.write('host localhost\nport %d\ntls on\ntls_starttls on\ntls_trust_file %s\n'
                    'auth plain\nuser %s\npassword %s\nfrom %s\n' % (
                        self.relay.port, self.lab.ca.cert, name, pw, SENDER))
        p = subprocess.run(['msmtp', '-C', conf, 'someone@example.net'], input=b'Subject: x\n\nx\n',
                           capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 69, p.stderr)
        self.assertIn(b'450', p.stderr)

    def test_table_z_milter_down(self):
        """relay-milter stopped: what a client sees, at which step; then started again."""
        self.relay.milter.stop()
        try:
            got = None
            with smtplib.SMTP(self.relay.host, self.relay.port, timeout=30) as s:
                step = 'EHLO'
                try:
                    s.ehlo_or_helo_if_needed()
                    step = 'STARTTLS'
                    s.starttls(context=self.relay.client_context())
                    step = 'AUTH'
                    s.login(USER, self.password)
                    step = 'MAIL'
                    code, text = s.docmd('MAIL FROM:<%s>' % SENDER)
                    got = (step, code, text)
                except smtplib.SMTPResponseException as e:
                    got = (step, e.smtp_code, e.smtp_error)
            self.assertEqual(self.table()[DOWN][1], 'STARTTLS (on 465: AUTH)')
            self.assertEqual(got[0], 'STARTTLS', got)
            self.assertRow(DOWN, got[1], got[2])
            with self.relay.smtps() as s:             # implicit TLS: refused at AUTH
                with self.assertRaises(smtplib.SMTPAuthenticationError) as e:
                    s.login(USER, self.password)
                self.assertRow(DOWN, e.exception.smtp_code, e.exception.smtp_error)
        finally:
            self.relay.milter.start()


if __name__ == '__main__':
    sys.exit(main())
