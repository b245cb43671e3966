"""test_syscalls — relay-milter's system calls stay inside its unit's SystemCallFilter.

The unit (contrib/relay-milter.service.in) allows @system-service minus @privileged and
@resources and answers anything else with EPERM: a call outside would make the milter
fail under systemd only, which no other test runs. So: relay-milter from the build, as an
unprivileged user like the unit's (root drops to nobody with setpriv), under `strace -f`,
through a start, an accepted message and a refused one over the real milter protocol
(tests/milter/milterproto.py), a SIGUSR1 reload and a SIGTERM stop; then every system call
seen must be in the set `systemd-analyze syscall-filter` gives for the unit's lines.

Usage: test_syscalls.py BUILD_DIR UNIT_FILE  (exit 77 without strace or systemd-analyze)
"""

import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'milter'))
sys.path.insert(0, os.path.join(HERE, '..', 'e2e'))
from milterproto import MilterClient  # noqa: E402
from relaylab import unix_socket_accepts  # noqa: E402

BUILD = UNIT = None
MACROS = {'{tls_version}': 'TLSv1.3', '{cipher}': 'TLS_AES_256_GCM_SHA384',
          '{client_addr}': '192.0.2.10', '{auth_authen}': 'sys@example.org'}


def syscall_set(spec, cache={}):
    """The system calls in a filter item (@group, recursively, or one name)."""
    if not spec.startswith('@'):
        return {spec}
    if spec not in cache:
        out = subprocess.run(['systemd-analyze', 'syscall-filter', spec], capture_output=True,
                             text=True, check=True).stdout
        names = set()
        for line in out.splitlines()[1:]:
            t = line.strip()
            if t and not t.startswith('#'):
                names |= syscall_set(t)
        cache[spec] = names
    return cache[spec]


def unit_filter(path):
    """SystemCallFilter= lines of the unit -> the allowed set (allow lists, then ~ denies)."""
    allow, deny = set(), set()
    with open(path) as f:
        for line in f:
            m = re.match(r'\s*SystemCallFilter\s*=\s*(.*)$', line)
            if not m:
                continue
            words = m.group(1).split()
            if words and words[0].startswith('~'):
                words[0] = words[0][1:]
                for w in words:
                    deny |= syscall_set(w)
            else:
                for w in words:
                    allow |= syscall_set(w)
    return allow - deny


def _child(pid):
    """The first child of `pid` (strace's tracee), or None."""
    try:
        with open('/proc/%d/task/%d/children' % (pid, pid)) as f:
            kids = f.read().split()
    except OSError:
        return None
    return int(kids[0]) if kids else None


def _alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def _stop(milter, strace):
    """SIGTERM to the milter; strace exits with its status. Whatever still runs after
    30 s (or a milter strace left behind) is killed by pid."""
    if milter and _alive(milter):
        os.kill(milter, signal.SIGTERM)
    try:
        strace.wait(30)
    except subprocess.TimeoutExpired:
        strace.kill()
        strace.wait(5)
    deadline = time.monotonic() + 10
    while milter and _alive(milter) and time.monotonic() < deadline:
        time.sleep(0.1)
    if milter and _alive(milter):
        os.kill(milter, signal.SIGKILL)


class MilterSyscalls(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix='relay-sys-')
        self.as_user = []
        if os.geteuid() == 0:
            # like User=relay-milter: no root, so no root-only paths (SQLite chowns its
            # journals only as root)
            nobody = pwd.getpwnam('nobody')
            os.chown(self.tmp, nobody.pw_uid, nobody.pw_gid)
            self.as_user = ['setpriv', '--reuid=%d' % nobody.pw_uid,
                            '--regid=%d' % nobody.pw_gid, '--clear-groups', '--']
        os.chmod(self.tmp, 0o755)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def admin(self, *args, input=None):
        p = subprocess.run(self.as_user + [os.path.join(BUILD, 'admin', 'relay-admin'),
                                           '--db', self.db, '--state-db', self.state_db]
                           + list(args), input=input, capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_inside_the_filter(self):
        self.db = os.path.join(self.tmp, 'users.db')
        self.state_db = os.path.join(self.tmp, 'state', 'state.db')
        self.admin('init')
        self.admin('user', 'add', 'sys@example.org', '--password-stdin',
                   input='a-long-enough-password-for-the-test-1\n')
        sock = os.path.join(self.tmp, 'milter.sock')
        conf = os.path.join(self.tmp, 'milter.conf')
        with open(conf, 'w') as f:
            f.write('socket = unix:%s\nusers_db = %s\nstate_db = %s\nlog = stderr\n'
                    'state_flush_ms = 10\n' % (sock, self.db, self.state_db))
        trace = os.path.join(self.tmp, 'trace')
        log = open(os.path.join(self.tmp, 'milter.log'), 'wb')
        proc = subprocess.Popen(
            self.as_user + ['strace', '-f', '-qq', '-o', trace,
                            os.path.join(BUILD, 'milter', 'relay-milter'), '-f', '-c', conf],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        milter = None   # signals go to the milter (strace's child), not to strace
        try:
            deadline = time.monotonic() + 30
            while not unix_socket_accepts(sock) and proc.poll() is None and time.monotonic() < deadline:
                milter = milter or _child(proc.pid)
                time.sleep(0.05)
            milter = milter or _child(proc.pid)
            self.assertTrue(unix_socket_accepts(sock), 'the milter did not start')
            self.assertIsNotNone(milter)
            codes = []
            for sender in ('<sys@example.org>', '<other@bank.example>'):
                with MilterClient(sock) as m:
                    m.negotiate()
                    r = m.mail(sender, macros=MACROS)
                    codes.append(r.code)
                    if r.code == 'c':
                        m.rcpt('<to@dest.example>')
                        codes.append(m.message([('From', sender.strip('<>')),
                                                ('Subject', 'x')],
                                               eom_macros={'i': 'QSYS'}).code)
            self.assertEqual(codes[:2], ['c', 'c'])   # accepted at MAIL and end of message
            self.assertNotEqual(codes[2], 'c')        # the foreign sender refused
            os.kill(milter, signal.SIGUSR1)
            time.sleep(0.5)
        finally:
            _stop(milter, proc)
            log.close()
        with open(os.path.join(self.tmp, 'milter.log'), errors='replace') as f:
            milter_log = f.read()
        self.assertEqual(proc.returncode, 0, milter_log[-2000:])   # strace: the milter's
        self.assertIn('configuration reloaded', milter_log)
        used = set()
        with open(trace) as f:
            for line in f:
                m = re.match(r'(?:\d+\s+)?([a-z0-9_]+)\(', line)
                if m:
                    used.add(m.group(1))
        self.assertIn('futex', used)   # the trace did follow the threads
        allowed = unit_filter(UNIT)
        self.assertTrue(allowed, '%s sets no SystemCallFilter' % UNIT)
        # execve is strace starting the milter; systemd installs the filter after it
        outside = sorted(used - allowed - {'execve'})
        print('system calls seen: %d, outside the unit\'s filter: %s' % (
            len(used), outside or 'none'))
        self.assertEqual(outside, [], 'relay-milter would get EPERM under its unit')


if __name__ == '__main__':
    if len(sys.argv) < 3:
        print('usage: test_syscalls.py BUILD_DIR UNIT_FILE', file=sys.stderr)
        sys.exit(2)
    BUILD, UNIT = os.path.abspath(sys.argv.pop(1)), os.path.abspath(sys.argv.pop(1))
    for tool, pkg in (('strace', 'strace'), ('systemd-analyze', 'systemd')):
        if shutil.which(tool) is None:
            print('SKIP: %s is not installed (apt-get install %s)' % (tool, pkg))
            sys.exit(77)
    prog = unittest.main(exit=False, verbosity=2)
    sys.exit(0 if prog.result.wasSuccessful() else 1)
