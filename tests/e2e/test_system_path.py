#!/usr/bin/python3
"""End-to-end: the system path as far as this machine allows (issue 9, item 4).

What a new admin does on a Debian 12 server, with everything that would be global moved
into a lab folder:

* `meson install` of this build into a DESTDIR (relay-admin, relay-milter, the plugin in
  libsasl2's plugin folder below DESTDIR), and only those installed binaries are used;
* a Postfix configuration folder made from Debian's own defaults: main.cf from
  /usr/share/postfix/main.cf.debian, master.cf from the installed /etc/postfix/master.cf
  (Debian's; /usr/share/postfix/master.cf.dist if it is missing), with only
  queue_directory and data_directory pointed into the lab (`postfix check` must not touch
  the machine's queue);
* `relay-admin init`, then `relay-admin setup --milter unix:...` while relay-milter is not
  running: setup says loudly that it does not answer and how to start it, and
  `relay-admin check` fails on exactly that (and nothing else);
* relay-milter (the installed one) started: `check` passes (exit status 0), and setup run
  again has nothing to change and nothing to warn about.

The instance is not started: Debian's master.cf would need port 25 and its chroot set up by
Debian's init scripts; mail through setup's services is what the other e2e files test.

Needs root; exits 77 (meson's "skipped") otherwise. Bounded: no network, no rebuild.
Run: RELAY_BUILD_ROOT=<build dir> /usr/bin/python3 tests/e2e/test_system_path.py [-v]
"""

import json
import os
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import relaylab  # noqa: E402
from e2elib import main, require_build  # noqa: E402

DEBIAN_MAIN = '/usr/share/postfix/main.cf.debian'
DEBIAN_MASTER = ('/etc/postfix/master.cf', '/usr/share/postfix/master.cf.dist')


def run(argv, **kw):
    p = subprocess.run(argv, capture_output=True, timeout=120, **kw)
    return p.returncode, p.stdout.decode(errors='replace') + p.stderr.decode(errors='replace')


class _Relay:
    """What relaylab.Milter needs of a relay: the users database and relay-admin."""

    def __init__(self, lab, db):
        self.lab, self.db = lab, db

    def admin(self, *args):
        return relaylab._run([self.lab.relay_admin, '--db', self.db] + list(args))


class SystemPath(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        require_build('milter/relay-milter')
        master = next((m for m in DEBIAN_MASTER if os.path.exists(m)), None)
        if not os.path.exists(DEBIAN_MAIN) or master is None or not shutil.which('meson'):
            raise unittest.SkipTest('needs Debian\'s Postfix defaults and meson')
        cls.lab = relaylab.Lab()
        try:
            cls.setUpLab(master)
        except BaseException:
            cls.lab.stop()
            raise

    @classmethod
    def setUpLab(cls, master):
        lab = cls.lab
        cls.destdir = os.path.join(lab.dir, 'destdir')
        rc, out = run(['meson', 'install', '-C', lab.build_root, '--destdir', cls.destdir,
                       '--no-rebuild', '--quiet'])
        if rc != 0:
            raise AssertionError('meson install failed:\n' + out)
        found = {}
        for root, _, files in os.walk(cls.destdir):
            for name in ('relay-admin', 'relay-milter', 'librelaydb.so'):
                if name in files:
                    found[name] = os.path.join(root, name)
        assert len(found) == 3, 'meson install did not install %s' % found
        # only the installed copies from here on
        lab.relay_admin, lab.relay_milter = found['relay-admin'], found['relay-milter']
        lab.plugin_dir = os.path.dirname(found['librelaydb.so'])
        # the Postfix folder: Debian's defaults, the queue and data folders in the lab
        cls.base = os.path.join(lab.dir, 'system')
        cls.etc = os.path.join(cls.base, 'etc', 'postfix')
        queue, data = os.path.join(cls.base, 'queue'), os.path.join(cls.base, 'data')
        for d in (cls.etc, queue):
            os.makedirs(d)
        os.makedirs(data)
        shutil.chown(data, relaylab.POSTFIX_USER)
        for d in (cls.base, os.path.dirname(cls.etc), cls.etc, queue):
            os.chmod(d, 0o755)
        shutil.copy(DEBIAN_MAIN, os.path.join(cls.etc, 'main.cf'))
        shutil.copy(master, os.path.join(cls.etc, 'master.cf'))
        relaylab._run(['postconf', '-c', cls.etc, '-e', 'queue_directory=' + queue,
                       'data_directory=' + data])
        dbdir = os.path.join(cls.base, 'db')
        os.makedirs(dbdir)
        relaylab._chown_postfix(dbdir, 0o750)
        cls.db = os.path.join(dbdir, 'users.db')
        cls.relay = _Relay(lab, cls.db)
        cls.relay.admin('init')
        cls.milter = relaylab.Milter(lab, cls.relay)
        cls.milter.binary = lab.relay_milter
        port = relaylab.free_port()
        cls.service = '%s:%d/inet' % (relaylab.HOST, port)
        cls.setup_argv = [lab.relay_admin, '--db', cls.db, 'setup', '--postfix-config',
                          cls.etc, '--port', '%s:%d' % (relaylab.HOST, port),
                          '--sasl-plugin-dir', lab.plugin_dir, '--milter', cls.milter.sock]
        cls.setup_rc, cls.setup_out = run(cls.setup_argv)

    @classmethod
    def tearDownClass(cls):
        cls.lab.stop()

    def check(self):
        """relay-admin --json check -> (exit status, the parsed report, its text)."""
        p = subprocess.run([self.lab.relay_admin, '--db', self.db, '--state-db',
                            self.milter.state_db, '--json', 'check', '--postfix-config',
                            self.etc], capture_output=True, timeout=120)
        out = p.stdout.decode(errors='replace') + p.stderr.decode(errors='replace')
        return p.returncode, json.loads(p.stdout), out

    @staticmethod
    def failed(result):
        return sorted(c['id'] for c in result['checks'] if c['status'] == 'fail')

    def test_a_setup_on_debian_defaults_says_how_to_start_the_milter(self):
        self.assertEqual(self.setup_rc, 0, self.setup_out)
        self.assertIn('relay-milter does not answer on ' + self.milter.sock, self.setup_out)
        self.assertIn('systemctl enable --now relay-milter', self.setup_out)
        self.assertNotIn('postfix check complains', self.setup_out)
        # registered all the same: with tempfail nothing passes while it is down
        svc = relaylab._run(['postconf', '-c', self.etc, '-M']).stdout.decode()
        self.assertIn('smtpd_milters=' + self.milter.sock, svc)
        self.assertIn('milter_default_action=tempfail', svc)

    def test_b_check_fails_until_the_milter_answers(self):
        rc, result, out = self.check()
        self.assertNotEqual(rc, 0, out)
        self.assertEqual([i.split('@')[0] for i in self.failed(result)], ['milter'], out)

    def test_c_check_passes_once_it_runs(self):
        self.milter.start()
        rc, result, out = self.check()
        self.assertEqual(self.failed(result), [], out)
        self.assertEqual(rc, 0, out)
        # and setup, run again, has nothing to change and nothing to warn about
        rc, out = run(self.setup_argv)
        self.assertEqual(rc, 0, out)
        self.assertIn('nothing to change', out)
        self.assertNotIn('does not answer', out)

    def test_d_check_flags_what_an_older_setup_did_not_write(self):
        """An instance set up before ETRN was refused and remote clients' headers fixed up."""
        names = ('smtpd_etrn_restrictions', 'local_header_rewrite_clients')
        try:
            relaylab._run(['postconf', '-c', self.etc, '-PX'] +
                          ['%s/%s' % (self.service, n) for n in names])
            rc, result, out = self.check()
            warned = sorted(c['id'] for c in result['checks'] if c['status'] == 'warn')
            for cid in ('etrn-refused', 'remote-headers'):
                self.assertIn('%s@%s' % (cid, self.service), warned, out)
        finally:
            rc, out = run(self.setup_argv)
        self.assertEqual(rc, 0, out)
        rc, result, out = self.check()
        self.assertFalse([c for c in result['checks'] if c['id'].split('@')[0] in
                          ('etrn-refused', 'remote-headers') and c['status'] != 'ok'], out)


if __name__ == '__main__':
    sys.exit(main())
