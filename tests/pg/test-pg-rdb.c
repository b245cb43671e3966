/*
 * test-pg-rdb.c — the users data layer (rdb.h, policy.h) on a real PostgreSQL, driven by
 * test_pg_rdb.py (which starts the server with tests/lib/pglab.py and passes the names).
 *
 *   test-pg-rdb ops URI            every users/policy operation, the SQLite answers' twins
 *   test-pg-rdb reconnect URI      one handle across a server stop and start: lookups
 *                                  while down are RDB_ERROR (never "no such login"), and
 *                                  work again without reopening once it is back; driven
 *                                  by lines on stdin ("down", "up") from the wrapper
 *   test-pg-rdb open NAME          prints rdb_open's result and message (pg: file checks)
 *
 * TAP on stdout. Names of databases may hold no password: the wrapper uses PGPASSFILE.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"
#include "rdb.h"
#include "tap.h"

static unsigned char plain[RDB_PLAIN_SECRET_LEN];

static struct rdb_login_new new_login(const char *name, int64_t now)
{
	struct rdb_login_new n = { .name = name, .plain = plain, .scram = NULL, .now = now };
	return n;
}

static int count_cb(const struct rdb_login *l, void *arg)
{
	(void)l;
	(*(int *)arg)++;
	return 0;
}

static int sender_cb(const char *pattern, void *arg)
{
	char *buf = arg;

	strcat(buf, pattern);
	strcat(buf, " ");
	return 0;
}

static int over_cb(const char *name, int64_t n, void *arg)
{
	(void)name;
	(void)n;
	(*(int *)arg)++;
	return 0;
}

static void ops(const char *uri)
{
	char err[512], buf[1024];
	struct rdb *db = NULL, *ro = NULL;
	struct rdb_policy *p = NULL;
	struct rdb_login l;
	struct rdb_login_policy lp;
	struct rdb_secrets s, s2;
	struct rdb_limit lims[RDB_LIMITS_MAX + 1], got[RDB_LIMITS_MAX];
	size_t n;
	int before = -1, after = -1, count = 0;
	int64_t v1 = 0, v2 = 0, w = 0;
	unsigned mask = 0;
	char scram[RDB_SCRAM_MAX];

	ok(rdb_is_postgresql(uri), "a postgresql:// name is PostgreSQL");
	ok(!rdb_is_postgresql("/var/lib/relay/users.db"), "a path is SQLite");
	is_int(rdb_init_versions(uri, &before, &after, err, sizeof err), RDB_OK, "init: %s", err);
	is_int(before, 0, "init found no schema");
	is_int(after, RDB_SCHEMA_VERSION, "init left the current version");
	before = -1;
	is_int(rdb_init_versions(uri, &before, &after, err, sizeof err), RDB_OK, "init again: %s", err);
	is_int(before, RDB_SCHEMA_VERSION, "second init finds the current version");

	if (!ok(rdb_open(uri, RDB_READWRITE, &db, err, sizeof err) == RDB_OK, "open rw: %s", err))
		return;
	ok(rdb_open(uri, RDB_READONLY, &ro, err, sizeof err) == RDB_OK, "open ro: %s", err);
	ok(rdb_policy_new(ro, &p) == RDB_OK, "policy on the reader");

	rdb_secret_plain("pw", 2, NULL, plain);
	struct rdb_login_new a = new_login("Alice", 1000);
	a.note = "first";
	is_int(rdb_login_add(db, &a), RDB_OK, "add Alice: %s", rdb_errmsg(db));
	struct rdb_login_new dup = new_login("alice", 1001);
	is_int(rdb_login_add(db, &dup), RDB_EXISTS, "add alice again (any case): exists");
	ok(strstr(rdb_errmsg(db), "already exists") != NULL, "message: %s", rdb_errmsg(db));
	struct rdb_login_new bad = new_login("bad name", 1);
	is_int(rdb_login_add(db, &bad), RDB_INVALID, "an invalid name is refused");
	ok(rdb_secret_scram_sha256("pw", 2, RDB_SCRAM_ITERATIONS, NULL, 0, scram) == RDB_OK, "scram");
	struct rdb_login_new b = new_login("bob@example.org", 1002);
	b.scram = scram;
	b.has_expiry = true;
	b.expires_at = 5000;
	is_int(rdb_login_add(db, &b), RDB_OK, "add bob with SCRAM and expiry");

	is_int(rdb_login_get(db, "ALICE", &l), RDB_OK, "get ALICE");
	is_str(l.name, "Alice", "stored spelling");
	is_str(l.note, "first", "note");
	is_str(l.source, "admin", "source");
	ok(l.enabled && !l.has_expiry && !l.has_scram && l.created_at == 1000, "flags and times");
	is_int(rdb_login_get(db, "nobody", &l), RDB_NOTFOUND, "get nobody");
	is_str(rdb_errmsg(db), "no such login: nobody", "says which");
	is_int(rdb_login_get(db, "bob@example.org", &l), RDB_OK, "get bob");
	ok(l.has_scram && l.has_expiry && l.expires_at == 5000, "bob's scram and expiry");

	is_int(rdb_login_set_enabled(db, "alice", false, 1100), RDB_OK, "disable");
	is_int(rdb_login_set_note(db, "alice", "n\x01", 1100), RDB_INVALID, "a control char in a note");
	is_int(rdb_login_set_note(db, "alice", "é ok", 1101), RDB_OK, "UTF-8 note");
	is_int(rdb_login_set_expiry(db, "alice", true, 9000, 1102), RDB_OK, "expiry");
	is_int(rdb_login_get(db, "alice", &l), RDB_OK, "get again");
	ok(!l.enabled && l.has_expiry && l.expires_at == 9000 && strcmp(l.note, "é ok") == 0 &&
	   l.updated_at == 1102, "changes stored");
	is_int(rdb_login_set_enabled(db, "alice", true, 1103), RDB_OK, "enable");
	is_int(rdb_login_set_expiry(db, "alice", false, 0, 1104), RDB_OK, "no expiry");
	is_int(rdb_login_set_secrets(db, "alice", plain, scram, 1105), RDB_OK, "set secrets");
	is_int(rdb_login_set_secrets(db, "nobody", plain, NULL, 1105), RDB_NOTFOUND, "secrets of nobody");

	/* senders */
	is_int(rdb_sender_add(db, "alice", "A@Example.org", 1200), RDB_OK, "add sender");
	is_int(rdb_sender_add(db, "alice", "a@example.org", 1201), RDB_EXISTS, "same sender again");
	is_int(rdb_sender_add(db, "alice", "@example.net", 1202), RDB_OK, "domain pattern");
	is_int(rdb_sender_add(db, "alice", "not a pattern", 1202), RDB_INVALID, "bad pattern");
	is_int(rdb_sender_add(db, "nobody", "@x.org", 1202), RDB_NOTFOUND, "sender of nobody");
	buf[0] = '\0';
	is_int(rdb_sender_foreach(db, "alice", sender_cb, buf, NULL), RDB_OK, "list senders");
	is_str(buf, "@example.net a@example.org ", "sorted, lowercase");
	is_int(rdb_sender_del(db, "alice", "@example.net", 1203), RDB_OK, "delete sender");
	is_int(rdb_sender_del(db, "alice", "@example.net", 1204), RDB_NOTFOUND, "delete it again");
	is_int(rdb_login_get(db, "alice", &l), RDB_OK, "get");
	ok(l.nsenders == 1 && l.updated_at == 1203, "one sender left, touched at 1203 (%u, %lld)",
	   l.nsenders, (long long)l.updated_at);
	/* inside the caller's transaction: the unit is a savepoint */
	is_int(rdb_begin(db), RDB_OK, "begin");
	is_int(rdb_sender_add(db, "alice", "x@example.com", 1300), RDB_OK, "add in a transaction");
	is_int(rdb_sender_add(db, "alice", "x@example.com", 1300), RDB_EXISTS, "duplicate in it");
	is_int(rdb_sender_add(db, "alice", "y@example.com", 1300), RDB_OK, "the transaction goes on");
	rdb_rollback(db);
	is_int(rdb_login_get(db, "alice", &l), RDB_OK, "get");
	is_int(l.nsenders, 1, "rollback undid both");

	/* policy reads */
	is_int(rdb_policy_data_version(p, &v1), RDB_OK, "change marker");
	is_int(rdb_policy_login(p, "ALICE", &lp), RDB_OK, "policy login: %s", rdb_policy_errmsg(p));
	ok(lp.enabled && !lp.rate_exempt && lp.nlimits == 0, "no limits yet");
	buf[0] = '\0';
	is_int(rdb_policy_senders(p, "Alice", sender_cb, buf), RDB_OK, "policy senders");
	is_str(buf, "a@example.org ", "policy sees the sender");
	lims[0] = (struct rdb_limit){ RDB_METRIC_MESSAGES, 3600, 100 };
	lims[1] = (struct rdb_limit){ RDB_METRIC_RECIPIENTS, 86400, 1000 };
	rdb_policy_free(p);
	ok(rdb_policy_new(db, &p) == RDB_OK, "policy on the writer");
	is_int(rdb_limits_set(p, NULL, lims, 2), RDB_OK, "set default limits: %s", rdb_errmsg(db));
	lims[0] = (struct rdb_limit){ RDB_METRIC_MESSAGES, 60, 5 };
	is_int(rdb_limits_set(p, "alice", lims, 1), RDB_OK, "alice's own messages limit");
	is_int(rdb_policy_set_flags(p, "alice", 1, -1, 1400), RDB_OK, "rate_exempt");
	rdb_policy_free(p);
	ok(rdb_policy_new(ro, &p) == RDB_OK, "policy on the reader again");
	is_int(rdb_policy_data_version(p, &v2), RDB_OK, "change marker again");
	ok(v2 != v1, "the marker moved after writes (%lld -> %lld)", (long long)v1, (long long)v2);
	is_int(rdb_policy_login(p, "alice", &lp), RDB_OK, "policy login");
	ok(lp.rate_exempt && !lp.hold_over_limit, "flags");
	is_int(lp.nlimits, 2, "own messages + default recipients");
	ok(lp.limits[0].metric == RDB_METRIC_MESSAGES && lp.limits[0].window == 60 &&
	   lp.limits[0].max == 5 && lp.limits[1].metric == RDB_METRIC_RECIPIENTS &&
	   lp.limits[1].max == 1000, "effective limits in order");
	is_int(rdb_policy_max_window(p, &w), RDB_OK, "max window");
	is_int(w, 86400, "longest window");
	is_int(rdb_policy_metrics(p, &mask), RDB_OK, "metrics");
	is_int(mask, 3, "messages and recipients");
	is_int(rdb_limits_get(p, "alice", got, RDB_LIMITS_MAX, &n), RDB_OK, "limits get");
	is_int(n, 1, "alice has one row");
	is_int(rdb_limits_get(p, NULL, got, RDB_LIMITS_MAX, &n), RDB_OK, "defaults get");
	is_int(n, 2, "two defaults");
	is_int(rdb_policy_login(p, "nobody", &lp), RDB_NOTFOUND, "policy: no such login");
	/* the reader cannot write */
	is_int(rdb_limits_clear(p, "alice"), RDB_ERROR, "a read-only handle cannot write");
	ok(strstr(rdb_errmsg(ro), "read-only") != NULL, "says why: %s", rdb_errmsg(ro));
	rdb_policy_free(p);

	/* the limit-row cap, on the writer */
	ok(rdb_policy_new(db, &p) == RDB_OK, "policy on the writer");
	for (int i = 0; i < RDB_LIMITS_MAX + 1; i++)
		lims[i] = (struct rdb_limit){ RDB_METRIC_BYTES, 100 + i, 1 };
	is_int(rdb_limits_set(p, "bob@example.org", lims, RDB_LIMITS_MAX), RDB_INVALID,
	       "32 own + 2 inherited is refused: %s", rdb_errmsg(db));
	is_int(rdb_limits_get(p, "bob@example.org", got, RDB_LIMITS_MAX, &n), RDB_OK, "get bob");
	is_int(n, 0, "nothing changed");
	count = 0;
	is_int(rdb_limits_over(p, over_cb, &count), RDB_OK, "limits over");
	is_int(count, 0, "nobody over");
	is_int(rdb_limits_clear(p, "alice"), RDB_OK, "clear alice's");
	is_int(rdb_limits_get(p, "alice", got, RDB_LIMITS_MAX, &n), RDB_OK, "get alice");
	is_int(n, 0, "cleared");
	rdb_policy_free(p);

	/* the authentication lookup and the SCRAM decoy key */
	is_int(rdb_lookup_secrets(ro, "ALICE", 2000, &s), RDB_OK, "lookup alice");
	ok(s.state == RDB_LOGIN_ACTIVE && s.has_scram && s.has_decoy_key &&
	   memcmp(s.plain, plain, sizeof plain) == 0 && strcmp(s.name, "Alice") == 0,
	   "secrets, state, decoy key");
	is_int(rdb_lookup_secrets(ro, "bob@example.org", 6000, &s2), RDB_OK, "lookup bob");
	is_int(s2.state, RDB_LOGIN_EXPIRED, "bob expired at 5000");
	ok(memcmp(s.decoy_key, s2.decoy_key, RDB_DECOY_KEY_LEN) == 0, "one decoy key");
	is_int(rdb_lookup_secrets(ro, "nobody", 2000, &s2), RDB_NOTFOUND, "unknown login");
	ok(s2.has_decoy_key && memcmp(s.decoy_key, s2.decoy_key, RDB_DECOY_KEY_LEN) == 0,
	   "the unknown login gets the same decoy key (same query)");
	is_int(rdb_lookup_secrets(ro, "bad name", 2000, &s2), RDB_NOTFOUND, "invalid name");
	explicit_bzero(&s, sizeof s);
	explicit_bzero(&s2, sizeof s2);

	/* list, delete (cascade) */
	count = 0;
	is_int(rdb_login_foreach(db, count_cb, &count, NULL), RDB_OK, "list");
	is_int(count, 2, "two logins");
	ok(rdb_policy_new(db, &p) == RDB_OK, "policy");
	lims[0] = (struct rdb_limit){ RDB_METRIC_MESSAGES, 60, 5 };
	is_int(rdb_limits_set(p, "alice", lims, 1), RDB_OK, "a limit to cascade");
	is_int(rdb_login_delete(db, "alice"), RDB_OK, "delete alice");
	is_int(rdb_login_get(db, "alice", &l), RDB_NOTFOUND, "gone");
	is_int(rdb_limits_over(p, over_cb, &count), RDB_OK, "limits over still runs");
	rdb_policy_free(p);
	is_int(rdb_login_delete(db, "alice"), RDB_NOTFOUND, "delete again");
	rdb_close(ro);
	rdb_close(db);
}

/* One handle across a stop and a start of the server. */
static void reconnect(const char *uri)
{
	char err[512], line[64];
	struct rdb *db = NULL, *idle = NULL;
	struct rdb_secrets s;
	struct rdb_login_new a = new_login("carol", 1);

	rdb_secret_plain("pw", 2, NULL, plain);
	if (!ok(rdb_open(uri, RDB_READWRITE, &db, err, sizeof err) == RDB_OK, "open: %s", err))
		return;
	rdb_login_add(db, &a);
	is_int(rdb_lookup_secrets(db, "carol", 2, &s), RDB_OK, "lookup while up");
	/* a reader that sleeps through the restart: its connection dies unseen */
	ok(rdb_open(uri, RDB_READONLY, &idle, err, sizeof err) == RDB_OK, "open a reader: %s", err);
	is_int(rdb_lookup_secrets(idle, "carol", 2, &s), RDB_OK, "the reader's lookup while up");
	printf("# ready\n");
	fflush(stdout);
	if (fgets(line, sizeof line, stdin) == NULL || strncmp(line, "down", 4) != 0) {
		ok(0, "the wrapper said down");
		rdb_close(db);
		return;
	}
	for (int i = 0; i < 2; i++) {
		enum rdb_result r = rdb_lookup_secrets(db, "carol", 2, &s);

		is_int(r, RDB_ERROR, "lookup %d while the server is down: a temporary error (%s)",
		       i + 1, rdb_errmsg(db));
	}
	is_int(rdb_lookup_secrets(db, "nobody", 2, &s), RDB_ERROR,
	       "an unknown login while down is also an error, never \"no such login\"");
	printf("# waiting\n");
	fflush(stdout);
	if (fgets(line, sizeof line, stdin) == NULL || strncmp(line, "up", 2) != 0) {
		ok(0, "the wrapper said up");
		rdb_close(db);
		return;
	}
	is_int(rdb_lookup_secrets(db, "carol", 2, &s), RDB_OK,
	       "works again on the same handle once the server is back: %s", rdb_errmsg(db));
	is_int(rdb_lookup_secrets(db, "nobody", 2, &s), RDB_NOTFOUND, "and unknown is unknown again");
	is_int(rdb_lookup_secrets(idle, "carol", 2, &s), RDB_OK,
	       "the idle reader's first lookup after the restart succeeds (its read is retried "
	       "once on a new connection): %s", rdb_errmsg(idle));
	explicit_bzero(&s, sizeof s);
	rdb_close(idle);
	rdb_close(db);
}

int main(int argc, char **argv)
{
	char err[512];
	struct rdb *db = NULL;
	enum rdb_result r;

	if (argc != 3) {
		fprintf(stderr, "usage: test-pg-rdb ops|reconnect|open NAME\n");
		return 2;
	}
	if (strcmp(argv[1], "ops") == 0) {
		ops(argv[2]);
	} else if (strcmp(argv[1], "reconnect") == 0) {
		reconnect(argv[2]);
	} else {
		r = rdb_open(argv[2], RDB_READONLY, &db, err, sizeof err);
		printf("%s: %s\n", rdb_result_str(r), r == RDB_OK ? "opened" : err);
		rdb_close(db);
		return r == RDB_OK ? 0 : 1;
	}
	return tap_done();
}
