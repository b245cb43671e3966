"""test_deb — build the Debian packages, lint them, install them, use them, purge them.

Suite 'package', root only (exit 77 otherwise), on the machine the suite runs on:

1. copies the source tree (tracked and new files, no build folders) to a temporary folder
   and runs `dpkg-buildpackage -us -uc -b` there (the package builds with -Dtests=false:
   one compile), so the worktree stays clean;
2. `lintian --fail-on error,warning` on the .changes (both packages and the buildinfo);
3. `apt-get install ./smtp-relay_*.deb ./libsasl2-modules-relaydb_*.deb`, with a
   policy-rc.d that keeps the postinst from starting the service, then checks what the
   packages promise: files where Debian wants them, /etc/relay/milter.conf a conffile,
   the relay-milter system user and its state, the users database (postinst's
   `relay-admin init`), and Postfix's files byte for byte unchanged (Policy 10.7.4);
4. the installed programs at work: `systemd-analyze verify` on the installed unit (man
   pages checked too), relay-milter -h/-V/-n, the installed milter started as the unit
   would run it (user relay-milter, group postfix, /etc/relay/milter.conf) until its
   socket answers; then a private Postfix relay (tests/e2e/relaylab.py, Lab(installed=
   '/usr')) set up by the installed relay-admin with no --sasl-plugin-dir, so its smtpd
   has no SASL_PATH and loads relaydb from libsasl2's own folder: a login with the right
   password sends through the installed milter to the upstream, a wrong one gets 535;
5. `dpkg --purge` of both packages, checks that nothing of theirs is left, and removes
   the relay-milter user and group if this test made them: the machine is as before.

Why purge, and why alone (is_parallel : false): libsasl2 loads every plugin on its path
and calls every one named relaydb; the copy in its own folder is loaded last, put first,
and answers first. setup puts the build's plugin first in SASL_PATH but keeps the system
folder after it (for the mechanism plugins), so while a relaydb is installed there, an
smtpd would authenticate through the installed copy, not the build's. relaylab therefore
narrows SASL_PATH to a lab folder in that case; test_4_build_plugin_stays_the_only_relaydb
checks it in the smtpd's memory map while these packages are installed. Tests that call
setup themselves bypass relaylab's relay: hence alone, and the purge.

A machine that already has smtp-relay installed (a package, or `meson install` into
libsasl2's folder) is skipped: this test never replaces or purges an install it did not
make.
"""

import glob
import grp
import hashlib
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'e2e'))
import e2elib  # noqa: E402
import relaylab  # noqa: E402

SRC = os.path.abspath(os.environ.get('RELAY_SOURCE_ROOT') or os.path.join(HERE, '..', '..'))
PACKAGES = ('smtp-relay', 'libsasl2-modules-relaydb')
MULTIARCH = subprocess.run(['dpkg-architecture', '-qDEB_HOST_MULTIARCH'], capture_output=True,
                           text=True).stdout.strip() or 'x86_64-linux-gnu'
PLUGIN = '/usr/lib/%s/sasl2/librelaydb.so' % MULTIARCH
UNIT = '/lib/systemd/system/relay-milter.service'
POLICY_RC = '/usr/sbin/policy-rc.d'
TOOLS = {'dpkg-buildpackage': 'dpkg-dev', 'dh': 'debhelper', 'lintian': 'lintian',
         'systemd-analyze': 'systemd', 'setpriv': 'util-linux', 'man': 'man-db'}


def run(argv, check=True, timeout=300, **kw):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise AssertionError('%s: exit %d\n%s%s' % (' '.join(argv), p.returncode,
                                                    p.stdout[-4000:], p.stderr[-4000:]))
    return p


def installed(pkg):
    p = run(['dpkg-query', '-W', '-f=${db:Status-Status}', pkg], check=False)
    return p.returncode == 0 and p.stdout.strip() not in ('', 'not-installed', 'config-files')


def already_there():
    """Why this machine already has smtp-relay (then we skip), or None."""
    for pkg in PACKAGES:
        p = run(['dpkg-query', '-W', '-f=${db:Status-Status}', pkg], check=False)
        if p.returncode == 0 and p.stdout.strip() not in ('', 'not-installed'):
            return 'package %s is %s' % (pkg, p.stdout.strip())
    for path in (PLUGIN, '/usr/sbin/relay-admin', '/usr/sbin/relay-milter', UNIT):
        if os.path.lexists(path):
            return '%s exists (meson install?)' % path
    return None


def tree_digest(folder):
    """sha256 of every file under `folder` (path -> digest), to prove nothing changed."""
    out = {}
    for d, _, files in os.walk(folder):
        for f in files:
            path = os.path.join(d, f)
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, 'rb') as fh:
                    out[path] = hashlib.sha256(fh.read()).hexdigest()
    return out


def copy_source(dst):
    """The tracked and new (not ignored) files of the tree: no build folders, no .git."""
    p = run(['git', '-C', SRC, 'ls-files', '-z', '-c', '-o', '--exclude-standard'], check=False)
    names = [n for n in p.stdout.split('\0') if n] if p.returncode == 0 else None
    if not names:   # not a git checkout: everything but build folders
        shutil.copytree(SRC, dst, ignore=lambda d, fs: [
            f for f in fs if f.startswith(('build', '.git')) or f == '__pycache__'])
        return
    for n in names:
        if n.startswith('build') or not os.path.isfile(os.path.join(SRC, n)):
            continue
        os.makedirs(os.path.join(dst, os.path.dirname(n)), exist_ok=True)
        shutil.copy2(os.path.join(SRC, n), os.path.join(dst, n))


class DebianPackage(unittest.TestCase):
    """One build and one install for the whole class; the purge is a test of its own and
    also runs, whatever happened, in tearDownClass."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix='relay-deb-')
        os.chmod(cls.tmp, 0o755)
        cls.made_user = cls.made_group = cls.made_policy = cls.made_run = False
        cls.purged = False
        cls.installed = False
        try:
            cls._build_and_install()
        except BaseException:
            cls._restore()
            raise

    @classmethod
    def _build_and_install(cls):
        src = os.path.join(cls.tmp, 'smtp-relay')
        copy_source(src)
        env = dict(os.environ, DEB_BUILD_OPTIONS='parallel=2')
        p = run(['nice', '-n', '10', 'dpkg-buildpackage', '-us', '-uc', '-b'], cwd=src,
                env=env, timeout=540, check=False)
        if p.returncode != 0:
            raise AssertionError('dpkg-buildpackage failed:\n' + (p.stdout + p.stderr)[-6000:])
        cls.changes = glob.glob(os.path.join(cls.tmp, 'smtp-relay_*.changes'))[0]
        cls.debs = {pkg: glob.glob(os.path.join(cls.tmp, '%s_*.deb' % pkg))[0]
                    for pkg in PACKAGES}
        cls.postfix_before = tree_digest('/etc/postfix')
        cls.made_user = not _has_user('relay-milter')
        cls.made_group = not _has_group('relay-milter')
        cls.postfix_groups = _groups_of('postfix')
        if not os.path.lexists(POLICY_RC):
            with open(POLICY_RC, 'w') as f:
                f.write('#!/bin/sh\n# test_deb.py: no service starts while it installs\nexit 101\n')
            os.chmod(POLICY_RC, 0o755)
            cls.made_policy = True
        env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
        cls.installed = True   # from here on, tearDownClass purges
        p = run(['apt-get', 'install', '-y', '-q', '--no-install-recommends']
                + ['./' + os.path.basename(cls.debs[p]) for p in PACKAGES],
                cwd=cls.tmp, env=env, check=False)
        cls.install_log = p.stdout + p.stderr
        if p.returncode != 0:
            raise AssertionError('apt-get install failed:\n' + cls.install_log[-6000:])

    @classmethod
    def tearDownClass(cls):
        cls._restore()

    @classmethod
    def _restore(cls):
        if cls.installed and not cls.purged:
            run(['dpkg', '--purge'] + list(PACKAGES), check=False)
            cls.purged = True
        if cls.made_run:
            shutil.rmtree('/run/relay-milter', ignore_errors=True)
        if cls.made_user and _has_user('relay-milter'):
            run(['userdel', 'relay-milter'], check=False)
        if cls.made_group and _has_group('relay-milter'):
            run(['groupdel', 'relay-milter'], check=False)
        if cls.made_policy:
            os.unlink(POLICY_RC)
            cls.made_policy = False
        shutil.rmtree(cls.tmp, ignore_errors=True)

    # ---- 2. lintian
    def test_1_lintian(self):
        p = run(['lintian', '--fail-on', 'error,warning', self.changes], check=False,
                timeout=300)
        print(p.stdout.strip() or 'lintian: no tags above info')
        self.assertEqual(p.returncode, 0, 'lintian:\n' + p.stdout + p.stderr)

    # ---- 3. what the packages put on the machine
    def test_2_files(self):
        owner = {path: run(['dpkg-query', '-S', path]).stdout.split(':')[0]
                 for path in (PLUGIN, UNIT, '/usr/sbin/relay-admin', '/usr/sbin/relay-milter',
                              '/usr/share/man/man8/relay-milter.8.gz',
                              '/usr/share/man/man8/relaydb.8.gz', '/etc/relay/milter.conf')}
        self.assertEqual(owner.pop(PLUGIN), 'libsasl2-modules-relaydb')
        self.assertEqual(owner.pop('/usr/share/man/man8/relaydb.8.gz'),
                         'libsasl2-modules-relaydb')
        self.assertEqual(set(owner.values()), {'smtp-relay'}, owner)
        conffiles = run(['dpkg-query', '-W', '-f=${Conffiles}', 'smtp-relay']).stdout
        self.assertIn('/etc/relay/milter.conf', conffiles)
        self.assertEqual(run(['/usr/sbin/relay-milter', '-n', '-c', '/etc/relay/milter.conf'])
                         .returncode, 0)

    def test_2_user_and_state(self):
        pw = pwd.getpwnam('relay-milter')
        self.assertLess(pw.pw_uid, 1000)
        self.assertEqual(pw.pw_shell, '/usr/sbin/nologin')
        self.assertIn('relay-milter', _groups_of('postfix'))   # smtpd reaches the socket
        db = os.stat('/var/lib/relay/users.db')
        self.assertEqual((db.st_uid, db.st_gid, db.st_mode & 0o777),
                         (0, grp.getgrnam('postfix').gr_gid, 0o640))
        st = os.stat('/var/lib/relay/state')
        self.assertEqual(st.st_uid, pw.pw_uid)
        self.assertTrue(os.path.exists('/var/lib/relay/state/state.db'))

    def test_2_postfix_files_untouched(self):
        self.assertEqual(tree_digest('/etc/postfix'), self.postfix_before,
                         'the packages changed Postfix\'s files (Debian Policy 10.7.4)')

    # ---- 4. the installed programs
    def test_3_unit_verifies(self):
        p = run(['systemd-analyze', 'verify', '--man=yes', UNIT], check=False, cwd='/')
        self.assertEqual((p.returncode, (p.stdout + p.stderr).strip()), (0, ''))

    def test_3_milter_runs_as_the_unit_would(self):
        self.assertEqual(run(['/usr/sbin/relay-milter', '-h']).returncode, 0)
        self.assertIn('relay-milter', run(['/usr/sbin/relay-milter', '-V']).stdout)
        sock = '/run/relay-milter/milter.sock'
        if not os.path.isdir('/run/relay-milter'):
            # what RuntimeDirectory=relay-milter, RuntimeDirectoryMode=0750 make
            os.mkdir('/run/relay-milter', 0o750)
            pw = pwd.getpwnam('relay-milter')
            os.chown('/run/relay-milter', pw.pw_uid, pw.pw_gid)
            type(self).made_run = True
        else:
            self.skipTest('/run/relay-milter exists: a milter may be running here')
        log = open(os.path.join(self.tmp, 'milter.log'), 'wb')
        proc = subprocess.Popen(
            ['setpriv', '--reuid=relay-milter', '--regid=relay-milter', '--groups=postfix',
             '--inh-caps=-all', '--bounding-set=-all', '--no-new-privs', '--',
             '/usr/sbin/relay-milter', '-f', '-c', '/etc/relay/milter.conf'],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            deadline = time.monotonic() + 15
            while not relaylab.unix_socket_accepts(sock):
                if proc.poll() is not None or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            self.assertTrue(relaylab.unix_socket_accepts(sock), 'the installed milter does not answer:\n' +
                            _tail(log.name))
            st = os.stat(sock)
            self.assertEqual(st.st_uid, pwd.getpwnam('relay-milter').pw_uid)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
            log.close()
        self.assertEqual(proc.returncode, 0, _tail(log.name))

    def test_4_private_relay_with_the_installed_programs(self):
        with relaylab.Lab(installed='/usr') as lab:
            up = lab.upstream()
            relay = lab.relay(up, milter=True)
            self.assertEqual(relay.milter.binary, '/usr/sbin/relay-milter')
            env = relay.postconf('-h', 'import_environment')
            self.assertNotIn('SASL_PATH', env)   # so libsasl2 uses only its own folder
            pw = relay.add_user('pkg@example.org')
            with relay.smtp() as s:
                self.assertEqual(e2elib.auth(s, 'PLAIN', 'pkg@example.org', 'wrong')[0], 535)
            with relay.smtp() as s:
                self.assertEqual(e2elib.auth(s, 'PLAIN', 'pkg@example.org', pw)[0], 235)
                s.sendmail('pkg@example.org', ['to@example.net'],
                           b'From: pkg@example.org\r\nSubject: from-the-package\r\n\r\nhi\r\n')
            e2elib.wait_delivered(self, up, 'from-the-package')
            self.assertRegex(relay.log(), r'sasl_method=PLAIN, sasl_username=pkg@example.org')

    def test_4_build_plugin_stays_the_only_relaydb(self):
        # Other suites run the build's plugin; with the package's copy in libsasl2's folder
        # their smtpd must still load only the build's (relaylab isolates SASL_PATH).
        build = os.environ.get('RELAY_BUILD_ROOT') or relaylab.default_build_root()
        plugin = os.path.realpath(os.path.join(build, 'plugin', 'librelaydb.so'))
        if not os.path.exists(plugin):
            self.skipTest('no build plugin at %s' % plugin)
        with relaylab.Lab(build_root=build) as lab:
            up = lab.upstream()
            relay = lab.relay(up)
            pw = relay.add_user('build@example.org')
            with relay.smtp() as s:
                self.assertEqual(e2elib.auth(s, 'PLAIN', 'build@example.org', pw)[0], 235)
            maps = ''
            for pid in relaylab._children(relay.master_pid()):
                try:
                    with open('/proc/%d/cmdline' % pid, 'rb') as f:
                        if b'smtpd' not in f.read():
                            continue
                    with open('/proc/%d/maps' % pid) as f:
                        maps += f.read()
                except OSError:
                    continue
            # (assertTrue: the maps are too long for a failure message)
            self.assertTrue(plugin in maps, 'no smtpd of the relay loaded ' + plugin)
            self.assertTrue(PLUGIN not in maps, 'smtpd loaded the packaged %s too' % PLUGIN)

    # ---- 5. purge
    def test_5_purge_leaves_nothing(self):
        run(['dpkg', '--purge'] + list(PACKAGES))
        type(self).purged = True
        for pkg in PACKAGES:
            self.assertFalse(installed(pkg), pkg)
        for path in (PLUGIN, UNIT, '/usr/sbin/relay-admin', '/usr/sbin/relay-milter',
                     '/etc/relay', '/var/lib/relay'):
            self.assertFalse(os.path.lexists(path), path)


def _tail(path, n=2000):
    with open(path, errors='replace') as f:
        return f.read()[-n:]


def _has_user(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def _has_group(name):
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


def _groups_of(user):
    return run(['id', '-nG', user], check=False).stdout.split()


def main():
    if os.geteuid() != 0:
        print('SKIP: the package test needs root (apt-get install, dpkg --purge)')
        return e2elib.SKIP
    why = relaylab.need_root()
    if why:
        print('SKIP: %s' % why)
        return e2elib.SKIP
    why = already_there()
    if why:
        print('SKIP: smtp-relay is already installed on this machine (%s); this test '
              'installs and purges the packages, so it never runs over an install it did '
              'not make' % why)
        return e2elib.SKIP
    missing = ['%s (apt-get install %s)' % (t, pkg) for t, pkg in TOOLS.items()
               if shutil.which(t) is None]
    if missing:
        print('FAIL: missing tools, run scripts/install-deps: ' + ', '.join(missing))
        return 1
    prog = unittest.main(exit=False, verbosity=2)
    return 0 if prog.result.wasSuccessful() else 1


if __name__ == '__main__':
    sys.exit(main())
