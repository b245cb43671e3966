#!/usr/bin/python3
"""End-to-end: clients on other machines get the same relay as local ones (issue 9, 1-2).

Postfix fixes up headers (Message-ID, Date, a missing From:) only for its
local_header_rewrite_clients, by default the machine's own addresses: the lab's 127.0.0.1
qualifies, a laptop on the internet does not. Here clients send both from 127.0.0.1 and
from relaylab.REMOTE (127.0.0.2, bound as the client socket's source address), through a
relay set up by `relay-admin setup` with the real relay-milter, and every check is made on
the message as the upstream stored it in its maildir:

* a message without Message-ID, Date and From: arrives with all three, From: being the
  envelope sender, from either address (and the milter accepts it);
* privacy by default: the relay's Received: line names neither the client's address nor
  its HELO name, while the audit log (relay-admin log) keeps the address;
* `setup --keep-client-received` restores the standard header.

Needs root; exits 77 (meson's "skipped") otherwise.
Run: RELAY_BUILD_ROOT=<build dir> /usr/bin/python3 tests/e2e/test_remote.py [-v]
"""

import json
import os
import re
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import relaylab  # noqa: E402
from e2elib import LabCase, main, wait_delivered  # noqa: E402


def bare_message(subject):
    """A message as a minimal client writes it: no From:, no Date:, no Message-ID:."""
    return ('To: rcpt@example.net\r\nSubject: %s\r\n\r\nfrom a remote client\r\n'
            % subject).encode()


def headers(msg):
    """The header block of a stored message, folded lines joined, as str."""
    head = msg.replace(b'\r\n', b'\n').split(b'\n\n', 1)[0].decode(errors='replace')
    return re.sub(r'\n[ \t]+', ' ', head)


class RemoteClients(LabCase):
    needs = ('milter/relay-milter',)
    relay_options = {'milter': True,
                     'milter_conf': 'policy_refresh_ms = 0\nstate_flush_ms = 20\n'}

    @classmethod
    def setUpLab(cls):
        cls.pw = cls.relay.add_user('alice')
        cls.relay.admin('sender', 'add', 'alice', 'alice@example.org')

    def send(self, source, helo, msg_subject, **kw):
        """Sends a bare message as alice from `source` -> the message the upstream stored."""
        connect = self.relay.smtps if kw.get('tls') else self.relay.smtp
        with connect(source=source, helo=helo) as s:
            s.login('alice', self.pw)
            s.sendmail('alice@example.org', ['rcpt@example.net'], bare_message(msg_subject))
        wait_delivered(self, self.up, msg_subject)
        return next(m for m in self.up.messages() if msg_subject.encode() in m)

    def relay_received(self, head):
        """The relay's own Received: line (the one the upstream did not write)."""
        lines = [h for h in head.split('\n') if h.lower().startswith('received:')]
        # the upstream prepends its own line first; the relay's is the next one
        self.assertGreaterEqual(len(lines), 2, head)
        return lines[1]

    def check_fixed_up(self, source, tls=False):
        subject = 'remote-' + uuid.uuid4().hex   # not the address: it is searched for
        helo = 'laptop-%s.home.example' % uuid.uuid4().hex[:8]
        head = headers(self.send(source, helo, subject, tls=tls))
        self.assertRegex(head, r'(?mi)^Message-ID: <[^>]+>$', head)
        self.assertRegex(head, r'(?mi)^Date: \S', head)
        self.assertRegex(head, r'(?mi)^From: <?alice@example\.org>?$', head)
        received = self.relay_received(head)
        self.assertNotIn(helo, head)
        self.assertNotIn(source if source != relaylab.HOST else '[%s]' % source, received)
        self.assertRegex(received, r'^Received: by \S+ \(Postfix\) with ESMTPSA id \w+',
                         received)
        return head

    def test_remote_client_gets_message_id_date_and_from(self):
        head = self.check_fixed_up(relaylab.REMOTE)
        self.assertNotIn(relaylab.REMOTE, head)

    def test_remote_client_on_the_tls_port(self):
        head = self.check_fixed_up(relaylab.REMOTE, tls=True)
        self.assertNotIn(relaylab.REMOTE, head)

    def test_local_client_gets_the_same(self):
        self.check_fixed_up(relaylab.HOST)

    def test_audit_log_keeps_the_client_address(self):
        self.check_fixed_up(relaylab.REMOTE)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            log = json.loads(self.relay.admin('--state-db', self.relay.milter.state_db,
                                              '--json', 'log', '--user', 'alice').stdout)
            if any(relaylab.REMOTE in json.dumps(r) for r in log):
                return
            time.sleep(0.1)
        self.fail('the audit log lost the client address: %s' % log)


class KeepClientReceived(LabCase):
    needs = ('milter/relay-milter',)
    relay_options = {'milter': True, 'setup_args': ('--keep-client-received',)}

    @classmethod
    def setUpLab(cls):
        cls.pw = cls.relay.add_user('bob')
        cls.relay.admin('sender', 'add', 'bob', 'bob@example.org')

    def test_standard_received_header(self):
        subject = 'keep-received-' + uuid.uuid4().hex
        helo = 'laptop-%s.home.example' % uuid.uuid4().hex[:8]
        with self.relay.smtp(source=relaylab.REMOTE, helo=helo) as s:
            s.login('bob', self.pw)
            s.sendmail('bob@example.org', ['rcpt@example.net'], bare_message(subject))
        wait_delivered(self, self.up, subject)
        head = headers(next(m for m in self.up.messages() if subject.encode() in m))
        self.assertRegex(head, r'Received: from %s \(\S+ \[%s\]\)'
                         % (re.escape(helo), re.escape(relaylab.REMOTE)), head)
        # the fix-up does not depend on the privacy option
        self.assertRegex(head, r'(?mi)^Message-ID: <[^>]+>$', head)


if __name__ == '__main__':
    sys.exit(main())
