#!/usr/bin/python3
"""End-to-end tests of `relay-admin held list|release|delete` through a real, private
Postfix relay and relay-milter (issue 12, item 2).

A login with `limit set --hold` over its limit: its mail is accepted and put on hold by
the milter (Postfix's hold queue, queue id in the audit log). `held list` shows it with
login, sender, recipients and reason; `held release` (postsuper -H) sends it on to the
test upstream, which requires TLS and AUTH — so the released message left through the
relay's own content_filter transport with the upstream login, not as local mail;
`held delete` removes it without delivery; `--user` acts on every held message of one
login; invalid or unknown queue ids are refused with nothing done (a valid id given with
them is still held afterwards). And `relay-admin usage reset` (item 3) through Postfix:
a login at its limit gets 450, after the reset its next message passes within the milter's
policy refresh, the audit log records the reset, a milter restart does not bring the old
counts back. Clients connect from 127.0.0.2 (a remote client).

Needs root; exits 77 (meson's "skipped") otherwise.
Run: RELAY_BUILD_ROOT=<build dir> /usr/bin/python3 tests/e2e/test_held.py [-v]
"""

import json
import os
import smtplib
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import relaylab  # noqa: E402
from e2elib import LabCase, main, wait_delivered  # noqa: E402


class HeldE2E(LabCase):
    needs = ('milter/relay-milter',)
    # a real policy refresh interval: `usage reset` must reach the milter through it
    relay_options = {'milter': True,
                     'milter_conf': 'policy_refresh_ms = 500\nstate_flush_ms = 20\n'}

    @classmethod
    def setUpLab(cls):
        cls.pw = {}
        for name in ('holder', 'twice', 'bin', 'ids'):
            cls.pw[name] = cls.relay.add_user(name)
            cls.relay.admin('sender', 'add', name, '%s@example.org' % name)
            # one message an hour, then hold for review
            cls.relay.admin('limit', 'set', name, '--messages', '1/1h', '--hold')
        cls.pw['counted'] = cls.relay.add_user('counted')
        cls.relay.admin('sender', 'add', 'counted', 'counted@example.org')
        cls.relay.admin('limit', 'set', 'counted', '--messages', '2/1h')

    def admin(self, *args, check=True):
        """relay-admin on the lab relay's databases (and, for `held`, its Postfix
        instance); text output."""
        pf = ('--postfix-config', self.relay.config_dir) if 'held' in args else ()
        r = self.relay.admin('--state-db', self.relay.milter.state_db, *args, *pf,
                             check=check)
        r.stdout, r.stderr = r.stdout.decode(), r.stderr.decode()
        return r

    def send(self, login, subject):
        with self.relay.smtp(source=relaylab.REMOTE) as s:
            s.login(login, self.pw[login])
            sender = '%s@example.org' % login
            s.sendmail(sender, ['rcpt@example.net', 'cc@example.net'],
                       ('From: %s\r\nTo: rcpt@example.net\r\nSubject: %s\r\n\r\nheld?\r\n'
                        % (sender, subject)).encode())

    def held(self, *args):
        return json.loads(self.admin('--json', 'held', 'list', *args).stdout)

    def hold_one(self, login):
        """Sends until `login` has one more message on hold; returns (queue id, subject)."""
        before = {m['queue_id'] for m in self.held(login)}
        subject = 'held %s %s' % (login, uuid.uuid4().hex)
        self.send(login, subject)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            # the login shows once the milter's audit record is written (state_flush_ms)
            new = [m for m in self.held(login) if m['queue_id'] not in before]
            if new:
                return new[0]['queue_id'], subject
            time.sleep(0.2)
        self.fail('nothing held for %s:\n%s' % (login, self.admin('held', 'list').stdout))

    def first_passes(self, login):
        subject = 'first %s %s' % (login, uuid.uuid4().hex)
        self.send(login, subject)
        wait_delivered(self, self.up, subject)

    def test_a_list_then_release_goes_upstream(self):
        self.first_passes('holder')
        qid, subject = self.hold_one('holder')
        entry = [m for m in self.held() if m['queue_id'] == qid][0]
        self.assertEqual(entry['login'], 'holder')
        self.assertEqual(entry['sender'], 'holder@example.org')
        self.assertEqual(sorted(entry['recipients']), ['cc@example.net', 'rcpt@example.net'])
        self.assertGreater(entry['size'], 0)
        self.assertGreaterEqual(entry['age_seconds'], 0)
        self.assertIn('held', entry['reason'])
        text = self.admin('held', 'list', 'holder').stdout
        for part in (qid, 'holder', 'from: <holder@example.org>', 'why:', '1 held message'):
            self.assertIn(part, text)
        self.assertEqual(self.held('twice'), [])
        # nothing reached the upstream while held
        self.assertFalse(any(subject.encode() in m for m in self.up.messages()))
        r = json.loads(self.admin('--json', 'held', 'release', qid).stdout)
        self.assertEqual((r['released'], r['failed']), ([qid], []))
        # through the relay's transport: the upstream takes only TLS + AUTH
        wait_delivered(self, self.up, subject)
        self.assertEqual([m for m in self.held() if m['queue_id'] == qid], [])
        # the queue file kept the service's content_filter (relay-upstream, the transport
        # relay-admin setup made for the smarthost): postsuper -H does not re-submit it
        self.relay.wait_log(r'/relay-upstream/smtp\[\d+\]: %s: .*relay=localhost\[127\.0\.0\.1\]:%d'
                            r'.*status=sent' % (qid, self.up.port))

    def test_b_user_release_and_delete(self):
        self.first_passes('twice')
        q1, s1 = self.hold_one('twice')
        q2, s2 = self.hold_one('twice')
        self.first_passes('bin')
        q3, s3 = self.hold_one('bin')
        # delete by id: gone from the hold queue and never delivered
        r = json.loads(self.admin('--json', 'held', 'delete', q3).stdout)
        self.assertEqual(r['deleted'], [q3])
        self.assertEqual(self.held('bin'), [])
        # release every held message of one login; the other login's stay
        q4, s4 = self.hold_one('bin')
        r = json.loads(self.admin('--json', 'held', 'release', '--user', 'twice').stdout)
        self.assertEqual(sorted(r['released']), sorted([q1, q2]))
        wait_delivered(self, self.up, s1)
        wait_delivered(self, self.up, s2)
        self.assertEqual([m['queue_id'] for m in self.held('bin')], [q4])
        r = json.loads(self.admin('--json', 'held', 'delete', '--user', 'bin').stdout)
        self.assertEqual(r['deleted'], [q4])
        self.assertEqual(self.held('bin'), [])
        self.assertFalse(any(s3.encode() in m or s4.encode() in m for m in self.up.messages()))

    def test_c_invalid_ids_refused_nothing_done(self):
        self.first_passes('ids')
        qid, _ = self.hold_one('ids')
        for bad in ('ALL', '-', '-d', '../../etc', 'ab', qid + ';id', 'A' * 40, qid + '\n'):
            for cmd in ('release', 'delete'):
                r = self.admin('--json', 'held', cmd, qid, bad, check=False)
                self.assertEqual(r.returncode, 2, (cmd, bad, r.stderr))
                self.assertEqual(r.stdout, '')
                self.assertIn('unknown option' if bad == '-d' else 'not a Postfix queue id',
                              r.stderr)
        # the shape of a queue id, but not in the hold queue: refused as a whole too
        for cmd in ('release', 'delete'):
            r = self.admin('held', cmd, qid, 'B0B0B0B0B0', check=False)
            self.assertEqual(r.returncode, 3, r.stderr)
            self.assertIn('not in the hold queue; nothing done', r.stderr)
        for args in ((), ('--user', 'ids', qid), ('--user', 'a b')):
            r = self.admin('held', 'release', *args, check=False)
            self.assertEqual(r.returncode, 2, (args, r.stderr))
        self.assertIn(qid, [m['queue_id'] for m in self.held('ids')])
        self.admin('held', 'delete', qid)

    def try_send(self, login):
        """One message; 250 or the refusal's code."""
        try:
            self.send(login, 'counted %s' % uuid.uuid4().hex)
            return 250
        except smtplib.SMTPSenderRefused as e:
            return e.smtp_code

    def test_d_usage_reset_while_running(self):
        """Issue 12 item 3 through Postfix: at its limit a login gets 450; `usage reset`;
        within the milter's policy refresh its next message is accepted; the audit log has
        the reset; a milter restart does not bring the old counts back."""
        self.assertEqual([self.try_send('counted') for _ in range(3)], [250, 250, 450])
        self.admin('usage', 'reset', 'counted')
        time.sleep(1.1)   # the next message's second is after the reset's
        deadline = time.monotonic() + 30
        while self.try_send('counted') != 250:
            self.assertLess(time.monotonic(), deadline, 'the reset never took effect')
            time.sleep(0.2)
        # the milter's writer commits every state_flush_ms: wait (bounded) for the record
        deadline = time.monotonic() + 20
        while True:
            log = json.loads(self.admin('--json', 'log', '--user', 'counted').stdout)
            admin = [r for r in log if r['verdict'] == 'admin']
            if admin or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertEqual(len(admin), 1, log)
        self.assertEqual(admin[0]['reason'], 'usage reset: messages,recipients,bytes')
        # restart: one message counted since the reset, so one more fits (2/1h), then 450
        self.assertEqual(self.relay.milter.stop(), 0)
        self.relay.milter.start()
        self.assertEqual([self.try_send('counted') for _ in range(2)], [250, 450])


if __name__ == '__main__':
    sys.exit(main())
