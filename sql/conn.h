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
 * The engine seam: a kind names its statements by index (the callers' enums); everything
 * engine-specific — the file, PRAGMA headers, sqlite3_* calls — sits in conn.c and in the
 * statement texts of each kind. A second engine adds its own core with the same
 * functions and its own texts for the same indices.
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
	 * state database relay-milter has not yet migrated; writers always need `version`. */
	int64_t read_min_version;
	size_t nstmts_read;
	/* Run on such a read-only open of an older file before the statements are prepared:
	 * TEMP views and tables that give the reader's statements the current shape (TEMP
	 * names are resolved before the file's own; nothing is written to the file). NULL:
	 * none needed. */
	const char *read_compat;
};

struct rdb_conn {
	sqlite3 *h;
	const struct rdb_kind *kind;
	enum rdb_mode mode;
	sqlite3_stmt **st;               /* kind->nstmts prepared statements */
	char err[320];
};

/* Opens an existing file of kind k and prepares every statement. A missing file, one
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

/* Steps a bound statement that returns no row, then rdb_done(); RDB_ERROR says `what`. */
enum rdb_result rdb_conn_exec(struct rdb_conn *c, size_t id, const char *what);

/* Records a formatted message in c->err and returns r. */
__attribute__((format(printf, 3, 4)))
enum rdb_result rdb_conn_fail(struct rdb_conn *c, enum rdb_result r, const char *fmt, ...);

/* Records "what: <SQLite's message>" and returns RDB_ERROR. */
enum rdb_result rdb_conn_fail_sqlite(struct rdb_conn *c, const char *what);

/* c->err, or "no error". */
const char *rdb_conn_errmsg(const struct rdb_conn *c);

/* Inside a transaction (BEGIN or SAVEPOINT not yet ended)? */
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
