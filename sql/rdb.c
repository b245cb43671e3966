/*
 * rdb.c — opening, creating and checking the users database; the authentication lookup.
 *
 * What it is: the connection life cycle of struct rdb (see rdb.h for the contract and
 * rdb-private.h for the statement cache), rdb_init() (create or migrate in one
 * transaction), and rdb_lookup_secrets(), the one query on the authentication path.
 *
 * Ownership: rdb_open() hands out a struct rdb that rdb_close() frees with all its
 * statements. Not thread safe per handle (SQLITE_OPEN_NOMUTEX); separate handles are
 * independent.
 *
 * Errors: anything SQLite reports, a missing or foreign file, or a schema of another
 * version is RDB_ERROR with the reason in the err buffer or rdb_errmsg().
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "rdb-private.h"

#define BUSY_TIMEOUT_MS 5000

static const char *const stmt_sql[STMT_COUNT_] = {
	/* One row always (the decoy key), with the login's columns NULL if there is none: a
	 * found and an unknown login cost the same query. */
	[STMT_LOOKUP_SECRETS] =
		"SELECT l.name, l.enabled, l.expires_at, l.plain_secret, l.scram_sha256, k.decoy_key"
		" FROM site_secret AS k LEFT JOIN logins AS l ON l.name = ?1 WHERE k.id = 1",
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
};

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
	vsnprintf(db->err, sizeof db->err, fmt, ap);
	va_end(ap);
	return r;
}

enum rdb_result rdb_fail_sqlite(struct rdb *db, const char *what)
{
	return rdb_fail(db, RDB_ERROR, "%s: %s", what, sqlite3_errmsg(db->h));
}

void rdb_done(sqlite3_stmt *st)
{
	if (st != NULL) {
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
	}
}

enum rdb_result rdb_step_name(struct rdb *db, enum rdb_stmt_id id, const char *name,
                              const char *what, sqlite3_stmt **stp)
{
	sqlite3_stmt *st = rdb_stmt(db, id);
	enum rdb_result r = RDB_OK;
	int rc;

	*stp = st;
	if (st == NULL)
		return RDB_ERROR;
	if (sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC) != SQLITE_OK) {
		r = rdb_fail_sqlite(db, what);
	} else {
		rc = sqlite3_step(st);
		if (rc == SQLITE_DONE)
			r = RDB_NOTFOUND;
		else if (rc != SQLITE_ROW)
			r = rdb_fail_sqlite(db, what);
	}
	if (r != RDB_OK)
		rdb_done(st);
	return r;
}

sqlite3_stmt *rdb_stmt(struct rdb *db, enum rdb_stmt_id id)
{
	if (db->stmt[id] == NULL &&
	    sqlite3_prepare_v3(db->h, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &db->stmt[id],
	                       NULL) != SQLITE_OK) {
		rdb_fail_sqlite(db, "cannot prepare a statement (is the schema intact?)");
		db->stmt[id] = NULL;
	}
	return db->stmt[id];
}

bool rdb_configure(sqlite3 *h, char *err, size_t errlen)
{
	int on = 1, off = 0;

	sqlite3_extended_result_codes(h, 1);
	/* Defensive: no writable_schema, no PRAGMA journal_mode=OFF tricks; untrusted schema:
	 * SQL functions with side effects never run from views or triggers in the file. */
	if (sqlite3_db_config(h, SQLITE_DBCONFIG_DEFENSIVE, on, NULL) != SQLITE_OK ||
	    sqlite3_db_config(h, SQLITE_DBCONFIG_TRUSTED_SCHEMA, off, NULL) != SQLITE_OK ||
	    sqlite3_busy_timeout(h, BUSY_TIMEOUT_MS) != SQLITE_OK) {
		snprintf(err, errlen, "cannot configure the connection: %s", sqlite3_errmsg(h));
		return false;
	}
	return true;
}

static bool pragma_int(sqlite3 *h, const char *sql, int64_t *out)
{
	sqlite3_stmt *st = NULL;
	bool ok = false;

	if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) == SQLITE_INTEGER) {
		*out = sqlite3_column_int64(st, 0);
		ok = true;
	}
	sqlite3_finalize(st);
	return ok;
}

bool rdb_read_header(sqlite3 *h, int64_t *app_id, int64_t *version, char *err, size_t errlen)
{
	if (!pragma_int(h, "PRAGMA application_id", app_id) ||
	    !pragma_int(h, "PRAGMA user_version", version)) {
		int code = sqlite3_extended_errcode(h);

		snprintf(err, errlen, "%s", code == SQLITE_NOTADB ? "not an SQLite database" :
		         sqlite3_errmsg(h));
		return false;
	}
	return true;
}

/* A missing file gets a message that says what to do rather than SQLite's "unable to
 * open database file". */
static bool check_exists(const char *path, char *err, size_t errlen)
{
	struct stat st;

	if (stat(path, &st) != 0) {
		if (errno == ENOENT)
			snprintf(err, errlen, "%s: no such file (create it with relay-admin init)", path);
		else
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return false;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		return false;
	}
	return true;
}

static bool check_schema(const char *path, int64_t app_id, int64_t version, char *err,
                         size_t errlen)
{
	if (app_id != RDB_APPLICATION_ID) {
		snprintf(err, errlen, "%s: not an smtp-relay users database", path);
		return false;
	}
	if (version > RDB_SCHEMA_VERSION) {
		snprintf(err, errlen, "%s: schema version %lld is newer than this program knows (%d)",
		         path, (long long)version, RDB_SCHEMA_VERSION);
		return false;
	}
	if (version < RDB_SCHEMA_VERSION) {
		snprintf(err, errlen, "%s: schema version %lld is older than %d: run relay-admin init to migrate",
		         path, (long long)version, RDB_SCHEMA_VERSION);
		return false;
	}
	return true;
}

enum rdb_result rdb_open(const char *path, enum rdb_mode mode, struct rdb **out, char *err,
                         size_t errlen)
{
	char dummy[8];
	struct rdb *db;
	int64_t app_id = 0, version = 0;
	int flags = SQLITE_OPEN_NOMUTEX;
	const char *setup;

	if (err == NULL || errlen == 0) {
		err = dummy;
		errlen = sizeof dummy;
	}
	err[0] = '\0';
	if (out == NULL || path == NULL || path[0] == '\0') {
		snprintf(err, errlen, "no database path");
		return RDB_INVALID;
	}
	*out = NULL;
	if (!check_exists(path, err, errlen))
		return RDB_ERROR;
	db = calloc(1, sizeof *db);
	if (db == NULL) {
		snprintf(err, errlen, "out of memory");
		return RDB_ERROR;
	}
	db->mode = mode;
	flags |= mode == RDB_READONLY ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;
	if (sqlite3_open_v2(path, &db->h, flags, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, db->h ? sqlite3_errmsg(db->h) : "out of memory");
		goto fail;
	}
	if (!rdb_configure(db->h, err, errlen))
		goto fail;
	if (!rdb_read_header(db->h, &app_id, &version, db->err, sizeof db->err)) {
		snprintf(err, errlen, "%s: %s", path, db->err);
		goto fail;
	}
	if (!check_schema(path, app_id, version, err, errlen))
		goto fail;
	/* Writers get cascading deletes and overwrite freed pages (old secrets) with zeros;
	 * readers can never write, whatever a bug upstream asks for. */
	setup = mode == RDB_READONLY ? "PRAGMA query_only = 1" :
	        "PRAGMA foreign_keys = 1; PRAGMA secure_delete = 1";
	if (sqlite3_exec(db->h, setup, NULL, NULL, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(db->h));
		goto fail;
	}
	/* Prepare the lookup now: it proves the tables are there and keeps the first
	 * authentication as fast as the others. */
	if (rdb_stmt(db, STMT_LOOKUP_SECRETS) == NULL) {
		snprintf(err, errlen, "%s: %s", path, db->err);
		goto fail;
	}
	db->err[0] = '\0';
	*out = db;
	return RDB_OK;
fail:
	rdb_close(db);
	return RDB_ERROR;
}

void rdb_close(struct rdb *db)
{
	if (db == NULL)
		return;
	for (size_t i = 0; i < STMT_COUNT_; i++)
		sqlite3_finalize(db->stmt[i]);
	sqlite3_close(db->h);
	free(db);
}

const char *rdb_errmsg(const struct rdb *db)
{
	if (db == NULL)
		return "no database handle";
	return db->err[0] ? db->err : "no error";
}

struct sqlite3 *rdb_handle(struct rdb *db)
{
	return db ? db->h : NULL;
}

enum rdb_result rdb_init_versions(const char *path, int *before, int *after, char *err,
                                  size_t errlen)
{
	char dummy[8], why[256];
	sqlite3 *h = NULL;
	int64_t app_id = 0, version = 0, objects = 0;
	enum rdb_result r = RDB_ERROR;
	struct stat st;

	if (err == NULL || errlen == 0) {
		err = dummy;
		errlen = sizeof dummy;
	}
	err[0] = '\0';
	if (path == NULL || path[0] == '\0') {
		snprintf(err, errlen, "no database path");
		return RDB_INVALID;
	}
	if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		return RDB_ERROR;
	}
	if (sqlite3_open_v2(path, &h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
	                    SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, h ? sqlite3_errmsg(h) : "out of memory");
		goto out;
	}
	if (!rdb_configure(h, err, errlen))
		goto out;
	/* Read the header before taking any lock so that a file that is not SQLite at all is
	 * refused without SQLite ever writing to it. */
	if (!rdb_read_header(h, &app_id, &version, why, sizeof why)) {
		snprintf(err, errlen, "%s: %s", path, why);
		goto out;
	}
	if (sqlite3_exec(h, "PRAGMA foreign_keys = 1; PRAGMA secure_delete = 1; BEGIN IMMEDIATE",
	                 NULL, NULL, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(h));
		goto out;
	}
	/* Again inside the transaction: another process may have initialised it meanwhile. */
	if (!rdb_read_header(h, &app_id, &version, why, sizeof why) ||
	    !pragma_int(h, "SELECT count(*) FROM sqlite_schema", &objects)) {
		snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(h));
		goto rollback;
	}
	if (before != NULL)
		*before = (int)(version > RDB_SCHEMA_VERSION ? RDB_SCHEMA_VERSION + 1 : version);
	if (app_id == 0 && version == 0 && objects == 0) {
		/* an empty file or one we just created */
	} else if (app_id != RDB_APPLICATION_ID) {
		snprintf(err, errlen, "%s: not an smtp-relay users database; refusing to touch it", path);
		goto rollback;
	} else if (version > RDB_SCHEMA_VERSION) {
		snprintf(err, errlen, "%s: schema version %lld is newer than this program knows (%d); refusing to touch it",
		         path, (long long)version, RDB_SCHEMA_VERSION);
		goto rollback;
	}
	if (version < RDB_SCHEMA_VERSION && !rdb_migrate(h, version, why, sizeof why)) {
		snprintf(err, errlen, "%s: %s", path, why);
		goto rollback;
	}
	if (sqlite3_exec(h, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(h));
		goto rollback;
	}
	if (after != NULL)
		*after = RDB_SCHEMA_VERSION;
	r = RDB_OK;
	goto out;
rollback:
	sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL);
out:
	sqlite3_close(h);
	return r;
}

enum rdb_result rdb_init(const char *path, char *err, size_t errlen)
{
	return rdb_init_versions(path, NULL, NULL, err, errlen);
}

/* ---- the authentication lookup ------------------------------------------------------ */

enum rdb_result rdb_lookup_secrets(struct rdb *db, const char *name, int64_t now,
                                   struct rdb_secrets *out)
{
	sqlite3_stmt *st;
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
	if (sqlite3_column_count(st) != 6 ||
	    sqlite3_column_type(st, 5) != SQLITE_BLOB ||
	    sqlite3_column_bytes(st, 5) != RDB_DECOY_KEY_LEN) {
		r = rdb_fail(db, RDB_ERROR, "lookup: malformed decoy key (corrupt database?)");
		goto out;
	}
	found = sqlite3_column_type(st, 0) != SQLITE_NULL;
	if (found &&
	    (sqlite3_column_type(st, 0) != SQLITE_TEXT ||
	     sqlite3_column_type(st, 1) != SQLITE_INTEGER ||
	     (sqlite3_column_type(st, 2) != SQLITE_INTEGER && sqlite3_column_type(st, 2) != SQLITE_NULL) ||
	     sqlite3_column_type(st, 3) != SQLITE_BLOB ||
	     sqlite3_column_bytes(st, 3) != RDB_PLAIN_SECRET_LEN ||
	     (sqlite3_column_type(st, 4) != SQLITE_TEXT && sqlite3_column_type(st, 4) != SQLITE_NULL) ||
	     sqlite3_column_bytes(st, 0) > RDB_NAME_MAX ||
	     sqlite3_column_bytes(st, 4) >= RDB_SCRAM_MAX)) {
		r = rdb_fail(db, RDB_ERROR, "lookup: malformed row for a login (corrupt database?)");
		goto out;
	}
	if (found) {
		memcpy(out->name, sqlite3_column_text(st, 0), (size_t)sqlite3_column_bytes(st, 0));
		out->name[sqlite3_column_bytes(st, 0)] = '\0';
		memcpy(out->plain, sqlite3_column_blob(st, 3), RDB_PLAIN_SECRET_LEN);
		if (sqlite3_column_type(st, 4) == SQLITE_TEXT) {
			out->has_scram = true;
			memcpy(out->scram, sqlite3_column_text(st, 4), (size_t)sqlite3_column_bytes(st, 4));
			out->scram[sqlite3_column_bytes(st, 4)] = '\0';
		}
		if (sqlite3_column_int64(st, 1) == 0)
			out->state = RDB_LOGIN_DISABLED;
		else if (sqlite3_column_type(st, 2) == SQLITE_INTEGER && now >= sqlite3_column_int64(st, 2))
			out->state = RDB_LOGIN_EXPIRED;
		else
			out->state = RDB_LOGIN_ACTIVE;
	}
	memcpy(out->decoy_key, sqlite3_column_blob(st, 5), RDB_DECOY_KEY_LEN);
	out->has_decoy_key = true;
	r = found ? RDB_OK : rdb_fail(db, RDB_NOTFOUND, "no such login");
out:
	rdb_done(st);
	if (r != RDB_OK && r != RDB_NOTFOUND)
		explicit_bzero(out, sizeof *out);
	return r;
}
