/*
 * rdb-private.h — internals shared by the modules on the users database (rdb.c, users.c,
 * policy.c). Not installed, not for front ends.
 *
 * struct rdb is a connection core (conn.h) of the users kind: one connection (SQLite or
 * PostgreSQL), one error holder, and every statement of this header's table prepared when
 * the database opens (rdb.c holds the texts of both engines, indexed by enum
 * rdb_stmt_id), finalized by rdb_close(). The modules use the neutral statement API
 * (struct rdb_st), so each operation is written once for both engines.
 */
#ifndef RELAY_RDB_PRIVATE_H
#define RELAY_RDB_PRIVATE_H

#include "conn.h"
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
	STMT_SENDER_SAVEPOINT,
	STMT_SENDER_RELEASE,
	STMT_SENDER_ROLLBACK_TO,
	/* credentials.c */
	STMT_CRED_TAKEN,
	STMT_CRED_INSERT,
	STMT_CRED_DELETE,
	STMT_CRED_LIST,
	/* policy.c */
	STMT_P_LOGIN,
	STMT_P_LIMITS_EFFECTIVE,
	STMT_P_SENDERS,
	STMT_P_DATA_VERSION,
	STMT_P_MAX_WINDOW,
	STMT_P_METRICS,
	STMT_P_LIMITS_OWN,
	STMT_P_LIMITS_DEL_METRIC,
	STMT_P_LIMITS_DEL_ALL,
	STMT_P_LIMITS_INSERT,
	STMT_P_SET_FLAGS,
	STMT_P_LIMITS_OVER,
	STMT_P_LIMITS_COUNT_OWN,
	STMT_P_RESET_ADD,
	STMT_P_RESET_PRUNE,
	STMT_P_RESET_LIST,
	STMT_P_SAVEPOINT,
	STMT_P_RELEASE,
	STMT_P_ROLLBACK_TO,
	STMT_P_CREDENTIAL,
	/* copy.c: the users data row for row, between engines */
	STMT_C_COUNT,
	STMT_C_LOGINS,
	STMT_C_LOGIN_PUT,
	STMT_C_SENDERS,
	STMT_C_SENDER_PUT,
	STMT_C_LIMITS,
	STMT_C_LIMIT_PUT,
	STMT_C_SECRET,
	STMT_C_SECRET_PUT,
	STMT_C_CLEAR_SENDERS,
	STMT_C_CLEAR_LIMITS,
	STMT_C_CLEAR_LOGINS,
	STMT_C_CREDS,
	STMT_C_CRED_PUT,
	STMT_C_CLEAR_CREDS,
	STMT_C_AFTER,
	STMT_COUNT_
};

struct rdb {
	struct rdb_conn c;
};

/* The prepared statement (NULL only on a closed handle). The caller binds, steps, and
 * must rdb_done() it on every path. */
static inline struct rdb_st *rdb_stmt(struct rdb *db, enum rdb_stmt_id id)
{
	return rdb_conn_q(&db->c, id);
}

/* The lookup of one row by login name: binds `name` to parameter 1 of statement `id` and
 * steps it once. RDB_OK: the row is ready in *stp; the caller reads it, then rdb_done().
 * RDB_NOTFOUND: no row, nothing recorded (the caller says what was not found).
 * RDB_ERROR: "what: sqlite message" recorded. On all but RDB_OK the statement is done. */
enum rdb_result rdb_step_name(struct rdb *db, enum rdb_stmt_id id, const char *name,
                              const char *what, struct rdb_st **stp);

/* users.c, for credentials.c: the id of login `name` (checked first; RDB_NOTFOUND names
 * it) and, if `stored` is not NULL, its stored spelling; and the step of a bound write
 * expected to change one row (constraint failures become RDB_EXISTS / RDB_INVALID with
 * `what`); the statement is done either way. */
enum rdb_result rdb_login_id(struct rdb *db, const char *name, int64_t *id,
                             char stored[RDB_NAME_MAX + 1]);
enum rdb_result rdb_step_write(struct rdb *db, struct rdb_st *st, const char *what);

/* Records "what: <the engine's message>" in db->err and returns RDB_ERROR. */
enum rdb_result rdb_fail_sqlite(struct rdb *db, const char *what);

/* Records a formatted message in db->err and returns r. */
__attribute__((format(printf, 3, 4)))
enum rdb_result rdb_fail(struct rdb *db, enum rdb_result r, const char *fmt, ...);

/* The connection itself, for the white-box tests of this library (tests/unit/test-rdb.c)
 * only: front ends go through the functions of rdb.h, policy.h and state.h. */
struct sqlite3 *rdb_handle(struct rdb *db);

#endif
