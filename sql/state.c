/*
 * state.c — the state database: schema, open, and the few statements the milter writes
 * and relay-admin reads (see state.h).
 *
 * The state kind of the connection core (conn.h): its schema is sql/state-schema.sql,
 * created through the same migration path as the users database (migrations.c), and
 * its statements (the table below) are prepared when the file opens. Every value is
 * bound; every column is type-checked.
 */
#include "state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "errbuf.h"

#define BUSY_TIMEOUT_MS 3000  /* well below Postfix's 30 s milter_command_timeout */

/* Embedded from sql/state-schema.sql by embed-sql.py. */
extern const char rdb_state_schema_sql[];

/* Version 2 added journal_mark (relay-milter's crash journal, milter/journal.h): one row,
 * the journal id and sequence number of the last journal record applied, written in the
 * same transaction as the record, so that a record is never applied twice. */
extern const char rdb_state_migration_002_sql[];
/* Version 3 added counters: relay-milter's metrics, summed over its runs, for `relay-admin
 * metrics` (a relay without node_exporter's textfile collector is scraped through it). */
extern const char rdb_state_migration_003_sql[];
/* Version 4: the audit record's `credential` and credential_use (app credentials). */
extern const char rdb_state_migration_004_sql[];
/* Version 5 added reset_mark: the id of the last counter reset (users database) applied. */
extern const char rdb_state_migration_005_sql[];

static const char *const state_migrations[RDB_STATE_SCHEMA_VERSION + 1] = {
	[0] = NULL, /* unused: version 0 is "no schema", served by state-schema.sql */
	[1] = NULL, /* version 1 is the first */
	[2] = rdb_state_migration_002_sql,
	[3] = rdb_state_migration_003_sql,
	[4] = rdb_state_migration_004_sql,
	[5] = rdb_state_migration_005_sql,
};

/* relay-admin reading a file older than version 4 (not yet migrated by relay-milter or init):
 * the audit log as version 4 shows it, without credentials, and no credential use. The
 * triggers only let the writers' statements prepare (a reader never runs them). */
static const char read_compat_sql[] =
	"CREATE TEMP VIEW audit AS SELECT *, '' AS credential FROM main.audit;"
	"CREATE TEMP TRIGGER audit_add INSTEAD OF INSERT ON audit"
	" BEGIN SELECT RAISE(ABORT, 'read-only'); END;"
	"CREATE TEMP TRIGGER audit_prune INSTEAD OF DELETE ON audit"
	" BEGIN SELECT RAISE(ABORT, 'read-only'); END;"
	"CREATE TEMP TABLE credential_use (login TEXT NOT NULL COLLATE NOCASE, label TEXT NOT NULL,"
	" ts INTEGER NOT NULL, client_addr TEXT NOT NULL DEFAULT '', PRIMARY KEY (login, label));";

enum {
	S_BEGIN, S_COMMIT, S_ROLLBACK,
	S_AUDIT_ADD, S_USAGE_ADD, S_TOUCH, S_PRUNE_USAGE, S_PRUNE_AUDIT,
	S_USAGE_ALL, S_USAGE_ONE, S_AUDIT_ALL, S_AUDIT_ONE, S_AUDIT_HELD, S_LAST_USE,
	S_USAGE_MERGE, S_LAST_USE_ALL, S_LAST_USE_MERGE, S_CHECKPOINT,
	S_AUDIT_QUERY, S_AUDIT_MAX_ID, S_DATA_VERSION,
	S_CRED_TOUCH, S_CRED_LAST_USE, S_CRED_USE_ALL, S_CRED_USE_MERGE,
	/* last: readers do not prepare them (a v1 file lacks journal_mark, a v2 file counters,
	 * a v4 file reset_mark) */
	S_JOURNAL_GET, S_JOURNAL_SET, S_COUNTER_ADD, S_COUNTER_ALL,
	S_USAGE_RESET, S_USAGE_DROP_EMPTY, S_RESET_GET, S_RESET_SET,
	S_COUNT_
};

static const char *const sql[S_COUNT_] = {
	[S_BEGIN] = "BEGIN IMMEDIATE",
	[S_COMMIT] = "COMMIT",
	[S_ROLLBACK] = "ROLLBACK",
	[S_AUDIT_ADD] = "INSERT INTO audit (ts, login, client_addr, tls_version, cipher, env_from,"
	                " header_from, rcpt_count, size, queue_id, verdict, reason, credential)"
	                " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
	[S_USAGE_ADD] = "INSERT INTO usage (login, ts, messages, recipients, bytes)"
	                " VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (login, ts) DO UPDATE SET"
	                " messages = messages + excluded.messages,"
	                " recipients = recipients + excluded.recipients,"
	                " bytes = bytes + excluded.bytes",
	[S_TOUCH] = "INSERT INTO last_use (login, ts, client_addr) VALUES (?1, ?2, ?3)"
	            " ON CONFLICT (login) DO UPDATE SET ts = max(ts, excluded.ts),"
	            " client_addr = excluded.client_addr",
	[S_PRUNE_USAGE] = "DELETE FROM usage WHERE ts <= ?1",
	[S_PRUNE_AUDIT] = "DELETE FROM audit WHERE ts <= ?1",
	[S_USAGE_ALL] = "SELECT login, ts, messages, recipients, bytes FROM usage WHERE ts > ?1"
	                " ORDER BY login, ts",
	[S_USAGE_ONE] = "SELECT login, ts, messages, recipients, bytes FROM usage"
	                " WHERE login = ?2 AND ts > ?1 ORDER BY ts",
	[S_AUDIT_ALL] = "SELECT * FROM (SELECT id, ts, login, client_addr, tls_version, cipher,"
	                " env_from, header_from, rcpt_count, size, queue_id, verdict, reason,"
	                " credential FROM audit WHERE ts >= ?1 ORDER BY id DESC LIMIT ?3) ORDER BY id",
	[S_AUDIT_ONE] = "SELECT * FROM (SELECT id, ts, login, client_addr, tls_version, cipher,"
	                " env_from, header_from, rcpt_count, size, queue_id, verdict, reason,"
	                " credential FROM audit WHERE ts >= ?1 AND login = ?2 COLLATE NOCASE"
	                " ORDER BY id DESC LIMIT ?3) ORDER BY id",
	/* relay-admin held: the held records since ?1 (the oldest held message's arrival, a
	 * little before), by the ts index, matched to the hold queue by queue id */
	[S_AUDIT_HELD] = "SELECT id, ts, login, client_addr, tls_version, cipher, env_from,"
	                 " header_from, rcpt_count, size, queue_id, verdict, reason, credential"
	                 " FROM audit WHERE ts >= ?1 AND verdict = 'held' ORDER BY id",
	[S_LAST_USE] = "SELECT ts, client_addr FROM last_use WHERE login = ?1",
	/* carrying counters over into a replacement file: the larger count of each second wins,
	 * so merging the same rows twice (or into a copy that has them) counts nothing twice */
	[S_USAGE_MERGE] = "INSERT INTO usage (login, ts, messages, recipients, bytes)"
	                  " VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (login, ts) DO UPDATE SET"
	                  " messages = max(messages, excluded.messages),"
	                  " recipients = max(recipients, excluded.recipients),"
	                  " bytes = max(bytes, excluded.bytes)",
	[S_LAST_USE_ALL] = "SELECT login, ts, client_addr FROM last_use ORDER BY login",
	[S_LAST_USE_MERGE] = "INSERT INTO last_use (login, ts, client_addr) VALUES (?1, ?2, ?3)"
	                     " ON CONFLICT (login) DO UPDATE SET ts = excluded.ts,"
	                     " client_addr = excluded.client_addr WHERE excluded.ts > ts",
	[S_CHECKPOINT] = "PRAGMA wal_checkpoint(TRUNCATE)",
	/* newest ?6 (all when ?6 < 0) of a range, oldest first; the range by id is what lets a
	 * follower read exactly what was committed since its last turn */
	[S_AUDIT_QUERY] = "SELECT * FROM (SELECT id, ts, login, client_addr, tls_version, cipher,"
	                  " env_from, header_from, rcpt_count, size, queue_id, verdict, reason,"
	                  " credential FROM audit WHERE id > ?1 AND id <= ?2 AND ts >= ?3"
	                  " AND (?4 IS NULL OR login = ?4 COLLATE NOCASE)"
	                  " AND (?5 IS NULL OR verdict = ?5)"
	                  " ORDER BY id DESC LIMIT ?6) ORDER BY id",
	[S_AUDIT_MAX_ID] = "SELECT coalesce(max(id), 0) FROM audit",
	[S_DATA_VERSION] = "PRAGMA data_version",
	[S_CRED_TOUCH] = "INSERT INTO credential_use (login, label, ts, client_addr)"
	                 " VALUES (?1, ?2, ?3, ?4) ON CONFLICT (login, label) DO UPDATE SET"
	                 " ts = max(ts, excluded.ts), client_addr = excluded.client_addr",
	[S_CRED_LAST_USE] = "SELECT ts, client_addr FROM credential_use WHERE login = ?1"
	                    " AND label = ?2",
	[S_CRED_USE_ALL] = "SELECT login, label, ts, client_addr FROM credential_use"
	                   " ORDER BY login, label",
	[S_CRED_USE_MERGE] = "INSERT INTO credential_use (login, label, ts, client_addr)"
	                     " VALUES (?1, ?2, ?3, ?4) ON CONFLICT (login, label) DO UPDATE SET"
	                     " ts = excluded.ts, client_addr = excluded.client_addr"
	                     " WHERE excluded.ts > ts",
	[S_JOURNAL_GET] = "SELECT journal_id, seq FROM journal_mark WHERE id = 1",
	[S_JOURNAL_SET] = "INSERT INTO journal_mark (id, journal_id, seq) VALUES (1, ?1, ?2)"
	                  " ON CONFLICT (id) DO UPDATE SET journal_id = excluded.journal_id,"
	                  " seq = excluded.seq",
	[S_COUNTER_ADD] = "INSERT INTO counters (name, label, value) VALUES (?1, ?2, ?3)"
	                  " ON CONFLICT (name, label) DO UPDATE SET"
	                  " value = min(value + excluded.value, 9223372036854775807)",
	[S_COUNTER_ALL] = "SELECT name, label, value FROM counters ORDER BY name, label",
	/* a counter reset: the metrics in ?3 (bits 1 << enum rdb_metric) of the login's rows
	 * up to ?2 become 0; rows left all zero go */
	[S_USAGE_RESET] = "UPDATE usage SET"
	                  " messages = CASE WHEN ?3 & 1 THEN 0 ELSE messages END,"
	                  " recipients = CASE WHEN ?3 & 2 THEN 0 ELSE recipients END,"
	                  " bytes = CASE WHEN ?3 & 4 THEN 0 ELSE bytes END"
	                  " WHERE login = ?1 AND ts <= ?2",
	[S_USAGE_DROP_EMPTY] = "DELETE FROM usage WHERE login = ?1 AND ts <= ?2 AND messages = 0"
	                       " AND recipients = 0 AND bytes = 0",
	[S_RESET_GET] = "SELECT reset_id FROM reset_mark WHERE id = 1",
	[S_RESET_SET] = "INSERT INTO reset_mark (id, reset_id) VALUES (1, ?1)"
	                " ON CONFLICT (id) DO UPDATE SET reset_id = max(reset_id, excluded.reset_id)",
};

static const struct rdb_kind state_kind = {
	.what = "state",
	.application_id = RDB_STATE_APPLICATION_ID,
	.version = RDB_STATE_SCHEMA_VERSION,
	.schema_sql = rdb_state_schema_sql,
	.migrations = state_migrations,
	.missing = "no state database (relay-milter creates it on start, or run relay-admin init)",
	.busy_ms = BUSY_TIMEOUT_MS,
	/* a folder owned by the milter's user must not steer root's relay-admin elsewhere */
	.nofollow = true,
	.wal = true,
	.setup = { NULL, NULL },
	.stmts = sql,
	.nstmts = S_COUNT_,
	/* relay-admin reads a version 1 file the milter has not migrated yet (the milter
	 * migrates at start): everything but the journal mark, which version 1 lacks */
	.read_min_version = 1,
	.nstmts_read = S_JOURNAL_GET,
	.read_compat = read_compat_sql,
};

struct rdb_state {
	struct rdb_conn c;
	/* S_COUNTER_ALL for a read-only handle on a file of version 3 or later (readers
	 * prepare only what every version they accept has; see rdb_state_open) */
	sqlite3_stmt *counters_ro;
};

static enum rdb_result fail(struct rdb_state *st, const char *what)
{
	return rdb_conn_fail_sqlite(&st->c, what);
}

/* A row or a callback the reads cannot go on with: says why, and the read fails. */
static enum rdb_result refuse(struct rdb_state *st, const char *why)
{
	rdb_seterr(st->c.err, sizeof st->c.err, "%s", why);
	return RDB_ERROR;
}

/* The end of a read loop: a last step other than SQLITE_DONE is a read error. */
static enum rdb_result read_done(struct rdb_state *st, int rc, const char *what)
{
	return rc == SQLITE_DONE ? RDB_OK : fail(st, what);
}

enum rdb_result rdb_state_init(const char *path, char *err, size_t errlen)
{
	return rdb_conn_init(&state_kind, path, NULL, NULL, err, errlen);
}

enum rdb_result rdb_state_probe(const char *path, int64_t *version, char *err, size_t errlen)
{
	return rdb_conn_probe(&state_kind, path, version, err, errlen);
}

enum rdb_result rdb_state_open(const char *path, enum rdb_mode mode, struct rdb_state **out,
                               char *err, size_t errlen)
{
	struct rdb_state *st;
	enum rdb_result r;

	*out = NULL;
	st = calloc(1, sizeof *st);
	if (st == NULL) {
		rdb_seterr(err, errlen, "out of memory");
		return RDB_ERROR;
	}
	if ((r = rdb_conn_open(&st->c, &state_kind, path, mode, err, errlen)) != RDB_OK) {
		free(st);
		return r;
	}
	if (mode == RDB_READONLY) {
		int64_t v = 0;

		if (!rdb_conn_pragma_int(st->c.h, "PRAGMA user_version", &v) ||
		    (v >= 3 && sqlite3_prepare_v3(st->c.h, sql[S_COUNTER_ALL], -1,
		                                  SQLITE_PREPARE_PERSISTENT, &st->counters_ro,
		                                  NULL) != SQLITE_OK)) {
			rdb_seterr(err, errlen, "%s: preparing the counters query: %s", path,
			           sqlite3_errmsg(st->c.h));
			rdb_state_close(st);
			return RDB_ERROR;
		}
	}
	*out = st;
	return RDB_OK;
}

void rdb_state_close(struct rdb_state *st)
{
	if (st == NULL)
		return;
	sqlite3_finalize(st->counters_ro);
	rdb_conn_close(&st->c);
	free(st);
}

const char *rdb_state_errmsg(const struct rdb_state *st)
{
	return st->c.err;
}

static enum rdb_result step_done(struct rdb_state *st, int which)
{
	sqlite3_stmt *s = st->c.st[which];
	int rc = sqlite3_step(s);

	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (rc != SQLITE_DONE)
		return fail(st, sql[which]);
	return RDB_OK;
}

enum rdb_result rdb_state_begin(struct rdb_state *st)
{
	return step_done(st, S_BEGIN);
}

enum rdb_result rdb_state_commit(struct rdb_state *st)
{
	return step_done(st, S_COMMIT);
}

void rdb_state_rollback(struct rdb_state *st)
{
	if (rdb_conn_in_tx(&st->c))
		step_done(st, S_ROLLBACK);
}

/* Binds a clamped, control-free copy of s (NULL → ""). */
static int bind_clean(sqlite3_stmt *s, int col, const char *in)
{
	char buf[RDB_AUDIT_FIELD_MAX + 1];
	size_t o = 0;

	for (; in != NULL && *in != '\0' && o < RDB_AUDIT_FIELD_MAX; in++)
		buf[o++] = ((unsigned char)*in < 0x20 || *in == 0x7f) ? '?' : *in;
	buf[o] = '\0';
	return sqlite3_bind_text(s, col, buf, (int)o, SQLITE_TRANSIENT);
}

static int64_t clamp64(uint64_t v)
{
	return v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v;
}

enum rdb_result rdb_state_audit_add(struct rdb_state *st, const struct rdb_audit *a)
{
	sqlite3_stmt *s = st->c.st[S_AUDIT_ADD];

	if (sqlite3_bind_int64(s, 1, a->ts) != SQLITE_OK ||
	    bind_clean(s, 2, a->login) != SQLITE_OK || bind_clean(s, 3, a->client_addr) != SQLITE_OK ||
	    bind_clean(s, 4, a->tls_version) != SQLITE_OK || bind_clean(s, 5, a->cipher) != SQLITE_OK ||
	    bind_clean(s, 6, a->env_from) != SQLITE_OK || bind_clean(s, 7, a->header_from) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 8, clamp64(a->rcpt_count)) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 9, clamp64(a->size)) != SQLITE_OK ||
	    bind_clean(s, 10, a->queue_id) != SQLITE_OK || bind_clean(s, 11, a->verdict) != SQLITE_OK ||
	    bind_clean(s, 12, a->reason) != SQLITE_OK ||
	    bind_clean(s, 13, a->credential) != SQLITE_OK) {
		sqlite3_clear_bindings(s);
		return fail(st, "binding an audit record");
	}
	return step_done(st, S_AUDIT_ADD);
}

/* The usage statements (live add, merge of a moved file) bind the same five values. */
static enum rdb_result usage_write(struct rdb_state *st, int which, const char *login,
                                   int64_t ts, const uint64_t v[3])
{
	sqlite3_stmt *s = st->c.st[which];

	if (sqlite3_bind_text(s, 1, login, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 2, ts) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 3, clamp64(v[0])) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 4, clamp64(v[1])) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 5, clamp64(v[2])) != SQLITE_OK) {
		sqlite3_clear_bindings(s);
		return fail(st, "binding usage");
	}
	return step_done(st, which);
}

/* Likewise the last-use statements (live touch, merge). */
static enum rdb_result last_use_write(struct rdb_state *st, int which, const char *login,
                                      int64_t ts, const char *client_addr)
{
	sqlite3_stmt *s = st->c.st[which];

	if (sqlite3_bind_text(s, 1, login, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 2, ts) != SQLITE_OK || bind_clean(s, 3, client_addr) != SQLITE_OK) {
		sqlite3_clear_bindings(s);
		return fail(st, "binding last use");
	}
	return step_done(st, which);
}

enum rdb_result rdb_state_usage_add(struct rdb_state *st, const char *login, int64_t ts,
                                    uint64_t messages, uint64_t recipients, uint64_t bytes)
{
	const uint64_t v[3] = { messages, recipients, bytes };

	return usage_write(st, S_USAGE_ADD, login, ts, v);
}

enum rdb_result rdb_state_touch(struct rdb_state *st, const char *login, int64_t ts,
                                const char *client_addr)
{
	return last_use_write(st, S_TOUCH, login, ts, client_addr);
}

enum rdb_result rdb_state_prune(struct rdb_state *st, int64_t usage_before, int64_t audit_before)
{
	enum rdb_result r;

	if (sqlite3_bind_int64(st->c.st[S_PRUNE_USAGE], 1, usage_before) != SQLITE_OK ||
	    (r = step_done(st, S_PRUNE_USAGE)) != RDB_OK)
		return fail(st, "pruning usage");
	if (sqlite3_bind_int64(st->c.st[S_PRUNE_AUDIT], 1, audit_before) != SQLITE_OK ||
	    (r = step_done(st, S_PRUNE_AUDIT)) != RDB_OK)
		return fail(st, "pruning the audit log");
	return RDB_OK;
}

enum rdb_result rdb_state_usage_foreach(struct rdb_state *st, const char *login, int64_t since,
                                        int (*fn)(const char *login, int64_t ts,
                                                  const uint64_t v[3], void *arg),
                                        void *arg)
{
	sqlite3_stmt *s = st->c.st[login ? S_USAGE_ONE : S_USAGE_ALL];
	enum rdb_result r = RDB_OK;
	int rc;

	if (sqlite3_bind_int64(s, 1, since) != SQLITE_OK ||
	    (login != NULL && sqlite3_bind_text(s, 2, login, -1, SQLITE_STATIC) != SQLITE_OK)) {
		r = fail(st, "bind");
		goto out;
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		uint64_t v[3];

		if (sqlite3_column_type(s, 0) != SQLITE_TEXT) {
			r = refuse(st, "usage row has an unexpected shape");
			goto out;
		}
		for (int c = 1; c <= 4; c++) {
			if (sqlite3_column_type(s, c) != SQLITE_INTEGER || sqlite3_column_int64(s, c) < 0) {
				r = refuse(st, "usage row has an unexpected shape");
				goto out;
			}
		}
		for (int m = 0; m < 3; m++)
			v[m] = (uint64_t)sqlite3_column_int64(s, 2 + m);
		if (fn((const char *)sqlite3_column_text(s, 0), sqlite3_column_int64(s, 1), v, arg)) {
			r = refuse(st, "a usage row could not be kept (out of memory?)");
			goto out;
		}
	}
	r = read_done(st, rc, "reading usage");
out:
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return r;
}

/* Steps a bound audit query (the 14 columns of S_AUDIT_*), checking every row's shape. */
static enum rdb_result audit_rows(struct rdb_state *st, sqlite3_stmt *s,
                                  int (*fn)(const struct rdb_audit *a, void *arg), void *arg)
{
	int rc;

	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		static const int ints[] = { 0, 1, 8, 9 };
		static const int texts[] = { 2, 3, 4, 5, 6, 7, 10, 11, 12, 13 };
		struct rdb_audit a;

		for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++)
			if (sqlite3_column_type(s, ints[k]) != SQLITE_INTEGER)
				goto shape;
		for (size_t k = 0; k < sizeof texts / sizeof texts[0]; k++)
			if (sqlite3_column_type(s, texts[k]) != SQLITE_TEXT)
				goto shape;
		a = (struct rdb_audit){
			.id = sqlite3_column_int64(s, 0),
			.ts = sqlite3_column_int64(s, 1),
			.login = (const char *)sqlite3_column_text(s, 2),
			.client_addr = (const char *)sqlite3_column_text(s, 3),
			.tls_version = (const char *)sqlite3_column_text(s, 4),
			.cipher = (const char *)sqlite3_column_text(s, 5),
			.env_from = (const char *)sqlite3_column_text(s, 6),
			.header_from = (const char *)sqlite3_column_text(s, 7),
			.rcpt_count = (uint64_t)sqlite3_column_int64(s, 8),
			.size = (uint64_t)sqlite3_column_int64(s, 9),
			.queue_id = (const char *)sqlite3_column_text(s, 10),
			.verdict = (const char *)sqlite3_column_text(s, 11),
			.reason = (const char *)sqlite3_column_text(s, 12),
			.credential = (const char *)sqlite3_column_text(s, 13),
		};
		if (fn(&a, arg))
			return refuse(st, "an audit record could not be kept");
	}
	return read_done(st, rc, "reading the audit log");
shape:
	return refuse(st, "audit row has an unexpected shape");
}

enum rdb_result rdb_state_audit_foreach(struct rdb_state *st, const char *login, int64_t since,
                                        int64_t limit,
                                        int (*fn)(const struct rdb_audit *a, void *arg),
                                        void *arg)
{
	sqlite3_stmt *s = st->c.st[login ? S_AUDIT_ONE : S_AUDIT_ALL];
	enum rdb_result r;

	if (sqlite3_bind_int64(s, 1, since) != SQLITE_OK ||
	    (login != NULL && sqlite3_bind_text(s, 2, login, -1, SQLITE_STATIC) != SQLITE_OK) ||
	    sqlite3_bind_int64(s, 3, limit) != SQLITE_OK)
		r = fail(st, "bind");
	else
		r = audit_rows(st, s, fn, arg);
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return r;
}

enum rdb_result rdb_state_audit_held_foreach(struct rdb_state *st, int64_t since,
                                             int (*fn)(const struct rdb_audit *a, void *arg),
                                             void *arg)
{
	sqlite3_stmt *s = st->c.st[S_AUDIT_HELD];
	enum rdb_result r;

	if (sqlite3_bind_int64(s, 1, since) != SQLITE_OK)
		r = fail(st, "bind");
	else
		r = audit_rows(st, s, fn, arg);
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return r;
}

static int bind_opt_text(sqlite3_stmt *s, int col, const char *v)
{
	return v != NULL ? sqlite3_bind_text(s, col, v, -1, SQLITE_STATIC)
	                 : sqlite3_bind_null(s, col);
}

enum rdb_result rdb_state_audit_query(struct rdb_state *st, const struct rdb_audit_filter *f,
                                      int (*fn)(const struct rdb_audit *a, void *arg),
                                      void *arg)
{
	sqlite3_stmt *s = st->c.st[S_AUDIT_QUERY];
	enum rdb_result r;

	if (sqlite3_bind_int64(s, 1, f->after_id) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 2, f->upto_id) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 3, f->since) != SQLITE_OK ||
	    bind_opt_text(s, 4, f->login) != SQLITE_OK ||
	    bind_opt_text(s, 5, f->verdict) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 6, f->limit > 0 ? f->limit : -1) != SQLITE_OK)
		r = fail(st, "bind");
	else
		r = audit_rows(st, s, fn, arg);
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return r;
}

/* One integer from a one-row statement without parameters. */
static enum rdb_result one_int(struct rdb_state *st, int which, const char *what, int64_t *out)
{
	sqlite3_stmt *s = st->c.st[which];
	enum rdb_result r = RDB_OK;
	int rc = sqlite3_step(s);

	if (rc != SQLITE_ROW)
		r = fail(st, what);
	else if (sqlite3_column_type(s, 0) != SQLITE_INTEGER)
		r = refuse(st, "an unexpected value");
	else
		*out = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	return r;
}

enum rdb_result rdb_state_audit_max_id(struct rdb_state *st, int64_t *id)
{
	return one_int(st, S_AUDIT_MAX_ID, "reading the audit log", id);
}

enum rdb_result rdb_state_data_version(struct rdb_state *st, int64_t *version)
{
	return one_int(st, S_DATA_VERSION, "PRAGMA data_version", version);
}

enum rdb_result rdb_state_counter_add(struct rdb_state *st, const char *name, const char *label,
                                      uint64_t delta)
{
	sqlite3_stmt *s = rdb_conn_stmt(&st->c, S_COUNTER_ADD);

	if (s == NULL)
		return rdb_conn_fail(&st->c, RDB_ERROR, "counters: not on a read-only handle");
	if (sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(s, 2, label ? label : "", -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 3, clamp64(delta)) != SQLITE_OK) {
		rdb_done(s);
		return fail(st, "bind");
	}
	return step_done(st, S_COUNTER_ADD);
}

enum rdb_result rdb_state_counter_foreach(struct rdb_state *st,
                                          int (*fn)(const char *name, const char *label,
                                                    uint64_t value, void *arg),
                                          void *arg)
{
	sqlite3_stmt *s = st->counters_ro ? st->counters_ro : rdb_conn_stmt(&st->c, S_COUNTER_ALL);
	enum rdb_result r = RDB_OK;
	int rc;

	if (s == NULL)
		return RDB_NOTFOUND; /* a read-only handle on a file older than version 3 */
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (sqlite3_column_type(s, 0) != SQLITE_TEXT ||
		    sqlite3_column_type(s, 1) != SQLITE_TEXT ||
		    sqlite3_column_type(s, 2) != SQLITE_INTEGER || sqlite3_column_int64(s, 2) < 0) {
			r = refuse(st, "counters row has an unexpected shape");
			goto out;
		}
		if (fn((const char *)sqlite3_column_text(s, 0), (const char *)sqlite3_column_text(s, 1),
		       (uint64_t)sqlite3_column_int64(s, 2), arg)) {
			r = refuse(st, "a counters row could not be kept");
			goto out;
		}
	}
	r = read_done(st, rc, "reading the counters");
out:
	sqlite3_reset(s);
	return r;
}

/* The one-row last-use reads: of a login (label NULL) or of one of its credentials. */
static enum rdb_result last_use_read(struct rdb_state *st, const char *login, const char *label,
                                     int64_t *ts, char *client, size_t clientlen)
{
	sqlite3_stmt *s = st->c.st[label != NULL ? S_CRED_LAST_USE : S_LAST_USE];
	enum rdb_result r;
	int rc;

	if (sqlite3_bind_text(s, 1, login, -1, SQLITE_STATIC) != SQLITE_OK ||
	    (label != NULL && sqlite3_bind_text(s, 2, label, -1, SQLITE_STATIC) != SQLITE_OK)) {
		r = fail(st, "bind");
		goto out;
	}
	rc = sqlite3_step(s);
	if (rc == SQLITE_DONE) {
		r = RDB_NOTFOUND;
	} else if (rc != SQLITE_ROW) {
		r = fail(st, "reading last use");
	} else if (sqlite3_column_type(s, 0) != SQLITE_INTEGER ||
	           sqlite3_column_type(s, 1) != SQLITE_TEXT) {
		r = refuse(st, "last_use row has an unexpected shape");
	} else {
		*ts = sqlite3_column_int64(s, 0);
		if (client != NULL && clientlen > 0)
			snprintf(client, clientlen, "%s", (const char *)sqlite3_column_text(s, 1));
		r = RDB_OK;
	}
out:
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return r;
}

enum rdb_result rdb_state_last_use(struct rdb_state *st, const char *login, int64_t *ts,
                                   char *client, size_t clientlen)
{
	return last_use_read(st, login, NULL, ts, client, clientlen);
}

enum rdb_result rdb_state_credential_last_use(struct rdb_state *st, const char *login,
                                              const char *label, int64_t *ts, char *client,
                                              size_t clientlen)
{
	return last_use_read(st, login, label, ts, client, clientlen);
}

/* The credential-use writes (live touch, merge) bind the same four values. */
static enum rdb_result cred_use_write(struct rdb_state *st, int which, const char *login,
                                      const char *label, int64_t ts, const char *client_addr)
{
	sqlite3_stmt *s = st->c.st[which];

	if (sqlite3_bind_text(s, 1, login, -1, SQLITE_STATIC) != SQLITE_OK ||
	    bind_clean(s, 2, label) != SQLITE_OK || sqlite3_bind_int64(s, 3, ts) != SQLITE_OK ||
	    bind_clean(s, 4, client_addr) != SQLITE_OK) {
		sqlite3_clear_bindings(s);
		return fail(st, "binding credential use");
	}
	return step_done(st, which);
}

enum rdb_result rdb_state_credential_touch(struct rdb_state *st, const char *login,
                                           const char *label, int64_t ts,
                                           const char *client_addr)
{
	return cred_use_write(st, S_CRED_TOUCH, login, label, ts, client_addr);
}

enum rdb_result rdb_state_credential_use_merge(struct rdb_state *st, const char *login,
                                               const char *label, int64_t ts,
                                               const char *client_addr)
{
	return cred_use_write(st, S_CRED_USE_MERGE, login, label, ts, client_addr);
}

enum rdb_result rdb_state_credential_use_foreach(struct rdb_state *st,
                                                 int (*fn)(const char *login, const char *label,
                                                           int64_t ts, const char *client_addr,
                                                           void *arg),
                                                 void *arg)
{
	sqlite3_stmt *s = st->c.st[S_CRED_USE_ALL];
	enum rdb_result r = RDB_OK;
	int rc;

	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (sqlite3_column_type(s, 0) != SQLITE_TEXT || sqlite3_column_type(s, 1) != SQLITE_TEXT ||
		    sqlite3_column_type(s, 2) != SQLITE_INTEGER ||
		    sqlite3_column_type(s, 3) != SQLITE_TEXT) {
			r = refuse(st, "credential_use row has an unexpected shape");
			goto out;
		}
		if (fn((const char *)sqlite3_column_text(s, 0), (const char *)sqlite3_column_text(s, 1),
		       sqlite3_column_int64(s, 2), (const char *)sqlite3_column_text(s, 3), arg)) {
			r = refuse(st, "a credential_use row could not be kept");
			goto out;
		}
	}
	r = read_done(st, rc, "reading credential use");
out:
	sqlite3_reset(s);
	return r;
}

enum rdb_result rdb_state_usage_merge(struct rdb_state *st, const char *login, int64_t ts,
                                      const uint64_t v[3])
{
	return usage_write(st, S_USAGE_MERGE, login, ts, v);
}

enum rdb_result rdb_state_last_use_merge(struct rdb_state *st, const char *login, int64_t ts,
                                         const char *client_addr)
{
	return last_use_write(st, S_LAST_USE_MERGE, login, ts, client_addr);
}

enum rdb_result rdb_state_last_use_foreach(struct rdb_state *st,
                                           int (*fn)(const char *login, int64_t ts,
                                                     const char *client_addr, void *arg),
                                           void *arg)
{
	sqlite3_stmt *s = st->c.st[S_LAST_USE_ALL];
	enum rdb_result r = RDB_OK;
	int rc;

	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (sqlite3_column_type(s, 0) != SQLITE_TEXT ||
		    sqlite3_column_type(s, 1) != SQLITE_INTEGER ||
		    sqlite3_column_type(s, 2) != SQLITE_TEXT) {
			r = refuse(st, "last_use row has an unexpected shape");
			goto out;
		}
		if (fn((const char *)sqlite3_column_text(s, 0), sqlite3_column_int64(s, 1),
		       (const char *)sqlite3_column_text(s, 2), arg)) {
			r = refuse(st, "a last_use row could not be kept");
			goto out;
		}
	}
	r = read_done(st, rc, "reading last use");
out:
	sqlite3_reset(s);
	return r;
}

enum rdb_result rdb_state_checkpoint(struct rdb_state *st)
{
	sqlite3_stmt *s = st->c.st[S_CHECKPOINT];
	enum rdb_result r = RDB_OK;
	int rc = sqlite3_step(s);

	/* one row: busy flag, WAL frames, frames checkpointed; busy means readers kept the
	 * WAL from being emptied */
	if (rc != SQLITE_ROW) {
		r = fail(st, "checkpoint");
	} else if (sqlite3_column_int(s, 0) != 0) {
		r = refuse(st, "checkpoint: the WAL is still in use by a reader");
	}
	sqlite3_reset(s);
	return r;
}

void rdb_state_close_moved(struct rdb_state *st)
{
	int persist = 1;

	/* SQLite deletes "<path>-wal" and "<path>-shm" by name when its last connection
	 * closes; those names now belong to whatever file sits at the path. */
	if (st != NULL)
		sqlite3_file_control(st->c.h, "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
	rdb_state_close(st);
}

enum rdb_result rdb_state_journal_get(struct rdb_state *st, uint64_t *journal_id, uint64_t *seq)
{
	sqlite3_stmt *s = rdb_conn_stmt(&st->c, S_JOURNAL_GET);
	enum rdb_result r = RDB_NOTFOUND;
	int rc;

	if (s == NULL)
		return rdb_conn_fail(&st->c, RDB_ERROR, "journal mark: not on a read-only handle");
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		if (sqlite3_column_type(s, 0) != SQLITE_INTEGER ||
		    sqlite3_column_type(s, 1) != SQLITE_INTEGER) {
			r = rdb_conn_fail(&st->c, RDB_ERROR, "journal mark: not integers");
		} else {
			*journal_id = (uint64_t)sqlite3_column_int64(s, 0);
			*seq = (uint64_t)sqlite3_column_int64(s, 1);
			r = RDB_OK;
		}
	} else if (rc != SQLITE_DONE) {
		r = fail(st, "reading the journal mark");
	}
	rdb_done(s);
	return r;
}

enum rdb_result rdb_state_journal_set(struct rdb_state *st, uint64_t journal_id, uint64_t seq)
{
	sqlite3_stmt *s = rdb_conn_stmt(&st->c, S_JOURNAL_SET);

	if (s == NULL)
		return rdb_conn_fail(&st->c, RDB_ERROR, "journal mark: not on a read-only handle");
	/* the id is 64 random bits: stored as the int64 with the same bits */
	if (sqlite3_bind_int64(s, 1, (sqlite3_int64)journal_id) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 2, clamp64(seq)) != SQLITE_OK) {
		rdb_done(s);
		return fail(st, "bind");
	}
	return step_done(st, S_JOURNAL_SET);
}

enum rdb_result rdb_state_usage_reset(struct rdb_state *st, const char *login, unsigned metrics,
                                      int64_t before)
{
	static const int which[2] = { S_USAGE_RESET, S_USAGE_DROP_EMPTY };
	enum rdb_result r = RDB_OK;

	for (size_t k = 0; k < 2 && r == RDB_OK; k++) {
		sqlite3_stmt *s = rdb_conn_stmt(&st->c, (size_t)which[k]);

		if (s == NULL)
			return rdb_conn_fail(&st->c, RDB_ERROR, "usage reset: not on a read-only handle");
		if (sqlite3_bind_text(s, 1, login, -1, SQLITE_STATIC) != SQLITE_OK ||
		    sqlite3_bind_int64(s, 2, before) != SQLITE_OK ||
		    (k == 0 && sqlite3_bind_int64(s, 3, (int64_t)metrics) != SQLITE_OK)) {
			rdb_done(s);
			return fail(st, "bind");
		}
		r = step_done(st, which[k]);
	}
	return r;
}

enum rdb_result rdb_state_reset_mark_get(struct rdb_state *st, int64_t *reset_id)
{
	sqlite3_stmt *s = rdb_conn_stmt(&st->c, S_RESET_GET);
	enum rdb_result r = RDB_OK;
	int rc;

	*reset_id = 0;
	if (s == NULL)
		return rdb_conn_fail(&st->c, RDB_ERROR, "reset mark: not on a read-only handle");
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		if (sqlite3_column_type(s, 0) != SQLITE_INTEGER)
			r = rdb_conn_fail(&st->c, RDB_ERROR, "reset mark: not an integer");
		else
			*reset_id = sqlite3_column_int64(s, 0);
	} else if (rc != SQLITE_DONE) {
		r = fail(st, "reading the reset mark");
	}
	rdb_done(s);
	return r;
}

enum rdb_result rdb_state_reset_mark_set(struct rdb_state *st, int64_t reset_id)
{
	sqlite3_stmt *s = rdb_conn_stmt(&st->c, S_RESET_SET);

	if (s == NULL)
		return rdb_conn_fail(&st->c, RDB_ERROR, "reset mark: not on a read-only handle");
	if (sqlite3_bind_int64(s, 1, reset_id) != SQLITE_OK) {
		rdb_done(s);
		return fail(st, "bind");
	}
	return step_done(st, S_RESET_SET);
}
