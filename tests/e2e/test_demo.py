#!/usr/bin/python3
"""The demo's printed commands work as printed (issue 9): scripts/demo.py start, then the
swaks line it prints (password on stdin, the relay's certificate verified) and the
relay-admin line (`A=...` with the demo's users and state databases, then `$A user list`)
run with /bin/sh exactly as printed; the message reaches the upstream maildir it names and
the audit log shows it. The demo runs from this build (scripts/demo.py --build), in a
temporary folder, and is stopped by `demo.py stop` (by pid) whatever happens.

Needs root; exits 77 otherwise.
Run: RELAY_BUILD_ROOT=<build dir> /usr/bin/python3 tests/e2e/test_demo.py [-v]
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import relaylab  # noqa: E402
from e2elib import main, require_build  # noqa: E402

DEMO = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'scripts',
                    'demo.py')


class Demo(unittest.TestCase):

    def setUp(self):
        require_build('milter/relay-milter')
        self.tmp = tempfile.mkdtemp(prefix='test-demo-')
        os.chmod(self.tmp, 0o755)
        self.dir = os.path.join(self.tmp, 'demo')
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        p = subprocess.run(['/usr/bin/python3', DEMO, 'start', '--build',
                            relaylab.default_build_root(), '--dir', self.dir],
                           capture_output=True, text=True, timeout=120,
                           stdin=subprocess.DEVNULL,
                           env={k: v for k, v in os.environ.items() if k != 'UPSTREAM'})
        self.addCleanup(subprocess.run, ['/usr/bin/python3', DEMO, 'stop', '--dir', self.dir],
                        capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.out = p.stdout

    def line_after(self, heading):
        lines = self.out.splitlines()
        idx = [i for i, line in enumerate(lines) if line.startswith(heading)]
        self.assertTrue(idx, 'the demo did not print %r:\n%s' % (heading, self.out))
        return lines[idx[0] + 1:]

    def sh(self, script):
        return subprocess.run(['/bin/sh', '-e', '-c', script], capture_output=True, text=True,
                              timeout=60, cwd=self.tmp, stdin=subprocess.DEVNULL)

    def test_printed_swaks_and_relay_admin_lines(self):
        swaks = self.line_after('The same with swaks')[0]
        self.assertTrue(swaks.startswith('swaks '), swaks)
        self.assertNotIn('--auth-password', swaks)      # never a password in argv
        maildir = re.search(r'^  ls (\S+)/new/$', self.out, re.M).group(1)
        p = self.sh(swaks)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn('235 2.7.0', p.stdout)
        new = os.path.join(maildir, 'new')        # made at the first delivery
        deadline = time.monotonic() + 60
        while not (os.path.isdir(new) and os.listdir(new)) and time.monotonic() < deadline:
            time.sleep(0.2)
        self.assertTrue(os.path.isdir(new) and os.listdir(new), 'swaks mail not delivered')

        a_line, use = self.line_after('Look at the relay with relay-admin')[:2]
        self.assertRegex(a_line, r'^A=".*relay-admin --db \S+ --state-db \S+"$')
        self.assertEqual(use, '$A user list')
        p = self.sh(a_line + '\n' + use)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn('demo', p.stdout)
        # the state database is the milter's: the audit log has the swaks message
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            p = self.sh(a_line + '\n$A --json log')
            self.assertEqual(p.returncode, 0, p.stderr)
            if json.loads(p.stdout):
                break
            time.sleep(0.2)
        self.assertIn('"demo"', p.stdout)
        self.assertEqual(json.loads(p.stdout)[-1]['verdict'], 'accepted', p.stdout)


if __name__ == '__main__':
    sys.exit(main())
