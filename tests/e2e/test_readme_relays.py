#!/usr/bin/python3
"""Every block of README.md's "## Several relays (PostgreSQL)" section, run as printed.

The README marks each block of that section with a comment line just before its fence:
`<!-- relays: KIND -->`. A fenced block in the section without a marker fails the test.
The only text replaced is what the README says a reader replaces, under the blocks:
`db.example.net` (-> 127.0.0.1: the lab server's certificate names it), the proxy's and the
nodes' addresses 10.0.0.5/.11/.12 (-> 127.0.0.1) and the ports 443/465 (-> free high
ports); libpq's own variables (PGPORT, PGSSLROOTCERT, PGPASSFILE), which the README names,
point at the lab. Never a non-loopback address.

KIND
  sh           the init/grants/psql/copy block, with /bin/sh -e, as root, in a private mount
               namespace (unshare) where /var/lib is a lab folder holding relay/users.db (an
               "existing relay" with one login) — the real /var/lib is never written. PATH
               starts with the build's relay-admin; PSQLRC sets ON_ERROR_STOP so a GRANT that
               fails fails the block. Then: the login is in PostgreSQL, and each role holds
               what `grants` printed (checked by the nodes below, which use those roles).
  milter.conf  appended to both lab nodes' milter.conf (their users_db: a pg: file for role
               relay_milter; the block's state_db URI: role relay_milter, its password from
               PGPASSFILE, a file only the milter's user reads). The plugin uses role
               smtpd_reader (pg: file). Both nodes come from tests/e2e/nodelab.py.
  haproxy.cfg  the config as printed (addresses and ports replaced), run by a real HAProxy
               in front of the two nodes: mail through the STARTTLS and the implicit-TLS
               frontends is accepted and audited with the client's address (127.0.0.2);
               then node A's Postfix is stopped and the SMTP health check (smtpchk with
               check-send-proxy, inter 10s) takes it out: HAProxy logs relay1 DOWN and every
               session after that lands on node B.
  setup        the `relay-admin setup --proxy-protocol` command, in a private mount namespace
               where /etc/postfix is a copy of node A's configuration folder (node A
               stopped, so nothing is reloaded) and /etc/ssl/certs, /etc/ssl/private are lab
               folders with the node's certificate and key, and libsasl2's plugin folder
               holds the build's librelaydb.so; the upstream password on stdin.
               Then master.cf's relay services listen on the given address and carry
               smtpd_upstream_proxy_protocol=haproxy, and smtpd.conf names the conninfo file.
  nft          the rule, in place of the relay rule of the Firewall section's ruleset, checked
               with `nft -c -f` in a private network namespace (unshare -n); skipped, saying
               so, when nft is not installed.

Needs root; exits 77 (meson's "skipped") otherwise.
Run: RELAY_BUILD_ROOT=<build dir> /usr/bin/python3 tests/e2e/test_readme_relays.py [-v]
"""

import os
import re
import secrets
import shutil
import subprocess
import sys
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import haproxylab  # noqa: E402
import nodelab  # noqa: E402
import relaylab  # noqa: E402
from e2elib import auth, main, require_build, wait_delivered  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lib'))
import pglab  # noqa: E402

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..')
README = os.path.join(REPO, 'README.md')
SECTION = '## Several relays (PostgreSQL)'
MARK = re.compile(r'^( *)<!-- relays: (\S+) -->\n\1```\w*\n(.*?)^\1```$', re.M | re.S)
FENCE = re.compile(r'^ *```')
KINDS = ('sh', 'milter.conf', 'haproxy.cfg', 'setup', 'nft')
LOOP = relaylab.HOST   # 127.0.0.1
SASL_DIR = '/usr/lib/x86_64-linux-gnu/sasl2'


def section_text():
    with open(README) as f:
        text = f.read()
    start = text.index('\n' + SECTION + '\n') + 1
    end = text.find('\n## ', start + len(SECTION))
    return text[start:end if end >= 0 else len(text)]


def blocks():
    """{kind: text} of the marked blocks; raises if a fence has no marker or a kind
    appears twice."""
    text = section_text()
    found = {}
    for m in MARK.finditer(text):
        if m.group(2) in found:
            raise AssertionError('two blocks marked %s' % m.group(2))
        found[m.group(2)] = m.group(3)
    fences = sum(1 for line in text.splitlines() if FENCE.match(line))
    if fences != 2 * len(found):
        unmarked = [line for line in text.splitlines()
                    if FENCE.match(line) and line.strip() != '```']
        raise AssertionError('%d fenced blocks in %s, %d marked (<!-- relays: KIND --> '
                             'before each fence): %r' % (fences // 2, SECTION, len(found),
                                                         unmarked))
    return found


def firewall_ruleset():
    with open(README) as f:
        text = f.read()
    start = text.index('\n## Firewall (nftables)\n')
    m = re.search(r'```text\n(#!/usr/sbin/nft -f\n.*?)```', text[start:], re.S)
    return m.group(1)


def ns_run(mounts, argv, input=None, env=None, timeout=120):
    """argv in a private mount namespace where each (source, target) of `mounts` is bound."""
    script = 'set -e; mount --make-rprivate /; '
    script += ''.join('mount --bind "$%d" "$%d"; ' % (2 * i + 1, 2 * i + 2)
                      for i in range(len(mounts)))
    script += 'shift %d; exec "$@"' % (2 * len(mounts))
    args = [a for pair in mounts for a in pair]
    return subprocess.run(['unshare', '--mount', 'sh', '-c', script, 'ns'] + args + argv,
                          input=input, env=env, capture_output=True, timeout=timeout)


@unittest.skipUnless(haproxylab.haproxy_available(), 'haproxy is not installed')
class ReadmeRelays(unittest.TestCase):
    """The steps depend on each other and run in name order (test_1 ... test_5)."""

    @classmethod
    def setUpClass(cls):
        require_build('milter/relay-milter')
        why = nodelab.postgres_ready()
        if why:
            raise unittest.SkipTest(why)
        cls.blocks = blocks()
        cls.lab = relaylab.Lab()
        cls.pg = None
        cls.nodes = None
        cls.proxy = None
        try:
            cls._setup()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def _setup(cls):
        cls.dir = os.path.join(cls.lab.dir, 'readme-relays')
        os.makedirs(cls.dir)
        os.chmod(cls.dir, 0o755)
        cls.pg = pglab.PgLab(tls=True)
        cls.pw = {r: secrets.token_urlsafe(18)
                  for r in ('relayadmin', 'smtpd_reader', 'relay_milter')}
        for role, pw in cls.pw.items():
            cls.pg.create_role(role, password=pw)
        cls.pg.create_database('relay', owner='relayadmin')
        # the admin's passfile (root's), the milter's (only postfix, the milter's user, reads it)
        cls.admin_pass = cls.pg.write_passfile(os.path.join(cls.dir, 'admin.pgpass'),
                                               'relayadmin', cls.pw['relayadmin'])
        mdir = os.path.join(cls.dir, 'milter-home')
        os.makedirs(mdir, mode=0o700)
        cls.milter_pass = cls.pg.write_passfile(os.path.join(mdir, 'pgpass'), 'relay_milter',
                                                cls.pw['relay_milter'])
        uid, gid = relaylab._postfix_ids()
        for path in (mdir, cls.milter_pass):
            os.chown(path, uid, gid)
        cls.psqlrc = os.path.join(cls.dir, 'psqlrc')
        with open(cls.psqlrc, 'w') as f:
            f.write('\\set ON_ERROR_STOP on\n')
        cls.env = dict(os.environ, PGPORT=str(cls.pg.port), PGSSLROOTCERT=cls.pg.ca_cert,
                       PGPASSFILE=cls.admin_pass, PSQLRC=cls.psqlrc,
                       PATH=os.path.dirname(cls.lab.relay_admin) + ':' + os.environ['PATH'])

    @classmethod
    def tearDownClass(cls):
        if cls.proxy is not None:
            cls.proxy.stop()
        if cls.nodes is not None:
            cls.nodes.close()
        else:
            cls.lab.stop()
        if cls.pg is not None:
            cls.pg.close()

    # -- helpers
    def sub_db(self, text):
        self.assertNotIn('db.example.net:', text)   # a port there would be a new placeholder
        return text.replace('db.example.net', LOOP)

    def sql(self, text, user='relayadmin'):
        return self.pg.psql(text, db='relay', user=user)

    def admin(self, *args, input=None):
        uri = self.pg.uri('relayadmin', 'relay', sslmode='verify-full')
        p = subprocess.run([self.lab.relay_admin, '--db', uri, '--state-db', uri] + list(args),
                           input=input, capture_output=True, env=self.env, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stdout.decode()

    # -- the blocks
    def test_0_every_block_is_marked(self):
        self.assertEqual(sorted(self.blocks), sorted(KINDS))

    def test_1_sh_init_grants_copy(self):
        # an existing relay: /var/lib/relay/users.db with one login, in the namespace only
        varlib = os.path.join(self.dir, 'varlib')
        os.makedirs(os.path.join(varlib, 'relay'))
        old = os.path.join(varlib, 'relay', 'users.db')
        subprocess.run([self.lab.relay_admin, '--db', old, 'init'], check=True,
                       capture_output=True, timeout=60)
        ReadmeRelays.old_pw = secrets.token_urlsafe(24)
        subprocess.run([self.lab.relay_admin, '--db', old, 'user', 'add', 'oldtimer',
                        '--password-stdin', '--sender', 'oldtimer@example.org'],
                       input=(self.old_pw + '\n').encode(), check=True, capture_output=True,
                       timeout=60)
        script = os.path.join(self.dir, 'block-sh.sh')
        with open(script, 'w') as f:
            f.write(self.sub_db(self.blocks['sh']))
        p = ns_run([(varlib, '/var/lib')], ['/bin/sh', '-e', script], env=self.env)
        self.assertEqual(p.returncode, 0, (p.stdout.decode(), p.stderr.decode()))
        out = p.stdout.decode()
        self.assertIn('copied', out)
        self.assertEqual(self.sql("SELECT count(*) FROM logins WHERE name = 'oldtimer'"), '1')
        # the grants ran: the milter's role on the state, the plugin's on the secrets
        self.assertEqual(self.sql("SELECT has_table_privilege('relay_milter', 'reservations',"
                                  " 'INSERT'), has_column_privilege('smtpd_reader', 'logins',"
                                  " 'plain_secret', 'SELECT'), has_column_privilege("
                                  "'relay_milter', 'logins', 'plain_secret', 'SELECT')"),
                         't|t|f')

    def test_2_milter_conf_two_nodes(self):
        block = self.sub_db(self.blocks['milter.conf'])
        m = re.search(r'(?m)^state_db = (\S+)$', block)
        self.assertIsNotNone(m, block)
        plugin_db = self.pg.write_conninfo(os.path.join(self.dir, 'relaydb.conninfo'),
                                           'smtpd_reader', 'relay',
                                           password=self.pw['smtpd_reader'],
                                           sslmode='verify-full', owner=relaylab.POSTFIX_USER)
        milter_users = self.pg.write_conninfo(os.path.join(self.dir, 'milter-users.conninfo'),
                                              'relay_milter', 'relay',
                                              password=self.pw['relay_milter'],
                                              sslmode='verify-full',
                                              owner=relaylab.POSTFIX_USER)
        ReadmeRelays.plugin_db = plugin_db
        conf = ('users_db = %s\npolicy_refresh_ms = 0\nstate_flush_ms = 20\n%s'
                % (milter_users, block))
        # the milters inherit the environment: libpq's variables as the README says
        keep = dict(os.environ)
        # (HOME: the milter user's own, as under systemd; libpq looks for a client
        # certificate in ~/.postgresql, and root's is not the milter's to read)
        os.environ.update(PGPORT=str(self.pg.port), PGSSLROOTCERT=self.pg.ca_cert,
                          PGPASSFILE=self.milter_pass,
                          HOME=os.path.dirname(self.milter_pass))
        try:
            ReadmeRelays.nodes = nodelab.TwoNodes(self.lab, engine='external',
                                                  users_db=plugin_db, state_db=m.group(1),
                                                  milter_conf=conf, proxy=False)
        finally:
            os.environ.clear()
            os.environ.update(keep)
        for r in self.nodes.nodes:
            with open(r.milter.conf) as f:
                text = f.read()
            self.assertIn(block, text)
            self.assertEqual(len(re.findall(r'(?m)^state_db\s*=', text)), 1, text)
        ReadmeRelays.pw_carol = secrets.token_urlsafe(24)
        self.admin('user', 'add', 'carol', '--password-stdin', '--sender', 'carol@example.org',
                   input=(self.pw_carol + '\n').encode())

    def start_proxy(self):
        a, b = self.nodes.nodes
        self.fe = {'starttls': relaylab.free_port(), 'tls': relaylab.free_port()}
        while self.fe['tls'] == self.fe['starttls']:
            self.fe['tls'] = relaylab.free_port()
        text = self.blocks['haproxy.cfg']
        for old, new in (('10.0.0.11:443', '%s:%d' % (LOOP, a.port)),
                         ('10.0.0.12:443', '%s:%d' % (LOOP, b.port)),
                         ('10.0.0.11:465', '%s:%d' % (LOOP, a.tls_port)),
                         ('10.0.0.12:465', '%s:%d' % (LOOP, b.tls_port)),
                         ('bind :443', 'bind %s:%d' % (LOOP, self.fe['starttls'])),
                         ('bind :465', 'bind %s:%d' % (LOOP, self.fe['tls']))):
            self.assertIn(old, text)
            text = text.replace(old, new)
        self.assertNotRegex(text, r'10\.0\.0\.\d+:|bind :')
        folder = os.path.join(self.dir, 'haproxy')
        proxy = haproxylab.HAProxy(folder, [haproxylab.Frontend([], port=p, name=n)
                                            for n, p in self.fe.items()], lab=self.lab)
        with open(proxy.config, 'w') as f:
            f.write(text)
        ReadmeRelays.proxy = proxy.start()
        ReadmeRelays.fe_ports = self.fe

    def send(self, implicit, subject):
        ctx = self.nodes.nodes[0].client_context()
        port = self.fe_ports['tls' if implicit else 'starttls']
        s = (haproxylab.smtps(LOOP, port, ctx, source=relaylab.REMOTE) if implicit else
             haproxylab.smtp(LOOP, port, ctx, source=relaylab.REMOTE))
        with s:
            node = self.nodes.node_of(s)
            code, text = auth(s, 'PLAIN', 'carol', self.pw_carol)
            self.assertEqual(code, 235, (text, self.nodes.logs_tail()))
            s.sendmail('carol@example.org', ['rcpt@example.net'],
                       ('From: carol@example.org\r\nTo: rcpt@example.net\r\nSubject: %s\r\n'
                        '\r\nrelays\r\n' % subject).encode())
        return node

    def test_3_haproxy_cfg(self):
        self.start_proxy()
        subjects = []
        seen = set()
        for i in range(4):
            subject = 'relays-%d-%s' % (i, uuid.uuid4().hex)
            seen.add(self.send(implicit=bool(i % 2), subject=subject))
            subjects.append(subject)
        for subject in subjects:
            wait_delivered(self, self.nodes.up, subject)
        # audited in PostgreSQL (written by relay_milter) with the client, not the proxy
        deadline = time.monotonic() + 20
        while True:
            recs = self._audit('carol')
            if len(recs) >= 4 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.assertEqual(len(recs), 4, recs)
        self.assertEqual(set(recs), {relaylab.REMOTE})
        self.assertIn('node-a', seen, 'node A served before it was stopped')
        # the health check: node A's Postfix stops; HAProxy takes relay1 out
        a = self.nodes.nodes[0]
        a.stop()
        deadline = time.monotonic() + 75
        while 'relay_nodes/relay1 is DOWN' not in self.proxy.log():
            self.assertLess(time.monotonic(), deadline, self.proxy.log()[-3000:])
            time.sleep(0.5)
        for i in range(4):
            self.assertEqual(self.send(implicit=False, subject='after-%d' % i), 'node-b')

    def _audit(self, login):
        out = self.sql("SELECT client_addr FROM audit WHERE login = '%s' AND verdict ="
                       " 'accepted' ORDER BY id" % login)
        return [line for line in out.splitlines() if line]

    def test_4_setup(self):
        a = self.nodes.nodes[0]
        self.assertFalse(a.running())
        etc = os.path.join(self.dir, 'etc-postfix')
        shutil.copytree(a.config_dir, etc, symlinks=True)
        shutil.copy(self.plugin_db[len('pg:'):], os.path.join(etc, 'sasl', 'relaydb.conninfo'))
        relaylab._chown_postfix(os.path.join(etc, 'sasl', 'relaydb.conninfo'), 0o600)
        certs = os.path.join(self.dir, 'ssl-certs')
        private = os.path.join(self.dir, 'ssl-private')
        os.makedirs(certs)
        os.makedirs(private, mode=0o710)
        cert, key = a.cert, a.key
        shutil.copy(cert, os.path.join(certs, 'relay.pem'))
        shutil.copy(key, os.path.join(private, 'relay.key'))
        os.chmod(os.path.join(private, 'relay.key'), 0o600)
        port, tls_port = relaylab.free_port(), relaylab.free_port()
        text = self.blocks['setup']
        for old, new in (('10.0.0.11:443', '%s:%d' % (LOOP, port)),
                         ('10.0.0.11:465', '%s:%d' % (LOOP, tls_port))):
            self.assertIn(old, text)
            text = text.replace(old, new)
        script = os.path.join(self.dir, 'block-setup.sh')
        with open(script, 'w') as f:
            f.write(text)
        # the plugin as `meson install` / the Debian package puts it (the build's copy)
        plugins = os.path.join(self.dir, 'sasl2')
        os.makedirs(plugins)
        shutil.copy(os.path.join(self.lab.build_root, 'plugin', 'librelaydb.so'), plugins)
        p = ns_run([(etc, '/etc/postfix'), (certs, '/etc/ssl/certs'),
                    (private, '/etc/ssl/private'), (plugins, SASL_DIR)],
                   ['/bin/sh', '-e', script],
                   input=b'upstream-password\n', env=self.env)
        self.assertEqual(p.returncode, 0, (p.stdout.decode(), p.stderr.decode()))
        self.assertIn('only the proxy', (p.stdout + p.stderr).decode().lower())
        master = subprocess.run(['postconf', '-c', etc, '-P'], capture_output=True, text=True,
                                check=True).stdout
        for svc in ('%s:%d/inet' % (LOOP, port), '%s:%d/inet' % (LOOP, tls_port)):
            self.assertIn('%s/smtpd_upstream_proxy_protocol = haproxy' % svc, master)
        with open(os.path.join(etc, 'sasl', 'smtpd.conf')) as f:
            self.assertIn('relaydb_path: pg:/etc/postfix/sasl/relaydb.conninfo', f.read())

    def test_5_nft(self):
        nft = shutil.which('nft') or next((p for p in ('/usr/sbin/nft', '/sbin/nft')
                                           if os.path.exists(p)), None)
        if nft is None:
            self.skipTest('nft is not installed (Debian package nftables)')
        rule = self.blocks['nft'].rstrip('\n')
        rule = rule.replace('10.0.0.5', LOOP).replace('{ 443, 465 }', '{ %d, %d }'
                                                      % (relaylab.free_port(),
                                                         relaylab.free_port()))
        ruleset = firewall_ruleset()
        old = re.search(r'(?m)^ *tcp dport \{ 443, 465 \} ct state new accept.*$', ruleset)
        self.assertIsNotNone(old, ruleset)
        ruleset = ruleset.replace(old.group(0), rule)
        path = os.path.join(self.dir, 'nftables.conf')
        with open(path, 'w') as f:
            f.write(ruleset)
        p = subprocess.run(['unshare', '--net', nft, '-c', '-f', path], capture_output=True,
                           timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr.decode())


if __name__ == '__main__':
    sys.exit(main())
