/*
 * state.c — the state database: schema, open, and the few statements the milter writes
 * and relay-admin reads (see state.h).
 *
 * The state kind of the connection core (conn.h): its schema is sql/state-schema.sql,
 * created through the same migration path as the users database (migrations.c), and
 * its statements (the table below) are prepared when the file opens. Every value is
 * bound; every column is type-checked.
 *
 * The engine seam: a name rdb_state_is_pg_name() accepts (postgresql://, postgres://,
 * pg:FILE) is a shared state database on PostgreSQL; every function below then hands its
 * call to pgstate.c, and the SQLite statements are never prepared. Admission (admit.h)
 * exists only there.
 */
#include "state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admit.h"
#include "conn.h"
#include "errbuf.h"
#include "pgstate.h"

#define BUSY_TIMEOUT_MS 3000  /* well below Postfix's 30 s milter_command_timeout */

/* Embedded from sql/state-schema.sql by embed-sql.py. */
extern const char rdb_state_schema_sql[];

/* Version 2 added journal_mark (relay-milter's crash journal, milter/journal.h): one row,
 * the journal id and sequence number of the last journal record applied, written in the
 * same transaction as the record, so that a record is never applied twice. */
extern const char rdb_state_migration_002_sql[];

static const char *const state_migrations[RDB_STATE_SCHEMA_VERSION + 1] = {
	[0] = NULL, /* unused: version 0 is "no schema", served by state-schema.sql */
	[1] = NULL, /* version 1 is the first */
	[2] = rdb_state_migration_002_sql,
};

enum {
	S_BEGIN, S_COMMIT, S_ROLLBACK,
	S_AUDIT_ADD, S_USAGE_ADD, S_TOUCH, S_PRUNE_USAGE, S_PRUNE_AUDIT,
	S_USAGE_ALL, S_USAGE_ONE, S_AUDIT_ALL, S_AUDIT_ONE, S_LAST_USE,
	S_USAGE_MERGE, S_LAST_USE_ALL, S_LAST_USE_MERGE, S_CHECKPOINT,
	S_JOURNAL_GET, S_JOURNAL_SET,   /* last: readers do not prepare them (a v1 file lacks the table) */
	S_COUNT_
};

static const char *const sql[S_COUNT_] = {
	[S_BEGIN] = "BEGIN IMMEDIATE",
	[S_COMMIT] = "COMMIT",
	[S_ROLLBACK] = "ROLLBACK",
	[S_AUDIT_ADD] = "INSERT INTO audit (ts, login, client_addr, tls_version, cipher, env_from,"
	                " header_from, rcpt_count, size, queue_id, verdict, reason)"
	                " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
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
	                " env_from, header_from, rcpt_count, size, queue_id, verdict, reason"
	                " FROM audit WHERE ts >= ?1 ORDER BY id DESC LIMIT ?3) ORDER BY id",
	[S_AUDIT_ONE] = "SELECT * FROM (SELECT id, ts, login, client_addr, tls_version, cipher,"
	                " env_from, header_from, rcpt_count, size, queue_id, verdict, reason"
	                " FROM audit WHERE ts >= ?1 AND login = ?2 COLLATE NOCASE"
	                " ORDER BY id DESC LIMIT ?3) ORDER BY id",
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
	[S_JOURNAL_GET] = "SELECT journal_id, seq FROM journal_mark WHERE id = 1",
	[S_JOURNAL_SET] = "INSERT INTO journal_mark (id, journal_id, seq) VALUES (1, ?1, ?2)"
	                  " ON CONFLICT (id) DO UPDATE SET journal_id = excluded.journal_id,"
	                  " seq = excluded.seq",
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
};

struct rdb_state {
	struct rdb_conn c;
	struct rdb_pgstate *pg;          /* non-NULL: PostgreSQL, c is unused */
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
	if (rdb_state_is_pg_name(path))
		return rdb_pgstate_init(path, err, errlen);
	return rdb_conn_init(&state_kind, path, NULL, NULL, err, errlen);
}

enum rdb_result rdb_state_probe(const char *path, int64_t *version, char *err, size_t errlen)
{
	if (rdb_state_is_pg_name(path))
		return rdb_pgstate_probe(path, version, err, errlen);
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
	if (rdb_state_is_pg_name(path)) {
		if ((r = rdb_pgstate_open(path, mode, &st->pg, err, errlen)) != RDB_OK) {
			free(st);
			return r;
		}
		*out = st;
		return RDB_OK;
	}
	if ((r = rdb_conn_open(&st->c, &state_kind, path, mode, err, errlen)) != RDB_OK) {
		free(st);
		return r;
	}
	*out = st;
	return RDB_OK;
}

void rdb_state_close(struct rdb_state *st)
{
	if (st == NULL)
		return;
	rdb_pgstate_close(st->pg);
	rdb_conn_close(&st->c);
	free(st);
}

const char *rdb_state_errmsg(const struct rdb_state *st)
{
	if (st->pg != NULL)
		return rdb_pgstate_errmsg(st->pg);
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
	if (st->pg != NULL)
		return rdb_pgstate_begin(st->pg);
	return step_done(st, S_BEGIN);
}

enum rdb_result rdb_state_commit(struct rdb_state *st)
{
	if (st->pg != NULL)
		return rdb_pgstate_commit(st->pg);
	return step_done(st, S_COMMIT);
}

void rdb_state_rollback(struct rdb_state *st)
{
	if (st->pg != NULL) {
		rdb_pgstate_rollback(st->pg);
		return;
	}
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
	sqlite3_stmt *s;

	if (st->pg != NULL)
		return rdb_pgstate_audit_add(st->pg, a);
	s = st->c.st[S_AUDIT_ADD];
	if (sqlite3_bind_int64(s, 1, a->ts) != SQLITE_OK ||
	    bind_clean(s, 2, a->login) != SQLITE_OK || bind_clean(s, 3, a->client_addr) != SQLITE_OK ||
	    bind_clean(s, 4, a->tls_version) != SQLITE_OK || bind_clean(s, 5, a->cipher) != SQLITE_OK ||
	    bind_clean(s, 6, a->env_from) != SQLITE_OK || bind_clean(s, 7, a->header_from) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 8, clamp64(a->rcpt_count)) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 9, clamp64(a->size)) != SQLITE_OK ||
	    bind_clean(s, 10, a->queue_id) != SQLITE_OK || bind_clean(s, 11, a->verdict) != SQLITE_OK ||
	    bind_clean(s, 12, a->reason) != SQLITE_OK) {
		sqlite3_clear_bindings(s);
		return fail(st, "binding an audit record");
	}
	return step_done(st, S_AUDIT_ADD);
}

/* The usage statements (live add, merge of a moved file) bind the same five values. */
static enum rdb_result usage_write(struct rdb_state *st, int which, const char *login,
                                   int64_t ts, const uint64_t v[3])
{
	sqlite3_stmt *s;

	if (st->pg != NULL)
		return rdb_pgstate_usage_write(st->pg, which == S_USAGE_MERGE, login, ts, v);
	s = st->c.st[which];
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
	sqlite3_stmt *s;

	if (st->pg != NULL)
		return rdb_pgstate_last_use_write(st->pg, which == S_LAST_USE_MERGE, login, ts,
		                                  client_addr);
	s = st->c.st[which];
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

	if (st->pg != NULL)
		return rdb_pgstate_prune(st->pg, usage_before, audit_before);
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
	sqlite3_stmt *s;
	enum rdb_result r = RDB_OK;
	int rc;

	if (st->pg != NULL)
		return rdb_pgstate_usage_foreach(st->pg, login, since, fn, arg);
	s = st->c.st[login ? S_USAGE_ONE : S_USAGE_ALL];
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

enum rdb_result rdb_state_audit_foreach(struct rdb_state *st, const char *login, int64_t since,
                                        int64_t limit,
                                        int (*fn)(const struct rdb_audit *a, void *arg),
                                        void *arg)
{
	sqlite3_stmt *s;
	enum rdb_result r = RDB_OK;
	int rc;

	if (st->pg != NULL)
		return rdb_pgstate_audit_foreach(st->pg, login, since, limit, fn, arg);
	s = st->c.st[login ? S_AUDIT_ONE : S_AUDIT_ALL];
	if (sqlite3_bind_int64(s, 1, since) != SQLITE_OK ||
	    (login != NULL && sqlite3_bind_text(s, 2, login, -1, SQLITE_STATIC) != SQLITE_OK) ||
	    sqlite3_bind_int64(s, 3, limit) != SQLITE_OK) {
		r = fail(st, "bind");
		goto out;
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		static const int ints[] = { 0, 1, 8, 9 };
		static const int texts[] = { 2, 3, 4, 5, 6, 7, 10, 11, 12 };
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
		};
		if (fn(&a, arg)) {
			r = refuse(st, "an audit record could not be kept");
			goto out;
		}
	}
	r = read_done(st, rc, "reading the audit log");
	goto out;
shape:
	r = refuse(st, "audit row has an unexpected shape");
out:
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return r;
}

enum rdb_result rdb_state_last_use(struct rdb_state *st, const char *login, int64_t *ts,
                                   char *client, size_t clientlen)
{
	sqlite3_stmt *s;
	enum rdb_result r;
	int rc;

	if (st->pg != NULL)
		return rdb_pgstate_last_use(st->pg, login, ts, client, clientlen);
	s = st->c.st[S_LAST_USE];
	if (sqlite3_bind_text(s, 1, login, -1, SQLITE_STATIC) != SQLITE_OK) {
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
	sqlite3_stmt *s;
	enum rdb_result r = RDB_OK;
	int rc;

	if (st->pg != NULL)
		return rdb_pgstate_last_use_foreach(st->pg, fn, arg);
	s = st->c.st[S_LAST_USE_ALL];
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
	sqlite3_stmt *s;
	enum rdb_result r = RDB_OK;
	int rc;

	if (st->pg != NULL)
		return RDB_OK; /* no WAL of ours: the server keeps its own */
	s = st->c.st[S_CHECKPOINT];
	rc = sqlite3_step(s);

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
	if (st != NULL && st->pg == NULL)
		sqlite3_file_control(st->c.h, "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
	rdb_state_close(st);
}

enum rdb_result rdb_state_journal_get(struct rdb_state *st, uint64_t *journal_id, uint64_t *seq)
{
	sqlite3_stmt *s;
	enum rdb_result r = RDB_NOTFOUND;
	int rc;

	if (st->pg != NULL) /* no crash journal on PostgreSQL (writer.h) */
		return rdb_conn_fail(&st->c, RDB_ERROR, "journal mark: no crash journal on PostgreSQL");
	s = rdb_conn_stmt(&st->c, S_JOURNAL_GET);
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
	sqlite3_stmt *s;

	if (st->pg != NULL)
		return rdb_conn_fail(&st->c, RDB_ERROR, "journal mark: no crash journal on PostgreSQL");
	s = rdb_conn_stmt(&st->c, S_JOURNAL_SET);
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

bool rdb_state_shared(const struct rdb_state *st)
{
	return st->pg != NULL;
}

/* ---- admission (admit.h): PostgreSQL only ---------------------------------------------- */

static enum rdb_result no_admission(struct rdb_state *st)
{
	return rdb_conn_fail(&st->c, RDB_ERROR, "admission in the database needs a PostgreSQL"
	                     " state database");
}

enum rdb_result rdb_admit_reserve(struct rdb_state *st, const char *login, const char *node,
                                  int64_t ttl, const struct rdb_limit *lims, size_t n,
                                  const uint64_t need[RDB_METRICS], int64_t *resv_id,
                                  uint64_t resv_v[RDB_METRICS], int64_t *wait, size_t *which)
{
	if (st->pg == NULL)
		return no_admission(st);
	return rdb_pgstate_admit(st->pg, false, login, node, ttl, lims, n, need, resv_id, resv_v,
	                         wait, which);
}

enum rdb_result rdb_admit_commit(struct rdb_state *st, const char *login,
                                 const struct rdb_limit *lims, size_t n,
                                 const uint64_t actual[RDB_METRICS], int64_t *resv_id,
                                 uint64_t resv_v[RDB_METRICS], int64_t *wait, size_t *which)
{
	if (st->pg == NULL)
		return no_admission(st);
	return rdb_pgstate_admit(st->pg, true, login, "", 0, lims, n, actual, resv_id, resv_v,
	                         wait, which);
}

enum rdb_result rdb_admit_release(struct rdb_state *st, int64_t *resv_id,
                                  uint64_t resv_v[RDB_METRICS])
{
	enum rdb_result r;

	if (st->pg == NULL)
		return no_admission(st);
	/* zeroed whatever happens: a row the database did not delete expires on its own */
	r = rdb_pgstate_release(st->pg, *resv_id);
	*resv_id = 0;
	memset(resv_v, 0, RDB_METRICS * sizeof resv_v[0]);
	return r;
}
