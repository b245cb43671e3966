#!/usr/bin/python3
"""`relay-admin check` against hand-made Postfix configuration folders (suite 'admin').

No Postfix instance runs: check only reads the configuration through `postconf -c DIR`, so
a temporary folder with a main.cf and a master.cf is enough to exercise how it reads
services (`-o { name = value, with spaces }`, `$name` expansion, compatibility-level
defaults), smtpd.conf, the milter and upstream settings and certificates, and how it names
each problem. Everything lives in a temporary folder; queue and data folders point there.

Run: RELAY_BUILD_ROOT=<build dir> /usr/bin/python3 tests/selftest/test_check.py [-v]
"""

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import unittest

SKIP = 77
BUILD = os.path.abspath(os.environ.get('RELAY_BUILD_ROOT') or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), '..', '..', 'build'))
RELAY_ADMIN = os.path.join(BUILD, 'admin', 'relay-admin')

SERVICE = ('127.0.0.1:2525 inet n - n - - smtpd\n'
           '  -o syslog_name=postfix/relay\n'
           '  -o smtpd_tls_security_level=encrypt\n'
           '  -o smtpd_tls_auth_only=yes\n'
           '  -o smtpd_tls_cert_file=$relay_cert\n'
           '  -o smtpd_tls_key_file=$relay_key\n'
           '  -o smtpd_tls_mandatory_protocols=>=TLSv1.2\n'
           '  -o smtpd_sasl_auth_enable=yes\n'
           '  -o smtpd_client_auth_rate_limit=20\n'
           '  -o { smtpd_client_restrictions = permit_sasl_authenticated, reject }\n'
           '  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject\n'
           '  -o smtpd_recipient_restrictions=permit_sasl_authenticated,reject\n'
           '  -o smtpd_forbid_bare_newline=normalize\n'
           '  -o smtpd_forbid_bare_newline_exclusions=\n'
           '  -o disable_vrfy_command=yes\n'
           '  -o content_filter=relay-upstream:[smtp.example.net]:587\n')

# The upstream as setup writes it: a transport of its own that only the relay services name.
TRANSPORT = ('relay-upstream unix - - n - - smtp\n'
             '  -o syslog_name=postfix/relay-upstream\n'
             '  -o smtp_tls_security_level=secure\n'
             '  -o smtp_tls_wrappermode=no\n')

# What earlier versions of setup wrote into main.cf instead (every delivery used it).
OLD_GLOBAL = {
    'relayhost': '[smtp.example.net]:587',
    'smtp_tls_security_level': 'secure',
    'smtp_sasl_auth_enable': 'yes',
    'smtp_sasl_password_maps': 'hash:/etc/postfix/relay_upstream_passwd',
}


class Check(unittest.TestCase):

    def setUp(self):
        if not os.path.exists(RELAY_ADMIN):
            self.fail('not built: ' + RELAY_ADMIN)
        self.dir = tempfile.mkdtemp(prefix='test-check-')
        self.etc = os.path.join(self.dir, 'etc')
        os.makedirs(os.path.join(self.etc, 'sasl'))
        os.makedirs(os.path.join(self.dir, 'queue'))   # else `postfix` fails (and sleeps 1 s)
        self.db = os.path.join(self.dir, 'users.db')
        p = subprocess.run([RELAY_ADMIN, '--db', self.db, 'init'], capture_output=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.cert, self.key = self.make_cert(days=400)
        self.main = {
            'compatibility_level': '3.6',
            'queue_directory': os.path.join(self.dir, 'queue'),
            'data_directory': os.path.join(self.dir, 'data'),
            'myhostname': 'relay.test',     # the name in make_cert's certificates
            'relay_cert': self.cert,
            'relay_key': self.key,
            'cyrus_sasl_config_path': os.path.join(self.etc, 'sasl'),
        }
        self.service = SERVICE
        self.transport = TRANSPORT
        self.smtpd_conf = ('pwcheck_method: auxprop\nauxprop_plugin: relaydb\n'
                           'relaydb_path: %s\nmech_list: plain login\n' % self.db)

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def make_cert(self, days, name='relay.test', ca=False):
        """A self-signed certificate for `name` valid `days` days, or with ca=True one
        signed by a throwaway CA (as Let's Encrypt's are: not self-signed)."""
        self.ncerts = getattr(self, 'ncerts', 0) + 1     # short names: check ids are bounded
        cert = os.path.join(self.dir, 'cert%d.pem' % self.ncerts)
        key = os.path.join(self.dir, 'key%d.pem' % self.ncerts)
        ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
        san = ['-addext', 'subjectAltName=DNS:' + name]
        if not ca:
            subprocess.run(['openssl', 'req', '-x509'] + ec + ['-keyout', key, '-out', cert,
                            '-days', str(days), '-subj', '/CN=' + name] + san,
                           check=True, capture_output=True)
        else:
            cacert, cakey = self.make_cert(3650, 'Test CA')
            csr = cert + '.csr'
            subprocess.run(['openssl', 'req', '-new'] + ec + ['-keyout', key, '-out', csr,
                            '-subj', '/CN=' + name] + san, check=True, capture_output=True)
            subprocess.run(['openssl', 'x509', '-req', '-in', csr, '-CA', cacert, '-CAkey',
                            cakey, '-CAcreateserial', '-days', str(days), '-copy_extensions',
                            'copy', '-out', cert], check=True, capture_output=True)
        os.chmod(key, 0o600)
        return cert, key

    def run_check(self, db=None, etc=None, cwd=None, extra=()):
        with open(os.path.join(self.etc, 'main.cf'), 'w') as f:
            f.writelines('%s = %s\n' % kv for kv in self.main.items())
        with open(os.path.join(self.etc, 'master.cf'), 'w') as f:
            f.write('smtp inet n - y - - smtpd\n' + self.service + self.transport)
        with open(os.path.join(self.etc, 'sasl', 'smtpd.conf'), 'w') as f:
            f.write(self.smtpd_conf)
        p = subprocess.run([RELAY_ADMIN, '--db', db or self.db, '--state-db',
                            os.path.join(self.dir, 'state.db'), '--json', 'check',
                            '--postfix-config', etc or self.etc] + list(extra),
                           capture_output=True,
                           timeout=120, cwd=cwd)
        rep = json.loads(p.stdout)
        self.assertEqual(p.returncode, min(rep['failures'], 100))
        return {c['id']: c for c in rep['checks']}

    def status(self, checks, cid):
        return checks[cid]['status'] if cid in checks else None

    def explain(self, checks):
        return '\n'.join('%s %s: %s' % (c['status'], i, c['detail']) for i, c in checks.items())

    svc = '@127.0.0.1:2525/inet'

    def test_good_service_parsed(self):
        c = self.run_check()
        self.assertEqual(self.status(c, 'postfix-config'), 'ok', self.explain(c))
        for cid in ('tls-required', 'auth-only-after-tls', 'sasl-enabled', 'sasl-noanonymous',
                    'client-restrictions', 'relay-restrictions', 'recipient-restrictions',
                    'tls-protocols', 'auth-rate-limit', 'bare-newline', 'vrfy-disabled'):
            self.assertEqual(self.status(c, cid + self.svc), 'ok', self.explain(c))
        self.assertEqual(self.status(c, 'users-db'), 'ok', self.explain(c))
        self.assertEqual(self.status(c, 'smtpd-conf'), 'ok', self.explain(c))
        for cid in ('upstream-route', 'upstream-scope', 'upstream-tls'):
            self.assertEqual(self.status(c, cid), 'ok', self.explain(c))
        # $relay_cert was expanded: the certificate was found and judged
        self.assertEqual(self.status(c, 'certificate:' + self.cert), 'ok', self.explain(c))
        self.assertEqual(self.status(c, 'milter' + self.svc), 'skip')
        self.assertNotIn('smtp@', ''.join(c))   # the plain port-25 service is not ours

    def test_insecure_service_named(self):
        self.service = (SERVICE.replace('security_level=encrypt', 'security_level=may')
                        .replace('-o smtpd_relay_restrictions=permit_sasl_authenticated,reject\n',
                                 ''))
        c = self.run_check()
        self.assertEqual(self.status(c, 'tls-required' + self.svc), 'fail', self.explain(c))
        # without an override the compatibility-level default applies, expanded
        relay = c['relay-restrictions' + self.svc]
        self.assertEqual(relay['status'], 'fail', self.explain(c))
        self.assertIn('permit_mynetworks', relay['detail'])
        self.assertNotIn('$', relay['detail'])
        self.assertIn('postconf -c', relay['fix'])

    def test_relative_paths(self):
        # smtpd.conf names the database absolutely; `postfix -c` needs an absolute folder
        want = self.run_check()
        c = self.run_check(db='users.db', etc='etc', cwd=self.dir)
        self.assertEqual(self.status(c, 'smtpd-conf'), 'ok', self.explain(c))
        for cid in ('postfix-config', 'postfix-check', 'postfix-running'):
            self.assertEqual(self.status(c, cid), self.status(want, cid), self.explain(c))

    def test_smtpd_conf_problems(self):
        self.smtpd_conf = self.smtpd_conf.replace(self.db, '/elsewhere/users.db')
        c = self.run_check()
        self.assertEqual(self.status(c, 'smtpd-conf'), 'fail')
        self.assertIn('/elsewhere/users.db', c['smtpd-conf']['detail'])
        self.smtpd_conf = 'pwcheck_method: auxprop\nauxprop_plugin: relaydb\nrelaydb_path:\n'
        c = self.run_check()
        self.assertEqual(self.status(c, 'smtpd-conf'), 'fail')
        self.assertIn('empty value', c['smtpd-conf']['detail'])

    def test_milter(self):
        sock = os.path.join(self.dir, 'milter.sock')
        self.service = SERVICE + ('  -o smtpd_milters=unix:%s\n'
                                  '  -o milter_default_action=tempfail\n' % sock)
        c = self.run_check()
        self.assertEqual(self.status(c, 'milter' + self.svc), 'fail')
        self.assertIn('{tls_version}', c['milter' + self.svc]['detail'])  # not a default
        self.main['milter_mail_macros'] = 'i {auth_type} {auth_authen} {tls_version}'
        c = self.run_check()
        self.assertEqual(self.status(c, 'milter' + self.svc), 'fail')
        self.assertIn('not reachable', c['milter' + self.svc]['detail'])
        self.assertEqual(self.status(c, 'state-db'), 'warn')   # milter registered, no db
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.bind(sock)
            s.listen(1)
            c = self.run_check()
            self.assertEqual(self.status(c, 'milter' + self.svc), 'ok', self.explain(c))
        self.service = self.service.replace('action=tempfail', 'action=accept')
        c = self.run_check()
        self.assertEqual(self.status(c, 'milter' + self.svc), 'fail')
        self.assertIn('pass unchecked', c['milter' + self.svc]['detail'])

    def test_foreign_state_db_refused(self):
        # A foreign SQLite file (any schema version) at the state database's path was read
        # with a raw open that looked only at user_version, so it passed as "ok". The data
        # layer checks the application_id: neither a foreign file nor the users database
        # is a state database.
        state = os.path.join(self.dir, 'state.db')
        with sqlite3.connect(state) as con:
            con.execute('CREATE TABLE t (x)')
            con.execute('PRAGMA user_version = 1')
        con.close()
        c = self.run_check()
        self.assertEqual(self.status(c, 'state-db'), 'fail', self.explain(c))
        self.assertIn('not an smtp-relay state database', c['state-db']['detail'])
        shutil.copy(self.db, state)   # the users database named as the state database
        c = self.run_check()
        self.assertEqual(self.status(c, 'state-db'), 'fail', self.explain(c))
        self.assertIn('not an smtp-relay state database', c['state-db']['detail'])
        os.unlink(state)              # the real one passes
        p = subprocess.run([RELAY_ADMIN, '--db', self.db, '--state-db', state, 'init'],
                           capture_output=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        c = self.run_check()
        self.assertEqual(self.status(c, 'state-db'), 'ok', self.explain(c))
        self.assertIn('schema version 5', c['state-db']['detail'])

    def test_upstream_levels(self):
        # judged on the transport the relay services name, not in main.cf
        self.main['smtp_tls_security_level'] = 'secure'
        self.transport = TRANSPORT.replace('level=secure', 'level=may')
        c = self.run_check()
        self.assertEqual(self.status(c, 'upstream-tls'), 'fail', self.explain(c))
        self.assertIn('relay-upstream/unix/smtp_tls_security_level=secure',
                      c['upstream-tls']['fix'])
        self.transport = TRANSPORT.replace('level=secure', 'level=encrypt')
        c = self.run_check()
        self.assertEqual(self.status(c, 'upstream-tls'), 'warn')
        self.transport += '  -o smtp_tls_CAfile=%s\n' % os.path.join(self.dir, 'missing-ca.pem')
        c = self.run_check()
        self.assertEqual(self.status(c, 'upstream-ca'), 'fail')
        self.service = SERVICE.replace('  -o content_filter=relay-upstream:[smtp.example.net]:587\n',
                                       '')
        c = self.run_check()
        for cid in ('upstream-route', 'upstream-scope', 'upstream-tls'):
            self.assertEqual(self.status(c, cid), 'skip', self.explain(c))

    def test_hardening_flagged(self):
        """Issue 8, item 8: a relay service that ends DATA at <LF>.<CR><LF> or answers
        VRFY is flagged."""
        self.service = (SERVICE.replace('  -o smtpd_forbid_bare_newline=normalize\n', '')
                        .replace('  -o disable_vrfy_command=yes\n', ''))
        c = self.run_check()
        self.assertEqual(self.status(c, 'bare-newline' + self.svc), 'fail', self.explain(c))
        self.assertIn('smuggling', c['bare-newline' + self.svc]['detail'])
        self.assertIn('smtpd_forbid_bare_newline=normalize', c['bare-newline' + self.svc]['fix'])
        self.assertEqual(self.status(c, 'vrfy-disabled' + self.svc), 'warn', self.explain(c))
        # on, but the default exclusions ($mynetworks) exempt the relay's loopback/LAN clients
        self.service = SERVICE.replace('  -o smtpd_forbid_bare_newline_exclusions=\n', '')
        self.main['mynetworks'] = '127.0.0.0/8'
        c = self.run_check()
        self.assertEqual(self.status(c, 'bare-newline' + self.svc), 'warn', self.explain(c))
        self.assertIn('127.0.0.0/8', c['bare-newline' + self.svc]['detail'])

    def test_old_global_upstream_flagged(self):
        """Issue 8, item 6: the upstream login in main.cf (earlier setups) serves sendmail
        and port-25 mail too."""
        self.main.update(OLD_GLOBAL)
        self.service = SERVICE.replace('  -o content_filter=relay-upstream:[smtp.example.net]:587\n',
                                       '')
        self.transport = ''
        c = self.run_check()
        self.assertEqual(self.status(c, 'upstream-scope'), 'fail', self.explain(c))
        self.assertIn('sendmail', c['upstream-scope']['detail'])
        self.assertIn('relay-admin setup', c['upstream-scope']['fix'])
        self.assertEqual(self.status(c, 'upstream-route'), 'warn', self.explain(c))
        self.assertEqual(self.status(c, 'upstream-tls'), 'ok', self.explain(c))  # main.cf's
        # the new layout with the old login left in main.cf: still a failure
        self.service, self.transport = SERVICE, TRANSPORT
        c = self.run_check()
        self.assertEqual(self.status(c, 'upstream-scope'), 'fail', self.explain(c))
        # a relayhost that is the upstream, without the login: a warning
        del self.main['smtp_sasl_auth_enable']
        del self.main['smtp_sasl_password_maps']
        c = self.run_check()
        self.assertEqual(self.status(c, 'upstream-scope'), 'warn', self.explain(c))

    def test_missing_upstream_transport(self):
        self.transport = ''
        c = self.run_check()
        self.assertEqual(self.status(c, 'upstream-route'), 'fail', self.explain(c))
        self.assertIn('relay-upstream:[smtp.example.net]:587', c['upstream-route']['detail'])

    def test_upstream_password_map_permissions(self):
        if os.geteuid() != 0:
            self.skipTest('the map must belong to root')
        src = os.path.join(self.etc, 'relay_upstream_passwd')
        with open(src, 'w') as f:
            f.write('[smtp.example.net]:587 user:secret\n')
        os.chmod(src, 0o600)
        with open(src + '.db', 'w') as f:       # check only looks at its mode and owner
            f.write('user:secret')
        os.chmod(src + '.db', 0o600)
        self.transport = TRANSPORT + '  -o smtp_sasl_password_maps=hash:%s\n' % src
        c = self.run_check()
        self.assertEqual(self.status(c, 'upstream-password-map'), 'ok', self.explain(c))
        # postmap run before a `chmod 600` of the source leaves a readable .db behind: it
        # holds the same password
        os.chmod(src + '.db', 0o644)
        c = self.run_check()
        self.assertEqual(self.status(c, 'upstream-password-map'), 'warn', self.explain(c))
        self.assertIn('.db', c['upstream-password-map']['detail'])

    def test_certificate_expiring_soon(self):
        self.main['relay_cert'], self.main['relay_key'] = self.make_cert(days=10)
        c = self.run_check()
        cert = c['certificate:' + self.main['relay_cert']]
        self.assertEqual(cert['status'], 'warn', self.explain(c))
        self.assertIn('expires in', cert['detail'])

    def test_certificate_expiry_threshold_21_days(self):
        # certbot renews at 30 days left: 25 days is a healthy certificate mid-renewal
        # window, 20 days means renewals have been failing for over a week
        self.main['relay_cert'], self.main['relay_key'] = self.make_cert(days=25, ca=True)
        c = self.run_check()
        self.assertEqual(c['certificate:' + self.main['relay_cert']]['status'], 'ok',
                         self.explain(c))
        self.main['relay_cert'], self.main['relay_key'] = self.make_cert(days=20, ca=True)
        c = self.run_check()
        cert = c['certificate:' + self.main['relay_cert']]
        self.assertEqual(cert['status'], 'warn', self.explain(c))
        self.assertIn('expires in', cert['detail'])
        self.assertNotIn('self-signed', cert['detail'])

    def test_certificate_name_mismatch(self):
        # a certificate for another host: clients connecting to myhostname refuse it
        self.main['relay_cert'], self.main['relay_key'] = self.make_cert(
            days=400, name='other.example', ca=True)
        c = self.run_check()
        cert = c['certificate:' + self.main['relay_cert']]
        self.assertEqual(cert['status'], 'warn', self.explain(c))
        self.assertIn('does not name relay.test', cert['detail'])
        self.assertIn('other.example', cert['detail'])
        self.assertIn('--name', cert['fix'])

    def test_certificate_name_option(self):
        # --name is the name clients use, whatever myhostname says; an IP address works too
        self.main['relay_cert'], self.main['relay_key'] = self.make_cert(
            days=400, name='mail.example', ca=True)
        c = self.run_check(extra=['--name', 'mail.example'])
        self.assertEqual(c['certificate:' + self.main['relay_cert']]['status'], 'ok',
                         self.explain(c))
        c = self.run_check(extra=['--name', 'relay.test'])
        self.assertEqual(c['certificate:' + self.main['relay_cert']]['status'], 'warn')
        c = self.run_check(extra=['--name', '192.0.2.7'])
        self.assertIn('does not name 192.0.2.7',
                      c['certificate:' + self.main['relay_cert']]['detail'])

    def test_certificate_self_signed_named(self):
        c = self.run_check()
        cert = c['certificate:' + self.cert]
        self.assertEqual(cert['status'], 'ok', self.explain(c))
        self.assertTrue(cert['detail'].startswith('self-signed, valid until'), cert['detail'])
        self.main['relay_cert'], self.main['relay_key'] = self.make_cert(days=400, ca=True)
        c = self.run_check()
        cert = c['certificate:' + self.main['relay_cert']]
        self.assertEqual(cert['status'], 'ok', self.explain(c))
        self.assertNotIn('self-signed', cert['detail'])

    def test_no_service(self):
        self.service = ''
        c = self.run_check()
        self.assertEqual(self.status(c, 'postfix-config'), 'fail')
        self.assertIn('relay-admin setup', c['postfix-config']['fix'])

    @unittest.skipUnless(os.geteuid() == 0, 'needs root to chown to root:postfix')
    def test_database_permissions(self):
        import grp
        gid = grp.getgrnam('postfix').gr_gid
        folder = os.path.join(self.dir, 'db')
        os.mkdir(folder)
        os.chown(folder, 0, gid)
        os.chmod(folder, 0o750)
        db = os.path.join(folder, 'users.db')
        os.rename(self.db, db)
        self.db = db
        self.smtpd_conf = self.smtpd_conf.replace(os.path.join(self.dir, 'users.db'), db)
        os.chown(db, 0, gid)
        os.chmod(db, 0o640)
        c = self.run_check()
        self.assertEqual(self.status(c, 'users-db-permissions'), 'ok', self.explain(c))
        os.chmod(db, 0o600)
        c = self.run_check()
        self.assertEqual(self.status(c, 'users-db-permissions'), 'warn', self.explain(c))
        self.assertIn('chmod 0640', c['users-db-permissions']['fix'])
        os.chmod(db, 0o640)
        os.chmod(folder, 0o755)
        c = self.run_check()
        perm = c['users-db-permissions']
        self.assertEqual(perm['status'], 'fail', self.explain(c))
        self.assertIn('others can get at it', perm['detail'])
        self.assertIn('chmod 0750 ' + folder, perm['fix'])

    def test_too_many_limits_reported(self):
        """Issue 8: a database with more limits in effect than relay-milter reads (written
        around relay-admin, which refuses it) makes the milter tempfail those logins' mail;
        check must say so, naming who."""
        c = self.run_check()
        self.assertEqual(self.status(c, 'users-db-limits'), 'ok', self.explain(c))
        p = subprocess.run([RELAY_ADMIN, '--db', self.db, 'user', 'add', 'bob',
                            '--password-stdin'], input=b'long-enough-password-123\n',
                           capture_output=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        con = sqlite3.connect(self.db)
        with con:   # as in a version 1 file, from before the schema's row cap
            con.execute('DROP TRIGGER limits_per_login_max')
        with con:   # 33 own rows for bob: one more than the reader accepts
            bob, = con.execute("SELECT id FROM logins WHERE name = 'bob'").fetchone()
            con.executemany('INSERT INTO limits VALUES (?, ?, ?, 1000)',
                            [(bob, 'messages', w) for w in range(1, 34)])
        con.close()
        c = self.run_check()
        lim = c['users-db-limits']
        self.assertEqual(lim['status'], 'fail', self.explain(c))
        self.assertIn('1 login with more than 32', lim['detail'])
        self.assertEqual(lim['lines'], ['bob: 33 limits in effect'])
        self.assertIn('relay-admin limit', lim['fix'])
        con = sqlite3.connect(self.db)
        with con:   # and 40 defaults: every login inherits too many
            con.executemany('INSERT INTO limits VALUES (0, ?, ?, 1000)',
                            [(m, w) for m in ('recipients', 'bytes') for w in range(1, 21)])
        con.close()
        c = self.run_check()
        lim = c['users-db-limits']
        self.assertEqual(lim['status'], 'fail', self.explain(c))
        self.assertIn('the defaults alone are too many', lim['detail'])
        self.assertEqual(lim['lines'], ['the defaults: 40 limits in effect',
                                        'bob: 73 limits in effect'])

    def test_missing_database(self):
        os.unlink(self.db)
        c = self.run_check()
        self.assertEqual(self.status(c, 'users-db'), 'fail')
        self.assertIn('init', c['users-db']['fix'])


def main():
    if shutil.which('postconf') is None:
        print('SKIP: postconf not installed (apt-get install postfix)')
        return SKIP
    prog = unittest.main(exit=False, verbosity=2)
    return 0 if prog.result.wasSuccessful() else 1


if __name__ == '__main__':
    sys.exit(main())
