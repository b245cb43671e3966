/*
 * migrations.c — bringing a users database to RDB_SCHEMA_VERSION.
 *
 * What it is: a fresh file gets schema.sql (embedded at build time by embed-sql.py, so
 * the text that runs is the file in the repository); an older file gets the steps
 * migrations[from + 1] .. migrations[RDB_SCHEMA_VERSION], each the SQL of one
 * sql/migrations/NNN.sql that upgrades version NNN-1 to NNN and ends by setting
 * PRAGMA user_version = NNN. Adding version N means: edit schema.sql to describe version
 * N, add sql/migrations/00N.sql, embed it in sql/meson.build and point migrations[N] at
 * it. Version 2 (002.sql) added the SCRAM decoy key (site_secret) and the trigger that
 * caps limit rows per login.
 *
 * The caller holds BEGIN IMMEDIATE: a failing step rolls back everything.
 * Thread safety: none needed (pure functions of the connection passed in).
 */
#include <stdio.h>

#include "rdb-private.h"

extern const char rdb_schema_sql[];
extern const char rdb_migration_002_sql[];

static const char *const migrations[RDB_SCHEMA_VERSION + 1] = {
	[0] = NULL, /* unused: version 0 is "no schema", served by schema.sql */
	[1] = NULL, /* version 1 is the first schema */
	[2] = rdb_migration_002_sql,
};

bool rdb_migrate(sqlite3 *h, int64_t from, char *err, size_t errlen)
{
	char *msg = NULL;
	int64_t app_id = 0, version = 0;

	if (from == 0) {
		if (sqlite3_exec(h, rdb_schema_sql, NULL, NULL, &msg) != SQLITE_OK) {
			snprintf(err, errlen, "creating the schema failed: %s", msg ? msg : "?");
			sqlite3_free(msg);
			return false;
		}
	} else {
		for (int64_t v = from + 1; v <= RDB_SCHEMA_VERSION; v++) {
			if (v < 0 || migrations[v] == NULL) {
				snprintf(err, errlen, "no migration from schema version %lld",
				         (long long)(v - 1));
				return false;
			}
			if (sqlite3_exec(h, migrations[v], NULL, NULL, &msg) != SQLITE_OK) {
				snprintf(err, errlen, "migration to schema version %lld failed: %s",
				         (long long)v, msg ? msg : "?");
				sqlite3_free(msg);
				return false;
			}
		}
	}
	/* A migration that forgot to set the version would be re-run forever. */
	if (!rdb_read_header(h, &app_id, &version, err, errlen))
		return false;
	if (app_id != RDB_APPLICATION_ID || version != RDB_SCHEMA_VERSION) {
		snprintf(err, errlen, "schema script left application_id %lld, version %lld",
		         (long long)app_id, (long long)version);
		return false;
	}
	return true;
}
