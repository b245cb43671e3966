/*
 * test-mlt-sql.c — the milter's data modules on real SQLite files in a private temporary
 * folder: sql/policy.c (login state, senders, effective limits with defaults, limit
 * writes and their validation, flags, data_version) and sql/state.c (create, refuse a
 * foreign file, usage upsert and reads, last use, audit records with clamping and
 * control characters, pruning), and that a users database whose statements do not prepare
 * is refused with the reason.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "policy.h"
#include "state.h"
#include "scratch.h"
#include "tap.h"


static int count_senders(const char *pattern, void *arg)
{
	char *buf = arg;

	strcat(buf, pattern);
	strcat(buf, " ");
	return 0;
}

static int usage_rows(const char *login, int64_t ts, const uint64_t v[3], void *arg)
{
	char *buf = arg;
	char line[128];

	snprintf(line, sizeof line, "%s@%lld:%llu,%llu,%llu ", login, (long long)ts,
	         (unsigned long long)v[0], (unsigned long long)v[1], (unsigned long long)v[2]);
	strcat(buf, line);
	return 0;
}

struct audit_seen {
	int n;
	char last_login[300];
	char last_reason[300];
	int64_t last_size;
};

static int audit_row(const struct rdb_audit *a, void *arg)
{
	struct audit_seen *s = arg;

	s->n++;
	snprintf(s->last_login, sizeof s->last_login, "%s", a->login);
	snprintf(s->last_reason, sizeof s->last_reason, "%s", a->reason);
	s->last_size = (int64_t)a->size;
	return 0;
}

/* A callback that cannot keep a row (the milter's rate table out of memory, say). */
static int refuse_usage(const char *login, int64_t ts, const uint64_t v[3], void *arg)
{
	(void)login, (void)ts, (void)v, (void)arg;
	return 1;
}

static int refuse_audit(const struct rdb_audit *a, void *arg)
{
	(void)a, (void)arg;
	return 1;
}

static void add_login(struct rdb *db, const char *name)
{
	unsigned char plain[RDB_PLAIN_SECRET_LEN];
	struct rdb_login_new n = { .name = name, .plain = plain, .now = 1000 };

	rdb_secret_plain("x-very-long-test-password", 25, NULL, plain);
	ok(rdb_login_add(db, &n) == RDB_OK, "add login %s", name);
}

static void test_policy(void)
{
	char err[256], buf[512] = "";
	struct rdb *db = NULL, *ro = NULL;
	struct rdb_policy *p = NULL, *pr = NULL;
	struct rdb_login_policy lp;
	struct rdb_limit got[RDB_LIMITS_MAX];
	size_t n = 0;
	int64_t v1 = 0, v2 = 0, w = 0;
	char users[PATH_MAX + 64];

	snprintf(users, sizeof users, "%s", scratch_path("users.db"));

	ok(rdb_init(users, err, sizeof err) == RDB_OK, "users db created (%s)", err);
	ok(rdb_open(users, RDB_READWRITE, &db, err, sizeof err) == RDB_OK, "open rw");
	ok(rdb_open(users, RDB_READONLY, &ro, err, sizeof err) == RDB_OK, "open ro");
	ok(rdb_policy_new(db, &p) == RDB_OK && rdb_policy_new(ro, &pr) == RDB_OK, "policy handles");
	add_login(db, "Alice");
	add_login(db, "bob@example.com");
	ok(rdb_sender_add(db, "alice", "Alice@Example.com", 1000) == RDB_OK, "sender");
	ok(rdb_sender_add(db, "alice", "@corp.example", 1000) == RDB_OK, "domain sender");

	ok(rdb_policy_data_version(pr, &v1) == RDB_OK, "data_version");
	ok(rdb_policy_max_window(pr, &w) == RDB_OK && w == 0, "no limits: max window 0");
	is_int(rdb_policy_login(pr, "ALICE", &lp), RDB_OK, "login found case-insensitively");
	ok(strcmp(lp.name, "Alice") == 0 && lp.enabled && !lp.rate_exempt && !lp.hold_over_limit &&
	   lp.nlimits == 0, "login row as stored");
	is_int(rdb_policy_login(pr, "nobody", &lp), RDB_NOTFOUND, "unknown login: NOTFOUND");
	ok(rdb_policy_senders(pr, "alice", count_senders, buf) == RDB_OK &&
	   strcmp(buf, "@corp.example alice@example.com ") == 0, "senders lowercase: %s", buf);

	/* defaults and overrides per metric */
	{
		const struct rdb_limit defs[] = {
			{ RDB_METRIC_MESSAGES, 3600, 100 }, { RDB_METRIC_MESSAGES, 86400, 1000 },
			{ RDB_METRIC_BYTES, 86400, 1 << 20 },
		};
		const struct rdb_limit own[] = { { RDB_METRIC_MESSAGES, 60, 5 } };

		is_int(rdb_limits_set(p, NULL, defs, 3), RDB_OK, "defaults set");
		is_int(rdb_limits_set(p, "alice", own, 1), RDB_OK, "alice's messages set");
	}
	ok(rdb_policy_data_version(pr, &v2) == RDB_OK && v2 != v1, "a write changes data_version");
	ok(rdb_policy_max_window(pr, &w) == RDB_OK && w == 86400, "max window 1d");
	is_int(rdb_policy_login(pr, "alice", &lp), RDB_OK, "alice");
	is_int(lp.nlimits, 2, "own messages replace the default messages; bytes default stays");
	ok(lp.limits[0].metric == RDB_METRIC_MESSAGES && lp.limits[0].window == 60 &&
	   lp.limits[0].max == 5, "own 5/1m first");
	ok(lp.limits[1].metric == RDB_METRIC_BYTES && lp.limits[1].max == 1 << 20,
	   "default bytes second");
	is_int(rdb_policy_login(pr, "bob@example.com", &lp), RDB_OK, "bob");
	is_int(lp.nlimits, 3, "bob has the defaults");
	is_int(rdb_limits_get(pr, "alice", got, RDB_LIMITS_MAX, &n), RDB_OK, "own rows");
	is_int(n, 1, "alice has one own row");
	is_int(rdb_limits_get(pr, NULL, got, RDB_LIMITS_MAX, &n), RDB_OK, "default rows");
	is_int(n, 3, "three defaults");

	/* validation: nothing written */
	{
		const struct rdb_limit zero_win[] = { { RDB_METRIC_MESSAGES, 0, 5 } };
		const struct rdb_limit dup[] = { { RDB_METRIC_MESSAGES, 60, 5 },
		                                 { RDB_METRIC_MESSAGES, 60, 6 } };
		const struct rdb_limit big[] = { { RDB_METRIC_BYTES, RDB_WINDOW_MAX + 1, 5 } };

		is_int(rdb_limits_set(p, "alice", zero_win, 1), RDB_INVALID, "window 0 refused");
		is_int(rdb_limits_set(p, "alice", dup, 2), RDB_INVALID, "duplicate window refused");
		is_int(rdb_limits_set(p, "alice", big, 1), RDB_INVALID, "window > 366d refused");
		is_int(rdb_limits_set(p, "ghost", dup, 1), RDB_NOTFOUND, "unknown login: NOTFOUND");
		is_int(rdb_limits_get(pr, "alice", got, RDB_LIMITS_MAX, &n), RDB_OK, "still readable");
		is_int(n, 1, "nothing changed by refused writes");
	}
	/* inside a caller's transaction, rolled back */
	{
		const struct rdb_limit r[] = { { RDB_METRIC_RECIPIENTS, 60, 9 } };

		ok(rdb_begin(db) == RDB_OK && rdb_limits_set(p, "alice", r, 1) == RDB_OK, "in txn");
		rdb_rollback(db);
		is_int(rdb_limits_get(pr, "alice", got, RDB_LIMITS_MAX, &n), RDB_OK, "after rollback");
		is_int(n, 1, "rollback undid it");
	}
	is_int(rdb_policy_set_flags(p, "alice", 1, -1, 2000), RDB_OK, "exempt");
	is_int(rdb_policy_set_flags(p, "alice", -1, 1, 2000), RDB_OK, "hold");
	is_int(rdb_policy_login(pr, "alice", &lp), RDB_OK, "alice again");
	ok(lp.rate_exempt && lp.hold_over_limit, "both flags set, each alone");
	is_int(rdb_policy_set_flags(p, "ghost", 1, 1, 2000), RDB_NOTFOUND, "flags: unknown login");
	is_int(rdb_limits_clear(p, "alice"), RDB_OK, "clear alice");
	is_int(rdb_policy_login(pr, "alice", &lp), RDB_OK, "alice after clear");
	is_int(lp.nlimits, 3, "defaults apply again");
	is_int(rdb_limits_clear(p, NULL), RDB_OK, "clear defaults");
	is_int(rdb_policy_login(pr, "alice", &lp), RDB_OK, "alice without any limit");
	is_int(lp.nlimits, 0, "no limits");
	/* a read-only handle cannot write */
	{
		const struct rdb_limit r[] = { { RDB_METRIC_RECIPIENTS, 60, 9 } };

		is_int(rdb_limits_set(pr, "alice", r, 1), RDB_ERROR, "read-only handle: ERROR");
	}
	rdb_policy_free(p);
	rdb_policy_free(pr);
	rdb_policy_free(NULL);
	rdb_close(db);
	rdb_close(ro);
}

static int count_over(const char *name, int64_t n, void *arg)
{
	char *buf = arg;
	size_t len = strlen(buf);

	snprintf(buf + len, 256 - len, "%s=%lld ", name ? name : "(defaults)", (long long)n);
	return 0;
}

/* Issue 8: the writer counts what the reader will see — rows written by earlier calls,
 * the defaults a login inherits, every login inheriting changed defaults — and refuses,
 * with nothing changed, what would leave more than RDB_LIMITS_MAX. */
static void test_limits_max(void)
{
	char err[256], over[256] = "";
	struct rdb *db = NULL;
	struct rdb_policy *p = NULL;
	struct rdb_login_policy lp;
	struct rdb_limit msgs[20], bytes[20], got[RDB_LIMITS_MAX];
	const struct rdb_limit rcpt[] = { { RDB_METRIC_RECIPIENTS, 60, 9 } };
	size_t n = 0;
	char users[PATH_MAX + 64];

	snprintf(users, sizeof users, "%s", scratch_path("limits.db"));
	for (int k = 0; k < 20; k++) {
		msgs[k] = (struct rdb_limit){ RDB_METRIC_MESSAGES, 60 * (k + 1), 100 };
		bytes[k] = (struct rdb_limit){ RDB_METRIC_BYTES, 3600 * (k + 1), 1 << 20 };
	}
	ok(rdb_init(users, err, sizeof err) == RDB_OK, "limits db created (%s)", err);
	ok(rdb_open(users, RDB_READWRITE, &db, err, sizeof err) == RDB_OK, "open rw");
	ok(rdb_policy_new(db, &p) == RDB_OK, "policy handle");
	add_login(db, "carol");
	is_int(rdb_limits_set(p, NULL, msgs, 20), RDB_OK, "20 default message windows");
	is_int(rdb_limits_set(p, NULL, bytes, 20), RDB_INVALID, "20 more byte windows refused");
	ok(strstr(rdb_policy_errmsg(p), "the defaults would have 40") != NULL, "says why: %s",
	   rdb_policy_errmsg(p));
	is_int(rdb_limits_get(p, NULL, got, RDB_LIMITS_MAX, &n), RDB_OK, "defaults readable");
	is_int(n, 20, "defaults unchanged");
	is_int(rdb_limits_set(p, "carol", bytes, 20), RDB_INVALID, "own 20 + inherited 20 refused");
	ok(strstr(rdb_policy_errmsg(p), "login carol would have 40") != NULL, "names carol");
	is_int(rdb_limits_set(p, "carol", bytes, 12), RDB_OK, "own 12 + inherited 20 = 32 fits");
	is_int(rdb_policy_login(p, "carol", &lp), RDB_OK, "carol readable");
	is_int(lp.nlimits, RDB_LIMITS_MAX, "carol has RDB_LIMITS_MAX limits in effect");
	is_int(rdb_limits_set(p, NULL, rcpt, 1), RDB_INVALID, "a default carol would inherit");
	ok(strstr(rdb_policy_errmsg(p), "login carol would have 33") != NULL, "names carol: %s",
	   rdb_policy_errmsg(p));
	is_int(rdb_limits_over(p, count_over, over), RDB_OK, "count");
	is_str(over, "", "nobody over");
	/* a database written around relay-admin (or a version 1 file, from before the schema's
	 * trigger limits_per_login_max): the reader refuses, the count names it */
	{
		sqlite3 *h = NULL;

		ok(sqlite3_open_v2(users, &h, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK &&
		   sqlite3_exec(h, "DROP TRIGGER limits_per_login_max;"
		                "INSERT INTO limits VALUES (0, 'recipients', 60, 1);"
		                "INSERT INTO limits VALUES (0, 'recipients', 120, 1);"
		                "INSERT INTO limits VALUES (0, 'recipients', 180, 1);"
		                "INSERT INTO limits SELECT 0, 'recipients', window_seconds + 1, 1"
		                " FROM limits WHERE login_id = 0 AND metric = 'messages'",
		                NULL, NULL, NULL) == SQLITE_OK, "23 default rows more, by hand");
		sqlite3_close(h);
	}
	is_int(rdb_policy_login(p, "carol", &lp), RDB_ERROR, "reader refuses carol (12 + 20 + 23)");
	is_int(rdb_limits_over(p, count_over, over), RDB_OK, "count again");
	is_str(over, "(defaults)=43 carol=55 ", "the defaults and carol named");
	rdb_policy_free(p);
	rdb_close(db);
	unlink(users);
}

static int last_rows(const char *login, int64_t ts, const char *client, void *arg)
{
	char *out = arg;
	size_t len = strlen(out);

	snprintf(out + len, 256 - len, "%s@%lld:%s ", login, (long long)ts, client);
	return 0;
}

static int cred_rows(const char *login, const char *label, int64_t ts, const char *client,
                     void *arg)
{
	char *out = arg;
	size_t len = strlen(out);

	snprintf(out + len, 256 - len, "%s+%s@%lld:%s ", login, label, (long long)ts, client);
	return 0;
}

static int refuse_last(const char *login, int64_t ts, const char *client, void *arg)
{
	(void)login;
	(void)ts;
	(void)client;
	(void)arg;
	return 1;
}

static void test_state(void)
{
	char err[256], rows[1024] = "", client[64];
	struct rdb_state *st = NULL, *ro = NULL;
	struct audit_seen seen = { 0 };
	char state[PATH_MAX + 64];
	int64_t ts = 0;
	char longtext[400];

	snprintf(state, sizeof state, "%s", scratch_path("state.db"));
	is_int(rdb_state_open(state, RDB_READONLY, &st, err, sizeof err), RDB_ERROR,
	       "missing state db: ERROR");
	ok(strstr(err, "no state database") != NULL, "says why: %s", err);
	is_int(rdb_state_init(state, err, sizeof err), RDB_OK, "created (%s)", err);
	is_int(rdb_state_init(state, err, sizeof err), RDB_OK, "init again is harmless");
	is_int(rdb_state_init(scratch_path("users.db"), err, sizeof err), RDB_ERROR,
	       "the users db is not a state db");
	is_int(rdb_state_open(scratch_path("users.db"), RDB_READONLY, &ro, err, sizeof err), RDB_ERROR,
	       "opening the users db as state: ERROR");
	is_int(rdb_state_open(state, RDB_READWRITE, &st, err, sizeof err), RDB_OK, "open rw");
	is_int(rdb_state_open(state, RDB_READONLY, &ro, err, sizeof err), RDB_OK, "open ro");
	{
		struct rdb_state *via = NULL;
		char linked[PATH_MAX + 64];

		ok(symlink(scratch_dir, scratch_path("link")) == 0, "a symlinked folder");
		snprintf(linked, sizeof linked, "%s/state.db", scratch_path("link"));
		is_int(rdb_state_open(linked, RDB_READONLY, &via, err, sizeof err), RDB_ERROR,
		       "a symlink in the path is refused");
		ok(strstr(err, "symbolic link") != NULL, "says why: %s", err);
	}

	ok(rdb_state_begin(st) == RDB_OK, "begin");
	ok(rdb_state_usage_add(st, "alice", 100, 1, 3, 500) == RDB_OK, "usage");
	ok(rdb_state_usage_add(st, "alice", 100, 1, 2, 100) == RDB_OK, "same second adds up");
	ok(rdb_state_usage_add(st, "alice", 160, 1, 1, 10) == RDB_OK, "later second");
	ok(rdb_state_usage_add(st, "bob", 150, 1, 1, 1) == RDB_OK, "bob");
	ok(rdb_state_touch(st, "alice", 160, "192.0.2.1") == RDB_OK, "touch");
	ok(rdb_state_touch(st, "alice", 120, "192.0.2.2") == RDB_OK, "older touch keeps the time");
	memset(longtext, 'x', sizeof longtext - 1);
	longtext[sizeof longtext - 1] = '\0';
	longtext[5] = '\n';
	{
		struct rdb_audit a = { .ts = 100, .login = "alice", .client_addr = "192.0.2.1",
		                       .tls_version = "TLSv1.3", .env_from = "alice@example.com",
		                       .rcpt_count = 3, .size = 500, .verdict = "accepted",
		                       .reason = "ok" };

		ok(rdb_state_audit_add(st, &a) == RDB_OK, "audit 1");
		a.ts = 160;
		a.login = longtext;
		a.reason = "rate-limit";
		a.size = UINT64_MAX;
		ok(rdb_state_audit_add(st, &a) == RDB_OK, "audit 2: long, control char, huge size");
	}
	ok(rdb_state_commit(st) == RDB_OK, "commit");

	ok(rdb_state_usage_foreach(ro, "ALICE", 0, usage_rows, rows) == RDB_OK &&
	   strcmp(rows, "alice@100:2,5,600 alice@160:1,1,10 ") == 0, "usage rows: %s", rows);
	rows[0] = '\0';
	ok(rdb_state_usage_foreach(ro, NULL, 120, usage_rows, rows) == RDB_OK &&
	   strcmp(rows, "alice@160:1,1,10 bob@150:1,1,1 ") == 0, "since 120, all: %s", rows);
	ok(rdb_state_last_use(ro, "alice", &ts, client, sizeof client) == RDB_OK && ts == 160 &&
	   strcmp(client, "192.0.2.2") == 0, "last use %lld from %s", (long long)ts, client);
	is_int(rdb_state_last_use(ro, "carol", &ts, NULL, 0), RDB_NOTFOUND, "never used");
	ok(rdb_state_audit_foreach(ro, NULL, 0, 100, audit_row, &seen) == RDB_OK && seen.n == 2,
	   "two audit records");
	is_int(strlen(seen.last_login), RDB_AUDIT_FIELD_MAX, "text clamped");
	ok(strchr(seen.last_login, '\n') == NULL, "control character replaced");
	is_int(seen.last_size, INT64_MAX, "size clamped to INT64_MAX");
	memset(&seen, 0, sizeof seen);
	ok(rdb_state_audit_foreach(ro, NULL, 0, 1, audit_row, &seen) == RDB_OK && seen.n == 1 &&
	   strcmp(seen.last_reason, "rate-limit") == 0, "limit 1 gives the newest");
	memset(&seen, 0, sizeof seen);
	ok(rdb_state_audit_foreach(ro, "Alice", 0, 10, audit_row, &seen) == RDB_OK && seen.n == 1,
	   "filter by login, case-insensitive");
	ok(rdb_state_audit_foreach(ro, NULL, 150, 10, audit_row, &seen) == RDB_OK, "since");
	/* a callback that fails must fail the walk: the milter would otherwise start with
	 * part of its rate counters, i.e. let logins past their limits */
	is_int(rdb_state_usage_foreach(ro, NULL, 0, refuse_usage, NULL), RDB_ERROR,
	       "usage: a failing callback is an error");
	is_int(rdb_state_audit_foreach(ro, NULL, 0, 10, refuse_audit, NULL), RDB_ERROR,
	       "audit: a failing callback is an error");
	ok(rdb_state_prune(st, 120, 120) == RDB_OK, "prune");
	rows[0] = '\0';
	ok(rdb_state_usage_foreach(ro, NULL, 0, usage_rows, rows) == RDB_OK &&
	   strcmp(rows, "alice@160:1,1,10 bob@150:1,1,1 ") == 0, "pruned usage: %s", rows);
	memset(&seen, 0, sizeof seen);
	ok(rdb_state_audit_foreach(ro, NULL, 0, 10, audit_row, &seen) == RDB_OK && seen.n == 1,
	   "pruned audit");
	is_int(rdb_state_usage_add(ro, "x", 1, 1, 1, 1), RDB_ERROR, "read-only handle cannot write");

	/* carrying counters into a replacement file: the larger count per second wins, so
	 * merging twice (or into a copy that already has the rows) counts nothing twice */
	{
		const uint64_t more[3] = { 3, 1, 5 }, less[3] = { 1, 9, 1 };
		char lu[256] = "";

		ok(rdb_state_begin(st) == RDB_OK, "begin merge");
		ok(rdb_state_usage_merge(st, "alice", 160, more) == RDB_OK, "merge into a row");
		ok(rdb_state_usage_merge(st, "alice", 160, more) == RDB_OK, "the same merge again");
		ok(rdb_state_usage_merge(st, "ALICE", 160, less) == RDB_OK, "a smaller one");
		ok(rdb_state_usage_merge(st, "carol", 170, less) == RDB_OK, "a new row");
		ok(rdb_state_last_use_merge(st, "alice", 150, "192.0.2.9") == RDB_OK, "older last use");
		ok(rdb_state_last_use_merge(st, "bob", 150, "192.0.2.8") == RDB_OK, "new last use");
		ok(rdb_state_last_use_merge(st, "bob", 155, "192.0.2.7") == RDB_OK, "newer last use");
		ok(rdb_state_commit(st) == RDB_OK, "commit merge");
		rows[0] = '\0';
		ok(rdb_state_usage_foreach(ro, NULL, 0, usage_rows, rows) == RDB_OK &&
		   strcmp(rows, "alice@160:3,9,10 bob@150:1,1,1 carol@170:1,9,1 ") == 0,
		   "merged usage: %s", rows);
		ok(rdb_state_last_use_foreach(ro, last_rows, lu) == RDB_OK &&
		   strcmp(lu, "alice@160:192.0.2.2 bob@155:192.0.2.7 ") == 0, "merged last use: %s", lu);
		is_int(rdb_state_last_use_foreach(ro, refuse_last, NULL), RDB_ERROR,
		       "last use: a failing callback is an error");
	}
	/* app credentials: the last use of each, touched live and carried over like a
	 * login's (the later one wins) */
	{
		char cu[256] = "";

		ok(rdb_state_credential_touch(st, "alice", "phone", 200, "192.0.2.1") == RDB_OK,
		   "credential touched");
		ok(rdb_state_credential_touch(st, "ALICE", "phone", 190, "192.0.2.2") == RDB_OK,
		   "an older touch (another thread's batch) does not go back in time");
		ok(rdb_state_credential_last_use(ro, "alice", "phone", &ts, client, sizeof client) ==
		   RDB_OK && ts == 200, "credential last use: %lld", (long long)ts);
		is_int(rdb_state_credential_last_use(ro, "alice", "printer", &ts, NULL, 0),
		       RDB_NOTFOUND, "another label: never used");
		ok(rdb_state_begin(st) == RDB_OK, "begin merge");
		ok(rdb_state_credential_use_merge(st, "alice", "phone", 150, "192.0.2.9") == RDB_OK,
		   "an older carried use");
		ok(rdb_state_credential_use_merge(st, "bob", "cron", 155, "192.0.2.7") == RDB_OK,
		   "a new one");
		ok(rdb_state_commit(st) == RDB_OK, "commit merge");
		ok(rdb_state_credential_use_foreach(ro, cred_rows, cu) == RDB_OK &&
		   strcmp(cu, "alice+phone@200:192.0.2.2 bob+cron@155:192.0.2.7 ") == 0,
		   "merged credential use: %s", cu);
	}
	ok(rdb_state_checkpoint(st) == RDB_OK, "checkpoint empties the WAL: %s", rdb_state_errmsg(st));
	{
		struct stat sb;

		ok(stat(scratch_path("state.db-wal"), &sb) == 0 && sb.st_size == 0, "the WAL is empty");
	}
	rdb_state_close_moved(NULL);
	rdb_state_rollback(st); /* no transaction open: harmless */
	rdb_state_close(st);
	rdb_state_close(ro);
	rdb_state_close(NULL);
}

/* A users database whose policy statements cannot be prepared (its `limits` table is
 * gone: a damaged or hand-edited file). relay-milter and relay-admin read the reason from
 * rdb_errmsg(); rdb_policy_new() used to fail without recording one, so they said
 * "preparing policy queries: no error". Now every statement is prepared when the file
 * opens: whichever call refuses, the message names what is missing. */
static void test_policy_prepare_error(void)
{
	const char *p = scratch_path("damaged.db");
	char err[256] = "";
	struct rdb *db = NULL;
	struct rdb_policy *pol = NULL;
	enum rdb_result opened, made = RDB_ERROR;
	const char *why;
	sqlite3 *h = NULL;

	ok(rdb_init(p, err, sizeof err) == RDB_OK, "init damaged.db: %s", err);
	ok(sqlite3_open(p, &h) == SQLITE_OK &&
	   sqlite3_exec(h, "DROP TABLE limits", NULL, NULL, NULL) == SQLITE_OK,
	   "drop the limits table behind the layer's back");
	sqlite3_close(h);
	opened = rdb_open(p, RDB_READONLY, &db, err, sizeof err);
	if (opened == RDB_OK)
		made = rdb_policy_new(db, &pol);
	ok(opened != RDB_OK || made != RDB_OK, "a users database without limits is refused");
	why = opened != RDB_OK ? err : rdb_errmsg(db);
	ok(strstr(why, "no such table") != NULL && strstr(why, "limits") != NULL,
	   "the reason names the missing table: %s", why);
	ok(strcmp(why, "no error") != 0 && why[0] != '\0', "never \"no error\"");
	rdb_policy_free(pol);
	rdb_close(db);
	unlink(p);
}

/* The state schema is sql/state-schema.sql, run through the users database's migration
 * path: its header constants agree with state.h, the file it makes is a state database
 * (WAL), and neither kind of database passes for the other. */
static void test_state_kind(void)
{
	extern const char rdb_state_schema_sql[];
	const char *state = scratch_path("kind-state.db"), *users = scratch_path("kind-users.db");
	const char *p;
	char err[256];
	int64_t version = -1;
	struct rdb_state *st = NULL;
	struct rdb *db = NULL;
	sqlite3 *h = NULL;
	sqlite3_stmt *q = NULL;

	p = strstr(rdb_state_schema_sql, "PRAGMA application_id = ");
	ok(p != NULL && strtoll(p + 24, NULL, 10) == RDB_STATE_APPLICATION_ID,
	   "state-schema.sql's application_id is RDB_STATE_APPLICATION_ID");
	p = strstr(rdb_state_schema_sql, "PRAGMA user_version = ");
	ok(p != NULL && strtoll(p + 22, NULL, 10) == RDB_STATE_SCHEMA_VERSION,
	   "state-schema.sql's user_version is RDB_STATE_SCHEMA_VERSION");

	is_int(rdb_state_init(state, err, sizeof err), RDB_OK, "state init (%s)", err);
	is_int(rdb_state_init(state, err, sizeof err), RDB_OK, "state init again");
	ok(sqlite3_open(state, &h) == SQLITE_OK &&
	   sqlite3_prepare_v2(h, "PRAGMA journal_mode", -1, &q, NULL) == SQLITE_OK &&
	   sqlite3_step(q) == SQLITE_ROW &&
	   strcmp((const char *)sqlite3_column_text(q, 0), "wal") == 0, "the state file is WAL");
	sqlite3_finalize(q);
	sqlite3_close(h);
	is_int(rdb_state_probe(state, &version, err, sizeof err), RDB_OK, "probe a state file");
	is_int(version, RDB_STATE_SCHEMA_VERSION, "probe reads its version");

	is_int(rdb_init(users, err, sizeof err), RDB_OK, "users init");
	is_int(rdb_state_probe(users, &version, err, sizeof err), RDB_INVALID,
	       "probe: the users database is no state database");
	ok(strstr(err, "not an smtp-relay state database") != NULL, "says so: %s", err);
	is_int(rdb_state_init(users, err, sizeof err), RDB_ERROR, "state init refuses it");
	is_int(rdb_state_open(users, RDB_READONLY, &st, err, sizeof err), RDB_ERROR,
	       "state open refuses it");
	is_int(rdb_open(state, RDB_READONLY, &db, err, sizeof err), RDB_ERROR,
	       "users open refuses a state file");
	ok(strstr(err, "not an smtp-relay users database") != NULL, "says so: %s", err);
	ok(st == NULL && db == NULL, "no handles");
	unlink(users);
	unlink(state);
	unlink(scratch_path("kind-state.db-wal"));
	unlink(scratch_path("kind-state.db-shm"));
}

static int count_rec(const struct rdb_audit *a, void *arg)
{
	char *logins = arg;

	strncat(logins, a->login, 64);
	strncat(logins, a->verdict[0] == 'r' ? "-" : " ", 2);
	return 0;
}

struct counter_seen {
	char text[512];
};

static int counter_row(const char *name, const char *label, uint64_t value, void *arg)
{
	struct counter_seen *c = arg;
	size_t n = strlen(c->text);

	snprintf(c->text + n, sizeof c->text - n, "%s{%s}=%llu ", name, label,
	         (unsigned long long)value);
	return 0;
}

static void add_rec(struct rdb_state *st, const char *login, const char *verdict, int64_t ts)
{
	struct rdb_audit a = { .ts = ts, .login = login, .verdict = verdict, .reason = "r" };

	if (rdb_state_audit_add(st, &a) != RDB_OK)
		ok(0, "audit add: %s", rdb_state_errmsg(st));
}

/* State schema 3 (issue 12): the counters relay-milter persists for `relay-admin metrics`,
 * and the queries `relay-admin log --follow` polls with. */
static void test_counters_and_follow(void)
{
	const char *path = scratch_path("follow-state.db");
	struct rdb_state *st = NULL, *ro = NULL;
	struct counter_seen seen = { "" };
	struct rdb_audit_filter f;
	char err[256], logins[512] = "";
	int64_t id = -1, v1 = 0, v2 = 0;
	sqlite3 *h = NULL;

	is_int(rdb_state_init(path, err, sizeof err), RDB_OK, "create (%s)", err);
	is_int(rdb_state_open(path, RDB_READWRITE, &st, err, sizeof err), RDB_OK, "open rw");
	is_int(rdb_state_open(path, RDB_READONLY, &ro, err, sizeof err), RDB_OK, "open ro");
	is_int(rdb_state_audit_max_id(ro, &id), RDB_OK, "max id of an empty log");
	is_int(id, 0, "is 0");
	is_int(rdb_state_data_version(ro, &v1), RDB_OK, "data_version");
	is_int(rdb_state_begin(st), RDB_OK, "begin");
	add_rec(st, "alice", "accepted", 1000);
	add_rec(st, "bob", "rejected", 1001);
	add_rec(st, "Alice", "rejected", 1002);
	add_rec(st, "alice", "accepted", 1003);
	is_int(rdb_state_counter_add(st, "relay_messages_accepted_total", "", 2), RDB_OK, "count");
	is_int(rdb_state_counter_add(st, "relay_messages_accepted_total", "", 3), RDB_OK, "add");
	is_int(rdb_state_counter_add(st, "relay_tempfails_total", "rate-limit", 1), RDB_OK, "label");
	is_int(rdb_state_commit(st), RDB_OK, "commit");
	is_int(rdb_state_data_version(ro, &v2), RDB_OK, "data_version again");
	ok(v2 != v1, "another connection's commit moves data_version");
	is_int(rdb_state_data_version(ro, &v1), RDB_OK, "and once more");
	is_int(v1, v2, "nothing committed since: unchanged");
	is_int(rdb_state_audit_max_id(ro, &id), RDB_OK, "max id");
	is_int(id, 4, "four records");

	f = (struct rdb_audit_filter){ .after_id = 0, .upto_id = id, .login = "ALICE",
	                               .verdict = "rejected" };
	is_int(rdb_state_audit_query(ro, &f, count_rec, logins), RDB_OK, "filtered query");
	is_str(logins, "Alice-", "login without regard to case, and the verdict");
	logins[0] = '\0';
	f = (struct rdb_audit_filter){ .after_id = 1, .upto_id = 3, .since = 1002 };
	is_int(rdb_state_audit_query(ro, &f, count_rec, logins), RDB_OK, "a range");
	is_str(logins, "Alice-", "ids in (1, 3] and ts >= 1002 only");
	logins[0] = '\0';
	f = (struct rdb_audit_filter){ .after_id = 0, .upto_id = INT64_MAX, .limit = 2 };
	is_int(rdb_state_audit_query(ro, &f, count_rec, logins), RDB_OK, "the newest two");
	is_str(logins, "Alice-alice ", "oldest first");

	is_int(rdb_state_counter_foreach(ro, counter_row, &seen), RDB_OK, "counters read-only");
	is_str(seen.text, "relay_messages_accepted_total{}=5 relay_tempfails_total{rate-limit}=1 ",
	       "summed, ordered");
	is_int(rdb_state_counter_add(ro, "x", "", 1), RDB_ERROR, "no counting on a read-only handle");
	rdb_state_close(ro);
	rdb_state_close(st);

	/* a version 2 file (the milter has not migrated it yet): readable, without counters */
	ok(sqlite3_open(path, &h) == SQLITE_OK &&
	   sqlite3_exec(h, "DROP TABLE reset_mark; DROP TABLE credential_use;"
	                       " ALTER TABLE audit DROP COLUMN credential;"
	                       " DROP TABLE counters; PRAGMA user_version = 2", NULL, NULL, NULL) ==
	   SQLITE_OK, "made a version 2 file");
	sqlite3_close(h);
	is_int(rdb_state_open(path, RDB_READONLY, &ro, err, sizeof err), RDB_OK,
	       "a v2 file opens read-only (%s)", err);
	seen.text[0] = '\0';
	is_int(rdb_state_counter_foreach(ro, counter_row, &seen), RDB_NOTFOUND, "no counters yet");
	rdb_state_close(ro);
	is_int(rdb_state_init(path, err, sizeof err), RDB_OK, "migrated to the current version (%s)", err);
	is_int(rdb_state_open(path, RDB_READWRITE, &st, err, sizeof err), RDB_OK, "open rw");
	is_int(rdb_state_counter_foreach(st, counter_row, &seen), RDB_OK, "counters after migration");
	is_str(seen.text, "", "empty");
	rdb_state_close(st);
	unlink(path);
	unlink(scratch_path("follow-state.db-wal"));
	unlink(scratch_path("follow-state.db-shm"));
}

int main(void)
{
	if (scratch_make("test-mlt-sql") != 0)
		return 1;
	test_counters_and_follow();
	test_policy();
	test_limits_max();
	test_policy_prepare_error();
	test_state_kind();
	test_state();
	{
		static const char *const files[] = { "users.db", "users.db-journal", "state.db",
		                                      "state.db-wal", "state.db-shm", "link" };

		scratch_remove(files, sizeof files / sizeof files[0]);
	}
	return tap_done();
}
