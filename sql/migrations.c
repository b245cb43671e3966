/*
 * migrations.c — the one path by which a database of any kind (users, state) is created
 * or brought to its kind's version, and by which relay-admin check reads a header.
 *
 * What it is: a fresh file gets the kind's schema text (sql/schema.sql for users,
 * sql/state-schema.sql for state, embedded at build time by embed-sql.py, so the text
 * that runs is the file in the repository); an older file gets the steps
 * migrations[from + 1] .. migrations[version], each the SQL of one sql/migrations/NNN.sql
 * (users) that upgrades version NNN-1 to NNN and ends by setting PRAGMA user_version =
 * NNN. Adding version N of a kind means: describe version N in its schema file, add the
 * migration file, embed it in sql/meson.build and point the kind's migrations[N] at it
 * (rdb.c for users, state.c for state).
 *
 * All of it runs inside one BEGIN IMMEDIATE: a failing step rolls back everything, and a
 * second process initialising the same file waits and then finds it done.
 * Thread safety: none needed (each call has its own connection).
 */
#include <stdio.h>
#include <sys/stat.h>

#include "conn.h"
#include "errbuf.h"
#include "pgconn.h"

/* Brings h, inside BEGIN IMMEDIATE, from `from` to k->version. */
static bool migrate(sqlite3 *h, const struct rdb_kind *k, int64_t from, char *err,
                    size_t errlen)
{
	struct rdb_header hd;
	char *msg = NULL;

	if (from == 0) {
		if (sqlite3_exec(h, k->schema_sql, NULL, NULL, &msg) != SQLITE_OK) {
			rdb_seterr(err, errlen, "creating the schema failed: %s", msg ? msg : "?");
			sqlite3_free(msg);
			return false;
		}
	} else {
		for (int64_t v = from + 1; v <= k->version; v++) {
			if (v < 0 || k->migrations == NULL || k->migrations[v] == NULL) {
				rdb_seterr(err, errlen, "no migration from schema version %lld",
				           (long long)(v - 1));
				return false;
			}
			if (sqlite3_exec(h, k->migrations[v], NULL, NULL, &msg) != SQLITE_OK) {
				rdb_seterr(err, errlen, "migration to schema version %lld failed: %s",
				           (long long)v, msg ? msg : "?");
				sqlite3_free(msg);
				return false;
			}
		}
	}
	/* A migration that forgot to set the version would be re-run forever. */
	if (!rdb_conn_read_header(h, &hd, err, errlen))
		return false;
	if (hd.app_id != k->application_id || hd.version != k->version) {
		rdb_seterr(err, errlen, "schema script left application_id %lld, version %lld",
		           (long long)hd.app_id, (long long)hd.version);
		return false;
	}
	return true;
}

enum rdb_result rdb_conn_init(const struct rdb_kind *k, const char *path, int *before,
                              int *after, char *err, size_t errlen)
{
	char why[256];
	sqlite3 *h = NULL;
	struct rdb_header hd;
	enum rdb_result r = RDB_ERROR;
	struct stat st;
	const char *setup = k->setup[1];

	rdb_seterr(err, errlen, "%s", ""); /* callers may print it after a success */
	if (path == NULL || path[0] == '\0') {
		rdb_seterr(err, errlen, "no database path");
		return RDB_INVALID;
	}
	if (rdb_engine_of(path) == RDB_ENGINE_PG)
		return rdb_pg_init(k, path, before, after, err, errlen);
	if (!k->nofollow && stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
		rdb_seterr(err, errlen, "%s: not a regular file", path);
		return RDB_ERROR;
	}
	if (sqlite3_open_v2(path, &h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
	                    (k->nofollow ? SQLITE_OPEN_NOFOLLOW : 0), NULL) != SQLITE_OK) {
		rdb_seterr(err, errlen, "%s: %s", path, rdb_conn_open_errmsg(h));
		goto out;
	}
	if (!rdb_conn_configure(h, k, err, errlen))
		goto out;
	/* Read the header before taking any lock so that a file that is not SQLite at all is
	 * refused without SQLite ever writing to it. */
	if (!rdb_conn_read_header(h, &hd, why, sizeof why)) {
		rdb_seterr(err, errlen, "%s: %s", path, why);
		goto out;
	}
	if ((setup != NULL && sqlite3_exec(h, setup, NULL, NULL, NULL) != SQLITE_OK) ||
	    sqlite3_exec(h, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		rdb_seterr(err, errlen, "%s: %s", path, sqlite3_errmsg(h));
		goto out;
	}
	/* Again inside the transaction: another process may have initialised it meanwhile. */
	if (!rdb_conn_read_header(h, &hd, why, sizeof why)) {
		rdb_seterr(err, errlen, "%s: %s", path, why);
		goto rollback;
	}
	if (before != NULL)
		*before = (int)(hd.version > k->version ? k->version + 1 : hd.version);
	if (hd.app_id == 0 && hd.version == 0 && hd.objects == 0) {
		/* an empty file or one we just created */
	} else if (hd.app_id != k->application_id) {
		rdb_seterr(err, errlen, "%s: not an smtp-relay %s database; refusing to touch it",
		           path, k->what);
		goto rollback;
	} else if (hd.version > k->version) {
		rdb_seterr(err, errlen, "%s: schema version %lld is newer than this program knows "
		           "(%lld); refusing to touch it", path, (long long)hd.version,
		           (long long)k->version);
		goto rollback;
	}
	if (hd.version < k->version && !migrate(h, k, hd.version, why, sizeof why)) {
		rdb_seterr(err, errlen, "%s: %s", path, why);
		goto rollback;
	}
	if (sqlite3_exec(h, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		rdb_seterr(err, errlen, "%s: %s", path, sqlite3_errmsg(h));
		goto rollback;
	}
	/* Outside the transaction: the journal mode cannot change inside one. */
	if (k->wal && sqlite3_exec(h, "PRAGMA journal_mode = WAL", NULL, NULL, NULL) != SQLITE_OK) {
		rdb_seterr(err, errlen, "%s: enabling WAL: %s", path, sqlite3_errmsg(h));
		goto out;
	}
	if (after != NULL)
		*after = (int)k->version;
	r = RDB_OK;
	goto out;
rollback:
	sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL);
out:
	sqlite3_close(h);
	return r;
}

enum rdb_result rdb_conn_probe(const struct rdb_kind *k, const char *path, int64_t *version,
                               char *err, size_t errlen)
{
	sqlite3 *h = NULL;
	struct rdb_header hd;
	char why[256];
	enum rdb_result r = RDB_ERROR;

	rdb_seterr(err, errlen, "%s", "");
	if (rdb_engine_of(path) == RDB_ENGINE_PG)
		return rdb_pg_probe(k, path, version, err, errlen);
	if (sqlite3_open_v2(path, &h, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX |
	                    (k->nofollow ? SQLITE_OPEN_NOFOLLOW : 0), NULL) != SQLITE_OK) {
		rdb_seterr(err, errlen, "%s: %s", path, rdb_conn_open_errmsg(h));
	} else if (!rdb_conn_configure(h, k, err, errlen)) {
		/* err says why */
	} else if (!rdb_conn_read_header(h, &hd, why, sizeof why)) {
		rdb_seterr(err, errlen, "%s: %s", path, why);
	} else if (hd.app_id == 0 && hd.version == 0 && hd.objects == 0) {
		rdb_seterr(err, errlen, "%s: no schema (an empty SQLite file)", path);
		r = RDB_NOTFOUND;
	} else if (hd.app_id != k->application_id) {
		rdb_seterr(err, errlen, "%s: not an smtp-relay %s database", path, k->what);
		r = RDB_INVALID;
	} else {
		*version = hd.version;
		r = RDB_OK;
	}
	sqlite3_close(h);
	return r;
}
