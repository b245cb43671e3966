#!/usr/bin/python3
"""test_milter_daemon.py — relay-milter driven over the milter protocol (suite 'milter').

Starts the real daemon on a private socket with private databases made by relay-admin,
and plays the MTA with milterproto.py: negotiation, TLS/AUTH/login checks, envelope and
header senders, rate limits (messages, recipients, concurrent sessions, hold), relay-admin
changes without restart, counters across a restart, SIGUSR1 reload, failing closed on
a broken database, a state database moved, deleted or replaced under the running milter,
and a stop on a full state disk (a private tmpfs; skipped if it cannot be mounted).
Hermetic: temp dir, no fixed paths, no timing asserts.

usage: test_milter_daemon.py RELAY_MILTER RELAY_ADMIN
"""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from milterproto import (MilterClient, SMFIP_NOCONNECT, SMFIP_NOHELO, SMFIP_NODATA,  # noqa: E402
                         SMFIP_NOEOH, SMFIP_NR_HDR, SMFIP_NR_BODY, SMFIP_NOUNKNOWN,
                         SMFIP_NOBODY, SMFIP_NOHDRS, SMFIP_NR_RCPT)
from daemoncase import PASSWORD, ClassDaemonCase, private_dir, private_state  # noqa: E402

MILTER = ADMIN = None
TLS = {"{tls_version}": "TLSv1.3", "{cipher}": "TLS_AES_256_GCM_SHA384",
       "{client_addr}": "192.0.2.10"}


def macros(login, **extra):
    m = dict(TLS)
    if login is not None:
        m["{auth_authen}"] = login
    m.update(extra)
    return m


class Daemon:
    """relay-milter on a unix socket in `tmp`; the databases default to users.db and
    state.db there, or are named (a path, a postgresql:// URI or a pg: file)."""

    def __init__(self, tmp, extra="", state_db=None, users_db=None):
        self.tmp = tmp
        self.sock = os.path.join(tmp, "milter.sock")
        self.conf = os.path.join(tmp, "milter.conf")
        self.log = os.path.join(tmp, "milter.log")
        self.users_db = users_db or os.path.join(tmp, "users.db")
        self.state_db = state_db or os.path.join(tmp, "state.db")
        self.write_conf(extra)
        self.proc = None

    def write_conf(self, extra=""):
        with open(self.conf, "w") as f:
            f.write("socket = unix:%s\nusers_db = %s\nstate_db = %s\n"
                    "log = stderr\nlog_level = debug\npolicy_refresh_ms = 0\n"
                    "state_flush_ms = 20\n%s" % (self.sock, self.users_db, self.state_db, extra))

    def log_text(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def wait_log(self, text, since=0, seconds=20, required=True):
        """Waits (bounded) until `text` appears in the log after offset `since`. Not
        required: a sync point only, the caller's next assertion is the judge."""
        for _ in range(int(seconds / 0.05)):
            if text in self.log_text()[since:]:
                return True
            if self.proc is not None and self.proc.poll() is not None and \
                    text not in self.log_text()[since:]:
                break
            time.sleep(0.05)
        if required:
            self.fail_log("no %r in the log" % text)
        return False

    def fail_log(self, why):
        raise AssertionError("%s; log:\n%s" % (why, self.log_text()[-4000:]))

    def start(self):
        logf = open(self.log, "a")
        self.proc = subprocess.Popen([MILTER, "-f", "-c", self.conf], stderr=logf)
        logf.close()
        for _ in range(200):
            if os.path.exists(self.sock):
                try:
                    MilterClient(self.sock).close()
                    return
                except OSError:
                    pass
            if self.proc.poll() is not None:
                raise RuntimeError("relay-milter exited: " + open(self.log).read())
            time.sleep(0.05)
        raise RuntimeError("relay-milter did not start")

    def stop(self, sig=signal.SIGTERM):
        """Stops the daemon; returns its exit status (sanitizer reports make it non-zero)."""
        rc = None
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                rc = self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        return rc


def admin(tmp, *args, stdin=None, check=True, state_db=None):
    env = dict(os.environ, RELAY_DB=tmp + "/users.db",
               RELAY_STATE_DB=state_db or tmp + "/state.db")
    r = subprocess.run([ADMIN] + list(args), input=stdin, env=env, capture_output=True,
                       text=True)
    if check and r.returncode != 0:
        raise AssertionError("relay-admin %s: %s" % (" ".join(args), r.stderr))
    return r


def send(sock, login, sender, rcpts=("<to@dest.example>",), header_from=None, args=(),
         body=b"Hello.\r\n", mac=None, queue_id="QTEST"):
    """One message; returns (stage, reply) of the first refusal or ('eom', reply)."""
    with MilterClient(sock) as m:
        m.negotiate()
        r = m.mail(sender, args, macros=mac if mac is not None else macros(login))
        if r.code != "c":
            return "mail", r
        accepted = 0
        last = None
        for rc in rcpts:
            last = m.rcpt(rc)
            if last is None or last.code == "c":  # None: no reply negotiated (NR_RCPT)
                accepted += 1
        if accepted == 0:
            m.abort()
            return "rcpt", last
        hf = header_from if header_from is not None else sender.strip("<>")
        r = m.message([("From", hf), ("Subject", "test")], body, eom_macros={"i": queue_id})
        return "eom", r


class MilterDaemonTest(ClassDaemonCase):
    @classmethod
    def setUpClass(cls):
        t = cls.make_tmp("mlt-daemon-")
        admin(t, "init")
        for name, senders in [("alice", ["alice@example.com", "@corp.example"]),
                              ("carol", ["carol@example.com"]), ("dave", ["dave@example.com"]),
                              ("erin", ["erin@example.com"]), ("frank", ["frank@example.com"]),
                              ("app@shop.example", []), ("off", ["off@example.com"]),
                              ("gina", ["gina@example.com"]), ("hal", ["hal@example.com", "<>"]),
                              ("ivy", ["ivy@example.com", "@corp.example"]),
                              ("50%off", ["pct@example.com"]), ("50?off", ["q@example.com"]),
                              ("a" * 255, ["long@example.com"])]:
            admin(t, "user", "add", name, "--password-stdin",
                  *sum((["--sender", s] for s in senders), []), stdin=PASSWORD)
        admin(t, "user", "disable", "off")
        admin(t, "limit", "set", "--default", "--messages", "1000/1h")
        admin(t, "limit", "set", "alice", "--messages", "5/1h")
        admin(t, "limit", "set", "carol", "--recipients", "4/1h")
        admin(t, "limit", "set", "dave", "--messages", "3/1h")
        admin(t, "limit", "set", "erin", "--messages", "1/1h")
        admin(t, "limit", "set", "frank", "--messages", "2/1h")
        admin(t, "limit", "set", "app@shop.example", "--messages", "1/1h", "--hold")
        admin(t, "limit", "set", "gina", "--messages", "2/2s")
        cls.d = Daemon(t)
        cls.d.start()

    def usage(self, login, last_verdict):
        """relay-admin usage once the writer has committed the login's newest record
        (`last_verdict`): it commits in queue order, so every count before it is in."""
        wait_audit(self.tmp, login, last_verdict)
        r = admin(self.tmp, "--json", "usage", login)
        return {(x["metric"], x["window_seconds"]): x for x in json.loads(r.stdout)[0]["limits"]}

    # ---- negotiation -----------------------------------------------------------------
    def test_negotiation_skips_stages(self):
        with MilterClient(self.d.sock) as m:
            actions, steps = m.negotiate()
            for bit in (SMFIP_NOCONNECT, SMFIP_NOHELO, SMFIP_NODATA, SMFIP_NOEOH, SMFIP_NR_HDR,
                        SMFIP_NR_BODY, SMFIP_NOUNKNOWN):
                self.assertTrue(steps & bit, hex(bit))
            self.assertTrue(actions & 0x20, "quarantine requested")
            self.assertIn("{auth_authen}", m.macro_lists.get(2, ""))
            self.assertIn("{tls_version}", m.macro_lists.get(2, ""))

    def test_negotiation_follows_policy(self):
        # no byte limit in the fixture: no body; carol's recipient limit: RCPT answered
        with MilterClient(self.d.sock) as m:
            _, steps = m.negotiate()
            self.assertTrue(steps & SMFIP_NOBODY, hex(steps))
            self.assertFalse(steps & (SMFIP_NR_RCPT | SMFIP_NOHDRS), hex(steps))
        try:
            admin(self.tmp, "limit", "set", "--default", "--bytes", "1G/1d")
            with MilterClient(self.d.sock) as m:
                _, steps = m.negotiate()
                self.assertFalse(steps & SMFIP_NOBODY, "a byte limit: the body again")
            admin(self.tmp, "limit", "clear", "carol")
            with MilterClient(self.d.sock) as m:
                _, steps = m.negotiate()
                self.assertTrue(steps & SMFIP_NR_RCPT, "no recipient limit: no RCPT replies")
                r = m.mail("<hal@example.com>", macros=macros("hal"))
                self.assertEqual(r.code, "c", r)
                self.assertIsNone(m.rcpt("<a@x.example>"))
                self.assertIsNone(m.rcpt("<b@x.example>"))
                r = m.message([("From", "hal@example.com")], eom_macros={"i": "QNRRCPT"})
                self.assertEqual(r.code, "c", r)
            rec = wait_audit(self.tmp, "hal", "accepted", queue_id="QNRRCPT")[-1]
            self.assertEqual(rec["recipients"], 2, "counted without replies")
        finally:
            admin(self.tmp, "limit", "clear", "--default")
            admin(self.tmp, "limit", "set", "--default", "--messages", "1000/1h")
            admin(self.tmp, "limit", "set", "carol", "--recipients", "4/1h")

    def test_check_only(self):
        r = subprocess.run([MILTER, "-n", "-c", self.d.conf], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        bad = os.path.join(self.tmp, "bad.conf")
        for text, want in [("socket = unix:/x\nsocket = unix:/y\n", "bad.conf:2: duplicate key"),
                           ("colour = blue\n", "bad.conf:1: unknown key"),
                           ("user = no-such-user-here\n", "does not exist")]:
            with open(bad, "w") as f:
                f.write(text)
            r = subprocess.run([MILTER, "-n", "-c", bad], capture_output=True, text=True)
            self.assertEqual(r.returncode, 2, text)
            self.assertIn(want, r.stderr)
        r = subprocess.run([MILTER, "-n", "-c", os.path.join(self.tmp, "missing.conf")],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)

    # ---- session, login and sender checks ----------------------------------------------
    def test_accepts_own_address(self):
        stage, r = send(self.d.sock, "hal", "<hal@example.com>", header_from="Hal <hal@example.com>")
        self.assertEqual((stage, r.code), ("eom", "c"), r)

    def test_domain_pattern_and_case(self):
        stage, r = send(self.d.sock, "IVY", "<Boss@CORP.example>",
                        header_from='"Boss" <boss@corp.example>')
        self.assertEqual((stage, r.code), ("eom", "c"), r)

    def test_spoofed_envelope_sender(self):
        stage, r = send(self.d.sock, "hal", "<ceo@bank.example>")
        self.assertEqual(stage, "mail")
        self.assertTrue(r.smtp.startswith("553 5.7.1 "), r.smtp)
        self.assertIn("not allowed for login hal", r.smtp)

    def test_spoofed_header_from(self):
        stage, r = send(self.d.sock, "hal", "<hal@example.com>",
                        header_from='"hal@example.com" <ceo@bank.example>')
        self.assertEqual(stage, "eom")
        self.assertTrue(r.smtp.startswith("550 5.7.1 "), r.smtp)
        self.assertIn("From:", r.smtp)

    def test_null_sender(self):
        stage, r = send(self.d.sock, "hal", "<>", header_from="hal@example.com")
        self.assertEqual((stage, r.code), ("eom", "c"), r)
        stage, r = send(self.d.sock, "alice", "<>", header_from="alice@example.com")
        self.assertTrue(r.smtp.startswith("553 5.7.1"), r.smtp)

    def test_tls_and_auth_required(self):
        for mac, want in [(macros("hal", **{"{tls_version}": "TLSv1.1"}), "550 5.7.1"),
                          ({"{auth_authen}": "hal"}, "550 5.7.1"),
                          (macros(None), "550 5.7.1")]:
            stage, r = send(self.d.sock, "hal", "<hal@example.com>", mac=mac)
            self.assertEqual(stage, "mail")
            self.assertTrue(r.smtp.startswith(want), r.smtp)

    def test_unknown_and_disabled_logins(self):
        for login in ("nobody", "off"):
            stage, r = send(self.d.sock, login, "<%s@example.com>" % login)
            self.assertTrue(r.smtp.startswith("550 5.7.1"), (login, r.smtp))

    def test_login_looked_up_verbatim(self):
        # '%' is a valid login character: {auth_authen} must not be rewritten (to '?') or
        # truncated before the lookup, or the policy of another login applies
        stage, r = send(self.d.sock, "50%off", "<pct@example.com>")
        self.assertEqual((stage, r.code), ("eom", "c"), r)
        stage, r = send(self.d.sock, "50%off", "<q@example.com>")
        self.assertEqual(stage, "mail")
        self.assertTrue(r.smtp.startswith("553 5.7.1"), r.smtp)
        for bad in ("a" * 255 + "b", "50\x01off"):
            stage, r = send(self.d.sock, bad, "<long@example.com>")
            self.assertEqual(stage, "mail", bad)
            self.assertTrue(r.smtp.startswith("550 5.7.1"), (bad, r.smtp))

    def test_log_lines_carry_no_terminal_controls(self):
        # 8-bit bytes are valid in an address (SMTPUTF8), but U+009B (CSI) and friends
        # must not reach the mail log, where an admin's terminal would act on them
        stage, r = send(self.d.sock, "hal", "<\u009b2J\u0085x@example.com>")
        self.assertEqual(stage, "mail")
        with open(self.d.log, "rb") as f:
            log = f.read()
        self.assertIn(b"2j", log.lower())
        self.assertNotIn(b"\xc2\x9b", log)
        self.assertNotIn(b"\xc2\x85", log)

    # ---- rate limits -------------------------------------------------------------------
    def test_message_limit_and_refused_not_counted(self):
        for i in range(5):
            stage, r = send(self.d.sock, "alice", "<alice@example.com>")
            self.assertEqual((stage, r.code), ("eom", "c"), (i, r))
        stage, r = send(self.d.sock, "alice", "<alice@example.com>")
        self.assertEqual(stage, "mail")
        self.assertTrue(r.smtp.startswith("450 4.7.1"), r.smtp)
        self.assertRegex(r.smtp, r"retry in \d+ seconds")
        # a message refused for its From: is not counted either
        u = self.usage("alice", "tempfailed")
        self.assertEqual(u[("messages", 3600)]["used"], 5)

    def test_limits_beyond_reader_refused_mail_flows(self):
        """Issue 8: two `limit set --default` calls of 20 windows each both exited 0, and
        then the milter could not read the defaults: 451 4.3.0 at MAIL for every login
        without limits of its own. The second call must be refused, and mail keep flowing."""
        msgs = sum((["--messages", "%d/%dm" % (100000 + i, i)] for i in range(1, 21)), [])
        size = sum((["--bytes", "%dG/%dh" % (i, i)] for i in range(1, 21)), [])
        try:
            admin(self.tmp, "limit", "set", "--default", *msgs)
            r = admin(self.tmp, "limit", "set", "--default", *size, check=False)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn("at most 32", r.stderr)
            stage, r = send(self.d.sock, "hal", "<hal@example.com>")   # inherits the defaults
            self.assertEqual((stage, r.code), ("eom", "c"), r)
        finally:
            admin(self.tmp, "limit", "clear", "--default")
            admin(self.tmp, "limit", "set", "--default", "--messages", "1000/1h")

    def test_window_frees(self):
        for _ in range(2):
            self.assertEqual(send(self.d.sock, "gina", "<gina@example.com>")[1].code, "c")
        stage, r = send(self.d.sock, "gina", "<gina@example.com>")
        self.assertTrue(r.smtp.startswith("450 4.7.1"), r.smtp)
        # the 2 s window has room again: poll (bounded) until a message passes; a refused
        # attempt counts nothing, so polling does not delay the window
        deadline = time.monotonic() + 30
        while True:
            stage, r = send(self.d.sock, "gina", "<gina@example.com>")
            if r.code == "c" or time.monotonic() > deadline:
                break
            self.assertTrue(r.smtp.startswith("450 4.7.1"), r.smtp)
            time.sleep(0.1)
        self.assertEqual((stage, r.code), ("eom", "c"), r)

    def test_recipient_limit_counts_recipients(self):
        stage, r = send(self.d.sock, "carol", "<carol@example.com>",
                        rcpts=["<a@x.example>", "<b@x.example>", "<c@x.example>"])
        self.assertEqual((stage, r.code), ("eom", "c"), r)
        with MilterClient(self.d.sock) as m:
            m.negotiate()
            self.assertEqual(m.mail("<carol@example.com>", macros=macros("carol")).code, "c")
            self.assertEqual(m.rcpt("<d@x.example>").code, "c")
            r = m.rcpt("<e@x.example>")
            self.assertTrue(r.smtp.startswith("450 4.7.1"), r.smtp)
            r = m.message([("From", "carol@example.com")])
            self.assertEqual(r.code, "c")
        self.assertEqual(self.usage("carol", "accepted")[("recipients", 3600)]["used"], 4)

    def test_concurrent_sessions_cannot_slip_past(self):
        sessions = [MilterClient(self.d.sock) for _ in range(8)]
        try:
            results = []
            for m in sessions:
                m.negotiate()
                results.append(m.mail("<dave@example.com>", macros=macros("dave")).code)
            self.assertEqual(results.count("c"), 3, results)
            for m, code in zip(sessions, results):
                if code == "c":
                    self.assertEqual(m.rcpt("<x@y.example>").code, "c")
                    self.assertEqual(m.message([("From", "dave@example.com")]).code, "c")
        finally:
            for m in sessions:
                m.close()
        self.assertEqual(self.usage("dave", "accepted")[("messages", 3600)]["used"], 3)

    def test_aborted_message_gives_back_its_reservation(self):
        with MilterClient(self.d.sock) as m:
            m.negotiate()
            self.assertEqual(m.mail("<erin@example.com>", macros=macros("erin")).code, "c")
            m.abort()
            # abort has no reply: a refused MAIL on the same session proves it was handled
            self.assertTrue(m.mail("<ceo@bank.example>", macros=macros("erin")).smtp.startswith("553"))
        stage, r = send(self.d.sock, "erin", "<erin@example.com>")
        self.assertEqual((stage, r.code), ("eom", "c"), r)
        stage, r = send(self.d.sock, "erin", "<erin@example.com>")
        self.assertTrue(r.smtp.startswith("450 4.7.1"), r.smtp)
        # relay-admin raises the limit: applies without a restart
        admin(self.tmp, "limit", "set", "erin", "--messages", "2/1h")
        stage, r = send(self.d.sock, "erin", "<erin@example.com>")
        self.assertEqual((stage, r.code), ("eom", "c"), r)

    def test_hold_over_limit(self):
        stage, r = send(self.d.sock, "app@shop.example", "<app@shop.example>")
        self.assertEqual((stage, r.code, r.actions), ("eom", "c", []), r)
        stage, r = send(self.d.sock, "app@shop.example", "<app@shop.example>")
        self.assertEqual((stage, r.code), ("eom", "c"), r)
        self.assertEqual([a[0] for a in r.actions], ["q"], r)
        log = wait_audit(self.tmp, "app@shop.example", "held")
        self.assertEqual([x["verdict"] for x in log], ["accepted", "held"])

    def test_audit_record_fields(self):
        send(self.d.sock, "hal", "<hal@example.com>", header_from="Hal <hal@example.com>",
             rcpts=["<a@x.example>", "<b@x.example>"], queue_id="QAUDIT")
        rec = wait_audit(self.tmp, "hal", "accepted", queue_id="QAUDIT")[-1]
        self.assertEqual(rec["verdict"], "accepted")
        self.assertEqual(rec["envelope_from"], "hal@example.com")
        self.assertEqual(rec["header_from"], "hal@example.com")
        self.assertEqual(rec["recipients"], 2)
        self.assertEqual(rec["tls_version"], "TLSv1.3")
        self.assertEqual(rec["client_addr"], "192.0.2.10")
        self.assertEqual(rec["queue_id"], "QAUDIT")
        self.assertGreater(rec["size"], 10)

    # ---- ordered scenarios that restart or reconfigure the daemon ----------------------
    def test_y_replaced_users_db_is_reopened(self):
        # a restore puts a new file in place (rename): its contents must count, as in the
        # SASL plugin, not the unlinked old file's forever
        stage, r = send(self.d.sock, "ivy", "<ivy2@example.com>")
        self.assertTrue(r.smtp.startswith("553 5.7.1"), r.smtp)
        new = os.path.join(self.tmp, "users-new.db")
        with open(self.tmp + "/users.db", "rb") as f, open(new, "wb") as g:
            g.write(f.read())
        env = dict(os.environ, RELAY_DB=new)
        subprocess.run([ADMIN, "sender", "add", "ivy", "ivy2@example.com"], env=env,
                       check=True, capture_output=True)
        os.rename(new, self.tmp + "/users.db")
        stage, r = send(self.d.sock, "ivy", "<ivy2@example.com>",
                        header_from="ivy2@example.com")
        self.assertEqual((stage, r.code), ("eom", "c"), r)
        # a file moved away: temporary failure, as in the plugin; back: working again
        os.rename(self.tmp + "/users.db", new)
        stage, r = send(self.d.sock, "ivy", "<ivy2@example.com>")
        self.assertEqual(stage, "mail")
        self.assertTrue(r.smtp.startswith("451 4.3.0"), r.smtp)
        os.rename(new, self.tmp + "/users.db")
        self.assertEqual(send(self.d.sock, "hal", "<hal@example.com>")[1].code, "c")

    def test_z1_counters_survive_restart(self):
        for _ in range(2):
            self.assertEqual(send(self.d.sock, "frank", "<frank@example.com>")[1].code, "c")
        self.assertEqual(self.d.stop(), 0, "clean stop (and no leak report under ASan)")
        self.d.start()
        stage, r = send(self.d.sock, "frank", "<frank@example.com>")
        self.assertTrue(r.smtp.startswith("450 4.7.1"), r.smtp)

    def test_z2_sigusr1_reload_keeps_sessions(self):
        with MilterClient(self.d.sock) as open_session:
            open_session.negotiate()
            self.d.write_conf("check_header_from = no\n")
            self.reload("configuration reloaded")
            stage, r = send(self.d.sock, "hal", "<hal@example.com>", header_from="ceo@bank.example")
            self.assertEqual((stage, r.code), ("eom", "c"), r)
            self.assertEqual(open_session.mail("<hal@example.com>", macros=macros("hal")).code, "c")
        self.d.write_conf("bogus_key = 1\n")
        self.reload("reload refused")
        self.assertIsNone(self.d.proc.poll(), "a bad reload must not stop the daemon")
        self.d.write_conf()
        self.reload("configuration reloaded")

    def reload(self, outcome):
        """SIGUSR1, then waits (bounded) until the log says `outcome`."""
        since = len(self.d.log_text())
        self.d.proc.send_signal(signal.SIGUSR1)
        self.d.wait_log(outcome, since=since)

    def test_z3_broken_users_db_fails_closed(self):
        with open(self.tmp + "/users.db", "r+b") as f:
            f.write(b"\0" * 100)
        stage, r = send(self.d.sock, "hal", "<hal@example.com>")
        self.assertEqual(stage, "mail")
        self.assertTrue(r.smtp.startswith("451 4.3.0") or r.code == "t", r.smtp)


def wait_audit(tmp, login, verdict, state_db=None, queue_id=None, seconds=20):
    """Polls (bounded) `relay-admin log` until the login's newest audit record has `verdict`
    (and `queue_id`); returns the login's records, oldest first (the last poll's, if the
    deadline passed: the caller's assertions judge)."""
    log = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        r = admin(tmp, "--json", "log", "--user", login, state_db=state_db, check=False)
        if r.returncode == 0:
            log = json.loads(r.stdout)
            if log and log[-1]["verdict"] == verdict and \
                    (queue_id is None or log[-1]["queue_id"] == queue_id):
                break
        time.sleep(0.05)
    return log


def wait_used(tmp, state_db, login, want, metric=("messages", 3600)):
    """Polls (bounded) relay-admin usage until `login` shows `want` used; returns the last."""
    used = None
    for _ in range(100):
        r = admin(tmp, "--json", "usage", login, state_db=state_db, check=False)
        if r.returncode == 0:
            lim = {(x["metric"], x["window_seconds"]): x for x in json.loads(r.stdout)[0]["limits"]}
            used = lim[metric]["used"]
            if used == want:
                break
        time.sleep(0.1)
    return used


class StateFileTest(unittest.TestCase):
    """The state database moved, deleted or replaced while the milter runs (issue 8, item 7):
    the milter must not go on counting into a file nobody reads. One daemon per test."""

    def setUp(self):
        t = private_state(self, "mlt-statefile-")
        admin(t, "init", state_db=self.state)
        for name, limit in [("two", "2/1h"), ("other", "5/1h")]:
            admin(t, "user", "add", name, "--password-stdin", "--sender", name + "@example.com",
                  stdin="A-long-enough-test-password-1234\n")
            admin(t, "limit", "set", name, "--messages", limit)
        self.d = Daemon(t, state_db=self.state)
        self.addCleanup(self.d.stop)
        self.d.start()

    def tearDown(self):
        if os.environ.get("MLT_KEEP"):
            print(self.d.log_text(), file=sys.stderr)

    def send(self, login):
        return send(self.d.sock, login, "<%s@example.com>" % login)

    def fresh_state_db(self, usage=()):
        """A new state database made by relay-admin, ready to be renamed into place, with
        one usage row per login in `usage` (a restore from elsewhere: contents of its own)."""
        fresh = tempfile.mkdtemp(dir=self.tmp)
        admin(self.tmp, "init", state_db=fresh + "/state.db")
        db = sqlite3.connect(fresh + "/state.db")
        with db:
            for login in usage:
                db.execute("INSERT INTO usage (login, ts, messages, recipients, bytes)"
                           " VALUES (?, ?, 1, 1, 100)", (login, int(time.time())))
        db.close()
        return fresh + "/state.db"

    def test_moved_aside_then_replaced_by_a_fresh_file(self):
        self.assertEqual(self.send("two")[1].code, "c")
        self.assertEqual(wait_used(self.tmp, self.state, "two", 1), 1)
        mark = len(self.d.log_text())
        # the attack: move the file away; the old code went on counting into it
        os.rename(self.state, self.state + ".aside")
        self.d.wait_log("state database %s is missing" % self.state, mark, required=False)
        stage, r = self.send("two")
        self.assertEqual(stage, "mail", r)
        self.assertTrue(r.smtp.startswith("451 4.3.0"), r.smtp)
        # a fresh state database put in place (a restore): used, with the counters carried over
        os.rename(self.fresh_state_db(), self.state)
        self.d.wait_log("state database writable again", mark)
        self.assertEqual(self.send("two")[1].code, "c")
        stage, r = self.send("two")
        self.assertTrue(r.smtp.startswith("450 4.7.1"), r.smtp)
        self.assertEqual(wait_used(self.tmp, self.state, "two", 2), 2, "relay-admin usage")
        # and after a restart the limit still holds
        self.assertEqual(self.d.stop(), 0)
        self.d.start()
        stage, r = self.send("two")
        self.assertTrue(r.smtp.startswith("450 4.7.1"), r.smtp)

    def test_replaced_in_one_rename(self):
        # a restore done right (rename over the path) of a file with contents of its own:
        # the milter must move to it with its counters, not keep writing the old file (whose
        # WAL, named after the path, the old code left to be read as the new file's)
        self.assertEqual(self.send("two")[1].code, "c")
        self.assertEqual(wait_used(self.tmp, self.state, "two", 1), 1)
        mark = len(self.d.log_text())
        os.rename(self.fresh_state_db(usage=["other"]), self.state)
        self.d.wait_log("was replaced by another file", mark, required=False)
        self.assertEqual(self.send("two")[1].code, "c")
        stage, r = self.send("two")
        self.assertTrue(r.smtp.startswith("450 4.7.1"), r.smtp)
        self.assertEqual(wait_used(self.tmp, self.state, "two", 2), 2, "relay-admin usage")
        self.assertEqual(wait_used(self.tmp, self.state, "other", 1), 1, "the new file's own rows")
        self.assertEqual(self.d.stop(), 0)
        self.d.start()
        stage, r = self.send("two")
        self.assertTrue(r.smtp.startswith("450 4.7.1"), r.smtp)
        self.assertEqual(wait_used(self.tmp, self.state, "other", 1), 1, "after a restart")

    def test_replaced_carries_credential_use(self):
        # the last use of an app credential moves to the replacement file with the
        # login's counters and last use
        admin(self.tmp, "user", "credential", "add", "two", "app")
        self.assertEqual(send(self.d.sock, "two+app", "<two@example.com>")[1].code, "c")
        self.assertEqual(wait_used(self.tmp, self.state, "two", 1), 1)

        def credential_use():
            db = sqlite3.connect("file:%s?mode=ro" % self.state, uri=True)
            try:
                return db.execute("SELECT login, label FROM credential_use").fetchall()
            finally:
                db.close()

        self.assertEqual(credential_use(), [("two", "app")])
        mark = len(self.d.log_text())
        os.rename(self.fresh_state_db(usage=["other"]), self.state)
        self.d.wait_log("was replaced by another file", mark, required=False)
        self.assertEqual(self.send("other")[1].code, "c")
        self.assertEqual(wait_used(self.tmp, self.state, "other", 2), 2, "the new file in use")
        self.assertEqual(wait_used(self.tmp, self.state, "two", 1), 1, "usage carried")
        self.assertEqual(credential_use(), [("two", "app")], "credential use carried")

    def test_moved_back(self):
        # the same file moved back to where it was: carry on with it
        self.assertEqual(self.send("other")[1].code, "c")
        mark = len(self.d.log_text())
        os.rename(self.state, self.state + ".aside")
        self.d.wait_log("is missing", mark, required=False)
        stage, r = self.send("other")
        self.assertTrue(r.smtp.startswith("451 4.3.0"), r.smtp)
        os.rename(self.state + ".aside", self.state)
        self.d.wait_log("state database writable again", mark)
        self.assertEqual(self.send("other")[1].code, "c")
        self.assertEqual(wait_used(self.tmp, self.state, "other", 2), 2, "relay-admin usage")

    def test_deleted_then_restarted(self):
        self.assertEqual(self.send("two")[1].code, "c")
        self.assertEqual(wait_used(self.tmp, self.state, "two", 1), 1)
        mark = len(self.d.log_text())
        os.unlink(self.state)
        self.d.wait_log("state database %s is missing" % self.state, mark, required=False)
        stage, r = self.send("two")
        self.assertEqual(stage, "mail", r)
        self.assertTrue(r.smtp.startswith("451 4.3.0"), r.smtp)
        self.assertNotEqual(admin(self.tmp, "usage", "two", state_db=self.state,
                                  check=False).returncode, 0)
        # a clean stop puts a file back at the path, with the counters: the next start
        # (which would create an empty one) must not give "two" its limit again
        self.assertEqual(self.d.stop(), 0)
        self.d.start()
        self.assertEqual(wait_used(self.tmp, self.state, "two", 1), 1, "relay-admin usage")
        self.assertEqual(self.send("two")[1].code, "c")
        stage, r = self.send("two")
        self.assertTrue(r.smtp.startswith("450 4.7.1"), r.smtp)


class CrashJournalTest(unittest.TestCase):
    """relay-milter killed with -9 between "accept" and the writer's commit (issue 13): every
    accepted message is counted and audited after the restart, exactly once; one daemon per
    test, the writer's interval (10 s, the most) long enough that nothing is committed
    before the kill."""

    def setUp(self):
        t = private_state(self, "mlt-journal-")
        admin(t, "init", state_db=self.state)
        admin(t, "user", "add", "three", "--password-stdin", "--sender", "three@example.com",
              stdin="A-long-enough-test-password-1234\n")
        admin(t, "limit", "set", "three", "--messages", "3/1h")
        self.d = Daemon(t, state_db=self.state)
        with open(self.d.conf) as f:
            conf = f.read().replace("state_flush_ms = 20\n", "state_flush_ms = 10000\n")
        with open(self.d.conf, "w") as f:
            f.write(conf)
        self.addCleanup(self.d.stop)
        self.d.start()

    def send(self):
        return send(self.d.sock, "three", "<three@example.com>")

    def audited(self):
        db = sqlite3.connect("file:%s?mode=ro" % self.state, uri=True)
        try:
            return db.execute("SELECT count(*) FROM audit WHERE login = 'three' AND"
                              " verdict = 'accepted'").fetchone()[0]
        finally:
            db.close()

    def kill_and_restart(self):
        mark = len(self.d.log_text())
        self.assertEqual(self.d.stop(signal.SIGKILL), -signal.SIGKILL)
        self.d.start()
        return self.d.log_text()[mark:]

    def test_accepted_messages_survive_kill(self):
        for _ in range(2):
            self.assertEqual(self.send()[1].code, "c")
        # the attack: kill -9 before the writer's next commit; the old code lost both
        log = self.kill_and_restart()
        self.assertEqual(wait_used(self.tmp, self.state, "three", 2), 2, log)
        self.assertEqual(self.audited(), 2)
        self.assertIn("journal: recovered 2 records", log)
        # the limit (3/1h) knows them: one more passes, the next is over the limit
        self.assertEqual(self.send()[1].code, "c")
        stage, r = self.send()
        self.assertTrue(r.smtp.startswith("450 4.7.1"), r.smtp)

    def test_replayed_once_only(self):
        self.assertEqual(self.send()[1].code, "c")
        self.kill_and_restart()
        self.assertEqual(wait_used(self.tmp, self.state, "three", 1), 1)
        # killed again (nothing new accepted): the journal was applied and emptied at the
        # start; a second replay would count the message twice
        log = self.kill_and_restart()
        self.assertIn("journal: recovered 0 records", log)
        self.assertEqual(self.d.stop(), 0)
        self.assertEqual(wait_used(self.tmp, self.state, "three", 1), 1)
        self.assertEqual(self.audited(), 1)


class StateDiskFullTest(unittest.TestCase):
    """A clean stop on a full state disk (issue 8, item 7): retry while refusing mail, write
    the records when space comes back, else exit non-zero naming what was lost; accepted
    messages are never lost, they wait in the crash journal (issue 13)."""

    def setUp(self):
        t = private_dir(self, "mlt-diskfull-")
        self.mnt = t + "/state"
        os.mkdir(self.mnt)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", self.mnt],
                           capture_output=True, text=True)
        if r.returncode != 0:
            self.skipTest("cannot mount a tmpfs for the state folder: " + r.stderr.strip())
        self.addCleanup(subprocess.run, ["umount", self.mnt], capture_output=True)
        self.state = self.mnt + "/state.db"
        admin(t, "init", state_db=self.state)
        admin(t, "user", "add", "once", "--password-stdin", "--sender", "once@example.com",
              stdin="A-long-enough-test-password-1234\n")
        admin(t, "limit", "set", "once", "--messages", "1/1h")
        self.d = Daemon(t, state_db=self.state)
        self.addCleanup(self.d.stop)
        self.d.start()

    def fill(self):
        """Fills the tmpfs; returns the filler's path (remove it to free the space)."""
        filler = self.mnt + "/filler"
        with open(filler, "wb", buffering=0) as f:
            chunk = b"\0" * 4096
            try:
                while True:
                    f.write(chunk)
            except OSError:
                pass
        return filler

    def pending_record(self):
        """Fills the disk, sends one message for `once`: accepted (the disk is only needed by
        the writer), then waits until the writer has failed to commit it."""
        filler = self.fill()
        mark = len(self.d.log_text())
        stage, r = send(self.d.sock, "once", "<once@example.com>")
        self.assertEqual((stage, r.code), ("eom", "c"), r)
        self.d.wait_log("disk is full", mark)
        return filler, mark

    def test_space_back_during_the_retry(self):
        filler, mark = self.pending_record()
        self.d.proc.send_signal(signal.SIGTERM)
        # the old code gave up at once ("1 records lost at stop") and exited 0
        self.d.wait_log("retrying for up to", mark, required=False)
        os.unlink(filler)
        rc = self.d.proc.wait(60)
        self.d.proc = None
        self.assertEqual(rc, 0, self.d.log_text()[mark:])
        self.assertNotIn("lost", self.d.log_text()[mark:])
        self.d.start()
        stage, r = send(self.d.sock, "once", "<once@example.com>")
        self.assertTrue(r.smtp.startswith("450 4.7.1"), r.smtp)

    def test_space_never_back(self):
        self.d.write_conf("stop_flush_timeout = 2s\n")
        self.d.stop()
        self.d.start()
        filler, mark = self.pending_record()
        # the writer is unhealthy now: the next MAIL is refused (451), an audit-only record
        stage, r = send(self.d.sock, "once", "<once@example.com>")
        self.assertTrue(r.smtp.startswith("451"), r.smtp)
        self.d.proc.send_signal(signal.SIGTERM)
        rc = self.d.proc.wait(60)
        self.d.proc = None
        log = self.d.log_text()[mark:]
        # the refusal's audit record is lost (exit 1); the accepted message is not: it stays
        # in the crash journal (issue 13) and the next start counts it
        self.assertEqual(rc, 1, log)
        self.assertIn("2 records not written: 1 accepted message kept in the journal (the next "
                      "start applies it), 1 audit-only record lost", log)
        self.assertRegex(log, r"in the journal at stop: QTEST login=once ts=\d+ "
                              r"verdict=accepted messages=1")
        self.assertRegex(log, r"lost at stop: \S+ login=once ts=\d+ verdict=tempfailed")
        os.unlink(filler)
        mark = len(self.d.log_text())
        self.d.start()
        self.assertIn("journal: recovered 1 records", self.d.log_text()[mark:])
        stage, r = send(self.d.sock, "once", "<once@example.com>")
        self.assertTrue(r.smtp.startswith("450 4.7.1"), r.smtp)


if __name__ == "__main__":
    MILTER, ADMIN = sys.argv[1], sys.argv[2]
    del sys.argv[1:3]
    unittest.main(verbosity=2)
