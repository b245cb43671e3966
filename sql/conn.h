/*
 * conn.h — the connection core under every database of this library (users: rdb.c,
 * policy.c, users.c; state: state.c). Internal to sql/; front ends never see it.
 *
 * What it is: one way to open, configure, check and close an SQLite file, described by a
 * struct rdb_kind — which application_id and schema version make a file ours, the schema
 * text that creates it and the migrations that bring an older one up to date (both
 * embedded from the .sql files by embed-sql.py), the connection settings (busy timeout, no
 * symbolic links, WAL), and one table of statements, every one prepared when the file
 * opens and finalized when it closes. A statement that does not prepare (a damaged
 * schema) makes the open fail with the reason, so no call later meets a missing table.
 *
 * The engine seam: a kind names its statements by index (the callers' enums) and gives
 * each index one text per engine: k->stmts[id] for SQLite, k->pg_stmts[id] for
 * PostgreSQL. The database name chooses the engine (rdb_engine_of(): a postgresql:// or
 * postgres:// URI, or pg:FILE, is PostgreSQL through pgconn.c; anything else is an SQLite
 * path, as always). Operations are written once, against the engine-neutral statement
 * API below (struct rdb_st: bind, step, read columns, done), so adding an operation is one
 * statement id with its two texts, not a new code path. Everything engine-specific stays
 * in conn.c, migrations.c (SQLite), pgconn.c (PostgreSQL) and stmt.c (the dispatch).
 * Older callers (state.c) still use the SQLite statements directly (c->st, rdb_conn_stmt,
 * rdb_done) and only open SQLite files until they move to the neutral API.
 *
 * Ownership: struct rdb_conn is embedded in its owner (struct rdb, struct rdb_state),
 * zeroed before rdb_conn_open(); rdb_conn_close() releases everything and may be called
 * on a failed or closed core. Not thread safe: the owner's rules apply.
 *
 * Errors: the one error holder of a handle is conn->err, written by rdb_conn_fail*();
 * functions taking "char *err, size_t errlen" fill the caller's buffer (errbuf.h).
 */
#ifndef RELAY_RDB_CONN_H
#define RELAY_RDB_CONN_H

#include <sqlite3.h>

#include "rdb.h"

enum rdb_engine {
	RDB_ENGINE_SQLITE,
	RDB_ENGINE_PG,
};

/* The engine a database name selects: RDB_ENGINE_PG for "postgresql://…",
 * "postgres://…" (a libpq URI) and "pg:/path/to/file" (a file holding a libpq conninfo
 * string, mode 0600 or stricter); RDB_ENGINE_SQLITE for anything else (a path). */
enum rdb_engine rdb_engine_of(const char *name);

struct rdb_pg;  /* pgconn.c's connection state */
struct rdb_st;  /* one statement of an open core, either engine (stmt.c) */

struct rdb_kind {
	const char *what;                /* "users", "state": in messages */
	int64_t application_id;          /* PRAGMA application_id of our files */
	int64_t version;                 /* PRAGMA user_version this program writes */
	const char *schema_sql;          /* creates `version` from an empty file */
	const char *const *migrations;   /* [v] brings v - 1 to v; NULL where none exists */
	const char *missing;             /* said after "PATH: " when the file does not exist */
	int busy_ms;                     /* how long to wait for another writer's lock */
	bool nofollow;                   /* refuse a symbolic link anywhere in the path */
	bool wal;                        /* init switches the file to journal_mode = WAL */
	const char *setup[2];            /* run after open: [RDB_READONLY], [RDB_READWRITE] */
	const char *const *stmts;        /* prepared at open, by the owner's statement ids */
	size_t nstmts;
	/* Readers of an older file: a read-only open also accepts versions from
	 * read_min_version up (0: only `version`) and prepares only the first nstmts_read
	 * statements (0: all), those every accepted version can run. Lets relay-admin read a
	 * state database relay-milter has not yet migrated; writers always need `version`.
	 * SQLite only, like read_compat: on PostgreSQL every open needs `version` and
	 * prepares every statement (pgconn.c). */
	int64_t read_min_version;
	size_t nstmts_read;
	/* Run on such a read-only open of an older file before the statements are prepared:
	 * TEMP views and tables that give the reader's statements the current shape (TEMP
	 * names are resolved before the file's own; nothing is written to the file). NULL:
	 * none needed. */
	const char *read_compat;
	/* PostgreSQL (NULL: this kind has no PostgreSQL form yet; opening a pg name fails).
	 * pg_stmts[id] is the same operation as stmts[id] with $1.. parameters, prepared
	 * (PQprepare) at connect, every one; pg_schema_sql creates version `version` in an
	 * empty database (several kinds may share one database: their tables must not
	 * collide); pg_migrations[v] brings v - 1 to v. The version of each kind is a row
	 * of the core's relay_schema table (pgconn.c). */
	const char *const *pg_stmts;
	const char *pg_schema_sql;
	const char *const *pg_migrations;
	/* GRANTs a role of each part needs on this kind's tables, for relay-admin grants:
	 * "%1$s" is the role name. NULL entries: nothing. */
	const char *pg_grants[3];        /* [RDB_ROLE_PLUGIN], [RDB_ROLE_MILTER], [RDB_ROLE_ADMIN] */
};

struct rdb_conn {
	enum rdb_engine engine;
	sqlite3 *h;                      /* SQLite */
	struct rdb_pg *pg;               /* PostgreSQL */
	const struct rdb_kind *kind;
	enum rdb_mode mode;
	sqlite3_stmt **st;               /* SQLite: kind->nstmts prepared statements */
	struct rdb_st *q;                /* kind->nstmts neutral statements (both engines) */
	int64_t changes;                 /* rows the last neutral write changed */
	char err[320];
};

/* Opens an existing database of kind k (a file, or a PostgreSQL database by its name, see
 * rdb_engine_of) and prepares every statement. A missing file, one
 * that is not ours, of another schema version, or whose statements do not prepare is
 * RDB_ERROR with the reason in err; the core is then closed. */
enum rdb_result rdb_conn_open(struct rdb_conn *c, const struct rdb_kind *k, const char *path,
                              enum rdb_mode mode, char *err, size_t errlen);
void rdb_conn_close(struct rdb_conn *c);

/* Creates the file, or migrates an older schema of the same kind, in one BEGIN IMMEDIATE;
 * refuses a foreign file or a newer schema without writing to it. `before` gets the
 * version found (0: new or empty; version + 1 for a newer one), `after` the version left;
 * either may be NULL. */
enum rdb_result rdb_conn_init(const struct rdb_kind *k, const char *path, int *before,
                              int *after, char *err, size_t errlen);

/* Reads a file's header without opening it for use (relay-admin check): RDB_OK with
 * *version for a file of kind k (any version), RDB_NOTFOUND for an empty SQLite file (no
 * schema), RDB_INVALID for a foreign one, RDB_ERROR when it cannot be read; err says
 * which. Read-only: never creates, never writes. */
enum rdb_result rdb_conn_probe(const struct rdb_kind *k, const char *path, int64_t *version,
                               char *err, size_t errlen);

/* The prepared statement `id` (never NULL on an open core). The caller binds, steps and
 * resets it with rdb_done() on every path. */
sqlite3_stmt *rdb_conn_stmt(struct rdb_conn *c, size_t id);

/* Resets and unbinds a statement (NULL-safe): the one cleanup every path goes through. */
void rdb_done(sqlite3_stmt *st);

/* SQLite: prepares statement `id` that a read-only open left out (at or beyond
 * nstmts_read), once the owner knows the file has its tables (e.g. the state kind's
 * counters query on a version 3 file); finalized with the core. RDB_ERROR with SQLite's
 * reason in err. */
enum rdb_result rdb_conn_prepare_late(struct rdb_conn *c, size_t id, char *err, size_t errlen);

/* Steps a bound statement that returns no row, then rdb_done(); RDB_ERROR says `what`. */
enum rdb_result rdb_conn_exec(struct rdb_conn *c, size_t id, const char *what);

/* Records a formatted message in c->err and returns r. */
__attribute__((format(printf, 3, 4)))
enum rdb_result rdb_conn_fail(struct rdb_conn *c, enum rdb_result r, const char *fmt, ...);

/* Records "what: <the engine's message>" and returns RDB_ERROR (either engine: the name
 * is older than the second one). */
enum rdb_result rdb_conn_fail_sqlite(struct rdb_conn *c, const char *what);
#define rdb_conn_fail_db rdb_conn_fail_sqlite

/* The engine's last message (SQLite's errmsg, or the server's / libpq's). */
const char *rdb_conn_dbmsg(const struct rdb_conn *c);

/* Rows changed by the last write statement run through the neutral API. */
int64_t rdb_conn_changes(const struct rdb_conn *c);

/* A unit of writes that lands whole: a SAVEPOINT nested in the caller's transaction if one
 * is open. Without one, SQLite's SAVEPOINT is a transaction of its own; PostgreSQL refuses
 * a savepoint outside a transaction, so there the unit is BEGIN … COMMIT instead. The ids
 * are the kind's statements SAVEPOINT x / RELEASE x / ROLLBACK TO x and BEGIN / COMMIT /
 * ROLLBACK. rdb_conn_unit_end() releases (r == RDB_OK) or undoes the unit, keeps the
 * message of the failure that made it undo, and returns r or the release's failure. */
struct rdb_unit_ids {
	size_t savepoint, release, rollback_to, begin, commit, rollback;
};
struct rdb_unit {
	const struct rdb_unit_ids *ids;
	bool own_tx;
};
enum rdb_result rdb_conn_unit_begin(struct rdb_conn *c, struct rdb_unit *u,
                                    const struct rdb_unit_ids *ids);
enum rdb_result rdb_conn_unit_end(struct rdb_conn *c, struct rdb_unit *u, enum rdb_result r);

/* The kind's grants for `part` with {role} replaced by the quoted role name (rdb.h's
 * rdb_pg_grants); malloc'ed, NULL for a bad name or out of memory. */
char *rdb_conn_grants(const struct rdb_kind *k, enum rdb_role part, const char *role);

/* Copies every row of statement from_id (on `from`) into statement to_id (on `to`), column
 * i to parameter i + 1 with its type (integers, text, blobs, NULL): the engine-neutral
 * row copy of relay-admin copy. *n counts the rows. RDB_ERROR with the message on the
 * side that failed (*which: 0 from, 1 to). */
enum rdb_result rdb_conn_copy_rows(struct rdb_conn *from, size_t from_id, struct rdb_conn *to,
                                   size_t to_id, int64_t *n, int *which);

/* ---- the engine-neutral statement API (stmt.c) -------------------------------------- *
 * The shape of SQLite's: bind by 1-based index, step row by row, read typed columns,
 * done on every path. On SQLite each call is the sqlite3_* one on the prepared statement;
 * on PostgreSQL binds are kept until the first step, which runs PQexecPrepared (binary
 * results) and maps the outcome (pgconn.c): later steps walk the rows. Text and blob
 * values are borrowed until rdb_st_done(). Column pointers live until the next step or
 * rdb_st_done(). */
#define RDB_SQL_OK 0
#define RDB_SQL_FAIL 1
enum rdb_step {
	RDB_STEP_ROW = 100,
	RDB_STEP_DONE = 101,
	RDB_STEP_UNIQUE,        /* a UNIQUE / PRIMARY KEY violation: "already exists" */
	RDB_STEP_CONSTRAINT,    /* another constraint (CHECK, trigger): bad input */
	RDB_STEP_ERROR,         /* anything else: the message is the engine's (fail_db) */
};
enum rdb_coltype { RDB_COL_NULL, RDB_COL_INT, RDB_COL_TEXT, RDB_COL_BLOB, RDB_COL_OTHER };
#define RDB_ST_PARAMS 16    /* parameters per statement, at most */

/* The neutral statement `id` (NULL on a closed core or an id not prepared). */
struct rdb_st *rdb_conn_q(struct rdb_conn *c, size_t id);
int rdb_bind_int64(struct rdb_st *st, int i, int64_t v);
int rdb_bind_int(struct rdb_st *st, int i, int v);
int rdb_bind_null(struct rdb_st *st, int i);
int rdb_bind_text(struct rdb_st *st, int i, const char *s);
int rdb_bind_blob(struct rdb_st *st, int i, const void *p, int len);
int rdb_step(struct rdb_st *st);
int rdb_col_count(struct rdb_st *st);
enum rdb_coltype rdb_col_type(struct rdb_st *st, int i);
int64_t rdb_col_int64(struct rdb_st *st, int i);
const unsigned char *rdb_col_text(struct rdb_st *st, int i);
const void *rdb_col_blob(struct rdb_st *st, int i);
int rdb_col_bytes(struct rdb_st *st, int i);
/* Resets and unbinds (NULL-safe): the one cleanup every path goes through. */
void rdb_st_done(struct rdb_st *st);

/* c->err, or "no error". */
const char *rdb_conn_errmsg(const struct rdb_conn *c);

/* Inside a transaction (BEGIN or SAVEPOINT not yet ended; on PostgreSQL also one the
 * connection lost, until the caller rolls back)? */
bool rdb_conn_in_tx(const struct rdb_conn *c);

/* ---- for conn.c and migrations.c only ----------------------------------------------- */

struct rdb_header {
	int64_t app_id, version, objects;  /* objects: rows of sqlite_schema */
};

/* Extended codes, defensive mode, untrusted schema, the kind's busy timeout. */
bool rdb_conn_configure(sqlite3 *h, const struct rdb_kind *k, char *err, size_t errlen);
/* One integer from a one-row statement. */
bool rdb_conn_pragma_int(sqlite3 *h, const char *sql, int64_t *out);
/* application_id, user_version, object count; false (SQLITE_NOTADB: "not an SQLite
 * database") when the file cannot be read as SQLite. */
bool rdb_conn_read_header(sqlite3 *h, struct rdb_header *hd, char *err, size_t errlen);
/* Why sqlite3_open_v2 failed, in words (h may be NULL). */
const char *rdb_conn_open_errmsg(sqlite3 *h);

#endif
