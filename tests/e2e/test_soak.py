#!/usr/bin/python3
"""End-to-end: the short soak (issue 13) — bench/soak's run, a few hundred messages over a
few STARTTLS + AUTH sessions through a private Postfix relay with relay-milter, which is
killed with -9 once mid-run and started again. Passes only if every message Postfix
accepted was delivered upstream, has its audit record "accepted" and is counted, each
exactly once, and nothing was delivered without an accepted verdict.

The writer's interval is set to 2 s so that a kill under load always finds accepted
messages the writer has not committed yet (with the old batching alone they were lost);
the journal makes the interval irrelevant. Bounded: 300 messages, 8 sessions, a 2 s
outage; well under 2 minutes.

Needs root; exits 77 (meson's "skipped") otherwise.
Run: RELAY_BUILD_ROOT=<build dir> /usr/bin/python3 tests/e2e/test_soak.py [-v]
"""

import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), 'bench', 'soak'))
from e2elib import main, require_build  # noqa: E402
import soak  # noqa: E402


class ShortSoak(unittest.TestCase):
    def test_kill_under_load_loses_no_count_or_audit(self):
        require_build('milter/relay-milter')
        lines = []
        ok, table = soak.run(messages=300, sessions=8, faults='kill@40:2', max_seconds=90,
                             milter_conf='state_flush_ms = 2000\n', log=lines.append)
        report = '\n'.join(lines)
        self.assertGreater(table['accepted by Postfix'], 0, report)
        self.assertGreater(table['refused with 4xx'] + table['session errors (no reply code)'],
                           0, 'the kill was felt:\n' + report)
        self.assertEqual(table['delivered without an accepted verdict'], 0, report)
        self.assertEqual(table['audit records (accepted)'], table['accepted by Postfix'], report)
        self.assertEqual(table['counted usage (messages)'], table['accepted by Postfix'], report)
        self.assertEqual(table['delivered upstream'], table['accepted by Postfix'], report)
        self.assertTrue(ok, report)


if __name__ == '__main__':
    sys.exit(main())
