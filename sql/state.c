/*
 * state.c — the state database: schema, open, and the few statements the milter writes
 * and relay-admin reads (see state.h).
 *
 * The state kind of the connection core (conn.h), on either engine: on SQLite its schema
 * is sql/state-schema.sql, created through the same migration path as the users database
 * (migrations.c); on PostgreSQL it is sql/pg-state-schema.sql (the same tables, plus the
 * reservations of admit.c), created by the core (pgconn.c). Each statement id has one
 * text per engine below, every one prepared when the database opens; the operations are
 * written once against the engine-neutral statement API. Every value is bound; every
 * column is type-checked.
 *
 * A few ids exist for one engine only: the checkpoint and the crash journal's mark for
 * SQLite (relay-milter has no journal on PostgreSQL, writer.h), expired reservations and
 * admission (admit.c) for PostgreSQL. The other engine gets a harmless placeholder so
 * that both tables are complete, and the functions check the engine before using them.
 */
#include "state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"
#include "state-private.h"

#define BUSY_TIMEOUT_MS 3000  /* well below Postfix's 30 s milter_command_timeout */

/* Embedded from sql/state-schema.sql and sql/pg-state-schema.sql by embed-sql.py. */
extern const char rdb_state_schema_sql[];
extern const char rdb_pg_state_schema_sql[];

/* Version 2 added journal_mark (relay-milter's crash journal, milter/journal.h): one row,
 * the journal id and sequence number of the last journal record applied, written in the
 * same transaction as the record, so that a record is never applied twice. */
extern const char rdb_state_migration_002_sql[];

static const char *const state_migrations[RDB_STATE_SCHEMA_VERSION + 1] = {
	[0] = NULL, /* unused: version 0 is "no schema", served by state-schema.sql */
	[1] = NULL, /* version 1 is the first */
	[2] = rdb_state_migration_002_sql,
};

/* PostgreSQL starts at version 2 (pg-state-schema.sql): nothing to migrate yet. */
static const char *const pg_state_migrations[RDB_STATE_SCHEMA_VERSION + 1] = { NULL };

#define LITE_NONE "SELECT 'PostgreSQL only' WHERE 0"
#define PG_NONE "SELECT 'SQLite only' WHERE false"
#define DB_NOW "floor(extract(epoch FROM now()))::bigint"
#define AUDIT_COLS "id, ts, login, client_addr, tls_version, cipher, env_from, header_from," \
                   " rcpt_count, size, queue_id, verdict, reason"

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
	[S_AUDIT_ALL] = "SELECT * FROM (SELECT " AUDIT_COLS
	                " FROM audit WHERE ts >= ?1 ORDER BY id DESC LIMIT ?3) ORDER BY id",
	[S_AUDIT_ONE] = "SELECT * FROM (SELECT " AUDIT_COLS
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
	[S_PRUNE_RESV] = LITE_NONE,
	[S_A_LOCK] = LITE_NONE, [S_A_SUMS] = LITE_NONE, [S_A_RESERVED] = LITE_NONE,
	[S_A_ROWS] = LITE_NONE, [S_A_INSERT] = LITE_NONE, [S_A_UPDATE] = LITE_NONE,
	[S_A_DELETE] = LITE_NONE, [S_A_COUNT] = LITE_NONE,
};

/* The same operations on PostgreSQL: logins compare through lower() (SQLite's NOCASE),
 * whose unique indexes the ON CONFLICT clauses name; shared times come from now(). */
static const char *const pg_sql[S_COUNT_] = {
	[S_BEGIN] = "BEGIN",
	[S_COMMIT] = "COMMIT",
	[S_ROLLBACK] = "ROLLBACK",
	[S_AUDIT_ADD] = "INSERT INTO audit (ts, login, client_addr, tls_version, cipher, env_from,"
	                " header_from, rcpt_count, size, queue_id, verdict, reason)"
	                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
	[S_USAGE_ADD] = "INSERT INTO usage (login, ts, messages, recipients, bytes)"
	                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT ((lower(login)), ts) DO UPDATE SET"
	                " messages = usage.messages + excluded.messages,"
	                " recipients = usage.recipients + excluded.recipients,"
	                " bytes = usage.bytes + excluded.bytes",
	[S_TOUCH] = "INSERT INTO last_use (login, ts, client_addr) VALUES ($1, $2, $3)"
	            " ON CONFLICT ((lower(login))) DO UPDATE SET"
	            " ts = greatest(last_use.ts, excluded.ts), client_addr = excluded.client_addr",
	[S_PRUNE_USAGE] = "DELETE FROM usage WHERE ts <= $1",
	[S_PRUNE_AUDIT] = "DELETE FROM audit WHERE ts <= $1",
	[S_USAGE_ALL] = "SELECT login, ts, messages, recipients, bytes FROM usage WHERE ts > $1"
	                " ORDER BY lower(login), ts",
	[S_USAGE_ONE] = "SELECT login, ts, messages, recipients, bytes FROM usage"
	                " WHERE lower(login) = lower($2) AND ts > $1 ORDER BY ts",
	[S_AUDIT_ALL] = "SELECT * FROM (SELECT " AUDIT_COLS " FROM audit WHERE ts >= $1"
	                " AND $2::text IS NULL ORDER BY id DESC LIMIT $3) AS newest ORDER BY id",
	[S_AUDIT_ONE] = "SELECT * FROM (SELECT " AUDIT_COLS " FROM audit WHERE ts >= $1"
	                " AND lower(login) = lower($2) ORDER BY id DESC LIMIT $3) AS newest"
	                " ORDER BY id",
	[S_LAST_USE] = "SELECT ts, client_addr FROM last_use WHERE lower(login) = lower($1)",
	[S_USAGE_MERGE] = "INSERT INTO usage (login, ts, messages, recipients, bytes)"
	                  " VALUES ($1, $2, $3, $4, $5) ON CONFLICT ((lower(login)), ts) DO UPDATE"
	                  " SET messages = greatest(usage.messages, excluded.messages),"
	                  " recipients = greatest(usage.recipients, excluded.recipients),"
	                  " bytes = greatest(usage.bytes, excluded.bytes)",
	[S_LAST_USE_ALL] = "SELECT login, ts, client_addr FROM last_use ORDER BY lower(login)",
	[S_LAST_USE_MERGE] = "INSERT INTO last_use (login, ts, client_addr) VALUES ($1, $2, $3)"
	                     " ON CONFLICT ((lower(login))) DO UPDATE SET ts = excluded.ts,"
	                     " client_addr = excluded.client_addr WHERE excluded.ts > last_use.ts",
	[S_CHECKPOINT] = PG_NONE,
	[S_JOURNAL_GET] = PG_NONE,
	[S_JOURNAL_SET] = PG_NONE,
	/* reservations of a node that died: they stopped counting at expires_at already */
	[S_PRUNE_RESV] = "DELETE FROM reservations WHERE expires_at <= now()",
	/* admission (admit.c): serialise the login's checks across every node, read the clock */
	[S_A_LOCK] = "SELECT pg_advisory_xact_lock(1919706227, hashtext(lower($1)))::text, "
	             DB_NOW,
	/* per limit window (in the order given), the login's usage in the window ending now */
	[S_A_SUMS] = "SELECT w.i, coalesce(sum(u.messages), 0)::bigint,"
	             " coalesce(sum(u.recipients), 0)::bigint, coalesce(sum(u.bytes), 0)::bigint"
	             " FROM unnest($2::bigint[]) WITH ORDINALITY AS w(win, i)"
	             " LEFT JOIN usage u ON lower(u.login) = lower($1)"
	             " AND u.ts > " DB_NOW " - w.win GROUP BY w.i ORDER BY w.i",
	/* open reservations of every node but this message's own, and whether that one lives */
	[S_A_RESERVED] = "SELECT coalesce(sum(messages) FILTER (WHERE id <> $2), 0)::bigint,"
	                 " coalesce(sum(recipients) FILTER (WHERE id <> $2), 0)::bigint,"
	                 " coalesce(sum(bytes) FILTER (WHERE id <> $2), 0)::bigint,"
	                 " count(*) FILTER (WHERE id = $2) FROM reservations"
	                 " WHERE lower(login) = lower($1) AND expires_at > now()",
	/* only on a refusal: the rows that say when it will fit */
	[S_A_ROWS] = "SELECT ts, messages, recipients, bytes FROM usage"
	             " WHERE lower(login) = lower($1) AND ts > " DB_NOW " - $2 ORDER BY ts",
	[S_A_INSERT] = "INSERT INTO reservations (login, node, messages, recipients, bytes,"
	               " expires_at) VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6))"
	               " RETURNING id",
	[S_A_UPDATE] = "UPDATE reservations SET messages = $2, recipients = $3, bytes = $4,"
	               " expires_at = now() + make_interval(secs => $5) WHERE id = $1",
	[S_A_DELETE] = "DELETE FROM reservations WHERE id = $1",
	[S_A_COUNT] = "INSERT INTO usage (login, ts, messages, recipients, bytes)"
	              " VALUES ($1, " DB_NOW ", $2, $3, $4) ON CONFLICT ((lower(login)), ts)"
	              " DO UPDATE SET messages = usage.messages + excluded.messages,"
	              " recipients = usage.recipients + excluded.recipients,"
	              " bytes = usage.bytes + excluded.bytes",
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
	.pg_stmts = pg_sql,
	.pg_schema_sql = rdb_pg_state_schema_sql,
	.pg_migrations = pg_state_migrations,
	/* {role}: the role's quoted name. The milter writes the state; relay-admin reads it
	 * (usage, log, user list) and writes it only for `copy`. */
	.pg_grants = {
		[RDB_ROLE_PLUGIN] = NULL,
		[RDB_ROLE_MILTER] =
			"GRANT SELECT ON relay_schema TO {role};\n"
			"GRANT SELECT, INSERT, UPDATE, DELETE ON usage, last_use, audit, reservations"
			" TO {role};\n"
			"GRANT USAGE, SELECT ON SEQUENCE audit_id_seq, reservations_id_seq TO {role};\n",
		[RDB_ROLE_ADMIN] =
			"GRANT SELECT ON relay_schema, reservations TO {role};\n"
			"GRANT SELECT, INSERT, UPDATE, DELETE ON usage, last_use, audit TO {role};\n"
			"GRANT USAGE, SELECT ON SEQUENCE audit_id_seq TO {role};\n",
	},
};

struct rdb_state {
	struct rdb_conn c;
};

struct rdb_conn *rdb_state_conn(struct rdb_state *st)
{
	return &st->c;
}

bool rdb_state_shared(const struct rdb_state *st)
{
	return st->c.engine == RDB_ENGINE_PG;
}

static enum rdb_result fail(struct rdb_state *st, const char *what)
{
	return rdb_conn_fail_db(&st->c, what);
}

/* A row or a callback the reads cannot go on with: says why, and the read fails. */
static enum rdb_result refuse(struct rdb_state *st, const char *why)
{
	rdb_seterr(st->c.err, sizeof st->c.err, "%s", why);
	return RDB_ERROR;
}

/* The end of a read loop: a last step other than "done" is a read error. */
static enum rdb_result read_done(struct rdb_state *st, int rc, const char *what)
{
	return rc == RDB_STEP_DONE ? RDB_OK : fail(st, what);
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
	*out = st;
	return RDB_OK;
}

void rdb_state_close(struct rdb_state *st)
{
	if (st == NULL)
		return;
	rdb_conn_close(&st->c);
	free(st);
}

const char *rdb_state_errmsg(const struct rdb_state *st)
{
	return st->c.err;
}

static enum rdb_result step_done(struct rdb_state *st, int which)
{
	return rdb_conn_exec(&st->c, (size_t)which, which == S_BEGIN ? "BEGIN" :
	                     which == S_COMMIT ? "COMMIT" : which == S_ROLLBACK ? "ROLLBACK" :
	                     "state database");
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
	if (rdb_conn_in_tx(&st->c)) {
		char keep[sizeof st->c.err];

		/* the failure that made us roll back is the message to keep */
		memcpy(keep, st->c.err, sizeof keep);
		step_done(st, S_ROLLBACK);
		memcpy(st->c.err, keep, sizeof keep);
	}
}

/* A clamped, control-free copy of an audit text (NULL → ""): bound texts are borrowed
 * until the statement is done, so the buffer lives in the caller's frame. */
struct clean {
	char s[RDB_AUDIT_FIELD_MAX + 1];
};

static const char *clean(struct clean *b, const char *in)
{
	size_t o = 0;

	for (; in != NULL && *in != '\0' && o < RDB_AUDIT_FIELD_MAX; in++)
		b->s[o++] = ((unsigned char)*in < 0x20 || *in == 0x7f) ? '?' : *in;
	b->s[o] = '\0';
	return b->s;
}

static int64_t clamp64(uint64_t v)
{
	return v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v;
}

/* Steps a bound write and finishes the statement on every path. */
static enum rdb_result write_done(struct rdb_state *st, struct rdb_st *s, const char *what)
{
	int rc = rdb_step(s);
	enum rdb_result r = rc == RDB_STEP_DONE ? RDB_OK : fail(st, what);

	rdb_st_done(s);
	return r;
}

static struct rdb_st *q(struct rdb_state *st, int which)
{
	return rdb_conn_q(&st->c, (size_t)which);
}

enum rdb_result rdb_state_audit_add(struct rdb_state *st, const struct rdb_audit *a)
{
	struct rdb_st *s = q(st, S_AUDIT_ADD);
	struct clean c[9];

	if (rdb_bind_int64(s, 1, a->ts) != RDB_SQL_OK ||
	    rdb_bind_text(s, 2, clean(&c[0], a->login)) != RDB_SQL_OK ||
	    rdb_bind_text(s, 3, clean(&c[1], a->client_addr)) != RDB_SQL_OK ||
	    rdb_bind_text(s, 4, clean(&c[2], a->tls_version)) != RDB_SQL_OK ||
	    rdb_bind_text(s, 5, clean(&c[3], a->cipher)) != RDB_SQL_OK ||
	    rdb_bind_text(s, 6, clean(&c[4], a->env_from)) != RDB_SQL_OK ||
	    rdb_bind_text(s, 7, clean(&c[5], a->header_from)) != RDB_SQL_OK ||
	    rdb_bind_int64(s, 8, clamp64(a->rcpt_count)) != RDB_SQL_OK ||
	    rdb_bind_int64(s, 9, clamp64(a->size)) != RDB_SQL_OK ||
	    rdb_bind_text(s, 10, clean(&c[6], a->queue_id)) != RDB_SQL_OK ||
	    rdb_bind_text(s, 11, clean(&c[7], a->verdict)) != RDB_SQL_OK ||
	    rdb_bind_text(s, 12, clean(&c[8], a->reason)) != RDB_SQL_OK) {
		rdb_st_done(s);
		return fail(st, "binding an audit record");
	}
	return write_done(st, s, "writing an audit record");
}

/* The usage statements (live add, merge of a moved file) bind the same five values. */
static enum rdb_result usage_write(struct rdb_state *st, int which, const char *login,
                                   int64_t ts, const uint64_t v[3])
{
	struct rdb_st *s = q(st, which);

	if (rdb_bind_text(s, 1, login) != RDB_SQL_OK || rdb_bind_int64(s, 2, ts) != RDB_SQL_OK ||
	    rdb_bind_int64(s, 3, clamp64(v[0])) != RDB_SQL_OK ||
	    rdb_bind_int64(s, 4, clamp64(v[1])) != RDB_SQL_OK ||
	    rdb_bind_int64(s, 5, clamp64(v[2])) != RDB_SQL_OK) {
		rdb_st_done(s);
		return fail(st, "binding usage");
	}
	return write_done(st, s, "writing usage");
}

/* Likewise the last-use statements (live touch, merge). */
static enum rdb_result last_use_write(struct rdb_state *st, int which, const char *login,
                                      int64_t ts, const char *client_addr)
{
	struct rdb_st *s = q(st, which);
	struct clean c;

	if (rdb_bind_text(s, 1, login) != RDB_SQL_OK || rdb_bind_int64(s, 2, ts) != RDB_SQL_OK ||
	    rdb_bind_text(s, 3, clean(&c, client_addr)) != RDB_SQL_OK) {
		rdb_st_done(s);
		return fail(st, "binding last use");
	}
	return write_done(st, s, "writing last use");
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
	struct rdb_st *s = q(st, S_PRUNE_USAGE);

	if (rdb_bind_int64(s, 1, usage_before) != RDB_SQL_OK ||
	    write_done(st, s, "pruning usage") != RDB_OK)
		return fail(st, "pruning usage");
	s = q(st, S_PRUNE_AUDIT);
	if (rdb_bind_int64(s, 1, audit_before) != RDB_SQL_OK ||
	    write_done(st, s, "pruning the audit log") != RDB_OK)
		return fail(st, "pruning the audit log");
	if (rdb_state_shared(st) && rdb_conn_exec(&st->c, S_PRUNE_RESV,
	                                          "pruning expired reservations") != RDB_OK)
		return RDB_ERROR;
	return RDB_OK;
}

static bool col_is(struct rdb_st *s, int col, enum rdb_coltype t)
{
	return rdb_col_type(s, col) == t;
}

enum rdb_result rdb_state_usage_foreach(struct rdb_state *st, const char *login, int64_t since,
                                        int (*fn)(const char *login, int64_t ts,
                                                  const uint64_t v[3], void *arg),
                                        void *arg)
{
	struct rdb_st *s = q(st, login ? S_USAGE_ONE : S_USAGE_ALL);
	enum rdb_result r = RDB_OK;
	int rc;

	if (rdb_bind_int64(s, 1, since) != RDB_SQL_OK ||
	    (login != NULL && rdb_bind_text(s, 2, login) != RDB_SQL_OK)) {
		r = fail(st, "bind");
		goto out;
	}
	while ((rc = rdb_step(s)) == RDB_STEP_ROW) {
		uint64_t v[3];

		if (!col_is(s, 0, RDB_COL_TEXT)) {
			r = refuse(st, "usage row has an unexpected shape");
			goto out;
		}
		for (int c = 1; c <= 4; c++) {
			if (!col_is(s, c, RDB_COL_INT) || rdb_col_int64(s, c) < 0) {
				r = refuse(st, "usage row has an unexpected shape");
				goto out;
			}
		}
		for (int m = 0; m < 3; m++)
			v[m] = (uint64_t)rdb_col_int64(s, 2 + m);
		if (fn((const char *)rdb_col_text(s, 0), rdb_col_int64(s, 1), v, arg)) {
			r = refuse(st, "a usage row could not be kept (out of memory?)");
			goto out;
		}
	}
	r = read_done(st, rc, "reading usage");
out:
	rdb_st_done(s);
	return r;
}

enum rdb_result rdb_state_audit_foreach(struct rdb_state *st, const char *login, int64_t since,
                                        int64_t limit,
                                        int (*fn)(const struct rdb_audit *a, void *arg),
                                        void *arg)
{
	struct rdb_st *s = q(st, login ? S_AUDIT_ONE : S_AUDIT_ALL);
	enum rdb_result r = RDB_OK;
	int rc;

	/* ?2 is the login; the every-login text has it too (unused, NULL), so that both
	 * engines number the limit ?3 / $3 */
	if (rdb_bind_int64(s, 1, since) != RDB_SQL_OK ||
	    (login != NULL ? rdb_bind_text(s, 2, login) : rdb_bind_null(s, 2)) != RDB_SQL_OK ||
	    rdb_bind_int64(s, 3, limit) != RDB_SQL_OK) {
		r = fail(st, "bind");
		goto out;
	}
	while ((rc = rdb_step(s)) == RDB_STEP_ROW) {
		static const int ints[] = { 0, 1, 8, 9 };
		static const int texts[] = { 2, 3, 4, 5, 6, 7, 10, 11, 12 };
		struct rdb_audit a;

		for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++)
			if (!col_is(s, ints[k], RDB_COL_INT))
				goto shape;
		for (size_t k = 0; k < sizeof texts / sizeof texts[0]; k++)
			if (!col_is(s, texts[k], RDB_COL_TEXT))
				goto shape;
		a = (struct rdb_audit){
			.id = rdb_col_int64(s, 0),
			.ts = rdb_col_int64(s, 1),
			.login = (const char *)rdb_col_text(s, 2),
			.client_addr = (const char *)rdb_col_text(s, 3),
			.tls_version = (const char *)rdb_col_text(s, 4),
			.cipher = (const char *)rdb_col_text(s, 5),
			.env_from = (const char *)rdb_col_text(s, 6),
			.header_from = (const char *)rdb_col_text(s, 7),
			.rcpt_count = (uint64_t)rdb_col_int64(s, 8),
			.size = (uint64_t)rdb_col_int64(s, 9),
			.queue_id = (const char *)rdb_col_text(s, 10),
			.verdict = (const char *)rdb_col_text(s, 11),
			.reason = (const char *)rdb_col_text(s, 12),
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
	rdb_st_done(s);
	return r;
}

enum rdb_result rdb_state_last_use(struct rdb_state *st, const char *login, int64_t *ts,
                                   char *client, size_t clientlen)
{
	struct rdb_st *s = q(st, S_LAST_USE);
	enum rdb_result r;
	int rc;

	if (rdb_bind_text(s, 1, login) != RDB_SQL_OK) {
		r = fail(st, "bind");
		goto out;
	}
	rc = rdb_step(s);
	if (rc == RDB_STEP_DONE) {
		r = RDB_NOTFOUND;
	} else if (rc != RDB_STEP_ROW) {
		r = fail(st, "reading last use");
	} else if (!col_is(s, 0, RDB_COL_INT) || !col_is(s, 1, RDB_COL_TEXT)) {
		r = refuse(st, "last_use row has an unexpected shape");
	} else {
		*ts = rdb_col_int64(s, 0);
		if (client != NULL && clientlen > 0)
			snprintf(client, clientlen, "%s", (const char *)rdb_col_text(s, 1));
		r = RDB_OK;
	}
out:
	rdb_st_done(s);
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
	struct rdb_st *s = q(st, S_LAST_USE_ALL);
	enum rdb_result r = RDB_OK;
	int rc;

	while ((rc = rdb_step(s)) == RDB_STEP_ROW) {
		if (!col_is(s, 0, RDB_COL_TEXT) || !col_is(s, 1, RDB_COL_INT) ||
		    !col_is(s, 2, RDB_COL_TEXT)) {
			r = refuse(st, "last_use row has an unexpected shape");
			goto out;
		}
		if (fn((const char *)rdb_col_text(s, 0), rdb_col_int64(s, 1),
		       (const char *)rdb_col_text(s, 2), arg)) {
			r = refuse(st, "a last_use row could not be kept");
			goto out;
		}
	}
	r = read_done(st, rc, "reading last use");
out:
	rdb_st_done(s);
	return r;
}

enum rdb_result rdb_state_checkpoint(struct rdb_state *st)
{
	sqlite3_stmt *s;
	enum rdb_result r = RDB_OK;
	int rc;

	if (rdb_state_shared(st))
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
	if (st != NULL && !rdb_state_shared(st))
		sqlite3_file_control(st->c.h, "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
	rdb_state_close(st);
}

/* The crash journal is SQLite's (writer.h): on PostgreSQL a count is committed before
 * Postfix hears "accept", so there is no mark to keep. */
static enum rdb_result no_journal(struct rdb_state *st)
{
	return rdb_conn_fail(&st->c, RDB_ERROR, "journal mark: no crash journal on PostgreSQL");
}

enum rdb_result rdb_state_journal_get(struct rdb_state *st, uint64_t *journal_id, uint64_t *seq)
{
	struct rdb_st *s;
	enum rdb_result r = RDB_NOTFOUND;
	int rc;

	if (rdb_state_shared(st))
		return no_journal(st);
	s = q(st, S_JOURNAL_GET);
	if (s == NULL)
		return rdb_conn_fail(&st->c, RDB_ERROR, "journal mark: not on a read-only handle");
	rc = rdb_step(s);
	if (rc == RDB_STEP_ROW) {
		if (!col_is(s, 0, RDB_COL_INT) || !col_is(s, 1, RDB_COL_INT)) {
			r = rdb_conn_fail(&st->c, RDB_ERROR, "journal mark: not integers");
		} else {
			*journal_id = (uint64_t)rdb_col_int64(s, 0);
			*seq = (uint64_t)rdb_col_int64(s, 1);
			r = RDB_OK;
		}
	} else if (rc != RDB_STEP_DONE) {
		r = fail(st, "reading the journal mark");
	}
	rdb_st_done(s);
	return r;
}

enum rdb_result rdb_state_journal_set(struct rdb_state *st, uint64_t journal_id, uint64_t seq)
{
	struct rdb_st *s;

	if (rdb_state_shared(st))
		return no_journal(st);
	s = q(st, S_JOURNAL_SET);
	if (s == NULL)
		return rdb_conn_fail(&st->c, RDB_ERROR, "journal mark: not on a read-only handle");
	/* the id is 64 random bits: stored as the int64 with the same bits */
	if (rdb_bind_int64(s, 1, (int64_t)journal_id) != RDB_SQL_OK ||
	    rdb_bind_int64(s, 2, clamp64(seq)) != RDB_SQL_OK) {
		rdb_st_done(s);
		return fail(st, "bind");
	}
	return write_done(st, s, "writing the journal mark");
}
