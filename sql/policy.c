/*
 * policy.c — milter policy lookups and limit writes on the users database (see policy.h).
 *
 * The statements are the users database's own (rdb.c's table, prepared when the file
 * opens) and errors go to its one error holder; every path resets the statements it
 * used. Every value is bound; every column's type is checked before use.
 */
#include "policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rdb-private.h"

struct rdb_policy {
	struct rdb *db;   /* borrowed; its statements and its error holder serve us */
};

#define STMT(p, id) rdb_stmt((p)->db, STMT_P_##id)
#define failf(p, ...) rdb_fail((p)->db, __VA_ARGS__)
#define fail_sqlite(p, what) rdb_fail_sqlite((p)->db, what)

enum rdb_result rdb_policy_new(struct rdb *db, struct rdb_policy **out)
{
	struct rdb_policy *p;

	*out = NULL;
	if (db == NULL)
		return RDB_INVALID;
	/* The statements were prepared when the database opened (conn.h); a handle that
	 * lost them is closed. Either way the message says why, never "no error". */
	if (rdb_stmt(db, STMT_P_LOGIN) == NULL)
		return rdb_fail(db, RDB_ERROR, "preparing policy queries: the database handle is closed");
	p = calloc(1, sizeof *p);
	if (p == NULL)
		return rdb_fail(db, RDB_ERROR, "preparing policy queries: out of memory");
	p->db = db;
	*out = p;
	return RDB_OK;
}

void rdb_policy_free(struct rdb_policy *p)
{
	free(p);
}

const char *rdb_policy_errmsg(const struct rdb_policy *p)
{
	return rdb_errmsg(p->db);
}

static bool col_int(struct rdb_st *st, int c)
{
	return rdb_col_type(st, c) == RDB_COL_INT;
}

/* Looks up id and fills the login columns; RDB_NOTFOUND if absent. */
static enum rdb_result login_row(struct rdb_policy *p, const char *name, int64_t *id,
                                 struct rdb_login_policy *out)
{
	struct rdb_st *st = STMT(p, LOGIN);
	enum rdb_result r;
	int rc;

	if (strlen(name) > RDB_NAME_MAX)
		return failf(p, RDB_NOTFOUND, "no such login");
	if (rdb_bind_text(st, 1, name) != RDB_SQL_OK) {
		r = fail_sqlite(p, "bind");
		goto out;
	}
	rc = rdb_step(st);
	if (rc == RDB_STEP_DONE) {
		r = failf(p, RDB_NOTFOUND, "no such login: %s", name);
		goto out;
	}
	if (rc != RDB_STEP_ROW) {
		r = fail_sqlite(p, "login lookup");
		goto out;
	}
	if (!col_int(st, 0) || rdb_col_type(st, 1) != RDB_COL_TEXT || !col_int(st, 2) ||
	    !(col_int(st, 3) || rdb_col_type(st, 3) == RDB_COL_NULL) || !col_int(st, 4) ||
	    !col_int(st, 5) || rdb_col_bytes(st, 1) > RDB_NAME_MAX) {
		r = failf(p, RDB_ERROR, "login row has an unexpected shape");
		goto out;
	}
	*id = rdb_col_int64(st, 0);
	if (out != NULL) {
		snprintf(out->name, sizeof out->name, "%s", (const char *)rdb_col_text(st, 1));
		out->enabled = rdb_col_int64(st, 2) != 0;
		out->has_expiry = rdb_col_type(st, 3) == RDB_COL_INT;
		out->expires_at = out->has_expiry ? rdb_col_int64(st, 3) : 0;
		out->rate_exempt = rdb_col_int64(st, 4) != 0;
		out->hold_over_limit = rdb_col_int64(st, 5) != 0;
	}
	r = RDB_OK;
out:
	rdb_st_done(st);
	return r;
}

/* Reads metric, window, max rows of st (already bound) into out. */
static enum rdb_result read_limits(struct rdb_policy *p, struct rdb_st *st, struct rdb_limit *out,
                                   size_t max, size_t *n)
{
	int rc;

	*n = 0;
	while ((rc = rdb_step(st)) == RDB_STEP_ROW) {
		enum rdb_metric m;

		if (rdb_col_type(st, 0) != RDB_COL_TEXT || !col_int(st, 1) || !col_int(st, 2) ||
		    !rdb_metric_parse((const char *)rdb_col_text(st, 0), &m) ||
		    rdb_col_int64(st, 1) < 1 || rdb_col_int64(st, 2) < 0)
			return failf(p, RDB_ERROR, "limit row has an unexpected shape");
		if (*n >= max)
			return failf(p, RDB_ERROR, "more than %zu limits in effect (relay-admin check "
			             "names the logins)", max);
		out[*n] = (struct rdb_limit){ m, rdb_col_int64(st, 1),
		                              (uint64_t)rdb_col_int64(st, 2) };
		(*n)++;
	}
	return rc == RDB_STEP_DONE ? RDB_OK : fail_sqlite(p, "limits");
}

enum rdb_result rdb_policy_login(struct rdb_policy *p, const char *name,
                                 struct rdb_login_policy *out)
{
	struct rdb_st *st = STMT(p, LIMITS_EFFECTIVE);
	int64_t id;
	enum rdb_result r;

	memset(out, 0, sizeof *out);
	if ((r = login_row(p, name, &id, out)) != RDB_OK)
		return r;
	if (rdb_bind_int64(st, 1, id) != RDB_SQL_OK ||
	    rdb_bind_int64(st, 2, RDB_LIMITS_MAX + 1) != RDB_SQL_OK)
		r = fail_sqlite(p, "bind");
	else
		r = read_limits(p, st, out->limits, RDB_LIMITS_MAX, &out->nlimits);
	rdb_st_done(st);
	return r;
}

enum rdb_result rdb_policy_credential(struct rdb_policy *p, const char *authname, char *login,
                                      char *label)
{
	struct rdb_st *st;
	enum rdb_result r;
	int nlen, llen;

	if (strlen(authname) > RDB_NAME_MAX)
		return failf(p, RDB_NOTFOUND, "no such credential");
	r = rdb_step_name(p->db, STMT_P_CREDENTIAL, authname, "credential lookup", &st);
	if (r == RDB_NOTFOUND)
		return failf(p, RDB_NOTFOUND, "no such login or credential: %s", authname);
	if (r != RDB_OK)
		return r;
	nlen = rdb_col_bytes(st, 0);
	llen = rdb_col_bytes(st, 1);
	if (rdb_col_type(st, 0) != RDB_COL_TEXT || rdb_col_type(st, 1) != RDB_COL_TEXT ||
	    nlen < 0 || nlen > RDB_NAME_MAX || llen < 0 || llen > RDB_LABEL_MAX) {
		r = failf(p, RDB_ERROR, "credential row has an unexpected shape");
	} else {
		memcpy(login, rdb_col_text(st, 0), (size_t)nlen);
		login[nlen] = '\0';
		memcpy(label, rdb_col_text(st, 1), (size_t)llen);
		label[llen] = '\0';
	}
	rdb_st_done(st);
	return r;
}

enum rdb_result rdb_policy_senders(struct rdb_policy *p, const char *name,
                                   int (*fn)(const char *pattern, void *arg), void *arg)
{
	struct rdb_st *st = STMT(p, SENDERS);
	enum rdb_result r = RDB_OK;
	int rc;

	if (rdb_bind_text(st, 1, name) != RDB_SQL_OK) {
		r = fail_sqlite(p, "bind");
		goto out;
	}
	while ((rc = rdb_step(st)) == RDB_STEP_ROW) {
		if (rdb_col_type(st, 0) != RDB_COL_TEXT ||
		    rdb_col_bytes(st, 0) > RDB_PATTERN_MAX) {
			r = failf(p, RDB_ERROR, "sender row has an unexpected shape");
			goto out;
		}
		if (fn((const char *)rdb_col_text(st, 0), arg) != 0) {
			r = failf(p, RDB_ERROR, "sender callback failed");
			goto out;
		}
	}
	if (rc != RDB_STEP_DONE)
		r = fail_sqlite(p, "senders");
out:
	rdb_st_done(st);
	return r;
}

static enum rdb_result one_int(struct rdb_policy *p, enum rdb_stmt_id which, const char *what,
                               int64_t *out)
{
	struct rdb_st *st = rdb_stmt(p->db, which);
	enum rdb_result r;

	if (rdb_step(st) == RDB_STEP_ROW && col_int(st, 0)) {
		*out = rdb_col_int64(st, 0);
		r = RDB_OK;
	} else {
		r = fail_sqlite(p, what);
	}
	rdb_st_done(st);
	return r;
}

enum rdb_result rdb_policy_data_version(struct rdb_policy *p, int64_t *out)
{
	return one_int(p, STMT_P_DATA_VERSION, "PRAGMA data_version", out);
}

enum rdb_result rdb_policy_max_window(struct rdb_policy *p, int64_t *out)
{
	return one_int(p, STMT_P_MAX_WINDOW, "longest window", out);
}

enum rdb_result rdb_policy_metrics(struct rdb_policy *p, unsigned *mask)
{
	int64_t v = 0;
	enum rdb_result r = one_int(p, STMT_P_METRICS, "metrics in use", &v);

	*mask = r == RDB_OK ? (unsigned)(v & ((1 << RDB_METRICS) - 1)) : 0;
	return r;
}

static enum rdb_result resolve(struct rdb_policy *p, const char *name, int64_t *id)
{
	if (name == NULL) {
		*id = 0;
		return RDB_OK;
	}
	return login_row(p, name, id, NULL);
}

enum rdb_result rdb_limits_get(struct rdb_policy *p, const char *name, struct rdb_limit *out,
                               size_t max, size_t *n)
{
	struct rdb_st *st = STMT(p, LIMITS_OWN);
	int64_t id;
	enum rdb_result r;

	*n = 0;
	if ((r = resolve(p, name, &id)) != RDB_OK)
		return r;
	/* one row more than fits, so that too many is an error rather than a silent cut */
	if (rdb_bind_int64(st, 1, id) != RDB_SQL_OK ||
	    rdb_bind_int64(st, 2, max < (size_t)INT64_MAX ? (int64_t)max + 1 : INT64_MAX)
	    != RDB_SQL_OK)
		r = fail_sqlite(p, "bind");
	else
		r = read_limits(p, st, out, max, n);
	rdb_st_done(st);
	return r;
}

/* Steps a bound statement that returns no row and resets it. */
#define exec(p, id, what) rdb_conn_exec(&(p)->db->c, STMT_P_##id, what)

/* Walks P_LIMITS_OVER for login `id` (0: the defaults and every login): fn(name or NULL
 * for the defaults, count, arg) for each whose limits in effect exceed RDB_LIMITS_MAX. A
 * non-zero return from fn stops the walk early (still RDB_OK): the writer wants one. */
static enum rdb_result walk_over(struct rdb_policy *p, int64_t id,
                                 int (*fn)(const char *name, int64_t n, void *arg), void *arg)
{
	struct rdb_st *st = STMT(p, LIMITS_OVER);
	enum rdb_result r = RDB_OK;
	int rc;

	if (rdb_bind_int64(st, 1, RDB_LIMITS_MAX) != RDB_SQL_OK ||
	    rdb_bind_int64(st, 2, id) != RDB_SQL_OK) {
		r = fail_sqlite(p, "bind");
		goto out;
	}
	while ((rc = rdb_step(st)) == RDB_STEP_ROW) {
		int t = rdb_col_type(st, 0);

		if ((t != RDB_COL_TEXT && t != RDB_COL_NULL) || !col_int(st, 1) ||
		    rdb_col_bytes(st, 0) > RDB_NAME_MAX) {
			r = failf(p, RDB_ERROR, "limit count has an unexpected shape");
			goto out;
		}
		if (fn(t == RDB_COL_NULL ? NULL : (const char *)rdb_col_text(st, 0),
		       rdb_col_int64(st, 1), arg) != 0)
			goto out;
	}
	if (rc != RDB_STEP_DONE)
		r = fail_sqlite(p, "counting limits");
out:
	rdb_st_done(st);
	return r;
}

enum rdb_result rdb_limits_over(struct rdb_policy *p,
                                int (*fn)(const char *name, int64_t n, void *arg), void *arg)
{
	return walk_over(p, 0, fn, arg);
}

struct first_over {
	bool found;
	bool defaults;
	int64_t n;
	char name[RDB_NAME_MAX + 1];
};

static int take_first(const char *name, int64_t n, void *arg)
{
	struct first_over *f = arg;

	f->found = true;
	f->defaults = name == NULL;
	f->n = n;
	snprintf(f->name, sizeof f->name, "%s", name ? name : "");
	return 1;
}

/* After a write to login `id` (0: the defaults, which every login may inherit): RDB_INVALID
 * with a message naming who would be over, if anyone; the caller rolls back. */
static enum rdb_result refuse_over(struct rdb_policy *p, int64_t id)
{
	struct first_over f = { .found = false };
	enum rdb_result r = walk_over(p, id, take_first, &f);

	if (r != RDB_OK || !f.found)
		return r;
	if (f.defaults)
		return failf(p, RDB_INVALID, "refused: the defaults would have %lld limits; "
		             "relay-milter accepts at most %d in all (nothing changed)",
		             (long long)f.n, RDB_LIMITS_MAX);
	return failf(p, RDB_INVALID, "refused: login %s would have %lld limits in effect (its own "
	             "plus the defaults of the metrics it sets none of); relay-milter accepts at "
	             "most %d and would tempfail all its mail (nothing changed)", f.name,
	             (long long)f.n, RDB_LIMITS_MAX);
}

/* Refuses (RDB_INVALID) a write that would leave login `id` (0: the defaults) with more
 * than RDB_LIMITS_MAX rows of its own, `adding` rows after the deletes already done. The
 * schema's trigger limits_per_login_max would stop row RDB_LIMITS_MAX + 1 anyway; counting
 * first says how many, in the words refuse_over() uses. */
static enum rdb_result refuse_own_rows(struct rdb_policy *p, const char *name, int64_t id,
                                       size_t adding)
{
	struct rdb_st *st = STMT(p, LIMITS_COUNT_OWN);
	int64_t have = 0, total;
	int rc;

	if (rdb_bind_int64(st, 1, id) != RDB_SQL_OK)
		return fail_sqlite(p, "bind");
	rc = rdb_step(st);
	if (rc == RDB_STEP_ROW)
		have = rdb_col_int64(st, 0);
	rdb_st_done(st);
	if (rc != RDB_STEP_ROW)
		return fail_sqlite(p, "counting limit rows");
	total = have + (int64_t)adding;
	if (total <= RDB_LIMITS_MAX)
		return RDB_OK;
	if (id == 0)
		return failf(p, RDB_INVALID, "refused: the defaults would have %lld limits; "
		             "relay-milter accepts at most %d in all (nothing changed)",
		             (long long)total, RDB_LIMITS_MAX);
	return failf(p, RDB_INVALID, "refused: login %s would have %lld limits of its own; "
	             "relay-milter accepts at most %d and would tempfail all its mail (nothing "
	             "changed)", name, (long long)total, RDB_LIMITS_MAX);
}

/* The writes of one rdb_limits_set() land whole (conn.h: a savepoint, or on PostgreSQL
 * outside a transaction BEGIN … COMMIT). */
static const struct rdb_unit_ids limits_unit = {
	STMT_P_SAVEPOINT, STMT_P_RELEASE, STMT_P_ROLLBACK_TO, STMT_BEGIN, STMT_COMMIT, STMT_ROLLBACK,
};

enum rdb_result rdb_limits_set(struct rdb_policy *p, const char *name,
                               const struct rdb_limit *lims, size_t n)
{
	bool touched[RDB_METRICS] = { false };
	struct rdb_unit unit;
	int64_t id;
	enum rdb_result r;

	if (n > RDB_LIMITS_MAX)
		return failf(p, RDB_INVALID, "at most %d limits", RDB_LIMITS_MAX);
	for (size_t k = 0; k < n; k++) {
		if ((unsigned)lims[k].metric >= RDB_METRICS)
			return failf(p, RDB_INVALID, "unknown metric");
		if (lims[k].window < 1 || lims[k].window > RDB_WINDOW_MAX)
			return failf(p, RDB_INVALID, "window must be 1s..366d");
		if (lims[k].max > (uint64_t)INT64_MAX)
			return failf(p, RDB_INVALID, "limit too large");
		for (size_t j = 0; j < k; j++)
			if (lims[j].metric == lims[k].metric &&
			    lims[j].window == lims[k].window)
				return failf(p, RDB_INVALID, "two %s limits over the same window",
				             rdb_metric_name(lims[k].metric));
		touched[lims[k].metric] = true;
	}
	if ((r = rdb_conn_unit_begin(&p->db->c, &unit, &limits_unit)) != RDB_OK)
		return r;
	if ((r = resolve(p, name, &id)) != RDB_OK)
		goto undo;
	for (int m = 0; m < RDB_METRICS; m++) {
		struct rdb_st *st = STMT(p, LIMITS_DEL_METRIC);

		if (!touched[m])
			continue;
		if (rdb_bind_int64(st, 1, id) != RDB_SQL_OK ||
		    rdb_bind_text(st, 2, rdb_metric_name((enum rdb_metric)m)) != RDB_SQL_OK) {
			r = fail_sqlite(p, "bind");
			goto undo;
		}
		if ((r = exec(p, LIMITS_DEL_METRIC, "deleting limits")) != RDB_OK)
			goto undo;
	}
	if ((r = refuse_own_rows(p, name, id, n)) != RDB_OK)
		goto undo;
	for (size_t k = 0; k < n; k++) {
		struct rdb_st *st = STMT(p, LIMITS_INSERT);

		if (rdb_bind_int64(st, 1, id) != RDB_SQL_OK ||
		    rdb_bind_text(st, 2, rdb_metric_name(lims[k].metric)) != RDB_SQL_OK ||
		    rdb_bind_int64(st, 3, lims[k].window) != RDB_SQL_OK ||
		    rdb_bind_int64(st, 4, (int64_t)lims[k].max) != RDB_SQL_OK) {
			r = fail_sqlite(p, "bind");
			goto undo;
		}
		if ((r = exec(p, LIMITS_INSERT, "inserting a limit")) != RDB_OK)
			goto undo;
	}
	/* Counted after the write, in the same transaction: only the whole database says how
	 * many rows a login ends up with (its other metrics, the defaults it inherits, or —
	 * for a change of the defaults — every login that inherits them). */
	r = refuse_over(p, id);
undo:
	return rdb_conn_unit_end(&p->db->c, &unit, r);
}

/* No count needed: without its own rows a login inherits only the defaults, which the
 * writer keeps within RDB_LIMITS_MAX, and without defaults a login keeps only its own. */
enum rdb_result rdb_limits_clear(struct rdb_policy *p, const char *name)
{
	struct rdb_st *st = STMT(p, LIMITS_DEL_ALL);
	int64_t id;
	enum rdb_result r;

	if ((r = resolve(p, name, &id)) != RDB_OK)
		return r;
	if (rdb_bind_int64(st, 1, id) != RDB_SQL_OK)
		return fail_sqlite(p, "bind");
	return exec(p, LIMITS_DEL_ALL, "deleting limits");
}

enum rdb_result rdb_policy_set_flags(struct rdb_policy *p, const char *name, int rate_exempt,
                                     int hold_over_limit, int64_t now)
{
	struct rdb_st *st = STMT(p, SET_FLAGS);
	int64_t id;
	enum rdb_result r;

	if ((r = login_row(p, name, &id, NULL)) != RDB_OK)
		return r;
	if (rdb_bind_int64(st, 1, id) != RDB_SQL_OK ||
	    (rate_exempt >= 0 ? rdb_bind_int(st, 2, rate_exempt != 0)
	                      : rdb_bind_null(st, 2)) != RDB_SQL_OK ||
	    (hold_over_limit >= 0 ? rdb_bind_int(st, 3, hold_over_limit != 0)
	                          : rdb_bind_null(st, 3)) != RDB_SQL_OK ||
	    rdb_bind_int64(st, 4, now) != RDB_SQL_OK)
		return fail_sqlite(p, "bind");
	return exec(p, SET_FLAGS, "setting flags");
}

enum rdb_result rdb_usage_reset_add(struct rdb_policy *p, const char *name, unsigned metrics,
                                    const char *admin, int64_t now, int64_t *id)
{
	struct rdb_st *st = STMT(p, RESET_ADD);
	struct rdb_login_policy lp;
	int64_t login_id;
	enum rdb_result r;
	int rc;

	*id = 0;
	if (metrics == 0 || metrics >= 1u << RDB_METRICS)
		return failf(p, RDB_INVALID, "no metric to reset");
	if (strlen(admin) > RDB_RESET_ADMIN_MAX)
		return failf(p, RDB_INVALID, "admin name too long");
	/* the name as stored: the milter and the state database key usage by it */
	if ((r = login_row(p, name, &login_id, &lp)) != RDB_OK)
		return r;
	/* lp.name is a local: bound texts are borrowed until the statement is done */
	if (rdb_bind_text(st, 1, lp.name) != RDB_SQL_OK ||
	    rdb_bind_int64(st, 2, (int64_t)metrics) != RDB_SQL_OK ||
	    rdb_bind_int64(st, 3, now) != RDB_SQL_OK ||
	    rdb_bind_text(st, 4, admin) != RDB_SQL_OK) {
		rdb_st_done(st);
		return fail_sqlite(p, "bind");
	}
	/* the new id: a RETURNING row on PostgreSQL, SQLite's last rowid after "done" */
	rc = rdb_step(st);
	if (rc == RDB_STEP_ROW && col_int(st, 0)) {
		*id = rdb_col_int64(st, 0);
		rc = rdb_step(st);
	} else if (rc == RDB_STEP_DONE && p->db->c.engine == RDB_ENGINE_SQLITE) {
		*id = sqlite3_last_insert_rowid(p->db->c.h);
	}
	r = rc == RDB_STEP_DONE && *id > 0 ? RDB_OK : fail_sqlite(p, "recording the reset");
	rdb_st_done(st);
	if (r != RDB_OK)
		return r;
	/* a reset older than the longest window clears nothing any more */
	st = STMT(p, RESET_PRUNE);
	if (rdb_bind_int64(st, 1, now - RDB_WINDOW_MAX) != RDB_SQL_OK) {
		rdb_st_done(st);
		return fail_sqlite(p, "bind");
	}
	return exec(p, RESET_PRUNE, "pruning old resets");
}

enum rdb_result rdb_usage_reset_foreach(struct rdb_policy *p, const char *login,
                                        int64_t after_id, int64_t since,
                                        int (*fn)(const struct rdb_usage_reset *r, void *arg),
                                        void *arg)
{
	struct rdb_st *st = STMT(p, RESET_LIST);
	struct rdb_usage_reset u;
	enum rdb_result r = RDB_OK;
	int rc;

	if (rdb_bind_int64(st, 1, after_id) != RDB_SQL_OK ||
	    rdb_bind_int64(st, 2, since) != RDB_SQL_OK ||
	    (login ? rdb_bind_text(st, 3, login) : rdb_bind_null(st, 3)) != RDB_SQL_OK) {
		r = fail_sqlite(p, "bind");
		goto out;
	}
	while ((rc = rdb_step(st)) == RDB_STEP_ROW) {
		if (!col_int(st, 0) || rdb_col_type(st, 1) != RDB_COL_TEXT ||
		    rdb_col_bytes(st, 1) > RDB_NAME_MAX || !col_int(st, 2) ||
		    !col_int(st, 3) || rdb_col_type(st, 4) != RDB_COL_TEXT ||
		    rdb_col_bytes(st, 4) > RDB_RESET_ADMIN_MAX ||
		    rdb_col_int64(st, 2) < 1 || rdb_col_int64(st, 2) > 7) {
			r = failf(p, RDB_ERROR, "usage_reset row has an unexpected shape");
			goto out;
		}
		u.id = rdb_col_int64(st, 0);
		snprintf(u.login, sizeof u.login, "%s", (const char *)rdb_col_text(st, 1));
		u.metrics = (unsigned)rdb_col_int64(st, 2);
		u.ts = rdb_col_int64(st, 3);
		snprintf(u.admin, sizeof u.admin, "%s", (const char *)rdb_col_text(st, 4));
		if (fn(&u, arg) != 0) {
			r = failf(p, RDB_ERROR, "reading resets: the caller could not take a row");
			goto out;
		}
	}
	if (rc != RDB_STEP_DONE)
		r = fail_sqlite(p, "reading resets");
out:
	rdb_st_done(st);
	return r;
}
