#!/usr/bin/python3
"""Two relay nodes behind HAProxy sharing one set of logins and limits (issue 10, section 3).

Two private Postfix instances with the relaydb plugin, two relay-milters, one HAProxy
(TCP, send-proxy-v2; `relay-admin setup --proxy-protocol` on both nodes) and the shared
databases of tests/e2e/nodelab.py: PostgreSQL (a private pglab server) when the build speaks
it, else — until the pg-engine and pg-admit branches are in — the two nodes share SQLite files
on this machine and the PostgreSQL-only tests are skipped, saying so.

* a login made with relay-admin on the shared database (on PostgreSQL: `--db postgresql://…`,
  the password from PGPASSFILE) authenticates at once on node A and on node B, each reached through the proxy (the EHLO reply names the node);
* the proxy's round robin spreads sessions over both nodes;
* each node's Postfix log and the shared audit log show the real client, 127.0.0.2, not the
  proxy's 127.0.0.1;
* PostgreSQL: concurrent sessions spread over both nodes against a limit of N messages admit
  exactly N (the rest 450 4.7.1), and the shared usage counts N — in each of three rounds;
* PostgreSQL stopped mid-load (4 clients sending through the proxy): AUTH answers 454, MAIL
  451 (a session that logged in before), every session gets 250, 451 or 454 — nothing
  else; every accepted message is delivered and audited, no refused one reaches the
  upstream; started again, mail flows again.

Needs root; exits 77 (meson's "skipped") otherwise. RELAY_NODES_ENGINE=sqlite forces the
SQLite variant.
Run: RELAY_BUILD_ROOT=<build dir> /usr/bin/python3 tests/e2e/test_nodes.py [-v]
"""

import json
import os
import re
import secrets
import subprocess
import sys
import threading
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import haproxylab  # noqa: E402
import nodelab  # noqa: E402
import relaylab  # noqa: E402
from e2elib import auth, main, require_build, wait_delivered  # noqa: E402

PG_WHY = nodelab.postgres_ready()
ENGINE = os.environ.get('RELAY_NODES_ENGINE') or ('postgresql' if PG_WHY is None else 'sqlite')
if ENGINE == 'sqlite' and PG_WHY is None:
    PG_WHY = 'RELAY_NODES_ENGINE=sqlite'
LIMIT = 4          # messages per hour of the login the exact-limit test uses
SESSIONS = 10      # concurrent sessions against it
ROUNDS = 3         # each with a login of its own: admitted = LIMIT every time
LOAD_SESSIONS = 4  # client threads sending while PostgreSQL is stopped and started


def message(login, subject):
    return ('From: %s@example.org\r\nTo: rcpt@example.net\r\nSubject: %s\r\n\r\nnodes\r\n'
            % (login, subject)).encode()


@unittest.skipUnless(haproxylab.haproxy_available(), 'haproxy is not installed')
class TwoNodes(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        require_build('milter/relay-milter')
        cls.lab = relaylab.Lab()
        try:
            cls.nodes = nodelab.TwoNodes(
                cls.lab, engine=ENGINE,
                milter_conf='policy_refresh_ms = 0\nstate_flush_ms = 20\n')
        except BaseException:
            cls.lab.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.nodes.close()

    def send(self, frontend, login, password, subject, source=relaylab.REMOTE):
        """One message through the proxy -> (node, SMTP code of the end of DATA or the
        refusal, text)."""
        with self.nodes.smtp(frontend, source=source) as s:
            node = self.nodes.node_of(s)
            code, text = auth(s, 'PLAIN', login, password)
            if code != 235:
                return node, code, text
            try:
                s.sendmail('%s@example.org' % login, ['rcpt@example.net'],
                           message(login, subject))
                return node, 250, b''
            except relaylab.smtplib.SMTPSenderRefused as e:
                return node, e.smtp_code, e.smtp_error
            except relaylab.smtplib.SMTPRecipientsRefused as e:
                code, text = next(iter(e.recipients.values()))
                return node, code, text
            except relaylab.smtplib.SMTPDataError as e:
                return node, e.smtp_code, e.smtp_error

    def test_a_new_login_works_on_both_nodes_at_once(self):
        if ENGINE == 'postgresql':
            # made as an admin would: relay-admin --db postgresql://..., password in PGPASSFILE
            pw = secrets.token_urlsafe(24)
            p = subprocess.run([self.lab.relay_admin, '--db', self.nodes.users_uri, 'user', 'add',
                                'fresh', '--password-stdin'], input=(pw + '\n').encode(),
                               capture_output=True, timeout=60,
                               env=dict(os.environ, PGPASSFILE=self.nodes.passfile))
            self.assertEqual(p.returncode, 0, p.stderr)
        else:
            pw = self.nodes.add_user('fresh')
        for fe in ('a', 'b'):
            with self.nodes.smtp(fe) as s:
                self.assertEqual(self.nodes.node_of(s), 'node-' + fe)
                code, text = auth(s, 'PLAIN', 'fresh', pw)
                self.assertEqual(code, 235, (fe, text, self.nodes.logs_tail()))

    def test_b_round_robin_uses_both_nodes(self):
        seen = set()
        for _ in range(4):
            with self.nodes.smtp('both') as s:
                seen.add(self.nodes.node_of(s))
        self.assertEqual(seen, {'node-a', 'node-b'})

    def test_c_real_client_address_in_both_logs(self):
        pw = self.nodes.add_user('carol')
        marks = [r.log_mark() for r in self.nodes.nodes]
        for fe in ('a', 'b'):
            subject = 'nodes-%s-%s' % (fe, uuid.uuid4().hex)
            node, code, text = self.send(fe, 'carol', pw, subject)
            self.assertEqual((node, code), ('node-' + fe, 250), text)
            wait_delivered(self, self.nodes.up, subject)
        for relay, mark in zip(self.nodes.nodes, marks):
            connects = re.findall(r'postfix/relay/smtpd\[\d+\]: connect from (\S+)',
                                  relay.log()[mark:])
            self.assertTrue(connects, relay.log()[mark:][-2000:])
            self.assertTrue(all(c.endswith('[%s]' % relaylab.REMOTE) for c in connects),
                            connects)
        deadline = time.monotonic() + 20
        while True:
            records = [r for r in self.nodes.audit('carol') if r['verdict'] == 'accepted']
            if len(records) >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertEqual(len(records), 2, records)
        self.assertEqual({r['client_addr'] for r in records}, {relaylab.REMOTE}, records)

    @unittest.skipIf(PG_WHY, 'exact limits across nodes need PostgreSQL: %s' % PG_WHY)
    def test_d_exact_limit_across_both_nodes(self):
        for rnd in range(ROUNDS):
            with self.subTest(round=rnd + 1):
                self.exact_limit_round('limited%d' % rnd)

    def exact_limit_round(self, login):
        pw = self.nodes.add_user(login)
        self.nodes.admin('limit', 'set', login, '--messages', '%d/1h' % LIMIT)
        start = threading.Barrier(SESSIONS)
        results = [None] * SESSIONS

        def one(i):
            try:
                start.wait(30)
                results[i] = self.send('both', login, pw, 'limit-%d-%s' % (i, uuid.uuid4().hex))
            except Exception as e:   # noqa: BLE001 - recorded, asserted below
                results[i] = ('?', -1, repr(e))

        threads = [threading.Thread(target=one, args=(i,)) for i in range(SESSIONS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        accepted = [r for r in results if r[1] == 250]
        refused = [r for r in results if r[1] == 450]
        self.assertEqual(len(accepted), LIMIT, results)
        self.assertEqual(len(refused), SESSIONS - LIMIT, results)
        self.assertEqual({r[0] for r in results}, {'node-a', 'node-b'}, results)
        # what the shared state counted: exactly the accepted messages
        usage = json.loads(self.nodes.admin('--json', 'usage', login).stdout)
        used = [lim['used'] for u in usage for lim in u['limits'] if lim['metric'] == 'messages']
        self.assertEqual(used, [LIMIT], usage)

    @unittest.skipIf(PG_WHY, 'the database-down case is PostgreSQL\'s: %s' % PG_WHY)
    def test_e_postgresql_down_under_load_then_back(self):
        pw = self.nodes.add_user('dana')
        results, lock, stop = [], threading.Lock(), threading.Event()

        def load(k):
            n = 0
            while not stop.is_set():
                n += 1
                subject = 'load-%d-%d-%s' % (k, n, uuid.uuid4().hex)
                try:
                    r = self.send('both', 'dana', pw, subject)
                except Exception as e:   # noqa: BLE001 - recorded, asserted below
                    r = ('?', -1, repr(e))
                with lock:
                    results.append((subject,) + r)

        def codes():
            with lock:
                return [r[2] for r in results]

        threads = [threading.Thread(target=load, args=(k,)) for k in range(LOAD_SESSIONS)]
        for t in threads:
            t.start()
        try:
            self.wait_for(lambda: codes().count(250) >= 4, 'mail flowing before the stop')
            early = self.nodes.smtp('a')   # logged in before the database goes away
            try:
                self.assertEqual(auth(early, 'PLAIN', 'dana', pw)[0], 235)
                self.nodes.pg.stop()
                try:
                    down_from = len(codes())
                    for fe in ('a', 'b'):
                        node, code, text = self.send(fe, 'dana', pw, 'down-' + uuid.uuid4().hex)
                        self.assertEqual(code, 454, (node, text))
                    code, text = early.mail('dana@example.org')
                    self.assertEqual(code, 451, text)
                    self.wait_for(lambda: len(codes()) >= down_from + 4,
                                  'sessions answered while the database is down')
                finally:
                    self.nodes.pg.start()
            finally:
                early.close()
            back_from = len(codes())
            self.wait_for(lambda: 250 in codes()[back_from:], 'mail flowing again', timeout=60)
        finally:
            stop.set()
            for t in threads:
                t.join(60)
        with lock:
            done = list(results)
        seen = {r[2] for r in done}
        # temporary failures only, never a permanent refusal or an error of the client
        self.assertLessEqual(seen, {250, 451, 454}, done)
        self.assertIn(454, seen, done)
        accepted = [r[0] for r in done if r[2] == 250]
        refused = [r[0] for r in done if r[2] != 250]
        # nothing passed unchecked: every accepted message is delivered and audited as
        # accepted (its count committed), and no refused one reached the upstream
        for subject in accepted:
            wait_delivered(self, self.nodes.up, subject)
        delivered = b'\n'.join(self.nodes.up.messages())
        self.assertFalse([s for s in refused if s.encode() in delivered], refused)
        self.wait_for(lambda: len([r for r in self.nodes.audit('dana')
                                   if r['verdict'] == 'accepted']) == len(accepted),
                      'one accepted audit record per accepted message')
        usage = json.loads(self.nodes.admin('--json', 'usage', 'dana').stdout)
        self.assertTrue(usage, usage)

    def wait_for(self, cond, what, timeout=30):
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                self.fail('no %s within %d s\n%s' % (what, timeout, self.nodes.logs_tail()))
            time.sleep(0.1)

if __name__ == '__main__':
    sys.exit(main())
