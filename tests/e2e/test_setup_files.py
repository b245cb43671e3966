#!/usr/bin/python3
"""`relay-admin setup` writes Postfix's files through folder descriptors (issue 8): a link
planted in a folder another user can write must not make root remove, replace or create a
file elsewhere. The attack here: the Postfix folder is loosened (0777, as happens) and a
local user points `relay-admin-backup` at a folder of its own, in which every backup name
root could pick in the next minutes is a link to a folder holding a file of root's; the
old code removed that file (unlink before the O_EXCL copy) and wrote the backup there.

Needs root; exits 77 (meson's "skipped") otherwise. A private relay instance from relaylab.
"""

import hashlib
import os
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import main  # noqa: E402
from setuplib import SetupCase  # noqa: E402

AHEAD = 300   # seconds of backup names (UTC time stamps) planted ahead


def _digest(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


class SetupFiles(SetupCase):

    def change_args(self):
        """The lab's own setup, with one thing different so that setup has work to do."""
        return self.lab_args('--rate-limit', '7')

    def test_planted_backup_link_is_refused(self):
        cfg = self.relay.config_dir
        mode = os.stat(cfg).st_mode & 0o7777
        attacker = tempfile.mkdtemp(prefix='relay-attacker.')
        victim_dir = tempfile.mkdtemp(prefix='relay-victim.')
        victim = os.path.join(victim_dir, 'main.cf')
        with open(victim, 'w') as f:
            f.write("# root's own main.cf elsewhere: must survive\n")
        before = _digest(victim)
        now = time.time()
        for t in range(int(now) - 5, int(now) + AHEAD):
            stamp = time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(t))
            os.symlink(victim_dir, os.path.join(attacker, stamp))
        link = os.path.join(cfg, 'relay-admin-backup')
        saved = None
        if os.path.lexists(link):
            saved = link + '.saved-by-test'
            os.rename(link, saved)
        try:
            os.chmod(cfg, 0o777)
            os.symlink(attacker, link)
            rc, out = self.setup_cmd(*self.change_args(), password=self.up.password)
            self.assertTrue(os.path.exists(victim), 'root removed %s: %s' % (victim, out))
            self.assertEqual(_digest(victim), before, 'root replaced %s: %s' % (victim, out))
            self.assertNotEqual(rc, 0, out)
            self.assertIn('relay-admin-backup', out)
            self.assertIn('nothing was changed', out)
        finally:
            os.unlink(link)
            if saved:
                os.rename(saved, link)
            os.chmod(cfg, mode)
            subprocess.run(['rm', '-rf', attacker, victim_dir], check=False)


if __name__ == '__main__':
    sys.exit(main())
