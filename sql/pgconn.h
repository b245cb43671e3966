/*
 * pgconn.h — the PostgreSQL side of the connection core (conn.h), through libpq. Internal
 * to sql/: only conn.c, migrations.c, stmt.c and pgconn.c include it; nothing here leaks
 * libpq types to front ends (struct pg_result is libpq's PGresult, named by its tag).
 *
 * What it is: one connection per core (struct rdb_conn), made from a database name that
 * rdb_engine_of() calls PostgreSQL — a postgresql:// / postgres:// URI, or pg:FILE whose
 * file (not group/world-readable, checked with fstat on the open descriptor) holds a libpq
 * conninfo string, so a password never needs argv or a readable file; libpq's own
 * PGPASSFILE / ~/.pgpass work too. At connect: a read-only session for RDB_READONLY, the
 * kind's schema version checked against the relay_schema table, and every statement of
 * the kind's pg_stmts table prepared (PQprepare, $1.. parameters). A failure that loses
 * the connection marks it broken; the next statement reconnects (and prepares again)
 * before it runs, so a long-lived process (the SASL plugin in smtpd, relay-milter) heals
 * by itself once the server is back.
 *
 * Results (rdb_pg_step): SQLSTATE class 08 (connection), 57P01..57P03 (shutdown, cannot
 * connect now) or a dead connection → RDB_STEP_ERROR, connection broken; 40001 / 40P01
 * (serialization failure, deadlock) → retried once when the statement ran on its own
 * (no transaction open), else RDB_STEP_ERROR; 23505 → RDB_STEP_UNIQUE ("already
 * exists"); other class 23 (check, trigger-raised 23514) → RDB_STEP_CONSTRAINT; anything
 * else → RDB_STEP_ERROR. Callers turn every RDB_STEP_ERROR into RDB_ERROR: a temporary
 * failure, never "no such user" and never "accept".
 *
 * Ownership: the core owns its struct rdb_pg (the connection, the conninfo — wiped on
 * close, it may hold a password — and the last message). Not thread safe: the owner's
 * rules apply (one connection per handle).
 */
#ifndef RELAY_RDB_PGCONN_H
#define RELAY_RDB_PGCONN_H

#include "conn.h"

/* One neutral statement (conn.h's API); defined here because stmt.c (dispatch) and
 * pgconn.c (the PostgreSQL half) both reach into it. */
struct rdb_st {
	struct rdb_conn *c;
	size_t id;
	sqlite3_stmt *lite;                 /* SQLite: c->st[id] */
	/* PostgreSQL: the parameters of the next run, the result being walked */
	int nparams;                        /* highest index bound */
	const char *val[RDB_ST_PARAMS];     /* NULL: SQL NULL */
	int len[RDB_ST_PARAMS];
	int fmt[RDB_ST_PARAMS];             /* 0 text, 1 binary (blobs) */
	char num[RDB_ST_PARAMS][24];        /* integers, as decimal text */
	struct pg_result *res;
	int row, nrows;
	bool ran;
};

/* Opens (connects, checks the kind's version, prepares every statement). RDB_INVALID for
 * an unusable name (a pg: file that others can read, an empty one), RDB_ERROR with the
 * reason otherwise; the core is then closed. */
enum rdb_result rdb_pg_open(struct rdb_conn *c, const struct rdb_kind *k, const char *name,
                            enum rdb_mode mode, char *err, size_t errlen);
void rdb_pg_close(struct rdb_conn *c);

/* Creates the kind's schema in the database, or migrates it, in one transaction
 * serialised by an advisory lock; same contract as rdb_conn_init(). */
enum rdb_result rdb_pg_init(const struct rdb_kind *k, const char *name, int *before,
                            int *after, char *err, size_t errlen);
/* rdb_conn_probe() for PostgreSQL: RDB_NOTFOUND when the database has no schema of kind k. */
enum rdb_result rdb_pg_probe(const struct rdb_kind *k, const char *name, int64_t *version,
                             char *err, size_t errlen);

/* The statement's first step runs it; later steps walk its rows. */
int rdb_pg_step(struct rdb_st *st);
void rdb_pg_done(struct rdb_st *st);
enum rdb_coltype rdb_pg_col_type(struct rdb_st *st, int i);
int64_t rdb_pg_col_int64(struct rdb_st *st, int i);
const unsigned char *rdb_pg_col_ptr(struct rdb_st *st, int i);
int rdb_pg_col_bytes(struct rdb_st *st, int i);
int rdb_pg_col_count(struct rdb_st *st);
bool rdb_pg_prepared(const struct rdb_conn *c, size_t id);

bool rdb_pg_in_tx(const struct rdb_conn *c);
/* The last message of the server or of libpq ("no error" if none). */
const char *rdb_pg_errmsg(const struct rdb_conn *c);

/* A name fit for messages: the pg: path, or the URI without its password. */
void rdb_pg_describe(const char *name, char *out, size_t outlen);

#endif
