#!/usr/bin/python3
"""A relay behind HAProxy (issue 10, section 3): `relay-admin setup --proxy-protocol` and one
SQLite relay node behind a real HAProxy sending the PROXY protocol v2.

* setup --proxy-protocol puts smtpd_upstream_proxy_protocol=haproxy on both relay services,
  says that only the proxy may reach the ports and how to firewall them; a run without the
  option takes it off again; `relay-admin check` names the services behind a proxy.
* Through HAProxy (tests/e2e/haproxylab.py), a client connecting from 127.0.0.2 is seen as
  127.0.0.2 — not the proxy's 127.0.0.1 — by Postfix's log and by relay-milter's audit log,
  on the STARTTLS and on the implicit-TLS service; a client that reaches the relay port
  directly, without a PROXY header, gets no SMTP service.

Needs root; exits 77 (meson's "skipped") otherwise.
Run: RELAY_BUILD_ROOT=<build dir> /usr/bin/python3 tests/e2e/test_proxy.py [-v]
"""

import json
import os
import re
import socket
import sys
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import haproxylab  # noqa: E402
import relaylab  # noqa: E402
from e2elib import LabCase, main, wait_delivered  # noqa: E402
from setuplib import SetupCase  # noqa: E402


def check_report(relay):
    """`relay-admin --json check` of the relay's instance -> the report (dict)."""
    state_db = os.path.join(relay.dir, 'state', 'state.db')   # absent: no milter here
    p = relay.admin('--state-db', state_db, '--json', 'check', '--postfix-config',
                    relay.config_dir, check=False)
    return json.loads(p.stdout.decode(errors='replace'))


def item(report, ident):
    return next(c for c in report['checks'] if c['id'] == ident)


class SetupProxyProtocol(SetupCase):

    def service_value(self, svc):
        out = self.relay.postconf('-P', '%s/smtpd_upstream_proxy_protocol' % svc, check=False)
        return out.partition('=')[2].strip()

    def services(self):
        return [self.relay.service_name, self.relay.tls_service_name]

    def test_on_then_off_again(self):
        rc, out = self.setup_cmd(*self.lab_args('--proxy-protocol'), password=self.up.password)
        self.assertEqual(rc, 0, out)
        for svc in self.services():
            self.assertEqual(self.service_value(svc), 'haproxy', out)
        # says who may connect, and how to make it so, with both ports
        self.assertIn('ONLY THE PROXY MAY REACH', out)
        self.assertIn('no list of trusted proxies', out)
        self.assertIn('nft add rule inet filter input tcp dport { %d, %d } ip saddr != PROXY_IP '
                      'drop' % (self.relay.port, self.relay.tls_port), out)
        ck = item(check_report(self.relay), 'proxy-protocol')
        self.assertEqual(ck['status'], 'ok', ck)
        for svc in self.services():
            self.assertIn(svc, ck['detail'])
            self.assertTrue(any(svc in line and 'loopback' in line for line in ck['lines']), ck)
        # the same again: nothing to change
        rc, out = self.setup_cmd(*self.lab_args('--proxy-protocol'), password=self.up.password)
        self.assertEqual(rc, 0, out)
        self.assertIn('nothing to change', out)
        # without the option: direct clients again
        rc, out = self.setup_cmd(*self.lab_args(), password=self.up.password)
        self.assertEqual(rc, 0, out)
        for svc in self.services():
            self.assertEqual(self.service_value(svc), '', out)
        self.assertNotIn('PROXY', out)
        ck = item(check_report(self.relay), 'proxy-protocol')
        self.assertEqual(ck['status'], 'ok', ck)
        self.assertIn('clients connect directly', ck['detail'])

    def test_dry_run_shows_it_and_changes_nothing(self):
        rc, out = self.setup_cmd(*self.lab_args('--proxy-protocol', '--dry-run'),
                                 password=self.up.password)
        self.assertEqual(rc, 0, out)
        self.assertIn('smtpd_upstream_proxy_protocol=haproxy', out)
        self.assertIn('ONLY THE PROXY MAY REACH', out)
        for svc in self.services():
            self.assertEqual(self.service_value(svc), '', out)

    def test_check_fails_on_a_value_postfix_does_not_know(self):
        svc = self.relay.service_name
        self.relay.postconf('-P', '%s/smtpd_upstream_proxy_protocol=nginx' % svc)
        try:
            ck = item(check_report(self.relay), 'proxy-protocol')
            self.assertEqual(ck['status'], 'fail', ck)
            self.assertIn('nginx', ck['detail'])
        finally:
            self.relay.postconf('-PX', '%s/smtpd_upstream_proxy_protocol' % svc)


class SetupPostgresDb(SetupCase):
    """setup --db names the shared users database of several relays: pg:FILE or a
    postgresql:// URI goes into smtpd.conf as relaydb_path; a URI with a password is refused
    (argv, and smtpd.conf is readable by group postfix) without being echoed."""

    def smtpd_conf(self):
        with open(os.path.join(self.relay.config_dir, 'sasl', 'smtpd.conf')) as f:
            return f.read()

    def test_pg_file_and_uri_are_taken(self):
        conninfo = os.path.join(self.relay.dir, 'users.pg')
        with open(conninfo, 'w') as f:
            f.write('host=127.0.0.1 dbname=relay user=relay\n')
        os.chmod(conninfo, 0o644)   # readable by others: setup warns
        try:
            rc, out = self.setup_cmd(*self.lab_args('--db', 'pg:' + conninfo),
                                     password=self.up.password)
            self.assertEqual(rc, 0, out)
            self.assertIn('relaydb_path: pg:%s\n' % conninfo, self.smtpd_conf())
            self.assertIn('chmod 0600 %s' % conninfo, out)
            self.assertIn('chown postfix %s' % conninfo, out)
            uri = 'postgresql://relay@127.0.0.1:5432/relay?sslmode=verify-full'
            rc, out = self.setup_cmd(*self.lab_args('--db', uri), password=self.up.password)
            self.assertEqual(rc, 0, out)
            self.assertIn('relaydb_path: %s\n' % uri, self.smtpd_conf())
        finally:
            rc, out = self.setup_cmd(*self.lab_args(), password=self.up.password)
            self.assertEqual(rc, 0, out)

    def test_uri_with_password_is_refused(self):
        before = self.smtpd_conf()
        rc, out = self.setup_cmd(*self.lab_args('--db', 'postgresql://relay:n0tH3re@127.0.0.1/r'),
                                 password=self.up.password)
        self.assertEqual(rc, 2, out)
        self.assertIn('password', out)
        self.assertIn('nothing was changed', out)
        self.assertNotIn('n0tH3re', out)
        self.assertEqual(before, self.smtpd_conf())


@unittest.skipUnless(haproxylab.haproxy_available(), 'haproxy is not installed')
class BehindHAProxy(LabCase):
    """One SQLite node (Postfix + plugin + relay-milter) behind HAProxy, send-proxy-v2."""

    needs = ('milter/relay-milter',)
    relay_options = {'milter': True, 'setup_args': ('--proxy-protocol',),
                     'milter_conf': 'policy_refresh_ms = 0\nstate_flush_ms = 20\n'}

    @classmethod
    def setUpLab(cls):
        cls.pw = cls.relay.add_user('alice')
        cls.relay.admin('sender', 'add', 'alice', 'alice@example.org')
        r = cls.relay
        cls.fe = haproxylab.Frontend([(relaylab.HOST, r.port)])
        cls.fe_tls = haproxylab.Frontend([(relaylab.HOST, r.tls_port)])
        cls.proxy = haproxylab.HAProxy(os.path.join(cls.lab.dir, 'haproxy'),
                                       [cls.fe, cls.fe_tls], lab=cls.lab).start()

    def send(self, tls=False):
        """One message as alice from 127.0.0.2 through the proxy -> its subject."""
        subject = 'proxied-' + uuid.uuid4().hex
        ctx = self.relay.client_context()
        if tls:
            s = haproxylab.smtps(relaylab.HOST, self.fe_tls.port, ctx, source=relaylab.REMOTE)
        else:
            s = haproxylab.smtp(relaylab.HOST, self.fe.port, ctx, source=relaylab.REMOTE)
        with s:
            s.login('alice', self.pw)
            s.sendmail('alice@example.org', ['rcpt@example.net'],
                       ('From: alice@example.org\r\nTo: rcpt@example.net\r\nSubject: %s\r\n'
                        '\r\nthrough the proxy\r\n' % subject).encode())
        wait_delivered(self, self.up, subject)
        return subject

    def audit_records(self):
        return json.loads(self.relay.admin('--state-db', self.relay.milter.state_db, '--json',
                                           'log', '--user', 'alice').stdout)

    def wait_audit(self, count):
        deadline = time.monotonic() + 20
        while True:
            log = self.audit_records()
            if len(log) >= count or time.monotonic() > deadline:
                return log
            time.sleep(0.1)

    def real_client_seen(self, tls):
        mark = self.relay.log_mark()
        before = len(self.audit_records())
        self.send(tls=tls)
        connects = re.findall(r'postfix/relay(?:tls)?/smtpd\[\d+\]: connect from (\S+)',
                              self.relay.log()[mark:])
        self.assertTrue(connects, self.relay.log()[mark:][-3000:])
        # the real client, never the proxy's own address
        self.assertTrue(all(c.endswith('[%s]' % relaylab.REMOTE) for c in connects), connects)
        log = self.wait_audit(before + 1)
        self.assertGreater(len(log), before, log)
        newest = max(log, key=lambda r: r.get('id', 0))
        self.assertIn(relaylab.REMOTE, json.dumps(newest), newest)
        self.assertNotIn('"%s"' % relaylab.HOST, json.dumps(newest), newest)

    def test_starttls_service_sees_the_real_client(self):
        self.real_client_seen(tls=False)

    def test_implicit_tls_service_sees_the_real_client(self):
        self.real_client_seen(tls=True)

    def test_direct_connection_without_proxy_header_is_refused(self):
        mark = self.relay.log_mark()
        with socket.create_connection((relaylab.HOST, self.relay.port), timeout=30) as c:
            c.sendall(b'EHLO direct.relaylab.test\r\n')
            got = b''
            while True:
                try:
                    chunk = c.recv(4096)
                except ConnectionResetError:   # smtpd closed with our EHLO unread
                    break
                if not chunk:
                    break
                got += chunk
        # closed without a banner: no SMTP for a client that did not come through the proxy
        self.assertNotIn(b'220', got)
        self.relay.wait_log(r'postfix/relay/smtpd\[\d+\]: warning: haproxy read: '
                            r'unrecognized protocol header: EHLO', since=mark)


if __name__ == '__main__':
    sys.exit(main())
