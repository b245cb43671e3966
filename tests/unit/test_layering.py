#!/usr/bin/python3
"""The front ends stay on their side of the data layer (suite 'unit').

The data layer (sql/) is the only code that speaks SQLite: the plugin, the milter and
relay-admin reach the databases through rdb.h, policy.h, state.h and limit.h, so a second
engine can be added under the layer without touching them (issue 10). And relay-admin
takes the limit domain (windows, units) from the layer, not from the milter's core.
Reads the source tree only: no build, no network, no files written.

Run: /usr/bin/python3 tests/unit/test_layering.py [-v]
"""

import os
import re
import unittest

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..'))
FRONT_ENDS = ('plugin', 'milter', 'admin')
SQLITE_INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]sqlite3\.h[>"]', re.M)


def sources(folder):
    for name in sorted(os.listdir(os.path.join(ROOT, folder))):
        if name.endswith(('.c', '.h')):
            path = os.path.join(ROOT, folder, name)
            with open(path, encoding='utf-8', errors='replace') as f:
                yield '%s/%s' % (folder, name), f.read()


class Layering(unittest.TestCase):

    def test_front_ends_never_include_sqlite(self):
        found = [name for d in FRONT_ENDS for name, text in sources(d)
                 if SQLITE_INCLUDE.search(text)]
        self.assertEqual(found, [], 'front ends that include sqlite3.h')

    def test_front_ends_never_call_sqlite(self):
        found = ['%s: %s' % (name, m.group(0)) for d in FRONT_ENDS for name, text in sources(d)
                 for m in re.finditer(r'\b(sqlite3_\w+|rdb_handle)\s*\(', text)]
        self.assertEqual(found, [], 'front ends that reach past the data layer')

    def test_admin_does_not_link_the_milter_core(self):
        with open(os.path.join(ROOT, 'admin', 'meson.build')) as f:
            build = f.read()
        self.assertNotIn('mlt_core', build)
        found = [name for name, text in sources('admin')
                 if re.search(r'#\s*include\s*"(window|rate|decide)\.h"', text)]
        self.assertEqual(found, [], 'relay-admin modules that include the milter core')

    def test_limit_domain_defined_once(self):
        # the metrics, the limit and the window arithmetic live in sql/limit.h only
        found = [name for d in FRONT_ENDS + ('sql',) for name, text in sources(d)
                 if name != 'sql/limit.h' and
                 re.search(r'^\s*(enum\s+\w+_metric\s*\{|struct\s+\w+_limit\s*\{)', text, re.M)]
        self.assertEqual(found, [], 'second definitions of the limit domain')


if __name__ == '__main__':
    unittest.main()
