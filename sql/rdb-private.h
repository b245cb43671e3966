/*
 * rdb-private.h — internals shared by the modules of the rdb library (rdb.c, users.c,
 * migrations.c). Not installed, not for front ends.
 *
 * struct rdb owns one SQLite connection and a cache of prepared statements: each
 * statement is prepared on first use (SQLITE_PREPARE_PERSISTENT) and finalized by
 * rdb_close(), so every statement is prepared at most once per connection.
 */
#ifndef RELAY_RDB_PRIVATE_H
#define RELAY_RDB_PRIVATE_H

#include <sqlite3.h>

#include "rdb.h"

#define RDB_APPLICATION_ID 1919706212 /* 0x726C7964, "rlyd"; also in schema.sql */

enum rdb_stmt_id {
	STMT_LOOKUP_SECRETS,
	STMT_BEGIN,
	STMT_BEGIN_READ,
	STMT_COMMIT,
	STMT_ROLLBACK,
	STMT_LOGIN_ID,
	STMT_LOGIN_INSERT,
	STMT_LOGIN_GET,
	STMT_LOGIN_ALL,
	STMT_LOGIN_SET_SECRETS,
	STMT_LOGIN_SET_ENABLED,
	STMT_LOGIN_SET_EXPIRY,
	STMT_LOGIN_SET_NOTE,
	STMT_LOGIN_TOUCH,
	STMT_LOGIN_DELETE,
	STMT_SENDER_INSERT,
	STMT_SENDER_DELETE,
	STMT_SENDER_LIST,
	STMT_COUNT_
};

struct rdb {
	sqlite3 *h;
	enum rdb_mode mode;
	sqlite3_stmt *stmt[STMT_COUNT_];
	char err[320];
};

/* The cached statement, prepared on first use; NULL on error (db->err says why). The
 * caller binds, steps, and must sqlite3_reset() it on every path. */
sqlite3_stmt *rdb_stmt(struct rdb *db, enum rdb_stmt_id id);

/* Resets and unbinds a cached statement (NULL-safe): the one cleanup every path goes
 * through. */
void rdb_done(sqlite3_stmt *st);

/* The lookup of one row by login name: binds `name` to parameter 1 of statement `id` and
 * steps it once. RDB_OK: the row is ready in *stp; the caller reads it, then rdb_done().
 * RDB_NOTFOUND: no row, nothing recorded (the caller says what was not found).
 * RDB_ERROR: "what: sqlite message" recorded. On all but RDB_OK the statement is done. */
enum rdb_result rdb_step_name(struct rdb *db, enum rdb_stmt_id id, const char *name,
                              const char *what, sqlite3_stmt **stp);

/* Records "what: sqlite message" in db->err and returns RDB_ERROR. */
enum rdb_result rdb_fail_sqlite(struct rdb *db, const char *what);

/* Records a formatted message in db->err and returns r. */
__attribute__((format(printf, 3, 4)))
enum rdb_result rdb_fail(struct rdb *db, enum rdb_result r, const char *fmt, ...);

/* Connection setup common to every open: extended codes, defensive mode, untrusted
 * schema, busy timeout. Returns false with the reason in err. */
bool rdb_configure(sqlite3 *h, char *err, size_t errlen);

/* Reads PRAGMA application_id and user_version (SQLITE_NOTADB and friends → false). */
bool rdb_read_header(sqlite3 *h, int64_t *app_id, int64_t *version, char *err, size_t errlen);

/* Brings a connection inside BEGIN IMMEDIATE from `from` to RDB_SCHEMA_VERSION (from 0:
 * the whole schema). Returns false with the reason in err. */
bool rdb_migrate(sqlite3 *h, int64_t from, char *err, size_t errlen);

#endif
