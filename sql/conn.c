/*
 * conn.c — the connection core (see conn.h): opening a file of a known kind, its
 * settings, the header check, the statement table and the one error holder.
 *
 * Every open goes through here, so every connection gets the same protection: extended
 * result codes, SQLITE_DBCONFIG_DEFENSIVE (no writable_schema tricks), an untrusted schema
 * (no side-effect functions from views or triggers in the file), a busy timeout, and the
 * application_id check that tells our files from any other SQLite file.
 */
#include "conn.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "errbuf.h"
#include "pgconn.h"

enum rdb_engine rdb_engine_of(const char *name)
{
	if (name != NULL && (strncmp(name, "postgresql://", 13) == 0 ||
	                     strncmp(name, "postgres://", 11) == 0 || strncmp(name, "pg:", 3) == 0))
		return RDB_ENGINE_PG;
	return RDB_ENGINE_SQLITE;
}

bool rdb_is_postgresql(const char *name)
{
	return rdb_engine_of(name) == RDB_ENGINE_PG;
}

void rdb_name_display(const char *name, char *out, size_t outlen)
{
	if (rdb_engine_of(name) == RDB_ENGINE_PG)
		rdb_pg_describe(name, out, outlen);
	else
		rdb_seterr(out, outlen, "%s", name ? name : "");
}

enum rdb_result rdb_conn_fail(struct rdb_conn *c, enum rdb_result r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->err, sizeof c->err, fmt, ap);
	va_end(ap);
	return r;
}

const char *rdb_conn_dbmsg(const struct rdb_conn *c)
{
	if (c->engine == RDB_ENGINE_PG)
		return rdb_pg_errmsg(c);
	return c->h ? sqlite3_errmsg(c->h) : "no connection";
}

enum rdb_result rdb_conn_fail_sqlite(struct rdb_conn *c, const char *what)
{
	return rdb_conn_fail(c, RDB_ERROR, "%s: %s", what, rdb_conn_dbmsg(c));
}

int64_t rdb_conn_changes(const struct rdb_conn *c)
{
	if (c->engine == RDB_ENGINE_SQLITE)
		return c->h ? sqlite3_changes(c->h) : 0;
	return c->changes;
}

const char *rdb_conn_errmsg(const struct rdb_conn *c)
{
	return c->err[0] ? c->err : "no error";
}

bool rdb_conn_in_tx(const struct rdb_conn *c)
{
	if (c->engine == RDB_ENGINE_PG)
		return rdb_pg_in_tx(c);
	return c->h != NULL && !sqlite3_get_autocommit(c->h);
}

void rdb_done(sqlite3_stmt *st)
{
	if (st != NULL) {
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
	}
}

sqlite3_stmt *rdb_conn_stmt(struct rdb_conn *c, size_t id)
{
	return c->st != NULL && id < c->kind->nstmts ? c->st[id] : NULL;
}

enum rdb_result rdb_conn_exec(struct rdb_conn *c, size_t id, const char *what)
{
	struct rdb_st *st = rdb_conn_q(c, id);
	enum rdb_result r = RDB_OK;

	if (st == NULL)
		return rdb_conn_fail(c, RDB_ERROR, "%s: no such statement", what);
	if (rdb_step(st) != RDB_STEP_DONE)
		r = rdb_conn_fail_sqlite(c, what);
	rdb_st_done(st);
	return r;
}

enum rdb_result rdb_conn_unit_begin(struct rdb_conn *c, struct rdb_unit *u,
                                    const struct rdb_unit_ids *ids)
{
	u->ids = ids;
	u->own_tx = c->engine == RDB_ENGINE_PG && !rdb_conn_in_tx(c);
	if (u->own_tx)
		return rdb_conn_exec(c, ids->begin, "cannot start a transaction");
	return rdb_conn_exec(c, ids->savepoint, "savepoint");
}

enum rdb_result rdb_conn_unit_end(struct rdb_conn *c, struct rdb_unit *u, enum rdb_result r)
{
	char keep[sizeof c->err];

	if (r == RDB_OK)
		return u->own_tx ? rdb_conn_exec(c, u->ids->commit, "cannot commit")
		                 : rdb_conn_exec(c, u->ids->release, "release savepoint");
	/* Keep the message of the failure that made us undo. */
	memcpy(keep, c->err, sizeof keep);
	if (u->own_tx) {
		rdb_conn_exec(c, u->ids->rollback, "cannot roll back");
	} else {
		rdb_conn_exec(c, u->ids->rollback_to, "roll back to savepoint");
		rdb_conn_exec(c, u->ids->release, "release savepoint");
	}
	memcpy(c->err, keep, sizeof keep);
	return r;
}

char *rdb_conn_grants(const struct rdb_kind *k, enum rdb_role part, const char *role)
{
	const char *t = (unsigned)part < 3 ? k->pg_grants[part] : NULL;
	size_t rlen, need = 1, n = 0;
	char *out;

	if (role == NULL || role[0] == '\0' || strlen(role) > 63)
		return NULL;
	for (const unsigned char *p = (const unsigned char *)role; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return NULL;
	if (t == NULL)
		t = "";
	rlen = 2 + strlen(role) * 2;  /* "…" with every " doubled, at most */
	for (const char *p = t; *p; p++)
		need += strncmp(p, "{role}", 6) == 0 ? rlen : 1;
	out = malloc(need);
	if (out == NULL)
		return NULL;
	while (*t) {
		if (strncmp(t, "{role}", 6) == 0) {
			out[n++] = '"';
			for (const char *r = role; *r; r++) {
				if (*r == '"')
					out[n++] = '"';
				out[n++] = *r;
			}
			out[n++] = '"';
			t += 6;
		} else {
			out[n++] = *t++;
		}
	}
	out[n] = '\0';
	return out;
}

enum rdb_result rdb_conn_copy_rows(struct rdb_conn *from, size_t from_id, struct rdb_conn *to,
                                   size_t to_id, int64_t *n, int *which)
{
	struct rdb_st *src = rdb_conn_q(from, from_id), *dst = rdb_conn_q(to, to_id);
	enum rdb_result r = RDB_OK;
	int rc, cols;

	*n = 0;
	if (src == NULL || dst == NULL) {
		*which = src == NULL ? 0 : 1;
		return rdb_conn_fail(src == NULL ? from : to, RDB_ERROR, "copy: no such statement");
	}
	while ((rc = rdb_step(src)) == RDB_STEP_ROW) {
		cols = rdb_col_count(src);
		for (int i = 0; i < cols && r == RDB_OK; i++) {
			int b;

			switch (rdb_col_type(src, i)) {
			case RDB_COL_NULL: b = rdb_bind_null(dst, i + 1); break;
			case RDB_COL_INT: b = rdb_bind_int64(dst, i + 1, rdb_col_int64(src, i)); break;
			case RDB_COL_TEXT: b = rdb_bind_text(dst, i + 1, (const char *)rdb_col_text(src, i)); break;
			case RDB_COL_BLOB:
				b = rdb_bind_blob(dst, i + 1, rdb_col_blob(src, i), rdb_col_bytes(src, i));
				break;
			default:
				*which = 0;
				r = rdb_conn_fail(from, RDB_ERROR, "copy: column %d has a type we do "
				                  "not copy", i + 1);
				continue;
			}
			if (b != RDB_SQL_OK) {
				*which = 1;
				r = rdb_conn_fail_db(to, "copy: bind");
			}
		}
		if (r == RDB_OK) {
			rc = rdb_step(dst);
			if (rc != RDB_STEP_DONE) {
				*which = 1;
				r = rdb_conn_fail(to, rc == RDB_STEP_ERROR ? RDB_ERROR : RDB_INVALID,
				                  "copy: writing a row: %s", rdb_conn_dbmsg(to));
			}
		}
		rdb_st_done(dst);
		if (r != RDB_OK)
			break;
		(*n)++;
	}
	if (r == RDB_OK && rc != RDB_STEP_DONE) {
		*which = 0;
		r = rdb_conn_fail_db(from, "copy: reading");
	}
	rdb_st_done(src);
	return r;
}

/* The neutral statements over whatever the engine prepared (rdb_conn_q says which). */
static bool alloc_q(struct rdb_conn *c)
{
	c->q = calloc(c->kind->nstmts ? c->kind->nstmts : 1, sizeof *c->q);
	if (c->q == NULL)
		return false;
	for (size_t i = 0; i < c->kind->nstmts; i++) {
		c->q[i].c = c;
		c->q[i].id = i;
		c->q[i].lite = c->st != NULL ? c->st[i] : NULL;
	}
	return true;
}

enum rdb_result rdb_conn_prepare_late(struct rdb_conn *c, size_t id, char *err, size_t errlen)
{
	if (c == NULL || c->engine != RDB_ENGINE_SQLITE || c->st == NULL || c->q == NULL ||
	    id >= c->kind->nstmts) {
		rdb_seterr(err, errlen, "preparing statement %zu: not an open SQLite core", id);
		return RDB_ERROR;
	}
	if (c->st[id] != NULL)
		return RDB_OK;
	if (sqlite3_prepare_v3(c->h, c->kind->stmts[id], -1, SQLITE_PREPARE_PERSISTENT,
	                       &c->st[id], NULL) != SQLITE_OK) {
		rdb_seterr(err, errlen, "%s", sqlite3_errmsg(c->h));
		sqlite3_finalize(c->st[id]);
		c->st[id] = NULL;
		return RDB_ERROR;
	}
	c->q[id].lite = c->st[id];
	return RDB_OK;
}

bool rdb_conn_configure(sqlite3 *h, const struct rdb_kind *k, char *err, size_t errlen)
{
	sqlite3_extended_result_codes(h, 1);
	if (sqlite3_db_config(h, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL) != SQLITE_OK ||
	    sqlite3_db_config(h, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL) != SQLITE_OK ||
	    sqlite3_busy_timeout(h, k->busy_ms) != SQLITE_OK) {
		rdb_seterr(err, errlen, "cannot configure the connection: %s", sqlite3_errmsg(h));
		return false;
	}
	return true;
}

bool rdb_conn_pragma_int(sqlite3 *h, const char *sql, int64_t *out)
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

bool rdb_conn_read_header(sqlite3 *h, struct rdb_header *hd, char *err, size_t errlen)
{
	if (!rdb_conn_pragma_int(h, "PRAGMA application_id", &hd->app_id) ||
	    !rdb_conn_pragma_int(h, "PRAGMA user_version", &hd->version) ||
	    !rdb_conn_pragma_int(h, "SELECT count(*) FROM sqlite_schema", &hd->objects)) {
		int code = sqlite3_extended_errcode(h);

		rdb_seterr(err, errlen, "%s", code == SQLITE_NOTADB ? "not an SQLite database" :
		           sqlite3_errmsg(h));
		return false;
	}
	return true;
}

const char *rdb_conn_open_errmsg(sqlite3 *h)
{
	if (h == NULL)
		return "out of memory";
	/* SQLITE_OPEN_NOFOLLOW's refusal: SQLite only says "unable to open database file". */
	if (sqlite3_extended_errcode(h) == SQLITE_CANTOPEN_SYMLINK)
		return "the path contains a symbolic link, which this database refuses";
	return sqlite3_errmsg(h);
}

/* A missing file gets the kind's advice rather than SQLite's "unable to open database
 * file". A symbolic link is left to SQLite when the kind refuses links (it says so). */
static bool check_exists(const struct rdb_kind *k, const char *path, char *err, size_t errlen)
{
	struct stat st;

	if ((k->nofollow ? lstat(path, &st) : stat(path, &st)) != 0) {
		if (errno == ENOENT)
			rdb_seterr(err, errlen, "%s: %s", path, k->missing);
		else
			rdb_seterr(err, errlen, "%s: %s", path, strerror(errno));
		return false;
	}
	if (!S_ISREG(st.st_mode) && !(k->nofollow && S_ISLNK(st.st_mode))) {
		rdb_seterr(err, errlen, "%s: not a regular file", path);
		return false;
	}
	return true;
}

static bool check_version(const struct rdb_kind *k, const char *path, enum rdb_mode mode,
                          const struct rdb_header *hd, char *err, size_t errlen)
{
	if (hd->app_id != k->application_id) {
		rdb_seterr(err, errlen, "%s: not an smtp-relay %s database", path, k->what);
		return false;
	}
	if (hd->version > k->version) {
		rdb_seterr(err, errlen, "%s: schema version %lld is newer than this program knows (%lld)",
		           path, (long long)hd->version, (long long)k->version);
		return false;
	}
	if (hd->version < k->version &&
	    !(mode == RDB_READONLY && k->read_min_version > 0 &&
	      hd->version >= k->read_min_version)) {
		rdb_seterr(err, errlen, "%s: schema version %lld is older than %lld: run relay-admin "
		           "init to migrate", path, (long long)hd->version, (long long)k->version);
		return false;
	}
	return true;
}

/* How many of the kind's statements an open in `mode` prepares (see nstmts_read); the
 * others stay NULL, which rdb_conn_stmt() hands back for the caller to refuse. */
static size_t prepared_count(const struct rdb_kind *k, enum rdb_mode mode)
{
	if (mode == RDB_READONLY && k->nstmts_read > 0 && k->nstmts_read < k->nstmts)
		return k->nstmts_read;
	return k->nstmts;
}

static int open_flags(const struct rdb_kind *k, int rw)
{
	return SQLITE_OPEN_NOMUTEX | (k->nofollow ? SQLITE_OPEN_NOFOLLOW : 0) | rw;
}

enum rdb_result rdb_conn_open(struct rdb_conn *c, const struct rdb_kind *k, const char *path,
                              enum rdb_mode mode, char *err, size_t errlen)
{
	struct rdb_header hd;
	char why[256];
	const char *setup = k->setup[mode == RDB_READONLY ? 0 : 1];

	c->kind = k;
	c->mode = mode;
	c->err[0] = '\0';
	c->engine = rdb_engine_of(path);
	rdb_seterr(err, errlen, "%s", ""); /* callers may print it after a success */
	if (path == NULL || path[0] == '\0') {
		rdb_seterr(err, errlen, "no database path");
		return RDB_INVALID;
	}
	if (c->engine == RDB_ENGINE_PG) {
		enum rdb_result r = rdb_pg_open(c, k, path, mode, err, errlen);

		if (r == RDB_OK && !alloc_q(c)) {
			rdb_seterr(err, errlen, "out of memory");
			r = RDB_ERROR;
		}
		if (r != RDB_OK)
			rdb_conn_close(c);
		return r;
	}
	if (!check_exists(k, path, err, errlen))
		return RDB_ERROR;
	if (sqlite3_open_v2(path, &c->h, open_flags(k, mode == RDB_READONLY ? SQLITE_OPEN_READONLY
	                                                   : SQLITE_OPEN_READWRITE), NULL) != SQLITE_OK) {
		rdb_seterr(err, errlen, "%s: %s", path, rdb_conn_open_errmsg(c->h));
		goto fail;
	}
	if (!rdb_conn_configure(c->h, k, err, errlen))
		goto fail;
	if (!rdb_conn_read_header(c->h, &hd, why, sizeof why)) {
		rdb_seterr(err, errlen, "%s: %s", path, why);
		goto fail;
	}
	if (!check_version(k, path, mode, &hd, err, errlen))
		goto fail;
	if (setup != NULL && sqlite3_exec(c->h, setup, NULL, NULL, NULL) != SQLITE_OK) {
		rdb_seterr(err, errlen, "%s: %s", path, sqlite3_errmsg(c->h));
		goto fail;
	}
	if (mode == RDB_READONLY && hd.version < k->version && k->read_compat != NULL &&
	    sqlite3_exec(c->h, k->read_compat, NULL, NULL, NULL) != SQLITE_OK) {
		rdb_seterr(err, errlen, "%s: reading a version %lld file: %s", path,
		           (long long)hd.version, sqlite3_errmsg(c->h));
		goto fail;
	}
	/* Every statement now: it proves the tables are there, keeps the first request as
	 * fast as the others, and no call later can fail for want of one. */
	c->st = calloc(k->nstmts ? k->nstmts : 1, sizeof *c->st);
	if (c->st == NULL) {
		rdb_seterr(err, errlen, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < prepared_count(k, mode); i++) {
		if (sqlite3_prepare_v3(c->h, k->stmts[i], -1, SQLITE_PREPARE_PERSISTENT, &c->st[i],
		                       NULL) != SQLITE_OK) {
			rdb_seterr(err, errlen, "%s: cannot prepare the %s database's statements (is "
			           "the schema intact?): %s", path, k->what, sqlite3_errmsg(c->h));
			goto fail;
		}
	}
	if (!alloc_q(c)) {
		rdb_seterr(err, errlen, "out of memory");
		goto fail;
	}
	return RDB_OK;
fail:
	rdb_conn_close(c);
	return RDB_ERROR;
}

void rdb_conn_close(struct rdb_conn *c)
{
	if (c == NULL)
		return;
	if (c->q != NULL && c->kind != NULL)
		for (size_t i = 0; i < c->kind->nstmts; i++)
			if (c->engine == RDB_ENGINE_PG)
				rdb_pg_done(&c->q[i]);
	free(c->q);
	c->q = NULL;
	rdb_pg_close(c);
	if (c->st != NULL)
		for (size_t i = 0; i < c->kind->nstmts; i++)
			sqlite3_finalize(c->st[i]);
	free(c->st);
	c->st = NULL;
	sqlite3_close(c->h);
	c->h = NULL;
}
