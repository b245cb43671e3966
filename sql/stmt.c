/*
 * stmt.c — the engine-neutral statement API of conn.h: each call is the SQLite call on the
 * prepared statement, or the PostgreSQL half in pgconn.c. The shape is SQLite's on
 * purpose: the data-layer modules were written against it, and a module moved to this API
 * changes its spelling, not its logic.
 *
 * Ownership: a struct rdb_st belongs to its core (c->q[id]); bound texts and blobs are
 * borrowed until rdb_st_done(). Not thread safe, like the core.
 */
#include <stdio.h>
#include <string.h>

#include "pgconn.h"

struct rdb_st *rdb_conn_q(struct rdb_conn *c, size_t id)
{
	if (c == NULL || c->q == NULL || c->kind == NULL || id >= c->kind->nstmts)
		return NULL;
	if (c->engine == RDB_ENGINE_PG)
		return rdb_pg_prepared(c, id) ? &c->q[id] : NULL;
	return c->st != NULL && c->st[id] != NULL ? &c->q[id] : NULL;
}

static bool pg_param(struct rdb_st *st, int i)
{
	if (i < 1 || i > RDB_ST_PARAMS)
		return false;
	if (i > st->nparams) {
		for (int k = st->nparams; k < i - 1; k++)
			st->val[k] = NULL;
		st->nparams = i;
	}
	st->len[i - 1] = 0;
	st->fmt[i - 1] = 0;
	return true;
}

static int lite_rc(int rc)
{
	return rc == SQLITE_OK ? RDB_SQL_OK : RDB_SQL_FAIL;
}

int rdb_bind_int64(struct rdb_st *st, int i, int64_t v)
{
	if (st->c->engine == RDB_ENGINE_SQLITE)
		return lite_rc(sqlite3_bind_int64(st->lite, i, v));
	if (!pg_param(st, i))
		return RDB_SQL_FAIL;
	snprintf(st->num[i - 1], sizeof st->num[i - 1], "%lld", (long long)v);
	st->val[i - 1] = st->num[i - 1];
	return RDB_SQL_OK;
}

int rdb_bind_int(struct rdb_st *st, int i, int v)
{
	return rdb_bind_int64(st, i, v);
}

int rdb_bind_null(struct rdb_st *st, int i)
{
	if (st->c->engine == RDB_ENGINE_SQLITE)
		return lite_rc(sqlite3_bind_null(st->lite, i));
	if (!pg_param(st, i))
		return RDB_SQL_FAIL;
	st->val[i - 1] = NULL;
	return RDB_SQL_OK;
}

int rdb_bind_text(struct rdb_st *st, int i, const char *s)
{
	if (st->c->engine == RDB_ENGINE_SQLITE)
		return lite_rc(sqlite3_bind_text(st->lite, i, s, -1, SQLITE_STATIC));
	if (!pg_param(st, i))
		return RDB_SQL_FAIL;
	st->val[i - 1] = s;
	return RDB_SQL_OK;
}

int rdb_bind_blob(struct rdb_st *st, int i, const void *p, int len)
{
	if (st->c->engine == RDB_ENGINE_SQLITE)
		return lite_rc(sqlite3_bind_blob(st->lite, i, p, len, SQLITE_STATIC));
	if (!pg_param(st, i) || len < 0)
		return RDB_SQL_FAIL;
	/* bytea in binary format: the bytes as they are, no escaping */
	st->val[i - 1] = p;
	st->len[i - 1] = len;
	st->fmt[i - 1] = 1;
	return RDB_SQL_OK;
}

int rdb_step(struct rdb_st *st)
{
	int rc;

	if (st->c->engine == RDB_ENGINE_PG)
		return rdb_pg_step(st);
	rc = sqlite3_step(st->lite);
	if (rc == SQLITE_ROW)
		return RDB_STEP_ROW;
	if (rc == SQLITE_DONE) {
		st->c->changes = sqlite3_changes(st->c->h);
		return RDB_STEP_DONE;
	}
	if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY)
		return RDB_STEP_UNIQUE;
	if ((rc & 0xff) == SQLITE_CONSTRAINT)
		return RDB_STEP_CONSTRAINT;
	return RDB_STEP_ERROR;
}

int rdb_col_count(struct rdb_st *st)
{
	if (st->c->engine == RDB_ENGINE_PG)
		return rdb_pg_col_count(st);
	return sqlite3_column_count(st->lite);
}

enum rdb_coltype rdb_col_type(struct rdb_st *st, int i)
{
	if (st->c->engine == RDB_ENGINE_PG)
		return rdb_pg_col_type(st, i);
	switch (sqlite3_column_type(st->lite, i)) {
	case SQLITE_NULL: return RDB_COL_NULL;
	case SQLITE_INTEGER: return RDB_COL_INT;
	case SQLITE_TEXT: return RDB_COL_TEXT;
	case SQLITE_BLOB: return RDB_COL_BLOB;
	default: return RDB_COL_OTHER;
	}
}

int64_t rdb_col_int64(struct rdb_st *st, int i)
{
	if (st->c->engine == RDB_ENGINE_PG)
		return rdb_pg_col_int64(st, i);
	return sqlite3_column_int64(st->lite, i);
}

const unsigned char *rdb_col_text(struct rdb_st *st, int i)
{
	if (st->c->engine == RDB_ENGINE_PG)
		return rdb_pg_col_ptr(st, i);
	return sqlite3_column_text(st->lite, i);
}

const void *rdb_col_blob(struct rdb_st *st, int i)
{
	if (st->c->engine == RDB_ENGINE_PG)
		return rdb_pg_col_ptr(st, i);
	return sqlite3_column_blob(st->lite, i);
}

int rdb_col_bytes(struct rdb_st *st, int i)
{
	if (st->c->engine == RDB_ENGINE_PG)
		return rdb_pg_col_bytes(st, i);
	return sqlite3_column_bytes(st->lite, i);
}

void rdb_st_done(struct rdb_st *st)
{
	if (st == NULL)
		return;
	if (st->c->engine == RDB_ENGINE_PG)
		rdb_pg_done(st);
	else
		rdb_done(st->lite);
}
