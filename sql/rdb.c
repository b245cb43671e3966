/*
 * rdb.c — opening, creating and checking the users database; the authentication lookup.
 *
 * What it is: the users kind of the connection core (conn.h): its header, schema and
 * migrations, connection settings and the one table of every statement run on it (by
 * users.c, credentials.c, policy.c and here), prepared when the file opens; the life
 * cycle of struct rdb; and rdb_lookup_secrets(), the one query on the authentication path
 * (logins and app credentials).
 *
 * Ownership: rdb_open() hands out a struct rdb that rdb_close() frees with all its
 * statements. Not thread safe per handle (SQLITE_OPEN_NOMUTEX); separate handles are
 * independent.
 *
 * Errors: anything SQLite reports, a missing or foreign file, or a schema of another
 * version is RDB_ERROR with the reason in the err buffer or rdb_errmsg().
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "errbuf.h"
#include "limit.h"
#include "rdb-private.h"

#define BUSY_TIMEOUT_MS 5000

/* Embedded from sql/schema.sql and sql/migrations/NNN.sql by embed-sql.py. */
extern const char rdb_schema_sql[];
extern const char rdb_migration_002_sql[];
extern const char rdb_migration_003_sql[];   /* app credentials */
extern const char rdb_migration_004_sql[];   /* usage_reset (relay-admin usage reset) */
/* Embedded from sql/pg-schema.sql and sql/migrations/pg-NNN.sql: the same steps. */
extern const char rdb_pg_schema_sql[];
extern const char rdb_pg_migration_003_sql[];
extern const char rdb_pg_migration_004_sql[];

static const char *const migrations[RDB_SCHEMA_VERSION + 1] = {
	[0] = NULL, /* unused: version 0 is "no schema", served by schema.sql */
	[1] = NULL, /* version 1 is the first schema */
	[2] = rdb_migration_002_sql,
	[3] = rdb_migration_003_sql,
	[4] = rdb_migration_004_sql,
};

static const char *const stmt_sql[STMT_COUNT_] = {
	/* One row always (the decoy key), with the name's columns NULL if there is none: a
	 * found and an unknown name cost the same query. The name is a login's, else an app
	 * credential's authentication name (never both: the schema's *_name_free triggers),
	 * each probe on its UNIQUE index; a credential brings its own secrets and label and
	 * its login's name and state. */
	[STMT_LOOKUP_SECRETS] =
		"SELECT a.name, a.enabled, a.expires_at, a.plain_secret, a.scram_sha256, k.decoy_key,"
		" a.label FROM site_secret AS k LEFT JOIN ("
		"SELECT name, enabled, expires_at, plain_secret, scram_sha256, '' AS label"
		" FROM logins WHERE name = ?1"
		" UNION ALL"
		" SELECT l.name, l.enabled, l.expires_at, c.plain_secret, c.scram_sha256, c.label"
		" FROM credentials AS c JOIN logins AS l ON l.id = c.login_id WHERE c.authname = ?1"
		") AS a WHERE k.id = 1 LIMIT 1",
	[STMT_BEGIN] = "BEGIN IMMEDIATE",
	[STMT_BEGIN_READ] = "BEGIN",
	[STMT_COMMIT] = "COMMIT",
	[STMT_ROLLBACK] = "ROLLBACK",
	[STMT_LOGIN_ID] = "SELECT id, name FROM logins WHERE name = ?1",
	[STMT_LOGIN_INSERT] =
		"INSERT INTO logins (name, enabled, expires_at, note, plain_secret, scram_sha256,"
		" source, created_at, updated_at, password_changed_at)"
		" VALUES (?1, 1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?7)",
	[STMT_LOGIN_GET] =
		"SELECT name, enabled, expires_at, note, source, scram_sha256 IS NOT NULL,"
		" rate_exempt, hold_over_limit, created_at, updated_at, password_changed_at,"
		" (SELECT count(*) FROM senders s WHERE s.login_id = logins.id)"
		" FROM logins WHERE name = ?1",
	[STMT_LOGIN_ALL] =
		"SELECT name, enabled, expires_at, note, source, scram_sha256 IS NOT NULL,"
		" rate_exempt, hold_over_limit, created_at, updated_at, password_changed_at,"
		" (SELECT count(*) FROM senders s WHERE s.login_id = logins.id)"
		" FROM logins ORDER BY name COLLATE NOCASE",
	[STMT_LOGIN_SET_SECRETS] =
		"UPDATE logins SET plain_secret = ?2, scram_sha256 = ?3, updated_at = ?4,"
		" password_changed_at = ?4 WHERE id = ?1",
	[STMT_LOGIN_SET_ENABLED] =
		"UPDATE logins SET enabled = ?2, updated_at = ?3 WHERE id = ?1",
	[STMT_LOGIN_SET_EXPIRY] =
		"UPDATE logins SET expires_at = ?2, updated_at = ?3 WHERE id = ?1",
	[STMT_LOGIN_SET_NOTE] =
		"UPDATE logins SET note = ?2, updated_at = ?3 WHERE id = ?1",
	[STMT_LOGIN_TOUCH] = "UPDATE logins SET updated_at = ?2 WHERE id = ?1",
	[STMT_LOGIN_DELETE] = "DELETE FROM logins WHERE id = ?1",
	[STMT_SENDER_INSERT] = "INSERT INTO senders (login_id, pattern) VALUES (?1, ?2)",
	[STMT_SENDER_DELETE] = "DELETE FROM senders WHERE login_id = ?1 AND pattern = ?2",
	[STMT_SENDER_LIST] = "SELECT pattern FROM senders WHERE login_id = ?1 ORDER BY pattern",
	[STMT_SENDER_SAVEPOINT] = "SAVEPOINT sender",
	[STMT_SENDER_RELEASE] = "RELEASE sender",
	[STMT_SENDER_ROLLBACK_TO] = "ROLLBACK TO sender",
	[STMT_CRED_TAKEN] = "SELECT 1 FROM credentials WHERE authname = ?1",
	[STMT_CRED_INSERT] =
		"INSERT INTO credentials (login_id, label, authname, plain_secret, scram_sha256,"
		" created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[STMT_CRED_DELETE] = "DELETE FROM credentials WHERE login_id = ?1 AND label = ?2",
	[STMT_CRED_LIST] = "SELECT label, authname, created_at FROM credentials WHERE login_id = ?1"
	                   " ORDER BY label",

	/* policy.c: the milter's lookups and relay-admin's limit writes */
	[STMT_P_LOGIN] = "SELECT id, name, enabled, expires_at, rate_exempt, hold_over_limit"
	                 " FROM logins WHERE name = ?1",
	/* ?2 is RDB_LIMITS_MAX + 1, bound: one row more than fits, so that too many is an
	 * error rather than a silent cut */
	[STMT_P_LIMITS_EFFECTIVE] =
		"SELECT metric, window_seconds, max_count FROM ("
		"SELECT metric, window_seconds, max_count FROM limits WHERE login_id = ?1"
		" UNION ALL"
		" SELECT metric, window_seconds, max_count FROM limits d WHERE d.login_id = 0"
		" AND NOT EXISTS (SELECT 1 FROM limits o WHERE o.login_id = ?1 AND o.metric = d.metric))"
		" ORDER BY CASE metric WHEN 'messages' THEN 0 WHEN 'recipients' THEN 1 ELSE 2 END,"
		" window_seconds LIMIT ?2",
	[STMT_P_SENDERS] = "SELECT s.pattern FROM senders s JOIN logins l ON l.id = s.login_id"
	                   " WHERE l.name = ?1 ORDER BY s.pattern",
	[STMT_P_DATA_VERSION] = "PRAGMA data_version",
	[STMT_P_MAX_WINDOW] = "SELECT coalesce(max(window_seconds), 0) FROM limits",
	/* the distinct metrics as bits 1 << enum rdb_metric: the sum of distinct powers of 2 */
	[STMT_P_METRICS] = "SELECT coalesce(sum(DISTINCT CASE metric WHEN 'messages' THEN 1"
	                   " WHEN 'recipients' THEN 2 WHEN 'bytes' THEN 4 ELSE 0 END), 0) FROM limits",
	[STMT_P_LIMITS_OWN] = "SELECT metric, window_seconds, max_count FROM limits WHERE login_id = ?1"
	                      " ORDER BY CASE metric WHEN 'messages' THEN 0 WHEN 'recipients' THEN 1"
	                      " ELSE 2 END, window_seconds LIMIT ?2",
	[STMT_P_LIMITS_DEL_METRIC] = "DELETE FROM limits WHERE login_id = ?1 AND metric = ?2",
	[STMT_P_LIMITS_DEL_ALL] = "DELETE FROM limits WHERE login_id = ?1",
	[STMT_P_LIMITS_INSERT] = "INSERT INTO limits (login_id, metric, window_seconds, max_count)"
	                         " VALUES (?1, ?2, ?3, ?4)",
	[STMT_P_SET_FLAGS] = "UPDATE logins SET rate_exempt = coalesce(?2, rate_exempt),"
	                     " hold_over_limit = coalesce(?3, hold_over_limit), updated_at = ?4"
	                     " WHERE id = ?1",
	/* What the reader would see for each login (?2: that login; 0: the defaults and every
	 * login): its own rows, plus the defaults of each metric it has no row for — the same
	 * rule as STMT_P_LIMITS_EFFECTIVE. Rows over ?1 are the ones the reader refuses. */
	[STMT_P_LIMITS_OVER] =
		"SELECT name, n FROM ("
		"SELECT 0 AS id, NULL AS name, count(*) AS n FROM limits WHERE login_id = 0 AND ?2 = 0"
		" UNION ALL"
		" SELECT l.id, l.name, (SELECT count(*) FROM limits o WHERE o.login_id = l.id)"
		" + (SELECT count(*) FROM limits d WHERE d.login_id = 0 AND NOT EXISTS"
		" (SELECT 1 FROM limits o WHERE o.login_id = l.id AND o.metric = d.metric))"
		" FROM logins l WHERE ?2 = 0 OR l.id = ?2)"
		" WHERE n > ?1 ORDER BY id",
	[STMT_P_LIMITS_COUNT_OWN] = "SELECT count(*) FROM limits WHERE login_id = ?1",
	/* counter resets (relay-admin usage reset; the milter's policy refresh) */
	[STMT_P_RESET_ADD] = "INSERT INTO usage_reset (login, metrics, ts, admin)"
	                     " VALUES (?1, ?2, ?3, ?4)",
	[STMT_P_RESET_PRUNE] = "DELETE FROM usage_reset WHERE ts < ?1",
	[STMT_P_RESET_LIST] = "SELECT id, login, metrics, ts, admin FROM usage_reset"
	                      " WHERE id > ?1 AND ts >= ?2 AND (?3 IS NULL OR login = ?3)"
	                      " ORDER BY id",
	[STMT_P_SAVEPOINT] = "SAVEPOINT rdb_limits",
	[STMT_P_RELEASE] = "RELEASE rdb_limits",
	[STMT_P_ROLLBACK_TO] = "ROLLBACK TO rdb_limits",
	/* the milter: which login an app credential's authentication name belongs to */
	[STMT_P_CREDENTIAL] = "SELECT l.name, c.label FROM credentials AS c"
	                      " JOIN logins AS l ON l.id = c.login_id WHERE c.authname = ?1",

	/* copy.c: every column, ids included, so a copy is the same data */
	[STMT_C_COUNT] = "SELECT (SELECT count(*) FROM logins), (SELECT count(*) FROM senders),"
	                 " (SELECT count(*) FROM limits), (SELECT count(*) FROM credentials)",
	[STMT_C_LOGINS] = "SELECT id, name, enabled, expires_at, note, plain_secret, scram_sha256,"
	                  " source, rate_exempt, hold_over_limit, created_at, updated_at,"
	                  " password_changed_at FROM logins ORDER BY id",
	[STMT_C_LOGIN_PUT] = "INSERT INTO logins (id, name, enabled, expires_at, note, plain_secret,"
	                     " scram_sha256, source, rate_exempt, hold_over_limit, created_at,"
	                     " updated_at, password_changed_at)"
	                     " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
	[STMT_C_SENDERS] = "SELECT login_id, pattern FROM senders ORDER BY login_id, pattern",
	[STMT_C_SENDER_PUT] = "INSERT INTO senders (login_id, pattern) VALUES (?1, ?2)",
	[STMT_C_LIMITS] = "SELECT login_id, metric, window_seconds, max_count FROM limits"
	                  " ORDER BY login_id, metric, window_seconds",
	[STMT_C_LIMIT_PUT] = "INSERT INTO limits (login_id, metric, window_seconds, max_count)"
	                     " VALUES (?1, ?2, ?3, ?4)",
	[STMT_C_SECRET] = "SELECT decoy_key FROM site_secret WHERE id = 1",
	[STMT_C_SECRET_PUT] = "UPDATE site_secret SET decoy_key = ?1 WHERE id = 1",
	[STMT_C_CLEAR_SENDERS] = "DELETE FROM senders",
	[STMT_C_CLEAR_LIMITS] = "DELETE FROM limits",
	[STMT_C_CLEAR_LOGINS] = "DELETE FROM logins",
	[STMT_C_CREDS] = "SELECT id, login_id, label, authname, plain_secret, scram_sha256,"
	                 " created_at FROM credentials ORDER BY id",
	[STMT_C_CRED_PUT] = "INSERT INTO credentials (id, login_id, label, authname, plain_secret,"
	                    " scram_sha256, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	[STMT_C_CLEAR_CREDS] = "DELETE FROM credentials",
	[STMT_C_AFTER] = "SELECT 1",  /* SQLite's rowid needs no care */
};

/* The same operations on PostgreSQL, index for index (pg-schema.sql): $1.. for ?1..,
 * lower(name) for COLLATE NOCASE, COLLATE "C" for SQLite's byte order, booleans for the
 * 0/1 columns (bound as "0"/"1", read back as integers), explicit casts where a parameter
 * or an aggregate would otherwise get another type. */
static const char *const pg_stmt_sql[STMT_COUNT_] = {
	[STMT_LOOKUP_SECRETS] =
		"SELECT a.name, a.enabled, a.expires_at, a.plain_secret, a.scram_sha256, k.decoy_key,"
		" a.label FROM site_secret AS k LEFT JOIN ("
		"SELECT name, enabled, expires_at, plain_secret, scram_sha256, ''::text AS label"
		" FROM logins WHERE lower(name) = lower($1::text)"
		" UNION ALL"
		" SELECT l.name, l.enabled, l.expires_at, c.plain_secret, c.scram_sha256, c.label"
		" FROM credentials AS c JOIN logins AS l ON l.id = c.login_id"
		" WHERE lower(c.authname) = lower($1::text)"
		") AS a ON true WHERE k.id = 1 LIMIT 1",
	[STMT_BEGIN] = "BEGIN",
	[STMT_BEGIN_READ] = "BEGIN ISOLATION LEVEL REPEATABLE READ",
	[STMT_COMMIT] = "COMMIT",
	[STMT_ROLLBACK] = "ROLLBACK",
	[STMT_LOGIN_ID] = "SELECT id, name FROM logins WHERE lower(name) = lower($1::text)",
	[STMT_LOGIN_INSERT] =
		"INSERT INTO logins (name, enabled, expires_at, note, plain_secret, scram_sha256,"
		" source, created_at, updated_at, password_changed_at)"
		" VALUES ($1, true, $2, $3, $4, $5, $6, $7, $7, $7)",
	[STMT_LOGIN_GET] =
		"SELECT name, enabled, expires_at, note, source, scram_sha256 IS NOT NULL,"
		" rate_exempt, hold_over_limit, created_at, updated_at, password_changed_at,"
		" (SELECT count(*) FROM senders s WHERE s.login_id = logins.id)"
		" FROM logins WHERE lower(name) = lower($1::text)",
	[STMT_LOGIN_ALL] =
		"SELECT name, enabled, expires_at, note, source, scram_sha256 IS NOT NULL,"
		" rate_exempt, hold_over_limit, created_at, updated_at, password_changed_at,"
		" (SELECT count(*) FROM senders s WHERE s.login_id = logins.id)"
		" FROM logins ORDER BY lower(name) COLLATE \"C\"",
	[STMT_LOGIN_SET_SECRETS] =
		"UPDATE logins SET plain_secret = $2, scram_sha256 = $3, updated_at = $4,"
		" password_changed_at = $4 WHERE id = $1",
	[STMT_LOGIN_SET_ENABLED] = "UPDATE logins SET enabled = $2, updated_at = $3 WHERE id = $1",
	[STMT_LOGIN_SET_EXPIRY] = "UPDATE logins SET expires_at = $2, updated_at = $3 WHERE id = $1",
	[STMT_LOGIN_SET_NOTE] = "UPDATE logins SET note = $2, updated_at = $3 WHERE id = $1",
	[STMT_LOGIN_TOUCH] = "UPDATE logins SET updated_at = $2 WHERE id = $1",
	[STMT_LOGIN_DELETE] = "DELETE FROM logins WHERE id = $1",
	[STMT_SENDER_INSERT] = "INSERT INTO senders (login_id, pattern) VALUES ($1, $2)",
	[STMT_SENDER_DELETE] = "DELETE FROM senders WHERE login_id = $1 AND pattern = $2",
	[STMT_SENDER_LIST] =
		"SELECT pattern FROM senders WHERE login_id = $1 ORDER BY pattern COLLATE \"C\"",
	[STMT_SENDER_SAVEPOINT] = "SAVEPOINT sender",
	[STMT_SENDER_RELEASE] = "RELEASE SAVEPOINT sender",
	[STMT_SENDER_ROLLBACK_TO] = "ROLLBACK TO SAVEPOINT sender",
	[STMT_CRED_TAKEN] = "SELECT 1 FROM credentials WHERE lower(authname) = lower($1::text)",
	[STMT_CRED_INSERT] =
		"INSERT INTO credentials (login_id, label, authname, plain_secret, scram_sha256,"
		" created_at) VALUES ($1, $2, $3, $4, $5, $6)",
	[STMT_CRED_DELETE] = "DELETE FROM credentials WHERE login_id = $1 AND label = $2",
	[STMT_CRED_LIST] = "SELECT label, authname, created_at FROM credentials WHERE login_id = $1"
	                   " ORDER BY label COLLATE \"C\"",

	[STMT_P_LOGIN] = "SELECT id, name, enabled, expires_at, rate_exempt, hold_over_limit"
	                 " FROM logins WHERE lower(name) = lower($1::text)",
	[STMT_P_LIMITS_EFFECTIVE] =
		"SELECT metric, window_seconds, max_count FROM ("
		"SELECT metric, window_seconds, max_count FROM limits WHERE login_id = $1::bigint"
		" UNION ALL"
		" SELECT metric, window_seconds, max_count FROM limits d WHERE d.login_id = 0"
		" AND NOT EXISTS (SELECT 1 FROM limits o WHERE o.login_id = $1::bigint"
		" AND o.metric = d.metric)) AS e"
		" ORDER BY CASE metric WHEN 'messages' THEN 0 WHEN 'recipients' THEN 1 ELSE 2 END,"
		" window_seconds LIMIT $2::bigint",
	[STMT_P_SENDERS] = "SELECT s.pattern FROM senders s JOIN logins l ON l.id = s.login_id"
	                   " WHERE lower(l.name) = lower($1::text) ORDER BY s.pattern COLLATE \"C\"",
	[STMT_P_DATA_VERSION] = "SELECT n FROM users_generation WHERE id = 1",
	[STMT_P_MAX_WINDOW] = "SELECT coalesce(max(window_seconds), 0)::bigint FROM limits",
	[STMT_P_METRICS] = "SELECT coalesce(sum(DISTINCT CASE metric WHEN 'messages' THEN 1"
	                   " WHEN 'recipients' THEN 2 WHEN 'bytes' THEN 4 ELSE 0 END), 0)::bigint"
	                   " FROM limits",
	[STMT_P_LIMITS_OWN] = "SELECT metric, window_seconds, max_count FROM limits"
	                      " WHERE login_id = $1::bigint"
	                      " ORDER BY CASE metric WHEN 'messages' THEN 0 WHEN 'recipients' THEN 1"
	                      " ELSE 2 END, window_seconds LIMIT $2::bigint",
	[STMT_P_LIMITS_DEL_METRIC] = "DELETE FROM limits WHERE login_id = $1 AND metric = $2",
	[STMT_P_LIMITS_DEL_ALL] = "DELETE FROM limits WHERE login_id = $1",
	[STMT_P_LIMITS_INSERT] = "INSERT INTO limits (login_id, metric, window_seconds, max_count)"
	                         " VALUES ($1, $2, $3, $4)",
	[STMT_P_SET_FLAGS] = "UPDATE logins SET rate_exempt = coalesce($2::boolean, rate_exempt),"
	                     " hold_over_limit = coalesce($3::boolean, hold_over_limit),"
	                     " updated_at = $4 WHERE id = $1",
	[STMT_P_LIMITS_OVER] =
		"SELECT name, n FROM ("
		"SELECT 0::bigint AS id, NULL::text AS name, count(*) AS n FROM limits"
		" WHERE login_id = 0 AND $2::bigint = 0"
		" UNION ALL"
		" SELECT l.id, l.name, (SELECT count(*) FROM limits o WHERE o.login_id = l.id)"
		" + (SELECT count(*) FROM limits d WHERE d.login_id = 0 AND NOT EXISTS"
		" (SELECT 1 FROM limits o WHERE o.login_id = l.id AND o.metric = d.metric))"
		" FROM logins l WHERE $2::bigint = 0 OR l.id = $2::bigint) AS t"
		" WHERE n > $1::bigint ORDER BY id",
	[STMT_P_LIMITS_COUNT_OWN] = "SELECT count(*) FROM limits WHERE login_id = $1::bigint",
	[STMT_P_SAVEPOINT] = "SAVEPOINT rdb_limits",
	[STMT_P_RELEASE] = "RELEASE SAVEPOINT rdb_limits",
	[STMT_P_ROLLBACK_TO] = "ROLLBACK TO SAVEPOINT rdb_limits",
	[STMT_P_CREDENTIAL] = "SELECT l.name, c.label FROM credentials AS c"
	                      " JOIN logins AS l ON l.id = c.login_id"
	                      " WHERE lower(c.authname) = lower($1::text)",
	/* the new row's id comes back as a row (SQLite's text reads last_insert_rowid) */
	[STMT_P_RESET_ADD] = "INSERT INTO usage_reset (login, metrics, ts, admin)"
	                     " VALUES ($1, $2, $3, $4) RETURNING id",
	[STMT_P_RESET_PRUNE] = "DELETE FROM usage_reset WHERE ts < $1",
	[STMT_P_RESET_LIST] = "SELECT id, login, metrics::bigint, ts, admin FROM usage_reset"
	                      " WHERE id > $1 AND ts >= $2"
	                      " AND ($3::text IS NULL OR lower(login) = lower($3::text))"
	                      " ORDER BY id",

	[STMT_C_COUNT] = "SELECT (SELECT count(*) FROM logins), (SELECT count(*) FROM senders),"
	                 " (SELECT count(*) FROM limits), (SELECT count(*) FROM credentials)",
	[STMT_C_LOGINS] = "SELECT id, name, enabled, expires_at, note, plain_secret, scram_sha256,"
	                  " source, rate_exempt, hold_over_limit, created_at, updated_at,"
	                  " password_changed_at FROM logins ORDER BY id",
	[STMT_C_LOGIN_PUT] = "INSERT INTO logins (id, name, enabled, expires_at, note, plain_secret,"
	                     " scram_sha256, source, rate_exempt, hold_over_limit, created_at,"
	                     " updated_at, password_changed_at)"
	                     " VALUES ($1, $2, $3::integer::boolean, $4, $5, $6, $7, $8,"
	                     " $9::integer::boolean, $10::integer::boolean, $11, $12, $13)",
	[STMT_C_SENDERS] = "SELECT login_id, pattern FROM senders"
	                   " ORDER BY login_id, pattern COLLATE \"C\"",
	[STMT_C_SENDER_PUT] = "INSERT INTO senders (login_id, pattern) VALUES ($1, $2)",
	[STMT_C_LIMITS] = "SELECT login_id, metric, window_seconds, max_count FROM limits"
	                  " ORDER BY login_id, metric COLLATE \"C\", window_seconds",
	[STMT_C_LIMIT_PUT] = "INSERT INTO limits (login_id, metric, window_seconds, max_count)"
	                     " VALUES ($1, $2, $3, $4)",
	[STMT_C_SECRET] = "SELECT decoy_key FROM site_secret WHERE id = 1",
	[STMT_C_SECRET_PUT] = "UPDATE site_secret SET decoy_key = $1 WHERE id = 1",
	[STMT_C_CLEAR_SENDERS] = "DELETE FROM senders",
	[STMT_C_CLEAR_LIMITS] = "DELETE FROM limits",
	[STMT_C_CLEAR_LOGINS] = "DELETE FROM logins",
	[STMT_C_CREDS] = "SELECT id, login_id, label, authname, plain_secret, scram_sha256,"
	                 " created_at FROM credentials ORDER BY id",
	[STMT_C_CRED_PUT] = "INSERT INTO credentials (id, login_id, label, authname, plain_secret,"
	                    " scram_sha256, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
	[STMT_C_CLEAR_CREDS] = "DELETE FROM credentials",
	/* rows came with their ids: the identities must continue after the largest */
	[STMT_C_AFTER] = "SELECT setval(pg_get_serial_sequence('logins', 'id'),"
	                 " (SELECT coalesce(max(id), 0) + 1 FROM logins), false),"
	                 " setval(pg_get_serial_sequence('credentials', 'id'),"
	                 " (SELECT coalesce(max(id), 0) + 1 FROM credentials), false)",
};

static const char *const pg_migrations[RDB_SCHEMA_VERSION + 1] = {
	[0] = NULL, /* pg-schema.sql creates the current version */
	[1] = NULL, /* PostgreSQL starts at version 2, the SQLite schema of that day */
	[2] = NULL,
	[3] = rdb_pg_migration_003_sql, /* app credentials, as migrations/003.sql */
	[4] = rdb_pg_migration_004_sql, /* usage_reset, as migrations/004.sql */
};

static const struct rdb_kind users_kind = {
	.what = "users",
	.application_id = RDB_APPLICATION_ID,
	.version = RDB_SCHEMA_VERSION,
	.schema_sql = rdb_schema_sql,
	.migrations = migrations,
	.missing = "no such file (create it with relay-admin init)",
	.busy_ms = BUSY_TIMEOUT_MS,
	.nofollow = false,
	.wal = false,
	/* Writers get cascading deletes and overwrite freed pages (old secrets) with zeros;
	 * readers can never write, whatever a bug upstream asks for. */
	.setup = { "PRAGMA query_only = 1", "PRAGMA foreign_keys = 1; PRAGMA secure_delete = 1" },
	.stmts = stmt_sql,
	.nstmts = STMT_COUNT_,
	.pg_stmts = pg_stmt_sql,
	.pg_schema_sql = rdb_pg_schema_sql,
	.pg_migrations = pg_migrations,
	/* {role}: the role's quoted name. Columns, not tables, where a part needs only some:
	 * the milter never sees a secret, the plugin never a note. relay_schema: every part
	 * checks the version at connect. */
	.pg_grants = {
		[RDB_ROLE_PLUGIN] =
			"GRANT SELECT ON relay_schema, site_secret TO {role};\n"
			"GRANT SELECT (id, name, enabled, expires_at, plain_secret, scram_sha256) ON logins"
			" TO {role};\n"
			"GRANT SELECT (login_id, label, authname, plain_secret, scram_sha256)"
			" ON credentials TO {role};\n",
		[RDB_ROLE_MILTER] =
			"GRANT SELECT ON relay_schema, senders, limits, users_generation TO {role};\n"
			"GRANT SELECT (id, name, enabled, expires_at, rate_exempt, hold_over_limit)"
			" ON logins TO {role};\n"
			"GRANT SELECT (login_id, label, authname) ON credentials TO {role};\n"
			"GRANT SELECT ON usage_reset TO {role};\n",
		[RDB_ROLE_ADMIN] =
			"GRANT SELECT ON relay_schema TO {role};\n"
			"GRANT SELECT, INSERT, UPDATE, DELETE ON logins, senders, limits, site_secret,"
			" users_generation, credentials, usage_reset TO {role};\n"
			"GRANT USAGE, SELECT, UPDATE ON SEQUENCE logins_id_seq, credentials_id_seq,"
			" usage_reset_id_seq TO {role};\n",
	},
};

char *rdb_pg_grants(enum rdb_role part, const char *role)
{
	return rdb_conn_grants(&users_kind, part, role);
}

const char *rdb_result_str(enum rdb_result r)
{
	switch (r) {
	case RDB_OK: return "ok";
	case RDB_NOTFOUND: return "not found";
	case RDB_EXISTS: return "already exists";
	case RDB_INVALID: return "invalid input";
	case RDB_ERROR: return "database error";
	}
	return "unknown result";
}

enum rdb_result rdb_fail(struct rdb *db, enum rdb_result r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(db->c.err, sizeof db->c.err, fmt, ap);
	va_end(ap);
	return r;
}

enum rdb_result rdb_fail_sqlite(struct rdb *db, const char *what)
{
	return rdb_conn_fail_sqlite(&db->c, what);
}

enum rdb_result rdb_step_name(struct rdb *db, enum rdb_stmt_id id, const char *name,
                              const char *what, struct rdb_st **stp)
{
	struct rdb_st *st = rdb_stmt(db, id);
	enum rdb_result r = RDB_OK;
	int rc;

	*stp = st;
	if (st == NULL)
		return RDB_ERROR;
	if (rdb_bind_text(st, 1, name) != RDB_SQL_OK) {
		r = rdb_fail_sqlite(db, what);
	} else {
		rc = rdb_step(st);
		if (rc == RDB_STEP_DONE)
			r = RDB_NOTFOUND;
		else if (rc != RDB_STEP_ROW)
			r = rdb_fail_sqlite(db, what);
	}
	if (r != RDB_OK)
		rdb_st_done(st);
	return r;
}

enum rdb_result rdb_open(const char *path, enum rdb_mode mode, struct rdb **out, char *err,
                         size_t errlen)
{
	struct rdb *db;

	if (out == NULL) {
		rdb_seterr(err, errlen, "no handle to fill");
		return RDB_INVALID;
	}
	*out = NULL;
	db = calloc(1, sizeof *db);
	if (db == NULL) {
		rdb_seterr(err, errlen, "out of memory");
		return RDB_ERROR;
	}
	enum rdb_result r = rdb_conn_open(&db->c, &users_kind, path, mode, err, errlen);

	if (r != RDB_OK) {
		free(db);
		return r;
	}
	*out = db;
	return RDB_OK;
}

void rdb_close(struct rdb *db)
{
	if (db == NULL)
		return;
	rdb_conn_close(&db->c);
	free(db);
}

const char *rdb_errmsg(const struct rdb *db)
{
	if (db == NULL)
		return "no database handle";
	return rdb_conn_errmsg(&db->c);
}

enum rdb_result rdb_set_busy_timeout(struct rdb *db, int ms)
{
	if (db == NULL || ms < 0)
		return RDB_INVALID;
	/* PostgreSQL: readers never wait for a writer's lock (MVCC), so nothing to bound */
	if (db->c.engine == RDB_ENGINE_PG)
		return RDB_OK;
	if (db->c.h == NULL)
		return RDB_INVALID;
	if (sqlite3_busy_timeout(db->c.h, ms) != SQLITE_OK)
		return rdb_fail_sqlite(db, "busy timeout");
	return RDB_OK;
}

bool rdb_commit_counter(int fd, uint32_t *out)
{
	unsigned char h[10]; /* SQLite file header bytes 18..27 */

	if (fd < 0 || pread(fd, h, sizeof h, 18) != (ssize_t)sizeof h)
		return false;
	/* file format write/read version 1 = rollback journal: WAL files (2) do not update
	 * the file change counter (offset 24) on commit */
	if (h[0] != 1 || h[1] != 1)
		return false;
	*out = (uint32_t)h[6] << 24 | (uint32_t)h[7] << 16 | (uint32_t)h[8] << 8 | h[9];
	return true;
}

struct sqlite3 *rdb_handle(struct rdb *db)
{
	return db ? db->c.h : NULL;
}

enum rdb_result rdb_init_versions(const char *path, int *before, int *after, char *err,
                                  size_t errlen)
{
	return rdb_conn_init(&users_kind, path, before, after, err, errlen);
}

enum rdb_result rdb_init(const char *path, char *err, size_t errlen)
{
	return rdb_init_versions(path, NULL, NULL, err, errlen);
}

/* ---- the authentication lookup ------------------------------------------------------ */

enum rdb_result rdb_lookup_secrets(struct rdb *db, const char *name, int64_t now,
                                   struct rdb_secrets *out)
{
	struct rdb_st *st;
	enum rdb_result r;
	bool found;

	if (db == NULL || out == NULL)
		return RDB_INVALID;
	memset(out, 0, sizeof *out);
	/* A name that cannot be stored cannot be found; do not ask SQLite about it. The
	 * name is the client's: it is not repeated in the message. */
	if (!rdb_name_valid(name, NULL, 0))
		return rdb_fail(db, RDB_NOTFOUND, "no such login");
	r = rdb_step_name(db, STMT_LOOKUP_SECRETS, name, "lookup", &st);
	if (r == RDB_NOTFOUND) /* no decoy key row: not something to answer "no such login" to */
		return rdb_fail(db, RDB_ERROR, "lookup: the database has no decoy key "
		                "(site_secret is empty; corrupt database?)");
	if (r != RDB_OK)
		return r;
	if (rdb_col_count(st) != 7 ||
	    rdb_col_type(st, 5) != RDB_COL_BLOB ||
	    rdb_col_bytes(st, 5) != RDB_DECOY_KEY_LEN) {
		r = rdb_fail(db, RDB_ERROR, "lookup: malformed decoy key (corrupt database?)");
		goto out;
	}
	found = rdb_col_type(st, 0) != RDB_COL_NULL;
	if (found &&
	    (rdb_col_type(st, 0) != RDB_COL_TEXT ||
	     rdb_col_type(st, 1) != RDB_COL_INT ||
	     (rdb_col_type(st, 2) != RDB_COL_INT && rdb_col_type(st, 2) != RDB_COL_NULL) ||
	     rdb_col_type(st, 3) != RDB_COL_BLOB ||
	     rdb_col_bytes(st, 3) != RDB_PLAIN_SECRET_LEN ||
	     (rdb_col_type(st, 4) != RDB_COL_TEXT && rdb_col_type(st, 4) != RDB_COL_NULL) ||
	     rdb_col_type(st, 6) != RDB_COL_TEXT ||
	     rdb_col_bytes(st, 0) > RDB_NAME_MAX ||
	     rdb_col_bytes(st, 4) >= RDB_SCRAM_MAX ||
	     rdb_col_bytes(st, 6) > RDB_LABEL_MAX)) {
		r = rdb_fail(db, RDB_ERROR, "lookup: malformed row for a login (corrupt database?)");
		goto out;
	}
	if (found) {
		memcpy(out->name, rdb_col_text(st, 0), (size_t)rdb_col_bytes(st, 0));
		out->name[rdb_col_bytes(st, 0)] = '\0';
		memcpy(out->credential, rdb_col_text(st, 6), (size_t)rdb_col_bytes(st, 6));
		out->credential[rdb_col_bytes(st, 6)] = '\0';
		memcpy(out->plain, rdb_col_blob(st, 3), RDB_PLAIN_SECRET_LEN);
		if (rdb_col_type(st, 4) == RDB_COL_TEXT) {
			out->has_scram = true;
			memcpy(out->scram, rdb_col_text(st, 4), (size_t)rdb_col_bytes(st, 4));
			out->scram[rdb_col_bytes(st, 4)] = '\0';
		}
		out->state = rdb_login_state_at(rdb_col_int64(st, 1) != 0,
		                                rdb_col_type(st, 2) == RDB_COL_INT,
		                                rdb_col_int64(st, 2), now);
	}
	memcpy(out->decoy_key, rdb_col_blob(st, 5), RDB_DECOY_KEY_LEN);
	out->has_decoy_key = true;
	r = found ? RDB_OK : rdb_fail(db, RDB_NOTFOUND, "no such login");
out:
	rdb_st_done(st);
	if (r != RDB_OK && r != RDB_NOTFOUND)
		explicit_bzero(out, sizeof *out);
	return r;
}
