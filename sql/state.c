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
 *
 * Older schemas: relay-admin reads an SQLite file relay-milter has not migrated yet
 * (versions 1 to 3) through read_compat (a TEMP view gives the audit log its credential
 * column) and prepares the counters query apart when the file has the table (version 3
 * on). A PostgreSQL schema is always the current version (pgconn.c; every node's
 * relay-milter migrates it at start, like relay-admin init).
 *
 * The follower's change marker (rdb_state_data_version): SQLite's PRAGMA data_version;
 * PostgreSQL has none, so there it is the highest audit id. For that to be safe with
 * several nodes, audit ids must be handed out in commit order, or a follower could read
 * id 11 before the transaction holding id 10 commits and never see 10: every audit
 * insert on PostgreSQL first takes one transaction-scoped advisory lock (AUDIT_LOCK), so
 * the writers' batches take ids and commit one after the other (off the hot path: the
 * writer thread batches them every state_flush_ms).
 */
#include "state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"
#include "state-private.h"

#define BUSY_TIMEOUT_MS 3000  /* well below Postfix's 30 s milter_command_timeout */

/* Embedded from sql/state-schema.sql, sql/pg-state-schema.sql and the migrations by
 * embed-sql.py. */
extern const char rdb_state_schema_sql[];
extern const char rdb_pg_state_schema_sql[];

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
/* The same steps on PostgreSQL (migrations/pg-state-00N.sql). */
extern const char rdb_pg_state_migration_003_sql[];
extern const char rdb_pg_state_migration_004_sql[];
extern const char rdb_pg_state_migration_005_sql[];

static const char *const state_migrations[RDB_STATE_SCHEMA_VERSION + 1] = {
	[0] = NULL, /* unused: version 0 is "no schema", served by state-schema.sql */
	[1] = NULL, /* version 1 is the first */
	[2] = rdb_state_migration_002_sql,
	[3] = rdb_state_migration_003_sql,
	[4] = rdb_state_migration_004_sql,
	[5] = rdb_state_migration_005_sql,
};

/* PostgreSQL starts at version 2 (pg-state-schema.sql creates the current one). */
static const char *const pg_state_migrations[RDB_STATE_SCHEMA_VERSION + 1] = {
	[3] = rdb_pg_state_migration_003_sql,
	[4] = rdb_pg_state_migration_004_sql,
	[5] = rdb_pg_state_migration_005_sql,
};

/* relay-admin reading a file older than version 4 (not yet migrated by relay-milter or init):
 * the audit log as version 4 shows it, without credentials, and no credential use. The
 * triggers only let the writers' statements prepare (a reader never runs them). SQLite
 * only. */
static const char read_compat_sql[] =
	"CREATE TEMP VIEW audit AS SELECT *, '' AS credential FROM main.audit;"
	"CREATE TEMP TRIGGER audit_add INSTEAD OF INSERT ON audit"
	" BEGIN SELECT RAISE(ABORT, 'read-only'); END;"
	"CREATE TEMP TRIGGER audit_prune INSTEAD OF DELETE ON audit"
	" BEGIN SELECT RAISE(ABORT, 'read-only'); END;"
	"CREATE TEMP TABLE credential_use (login TEXT NOT NULL COLLATE NOCASE, label TEXT NOT NULL,"
	" ts INTEGER NOT NULL, client_addr TEXT NOT NULL DEFAULT '', PRIMARY KEY (login, label));";

#define LITE_NONE "SELECT 'PostgreSQL only' WHERE 0"
#define PG_NONE "SELECT 'SQLite only' WHERE false"
#define DB_NOW "floor(extract(epoch FROM now()))::bigint"
#define AUDIT_COLS "id, ts, login, client_addr, tls_version, cipher, env_from, header_from," \
                   " rcpt_count, size, queue_id, verdict, reason, credential"
/* see the header: audit ids in commit order across nodes */
#define AUDIT_LOCK "(SELECT pg_advisory_xact_lock(1919706228)) AS ordered"

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
	[S_AUDIT_ALL] = "SELECT * FROM (SELECT " AUDIT_COLS
	                " FROM audit WHERE ts >= ?1 ORDER BY id DESC LIMIT ?3) ORDER BY id",
	[S_AUDIT_ONE] = "SELECT * FROM (SELECT " AUDIT_COLS
	                " FROM audit WHERE ts >= ?1 AND login = ?2 COLLATE NOCASE"
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
	[S_AUDIT_QUERY] = "SELECT * FROM (SELECT " AUDIT_COLS
	                  " FROM audit WHERE id > ?1 AND id <= ?2 AND ts >= ?3"
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
	                " header_from, rcpt_count, size, queue_id, verdict, reason, credential)"
	                " SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13 FROM "
	                AUDIT_LOCK,
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
	[S_AUDIT_HELD] = "SELECT " AUDIT_COLS " FROM audit WHERE ts >= $1 AND verdict = 'held'"
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
	/* $4 / $5 are typed: a NULL alone would leave PostgreSQL no way to infer them */
	[S_AUDIT_QUERY] = "SELECT * FROM (SELECT " AUDIT_COLS
	                  " FROM audit WHERE id > $1 AND id <= $2 AND ts >= $3"
	                  " AND ($4::text IS NULL OR lower(login) = lower($4::text))"
	                  " AND ($5::text IS NULL OR verdict = $5::text)"
	                  " ORDER BY id DESC LIMIT CASE WHEN $6::bigint < 0 THEN NULL ELSE $6 END)"
	                  " AS newest ORDER BY id",
	[S_AUDIT_MAX_ID] = "SELECT coalesce(max(id), 0)::bigint FROM audit",
	/* no data_version on PostgreSQL: the highest audit id, in commit order (AUDIT_LOCK) */
	[S_DATA_VERSION] = "SELECT coalesce(max(id), 0)::bigint FROM audit",
	[S_CRED_TOUCH] = "INSERT INTO credential_use (login, label, ts, client_addr)"
	                 " VALUES ($1, $2, $3, $4) ON CONFLICT ((lower(login)), label) DO UPDATE"
	                 " SET ts = greatest(credential_use.ts, excluded.ts),"
	                 " client_addr = excluded.client_addr",
	[S_CRED_LAST_USE] = "SELECT ts, client_addr FROM credential_use"
	                    " WHERE lower(login) = lower($1) AND label = $2",
	[S_CRED_USE_ALL] = "SELECT login, label, ts, client_addr FROM credential_use"
	                   " ORDER BY lower(login), label COLLATE \"C\"",
	[S_CRED_USE_MERGE] = "INSERT INTO credential_use (login, label, ts, client_addr)"
	                     " VALUES ($1, $2, $3, $4) ON CONFLICT ((lower(login)), label) DO UPDATE"
	                     " SET ts = excluded.ts, client_addr = excluded.client_addr"
	                     " WHERE excluded.ts > credential_use.ts",
	[S_JOURNAL_GET] = PG_NONE,
	[S_JOURNAL_SET] = PG_NONE,
	/* the totals of every node: each writer adds what its process gained */
	[S_COUNTER_ADD] = "INSERT INTO counters (name, label, value) VALUES ($1, $2, $3)"
	                  " ON CONFLICT (name, label) DO UPDATE SET value ="
	                  " least(counters.value::numeric + excluded.value, 9223372036854775807)"
	                  "::bigint",
	[S_COUNTER_ALL] = "SELECT name, label, value FROM counters"
	                  " ORDER BY name COLLATE \"C\", label COLLATE \"C\"",
	[S_USAGE_RESET] = "UPDATE usage SET"
	                  " messages = CASE WHEN ($3::bigint & 1) <> 0 THEN 0 ELSE messages END,"
	                  " recipients = CASE WHEN ($3::bigint & 2) <> 0 THEN 0 ELSE recipients END,"
	                  " bytes = CASE WHEN ($3::bigint & 4) <> 0 THEN 0 ELSE bytes END"
	                  " WHERE lower(login) = lower($1) AND ts <= $2",
	[S_USAGE_DROP_EMPTY] = "DELETE FROM usage WHERE lower(login) = lower($1) AND ts <= $2"
	                       " AND messages = 0 AND recipients = 0 AND bytes = 0",
	/* every node's writer applies each reset: the row lock (the row exists from the
	 * schema on) makes the second wait and then see the first's mark, so the reset is
	 * audited once across nodes */
	[S_RESET_GET] = "SELECT reset_id FROM reset_mark WHERE id = 1 FOR UPDATE",
	[S_RESET_SET] = "INSERT INTO reset_mark (id, reset_id) VALUES (1, $1) ON CONFLICT (id)"
	                " DO UPDATE SET reset_id = greatest(reset_mark.reset_id, excluded.reset_id)",
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
	.read_compat = read_compat_sql,
	.pg_stmts = pg_sql,
	.pg_schema_sql = rdb_pg_state_schema_sql,
	.pg_migrations = pg_state_migrations,
	/* {role}: the role's quoted name. The milter writes the state; relay-admin reads it
	 * (usage, log, user list) and writes it only for `copy`. */
	.pg_grants = {
		[RDB_ROLE_PLUGIN] = NULL,
		[RDB_ROLE_MILTER] =
			"GRANT SELECT ON relay_schema TO {role};\n"
			"GRANT SELECT, INSERT, UPDATE, DELETE ON usage, last_use, audit, reservations,"
			" counters, credential_use, reset_mark TO {role};\n"
			"GRANT USAGE, SELECT ON SEQUENCE audit_id_seq, reservations_id_seq TO {role};\n",
		[RDB_ROLE_ADMIN] =
			"GRANT SELECT ON relay_schema, reservations TO {role};\n"
			"GRANT SELECT, INSERT, UPDATE, DELETE ON usage, last_use, audit, counters,"
			" credential_use TO {role};\n"
			"GRANT USAGE, SELECT ON SEQUENCE audit_id_seq TO {role};\n",
	},
};

char *rdb_pg_state_grants(enum rdb_role part, const char *role)
{
	return rdb_conn_grants(&state_kind, part, role);
}

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
	/* SQLite readers prepare only what every version they accept has: the counters
	 * query too when the file has the table (version 3 on) */
	if (mode == RDB_READONLY && st->c.engine == RDB_ENGINE_SQLITE) {
		int64_t v = 0;
		char why[256] = "";

		if (!rdb_conn_pragma_int(st->c.h, "PRAGMA user_version", &v) ||
		    (v >= 3 && rdb_conn_prepare_late(&st->c, S_COUNTER_ALL, why, sizeof why) !=
		                   RDB_OK)) {
			rdb_seterr(err, errlen, "%s: preparing the counters query: %s", path,
			           why[0] ? why : sqlite3_errmsg(st->c.h));
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
	struct clean c[10];

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
	    rdb_bind_text(s, 12, clean(&c[8], a->reason)) != RDB_SQL_OK ||
	    rdb_bind_text(s, 13, clean(&c[9], a->credential)) != RDB_SQL_OK) {
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

/* Steps a bound audit query (the 14 columns of AUDIT_COLS), checking every row's shape;
 * the caller finishes the statement. */
static enum rdb_result audit_rows(struct rdb_state *st, struct rdb_st *s,
                                  int (*fn)(const struct rdb_audit *a, void *arg), void *arg)
{
	int rc;

	while ((rc = rdb_step(s)) == RDB_STEP_ROW) {
		static const int ints[] = { 0, 1, 8, 9 };
		static const int texts[] = { 2, 3, 4, 5, 6, 7, 10, 11, 12, 13 };
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
			.credential = (const char *)rdb_col_text(s, 13),
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
	struct rdb_st *s = q(st, login ? S_AUDIT_ONE : S_AUDIT_ALL);
	enum rdb_result r;

	/* ?2 is the login; the every-login text has it too (unused, NULL), so that both
	 * engines number the limit ?3 / $3 */
	if (rdb_bind_int64(s, 1, since) != RDB_SQL_OK ||
	    (login != NULL ? rdb_bind_text(s, 2, login) : rdb_bind_null(s, 2)) != RDB_SQL_OK ||
	    rdb_bind_int64(s, 3, limit) != RDB_SQL_OK)
		r = fail(st, "bind");
	else
		r = audit_rows(st, s, fn, arg);
	rdb_st_done(s);
	return r;
}

enum rdb_result rdb_state_audit_held_foreach(struct rdb_state *st, int64_t since,
                                             int (*fn)(const struct rdb_audit *a, void *arg),
                                             void *arg)
{
	struct rdb_st *s = q(st, S_AUDIT_HELD);
	enum rdb_result r;

	if (rdb_bind_int64(s, 1, since) != RDB_SQL_OK)
		r = fail(st, "bind");
	else
		r = audit_rows(st, s, fn, arg);
	rdb_st_done(s);
	return r;
}

static int bind_opt_text(struct rdb_st *s, int col, const char *v)
{
	return v != NULL ? rdb_bind_text(s, col, v) : rdb_bind_null(s, col);
}

enum rdb_result rdb_state_audit_query(struct rdb_state *st, const struct rdb_audit_filter *f,
                                      int (*fn)(const struct rdb_audit *a, void *arg),
                                      void *arg)
{
	struct rdb_st *s = q(st, S_AUDIT_QUERY);
	enum rdb_result r;

	if (rdb_bind_int64(s, 1, f->after_id) != RDB_SQL_OK ||
	    rdb_bind_int64(s, 2, f->upto_id) != RDB_SQL_OK ||
	    rdb_bind_int64(s, 3, f->since) != RDB_SQL_OK ||
	    bind_opt_text(s, 4, f->login) != RDB_SQL_OK ||
	    bind_opt_text(s, 5, f->verdict) != RDB_SQL_OK ||
	    rdb_bind_int64(s, 6, f->limit > 0 ? f->limit : -1) != RDB_SQL_OK)
		r = fail(st, "bind");
	else
		r = audit_rows(st, s, fn, arg);
	rdb_st_done(s);
	return r;
}

/* One integer from a one-row statement without parameters. */
static enum rdb_result one_int(struct rdb_state *st, int which, const char *what, int64_t *out)
{
	struct rdb_st *s = q(st, which);
	enum rdb_result r = RDB_OK;
	int rc = rdb_step(s);

	if (rc != RDB_STEP_ROW)
		r = fail(st, what);
	else if (!col_is(s, 0, RDB_COL_INT))
		r = refuse(st, "an unexpected value");
	else
		*out = rdb_col_int64(s, 0);
	rdb_st_done(s);
	return r;
}

enum rdb_result rdb_state_audit_max_id(struct rdb_state *st, int64_t *id)
{
	return one_int(st, S_AUDIT_MAX_ID, "reading the audit log", id);
}

enum rdb_result rdb_state_data_version(struct rdb_state *st, int64_t *version)
{
	return one_int(st, S_DATA_VERSION, rdb_state_shared(st) ? "reading the audit log" :
	               "PRAGMA data_version", version);
}

enum rdb_result rdb_state_counter_add(struct rdb_state *st, const char *name, const char *label,
                                      uint64_t delta)
{
	struct rdb_st *s = q(st, S_COUNTER_ADD);

	if (s == NULL)
		return rdb_conn_fail(&st->c, RDB_ERROR, "counters: not on a read-only handle");
	if (rdb_bind_text(s, 1, name) != RDB_SQL_OK ||
	    rdb_bind_text(s, 2, label ? label : "") != RDB_SQL_OK ||
	    rdb_bind_int64(s, 3, clamp64(delta)) != RDB_SQL_OK) {
		rdb_st_done(s);
		return fail(st, "bind");
	}
	return write_done(st, s, "adding to the counters");
}

enum rdb_result rdb_state_counter_foreach(struct rdb_state *st,
                                          int (*fn)(const char *name, const char *label,
                                                    uint64_t value, void *arg),
                                          void *arg)
{
	struct rdb_st *s = q(st, S_COUNTER_ALL);
	enum rdb_result r = RDB_OK;
	int rc;

	if (s == NULL)
		return RDB_NOTFOUND; /* a read-only handle on a file older than version 3 */
	while ((rc = rdb_step(s)) == RDB_STEP_ROW) {
		if (!col_is(s, 0, RDB_COL_TEXT) || !col_is(s, 1, RDB_COL_TEXT) ||
		    !col_is(s, 2, RDB_COL_INT) || rdb_col_int64(s, 2) < 0) {
			r = refuse(st, "counters row has an unexpected shape");
			goto out;
		}
		if (fn((const char *)rdb_col_text(s, 0), (const char *)rdb_col_text(s, 1),
		       (uint64_t)rdb_col_int64(s, 2), arg)) {
			r = refuse(st, "a counters row could not be kept");
			goto out;
		}
	}
	r = read_done(st, rc, "reading the counters");
out:
	rdb_st_done(s);
	return r;
}

/* The one-row last-use reads: of a login (label NULL) or of one of its credentials. */
static enum rdb_result last_use_read(struct rdb_state *st, const char *login, const char *label,
                                     int64_t *ts, char *client, size_t clientlen)
{
	struct rdb_st *s = q(st, label != NULL ? S_CRED_LAST_USE : S_LAST_USE);
	enum rdb_result r;
	int rc;

	if (rdb_bind_text(s, 1, login) != RDB_SQL_OK ||
	    (label != NULL && rdb_bind_text(s, 2, label) != RDB_SQL_OK)) {
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
	struct rdb_st *s = q(st, which);
	struct clean c[2];

	if (rdb_bind_text(s, 1, login) != RDB_SQL_OK ||
	    rdb_bind_text(s, 2, clean(&c[0], label)) != RDB_SQL_OK ||
	    rdb_bind_int64(s, 3, ts) != RDB_SQL_OK ||
	    rdb_bind_text(s, 4, clean(&c[1], client_addr)) != RDB_SQL_OK) {
		rdb_st_done(s);
		return fail(st, "binding credential use");
	}
	return write_done(st, s, "writing credential use");
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
	struct rdb_st *s = q(st, S_CRED_USE_ALL);
	enum rdb_result r = RDB_OK;
	int rc;

	while ((rc = rdb_step(s)) == RDB_STEP_ROW) {
		if (!col_is(s, 0, RDB_COL_TEXT) || !col_is(s, 1, RDB_COL_TEXT) ||
		    !col_is(s, 2, RDB_COL_INT) || !col_is(s, 3, RDB_COL_TEXT)) {
			r = refuse(st, "credential_use row has an unexpected shape");
			goto out;
		}
		if (fn((const char *)rdb_col_text(s, 0), (const char *)rdb_col_text(s, 1),
		       rdb_col_int64(s, 2), (const char *)rdb_col_text(s, 3), arg)) {
			r = refuse(st, "a credential_use row could not be kept");
			goto out;
		}
	}
	r = read_done(st, rc, "reading credential use");
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

enum rdb_result rdb_state_usage_reset(struct rdb_state *st, const char *login, unsigned metrics,
                                      int64_t before)
{
	static const int which[2] = { S_USAGE_RESET, S_USAGE_DROP_EMPTY };
	enum rdb_result r = RDB_OK;

	for (size_t k = 0; k < 2 && r == RDB_OK; k++) {
		struct rdb_st *s = q(st, which[k]);

		if (s == NULL)
			return rdb_conn_fail(&st->c, RDB_ERROR, "usage reset: not on a read-only handle");
		if (rdb_bind_text(s, 1, login) != RDB_SQL_OK ||
		    rdb_bind_int64(s, 2, before) != RDB_SQL_OK ||
		    (k == 0 && rdb_bind_int64(s, 3, (int64_t)metrics) != RDB_SQL_OK)) {
			rdb_st_done(s);
			return fail(st, "bind");
		}
		r = write_done(st, s, "resetting usage");
	}
	return r;
}

enum rdb_result rdb_state_reset_mark_get(struct rdb_state *st, int64_t *reset_id)
{
	struct rdb_st *s = q(st, S_RESET_GET);
	enum rdb_result r = RDB_OK;
	int rc;

	*reset_id = 0;
	if (s == NULL)
		return rdb_conn_fail(&st->c, RDB_ERROR, "reset mark: not on a read-only handle");
	rc = rdb_step(s);
	if (rc == RDB_STEP_ROW) {
		if (!col_is(s, 0, RDB_COL_INT))
			r = rdb_conn_fail(&st->c, RDB_ERROR, "reset mark: not an integer");
		else
			*reset_id = rdb_col_int64(s, 0);
	} else if (rc != RDB_STEP_DONE) {
		r = fail(st, "reading the reset mark");
	}
	rdb_st_done(s);
	return r;
}

enum rdb_result rdb_state_reset_mark_set(struct rdb_state *st, int64_t reset_id)
{
	struct rdb_st *s = q(st, S_RESET_SET);

	if (s == NULL)
		return rdb_conn_fail(&st->c, RDB_ERROR, "reset mark: not on a read-only handle");
	if (rdb_bind_int64(s, 1, reset_id) != RDB_SQL_OK) {
		rdb_st_done(s);
		return fail(st, "bind");
	}
	return write_done(st, s, "writing the reset mark");
}
