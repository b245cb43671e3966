#!/usr/bin/python3
"""End-to-end test of relay-milter's limit-hit notifications through real Postfix (issue 12).

A relay configured by `relay-admin setup --milter` with relaylab's relay-milter (as user
postfix) and `notify_to` set. A login sends from 127.0.0.2 (a remote client) until it is
refused over its message limit, several times over; relay-milter submits ONE notification
through the relay instance's own sendmail (`notify_postfix_config` = the instance's config
folder, i.e. `sendmail -C DIR`), Postfix's pickup takes it as the milter's user, and it is
delivered to the test upstream's maildir through the relay's upstream transport — once, not
once per refused message.

Why a mount namespace: Postfix lets only root name a non-default configuration folder
(sendmail -C, MAIL_CONFIG) unless the default main.cf lists it in
alternate_config_directories or multi_instance_directories. The lab may not touch the
machine's /etc/postfix, so the milter runs in a private mount namespace (unshare) where
/etc/postfix is a copy of the real folder with a main.cf listing the relay instance — what
postmulti does for a secondary instance on a real server. The milter still starts as root
and drops to user postfix, so sendmail runs unprivileged, as in production.

The notification's route: mail submitted with sendmail does not use the relay services'
upstream transport (`relay-admin setup` keeps it to them); on a real server it follows the
machine's own route. The lab has none, so the test maps the admin's domain to that transport
(transport_maps), standing in for it.

Needs root; exits 77 (meson's "skipped") otherwise.
Run: RELAY_BUILD_ROOT=<build dir> /usr/bin/python3 tests/e2e/test_notify.py [-v]
"""

import os
import pwd
import re
import shutil
import smtplib
import sys
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import relaylab  # noqa: E402
from e2elib import LabCase, main  # noqa: E402

ADMIN_ADDR = 'relay-admin@notify.example'
SUBJECT_RE = re.compile(rb'^Subject: relay: login (\S+) hit a rate limit$', re.M)


def message(sender, to, subject):
    return ('From: %s\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s@relaylab.test>\r\n\r\n'
            'limit-hit notification test\r\n' % (sender, to, subject, uuid.uuid4().hex)).encode()


class NotifyE2E(LabCase):
    needs = ('milter/relay-milter',)
    relay_options = {'milter': True, 'start': False,
                     'milter_conf': 'policy_refresh_ms = 0\nstate_flush_ms = 20\n'
                                    'log_level = debug\n'}

    @classmethod
    def setUpLab(cls):
        if shutil.which('unshare') is None:
            raise unittest.SkipTest('unshare (util-linux) not installed')
        relay, milter = cls.relay, cls.relay.milter
        cls.pw = {}
        for name in ('burst', 'other'):
            cls.pw[name] = relay.add_user(name)
            relay.admin('sender', 'add', name, '%s@example.org' % name)
            relay.admin('limit', 'set', name, '--messages', '2/1h')
        # the admin's domain goes the way the relay's own mail would on a real server
        route = relay.postconf('-Ph', '%s/content_filter' % relay.service_name).strip()
        assert route, 'relay-admin setup left no content_filter on the relay service'
        relay.set_main(transport_maps='inline:{ notify.example=%s }' % route)
        with open(milter.conf, 'a') as f:
            f.write('notify_to = %s\nnotify_postfix_config = %s\nnotify_timeout = 60s\n'
                    % (ADMIN_ADDR, relay.config_dir))
        # a private /etc/postfix for the milter that lists the relay instance (see above)
        etc = os.path.join(cls.lab.dir, 'etc-postfix')
        shutil.copytree('/etc/postfix', etc, symlinks=True)
        with open(os.path.join(etc, 'main.cf'), 'w') as f:
            f.write('# relaylab: the relay instance may be named with sendmail -C\n'
                    'alternate_config_directories = %s\n' % relay.config_dir)
        wrapper = os.path.join(cls.lab.dir, 'relay-milter-ns')
        with open(wrapper, 'w') as f:
            # exec all the way: the pid relaylab stops is relay-milter's own
            f.write('#!/bin/sh\nexec unshare --mount --propagation private -- /bin/sh -c '
                    '\'mount --bind "$0" /etc/postfix && exec "$@"\' %s %s "$@"\n'
                    % (etc, milter.binary))
        os.chmod(wrapper, 0o755)
        milter.binary = wrapper
        relay.start()

    def send(self, login):
        """One message from 127.0.0.2 -> 250 or the refusal's code."""
        sender = '%s@example.org' % login
        s = self.relay.smtp(source=relaylab.REMOTE)
        try:
            s.login(login, self.pw[login])
            s.sendmail(sender, ['rcpt@example.net'],
                       message(sender, 'rcpt@example.net', 'notify-%s' % login))
            return 250
        except smtplib.SMTPRecipientsRefused as e:
            return list(e.recipients.values())[0][0]
        except smtplib.SMTPResponseException as e:
            return e.smtp_code
        finally:
            try:
                s.quit()
            except smtplib.SMTPException:
                s.close()

    def notifications(self):
        """Logins named by the notifications in the upstream maildir."""
        return [m.group(1).decode() for msg in self.up.messages()
                for m in [SUBJECT_RE.search(msg)] if m]

    def wait_notifications(self, n, timeout=60):
        deadline = time.monotonic() + timeout
        while len(self.notifications()) < n:
            if time.monotonic() > deadline:
                self.fail('%d notification(s) expected upstream, got %r\n%s\n%s' % (
                    n, self.notifications(), self.relay.milter.log()[-3000:],
                    self.lab.logs_tail()))
            time.sleep(0.2)
        return self.notifications()

    def test_one_notification_for_many_refusals(self):
        milter = self.relay.milter
        codes = [self.send('burst') for _ in range(6)]
        self.assertEqual(codes, [250, 250, 450, 450, 450, 450])
        got = self.wait_notifications(1)
        self.assertEqual(got, ['burst'])
        notice = [m for m in self.up.messages() if SUBJECT_RE.search(m)][0]
        for part in (b'To: ' + ADMIN_ADDR.encode(), b'  login:   burst\n',
                     b'  limit:   2 messages\n', b'  window:  1h\n', b'  client:  127.0.0.2\n',
                     b'relay-admin usage burst', b'Auto-Submitted: auto-generated'):
            self.assertIn(part, notice)
        self.assertRegex(notice, rb'(?m)^From: relay-milter@localhost$')
        # submitted through the relay instance's sendmail, by the milter's user (postfix)
        self.assertRegex(self.relay.log(), r'postfix/pickup\[\d+\]: \w+: uid=%d '
                         r'from=<relay-milter>' % pwd.getpwnam('postfix').pw_uid)
        # more refusals within the period: no more notifications for burst. Sync point: a
        # second login's notification, sent by the same thread after anything for burst.
        self.assertEqual([self.send('burst') for _ in range(3)], [450] * 3)
        self.assertEqual([self.send('other') for _ in range(3)], [250, 250, 450])
        got = self.wait_notifications(2)
        self.assertEqual(sorted(got), ['burst', 'other'], got)
        self.assertEqual(len(re.findall(r'notification sent to \S+: login=burst event=limit',
                                        milter.log())), 1, milter.log()[-3000:])
        # 4 + 3 refused, 2 + 2 accepted messages and exactly 2 notifications upstream
        self.assertEqual(len([m for m in self.up.messages() if b'notify-burst' in m]), 2)


if __name__ == '__main__':
    sys.exit(main())
