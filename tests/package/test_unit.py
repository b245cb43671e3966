"""test_unit — the installed relay-milter.service, checked offline (suite 'package').

`meson install` into a DESTDIR, then `systemd-analyze verify` on the unit as installed
(no systemd as PID 1 is needed: --root makes it read the DESTDIR; the few targets every
service pulls in and /bin/kill, named by ExecReload=, are copied in beside it). verify
exits 0 even for a misspelt key or a bad value and only prints a warning, so anything it
prints fails the test too; two deliberately broken units prove that the check bites.
Then the properties the issue asks for: ordered before both postfix.service and Debian's
postfix@-.service, a sandbox whose `systemd-analyze security --offline` exposure stays at
or below 2.0, and writable folders that match what milter.conf uses.

Usage: test_unit.py BUILD_DIR  (no root needed; exit 77 without systemd-analyze)
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

BUILD = os.path.abspath(sys.argv.pop(1)) if len(sys.argv) > 1 else None
UNIT = 'relay-milter.service'
# what every service is ordered against by default (DefaultDependencies=yes) or names
BASE_UNITS = ('sysinit.target', 'basic.target', 'shutdown.target', 'network.target',
              'multi-user.target', 'sockets.target', 'timers.target', 'paths.target',
              'slices.target', 'local-fs.target', 'swap.target')
# `systemd-analyze security` scale: 0 (locked down) .. 100; 20 is "1.9 OK" and below.
MAX_EXPOSURE = 20


def run(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, **kw)


def unit_values(path, key):
    """Every value of `key` in the unit file (systemd allows repeats), split on spaces."""
    out = []
    with open(path) as f:
        for line in f:
            m = re.match(r'\s*%s\s*=\s*(.*)$' % re.escape(key), line)
            if m:
                out += m.group(1).split()
    return out


def verify(root, unit):
    """(ok, text): systemd-analyze verify on `unit` inside `root`; ok only if it exits 0
    and prints nothing (warnings about unknown keys or bad values come with status 0)."""
    p = run(['systemd-analyze', 'verify', '--man=no', '--root=' + root, unit], cwd=root)
    text = (p.stdout + p.stderr).strip()
    return p.returncode == 0 and text == '', text


class InstalledUnit(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix='relay-unit-')
        cls.root = os.path.join(cls.tmp, 'root')
        p = run(['meson', 'install', '-C', BUILD, '--no-rebuild', '--quiet',
                 '--destdir', cls.root])
        if p.returncode != 0:
            raise AssertionError('meson install failed:\n' + p.stdout + p.stderr)
        found = [os.path.join(d, UNIT) for d, _, files in os.walk(cls.root) if UNIT in files]
        if len(found) != 1:
            raise AssertionError('installed %s: %r' % (UNIT, found))
        cls.unit = found[0]
        os.makedirs(os.path.join(cls.root, 'lib/systemd/system'), exist_ok=True)
        for u in BASE_UNITS:
            if os.path.exists('/lib/systemd/system/' + u):
                shutil.copy('/lib/systemd/system/' + u, os.path.join(cls.root, 'lib/systemd/system'))
        os.makedirs(os.path.join(cls.root, 'bin'), exist_ok=True)
        shutil.copy('/bin/kill', os.path.join(cls.root, 'bin'))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def broken_copy(self, name, edit=None, drop=None):
        """A copy of the DESTDIR with the unit edited or a file removed -> (root, unit)."""
        root = os.path.join(self.tmp, name)
        shutil.copytree(self.root, root, symlinks=True)
        unit = root + self.unit[len(self.root):]
        if edit:
            with open(unit) as f:
                text = f.read()
            new = edit(text)
            self.assertNotEqual(new, text, 'the edit changed nothing')
            with open(unit, 'w') as f:
                f.write(new)
        if drop:
            os.unlink(root + drop)
        return root, unit

    def test_verify_clean(self):
        ok, text = verify(self.root, self.unit)
        self.assertTrue(ok, 'systemd-analyze verify:\n' + text)

    def test_verify_catches_a_missing_binary(self):
        exe = unit_values(self.unit, 'ExecStart')[0]
        root, unit = self.broken_copy('no-binary', drop=exe)
        ok, text = verify(root, unit)
        self.assertFalse(ok)
        self.assertIn('not executable', text)

    def test_verify_catches_a_misspelt_key_and_a_bad_value(self):
        root, unit = self.broken_copy('typo', edit=lambda t: t.replace(
            'NoNewPrivileges=yes', 'NoNewPrivilege=yes').replace(
            'ProtectSystem=strict', 'ProtectSystem=strikt'))
        ok, text = verify(root, unit)
        self.assertFalse(ok)
        self.assertIn('NoNewPrivilege', text)
        self.assertIn('strikt', text)

    def test_documentation_pages_installed(self):
        for doc in unit_values(self.unit, 'Documentation'):
            m = re.fullmatch(r'man:([\w.-]+)\((\d)\)', doc)
            self.assertTrue(m, doc)
            pages = [f for d, _, fs in os.walk(self.root) for f in fs
                     if f == '%s.%s' % m.groups() and d.endswith('man' + m.group(2))]
            self.assertTrue(pages, '%s is not installed' % doc)

    def test_ordered_before_postfix_on_debian(self):
        # Debian 12 runs the daemon as postfix@-.service; postfix.service only wraps it
        before = unit_values(self.unit, 'Before')
        self.assertIn('postfix@-.service', before)
        self.assertIn('postfix.service', before)

    def test_sandbox_exposure(self):
        p = run(['systemd-analyze', 'security', '--offline=yes', '--root=' + self.root,
                 '--threshold=%d' % MAX_EXPOSURE, self.unit], cwd=self.root)
        level = re.search(r'Overall exposure level for \S+: ([\d.]+)', p.stdout)
        print('exposure level: %s (at most %.1f allowed)' % (
            level.group(1) if level else '?', MAX_EXPOSURE / 10))
        self.assertEqual(p.returncode, 0, p.stdout[-3000:] + p.stderr)
        for key, want in (('NoNewPrivileges', 'yes'), ('ProtectSystem', 'strict'),
                          ('PrivateTmp', 'yes'), ('ProtectHome', 'yes')):
            self.assertEqual(unit_values(self.unit, key), [want], key)
        with open(self.unit) as f:   # present, and empty: no capability at all
            self.assertRegex(f.read(), r'(?m)^CapabilityBoundingSet=$')
        self.assertIn('@system-service', unit_values(self.unit, 'SystemCallFilter'))

    def test_sandbox_leaves_what_the_milter_uses(self):
        # the example configuration's paths must be writable under ProtectSystem=strict
        conf = {}
        src = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..',
                           'contrib', 'milter.conf')
        with open(src) as f:
            for line in f:
                m = re.match(r'\s*(\w+)\s*=\s*(\S+)', line)
                if m:
                    conf[m.group(1)] = m.group(2)
        state_dirs = ['/var/lib/' + d for d in unit_values(self.unit, 'StateDirectory')]
        run_dirs = ['/run/' + d for d in unit_values(self.unit, 'RuntimeDirectory')]
        self.assertIn(os.path.dirname(conf['state_db']), state_dirs)
        self.assertTrue(conf['socket'].startswith('unix:'))
        self.assertIn(os.path.dirname(conf['socket'][5:]), run_dirs)
        # a socket may also be inet: or inet6:, and syslog needs AF_UNIX
        self.assertEqual(sorted(unit_values(self.unit, 'RestrictAddressFamilies')),
                         ['AF_INET', 'AF_INET6', 'AF_UNIX'])
        # systemd sets the user; a `user` line in the configuration would need capabilities
        self.assertNotIn('user', conf)


if __name__ == '__main__':
    if BUILD is None:
        print('usage: test_unit.py BUILD_DIR', file=sys.stderr)
        sys.exit(2)
    if shutil.which('systemd-analyze') is None:
        print('SKIP: systemd-analyze is not installed (apt-get install systemd)')
        sys.exit(77)
    prog = unittest.main(exit=False, verbosity=2)
    sys.exit(0 if prog.result.wasSuccessful() else 1)
