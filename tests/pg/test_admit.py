#!/usr/bin/python3
"""test_admit.py — exact admission across nodes (suite 'pg'): TWO real relay-milter daemons
share one private PostgreSQL 15 (tests/lib/pglab.py) as their state database, and the
milter protocol is played by tests/milter/milterproto.py.

  - K concurrent sessions split across both daemons against a limit of N admit exactly N,
    several rounds (each round a fresh login), and the reservations are gone afterwards;
  - the refusal says when to retry, computed from the database's usage;
  - PostgreSQL stopped under load: every answer is 451 while it is down, nothing is
    accepted that the database did not count; started again: service resumes;
  - a daemon killed (SIGKILL) while holding reservations: its capacity is held until the
    reservation lifetime (reservation_ttl, a few seconds here) passes, then comes back;
  - audit records of both daemons land in PostgreSQL; relay-admin usage and log read them;
  - the configuration refuses reservation_ttl <= timeout with a PostgreSQL state_db.
Both daemons read one SQLite users database (the users part on PostgreSQL is pg-engine's).
Loopback only; every process started is stopped by pid; no timing is asserted (waits are
bounded polls).

usage: test_admit.py RELAY_MILTER RELAY_ADMIN
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'lib'))
sys.path.insert(0, os.path.join(HERE, '..', 'milter'))
import pglab  # noqa: E402
from milterproto import MilterClient  # noqa: E402
from daemoncase import PASSWORD  # noqa: E402

MILTER = ADMIN = None
TLS = {"{tls_version}": "TLSv1.3", "{cipher}": "TLS_AES_256_GCM_SHA384",
       "{client_addr}": "192.0.2.10"}


def macros(login):
    m = dict(TLS)
    m["{auth_authen}"] = login
    return m


class Daemon:
    """One relay-milter on a private socket with the shared users and state databases."""

    def __init__(self, tmp, name, users_db, state_db, extra=""):
        self.sock = os.path.join(tmp, name + ".sock")
        self.conf = os.path.join(tmp, name + ".conf")
        self.log = os.path.join(tmp, name + ".log")
        with open(self.conf, "w") as f:
            f.write("socket = unix:%s\nusers_db = %s\nstate_db = %s\nlog = stderr\n"
                    "log_level = debug\npolicy_refresh_ms = 0\nstate_flush_ms = 20\n"
                    "timeout = 30s\nreservation_ttl = 40s\n%s"
                    % (self.sock, users_db, state_db, extra))
        self.proc = None

    def log_text(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def start(self):
        logf = open(self.log, "a")
        self.proc = subprocess.Popen([MILTER, "-f", "-c", self.conf], stderr=logf)
        logf.close()
        for _ in range(400):
            if os.path.exists(self.sock):
                try:
                    MilterClient(self.sock).close()
                    return
                except OSError:
                    pass
            if self.proc.poll() is not None:
                raise RuntimeError("relay-milter exited: " + self.log_text())
            time.sleep(0.05)
        raise RuntimeError("relay-milter did not start: " + self.log_text())

    def stop(self, sig=signal.SIGTERM):
        rc = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                rc = self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                rc = self.proc.wait()
        self.proc = None
        return rc


def send(sock, login, queue_id, barrier=None, rcpts=1):
    """One message; returns the first refusal's reply text or 'accepted'. With a barrier,
    every session has negotiated before any sends MAIL."""
    try:
        with MilterClient(sock, timeout=60) as m:
            m.negotiate()
            if barrier is not None:
                barrier.wait(60)
            r = m.mail("<%s@example.com>" % login, macros=macros(login))
            if r.code != "c":
                return r.smtp
            for k in range(rcpts):
                r = m.rcpt("<to%d@dest.example>" % k)
                if r is not None and r.code != "c":
                    m.abort()
                    return r.smtp
            r = m.message([("From", "%s@example.com" % login), ("Subject", "t")],
                          eom_macros={"i": queue_id})
            return "accepted" if r.code == "c" else r.smtp
    except (OSError, EOFError) as e:
        return "error: %s" % e


class AdmitTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmpdir = tempfile.TemporaryDirectory(prefix="pg-admit-")
        cls.tmp = cls.tmpdir.name
        cls.pg = pglab.PgLab(prefix="pg-admit-lab-")
        cls.pg.create_role("relay", password="relay-test-pw")
        cls.pg.create_database("relay", owner="relay")
        # the password reaches libpq through PGPASSFILE: never argv, never the URI
        os.environ["PGPASSFILE"] = cls.pg.write_passfile(os.path.join(cls.tmp, "pgpass"),
                                                         "relay", "relay-test-pw")
        cls.state = cls.pg.uri("relay", "relay")
        cls.users = os.path.join(cls.tmp, "users.db")
        cls.admin("init")
        cls.admin("user", "add", "bulk", "--password-stdin", "--sender", "bulk@example.com",
                  stdin=PASSWORD)
        cls.admin("limit", "set", "bulk", "--messages", "100000/1h")
        cls.d = [Daemon(cls.tmp, "a", cls.users, cls.state),
                 Daemon(cls.tmp, "b", cls.users, cls.state)]
        for d in cls.d:
            d.start()

    @classmethod
    def tearDownClass(cls):
        for d in cls.d:
            d.stop()
        if os.environ.get("MLT_KEEP"):
            for d in cls.d:
                print(d.log_text(), file=sys.stderr)
        cls.pg.close()
        cls.tmpdir.cleanup()

    @classmethod
    def admin(cls, *args, stdin=None, check=True):
        env = dict(os.environ, RELAY_DB=cls.users, RELAY_STATE_DB=cls.state)
        r = subprocess.run([ADMIN] + list(args), input=stdin, env=env, capture_output=True,
                           text=True, timeout=60)
        if check and r.returncode != 0:
            raise AssertionError("relay-admin %s: %s" % (" ".join(args), r.stderr))
        return r

    def sql(self, query):
        return self.pg.psql(query, db="relay")

    def login(self, name, limit):
        self.admin("user", "add", name, "--password-stdin", "--sender",
                   "%s@example.com" % name, stdin=PASSWORD)
        self.admin("limit", "set", name, "--messages", limit)

    def wait_sql(self, query, want, seconds=30):
        """Polls (bounded) until the query gives `want`; returns the last answer."""
        got = None
        for _ in range(int(seconds / 0.1)):
            got = self.sql(query)
            if got == want:
                break
            time.sleep(0.1)
        return got

    # ---- exact admission ---------------------------------------------------------------
    def test_exact_limit_across_two_nodes(self):
        n, k = 5, 14
        for rnd in range(3):
            login = "exact%d" % rnd
            self.login(login, "%d/1h" % n)
            barrier = threading.Barrier(k)
            results = [None] * k

            def run(i):
                results[i] = send(self.d[i % 2].sock, login, "Q%s%d%02d" % ("AB"[i % 2], rnd, i),
                                  barrier)

            threads = [threading.Thread(target=run, args=(i,)) for i in range(k)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
            admitted = results.count("accepted")
            print("# round %d: %d sessions over 2 nodes, limit %d: admitted %d"
                  % (rnd, k, n, admitted))
            self.assertEqual(admitted, n, results)
            for r in results:
                if r != "accepted":
                    self.assertTrue(r.startswith("450 4.7.1"), results)
            # counted once each, in the database, and no reservation left behind
            self.assertEqual(self.sql("SELECT coalesce(sum(messages), 0) FROM usage"
                                      " WHERE lower(login) = '%s'" % login), str(n))
            self.assertEqual(self.sql("SELECT count(*) FROM reservations"
                                      " WHERE lower(login) = '%s'" % login), "0")

    def test_exact_recipient_limit_across_two_nodes(self):
        # RCPT reserves a recipient in the same row as MAIL's message: 10 one-recipient
        # messages over both nodes against 4 recipients an hour deliver exactly 4
        self.admin("user", "add", "rcpts", "--password-stdin", "--sender", "rcpts@example.com",
                   stdin=PASSWORD)
        self.admin("limit", "set", "rcpts", "--recipients", "4/1h")
        k = 10
        barrier = threading.Barrier(k)
        results = [None] * k

        def run(i):
            results[i] = send(self.d[i % 2].sock, "rcpts", "QC%02d" % i, barrier)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(k)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertEqual(results.count("accepted"), 4, results)
        self.assertEqual(self.sql("SELECT sum(recipients) FROM usage WHERE login = 'rcpts'"), "4")
        self.assertEqual(self.sql("SELECT count(*) FROM reservations WHERE login = 'rcpts'"), "0")

    def test_hold_over_limit_not_counted(self):
        self.login("holder", "1/1h")
        self.admin("limit", "set", "holder", "--messages", "1/1h", "--hold")
        self.assertEqual(send(self.d[0].sock, "holder", "QH0"), "accepted")
        with MilterClient(self.d[1].sock) as m:
            m.negotiate()
            self.assertEqual(m.mail("<holder@example.com>", macros=macros("holder")).code, "c")
            m.rcpt("<to@dest.example>")
            r = m.message([("From", "holder@example.com")], eom_macros={"i": "QH1"})
            self.assertEqual(r.code, "c")
            self.assertTrue(any(a[0] == "q" for a in r.actions), r.actions)
        # held: not counted, and its reservation is gone
        self.assertEqual(self.sql("SELECT sum(messages) FROM usage WHERE login = 'holder'"), "1")
        self.assertEqual(self.sql("SELECT count(*) FROM reservations WHERE login = 'holder'"),
                         "0")

    def test_retry_time_from_database_usage(self):
        self.login("retry", "2/1h")
        for i in range(2):
            self.assertEqual(send(self.d[i].sock, "retry", "QR%d" % i), "accepted")
        r = send(self.d[0].sock, "retry", "QR9")
        self.assertTrue(r.startswith("450 4.7.1"), r)
        # the oldest message leaves the hour window in (3600 - its age) seconds
        import re
        m = re.search(r"retry in (\d+) seconds", r)
        self.assertIsNotNone(m, r)
        self.assertTrue(3000 < int(m.group(1)) <= 3600, r)

    # ---- the database goes away --------------------------------------------------------
    def test_database_down_fails_closed_and_resumes(self):
        stop = threading.Event()
        lock = threading.Lock()
        outcome = {"accepted": 0, "451": 0, "other": []}

        def load(node):
            i = 0
            while not stop.is_set():
                r = send(self.d[node].sock, "bulk", "QL%d%05d" % (node, i))
                i += 1
                with lock:
                    if r == "accepted":
                        outcome["accepted"] += 1
                    elif r.startswith("451 4.3.0"):
                        outcome["451"] += 1
                    else:
                        outcome["other"].append(r)
                if r != "accepted":
                    time.sleep(0.02)  # a client's pause before retrying: keeps CPU modest

        before = int(self.sql("SELECT coalesce(sum(messages), 0) FROM usage"
                              " WHERE login = 'bulk'"))
        threads = [threading.Thread(target=load, args=(k,)) for k in (0, 1)]
        for t in threads:
            t.start()
        try:
            time.sleep(1)
            self.pg.stop()
            time.sleep(0.5)
            with lock:
                accepted_at_stop = outcome["accepted"]
            # while it is down: every session of both nodes gets 451, none is accepted
            down = [send(self.d[k % 2].sock, "bulk", "QD%02d" % k) for k in range(6)]
            for r in down:
                self.assertTrue(r.startswith("451 4.3.0"), down)
            time.sleep(1)
            with lock:
                self.assertEqual(outcome["accepted"], accepted_at_stop,
                                 "accepted while PostgreSQL was down")
        finally:
            self.pg.start()
        # back: both nodes admit again (bounded wait: reconnect at the next call)
        for k in (0, 1):
            r = None
            for _ in range(300):
                r = send(self.d[k].sock, "bulk", "QU%d" % k)
                if r == "accepted":
                    break
                time.sleep(0.1)
            self.assertEqual(r, "accepted", "node %d after PostgreSQL came back" % k)
        stop.set()
        for t in threads:
            t.join(120)
        self.assertEqual(outcome["other"], [])
        self.assertGreater(outcome["451"], 0)
        after = int(self.sql("SELECT coalesce(sum(messages), 0) FROM usage WHERE login = 'bulk'"))
        # every message a client heard "accepted" for is counted in the database (a commit
        # whose reply was lost with the server may count one more: never fewer)
        self.assertGreaterEqual(after - before, outcome["accepted"] + 2)
        print("# database down under load: %d accepted, %d answered 451"
              % (outcome["accepted"], outcome["451"]))

    # ---- a node dies holding reservations ----------------------------------------------
    def test_killed_node_capacity_returns_after_ttl(self):
        self.login("killed", "3/1h")
        c = Daemon(self.tmp, "c", self.users, self.state, extra="")
        with open(c.conf) as f:
            conf = f.read().replace("timeout = 30s\nreservation_ttl = 40s\n",
                                    "timeout = 2s\nreservation_ttl = 3s\n")
        with open(c.conf, "w") as f:
            f.write(conf)
        c.start()
        held = []
        try:
            for _ in range(3):  # three messages in flight on node c: the whole limit
                m = MilterClient(c.sock)
                m.negotiate()
                self.assertEqual(m.mail("<killed@example.com>", macros=macros("killed")).code,
                                 "c")
                held.append(m)
            self.assertEqual(self.sql("SELECT count(*) FROM reservations"
                                      " WHERE login = 'killed'"), "3")
            pid = c.proc.pid
            c.proc.send_signal(signal.SIGKILL)
            c.proc.wait(30)
            c.proc = None
            node = self.sql("SELECT DISTINCT node FROM reservations WHERE login = 'killed'")
            self.assertTrue(node.endswith(":%d" % pid), node)
        finally:
            for m in held:
                try:
                    m.sock.close()
                except OSError:
                    pass
            c.stop()
        # the dead node's reservations still count: node a refuses
        r = send(self.d[0].sock, "killed", "QK0")
        self.assertTrue(r.startswith("450 4.7.1"), r)
        # ... until they expire (bounded poll; no timing asserted)
        for _ in range(300):
            r = send(self.d[1].sock, "killed", "QK1")
            if r == "accepted":
                break
            time.sleep(0.1)
        self.assertEqual(r, "accepted")
        # and only the expired capacity came back: 3 in total
        got = [send(self.d[k % 2].sock, "killed", "QK%d" % (k + 2)) for k in range(4)]
        self.assertEqual(got.count("accepted"), 2, got)

    # ---- audit and relay-admin ------------------------------------------------------------
    def test_audit_from_both_nodes_and_admin_reads(self):
        self.login("audited", "10/1h")
        self.assertEqual(send(self.d[0].sock, "audited", "QAUDA"), "accepted")
        self.assertEqual(send(self.d[1].sock, "audited", "QAUDB"), "accepted")
        got = self.wait_sql("SELECT string_agg(queue_id, ',' ORDER BY queue_id) FROM audit"
                            " WHERE login = 'audited' AND verdict = 'accepted'", "QAUDA,QAUDB")
        self.assertEqual(got, "QAUDA,QAUDB")
        self.wait_sql("SELECT count(*) FROM last_use WHERE login = 'audited'", "1")
        r = self.admin("--json", "usage", "audited")
        limits = json.loads(r.stdout)[0]["limits"]
        self.assertEqual([(x["metric"], x["used"]) for x in limits], [("messages", 2)], r.stdout)
        r = self.admin("log", "--user", "audited")
        self.assertIn("QAUDA", r.stdout)
        self.assertIn("QAUDB", r.stdout)

    def test_config_refuses_short_reservation_ttl(self):
        conf = os.path.join(self.tmp, "short.conf")
        with open(conf, "w") as f:
            f.write("users_db = %s\nstate_db = %s\ntimeout = 60s\nreservation_ttl = 30s\n"
                    % (self.users, self.state))
        r = subprocess.run([MILTER, "-n", "-c", conf], capture_output=True, text=True)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("reservation_ttl", r.stderr)


if __name__ == "__main__":
    MILTER, ADMIN = sys.argv[1], sys.argv[2]
    why = pglab.need_pg()
    if why:
        print("SKIP: " + why)
        sys.exit(77)
    unittest.main(argv=sys.argv[:1], verbosity=2)
