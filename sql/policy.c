/*
 * policy.c — milter policy lookups and limit writes on the users database (see policy.h).
 *
 * Statements are prepared once, in rdb_policy_new(), on the rdb's connection; every path
 * resets them through one cleanup label. Every value is bound; every column's type is
 * checked before use.
 */
#include "policy.h"

#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum {
	P_LOGIN,
	P_LIMITS_EFFECTIVE,
	P_SENDERS,
	P_DATA_VERSION,
	P_MAX_WINDOW,
	P_METRICS,
	P_LIMITS_OWN,
	P_LIMITS_DEL_METRIC,
	P_LIMITS_DEL_ALL,
	P_LIMITS_INSERT,
	P_SET_FLAGS,
	P_LIMITS_OVER,
	P_LIMITS_COUNT_OWN,
	P_SAVEPOINT,
	P_RELEASE,
	P_ROLLBACK_TO,
	P_COUNT_
};

static const char *const sql[P_COUNT_] = {
	[P_LOGIN] = "SELECT id, name, enabled, expires_at, rate_exempt, hold_over_limit"
	            " FROM logins WHERE name = ?1",
	[P_LIMITS_EFFECTIVE] =
		"SELECT metric, window_seconds, max_count FROM ("
		"SELECT metric, window_seconds, max_count FROM limits WHERE login_id = ?1"
		" UNION ALL"
		" SELECT metric, window_seconds, max_count FROM limits d WHERE d.login_id = 0"
		" AND NOT EXISTS (SELECT 1 FROM limits o WHERE o.login_id = ?1 AND o.metric = d.metric))"
		" ORDER BY CASE metric WHEN 'messages' THEN 0 WHEN 'recipients' THEN 1 ELSE 2 END,"
		" window_seconds LIMIT ?2",
	[P_SENDERS] = "SELECT s.pattern FROM senders s JOIN logins l ON l.id = s.login_id"
	              " WHERE l.name = ?1 ORDER BY s.pattern",
	[P_DATA_VERSION] = "PRAGMA data_version",
	[P_MAX_WINDOW] = "SELECT coalesce(max(window_seconds), 0) FROM limits",
	/* the distinct metrics as bits 1 << enum rdb_metric: the sum of distinct powers of 2 */
	[P_METRICS] = "SELECT coalesce(sum(DISTINCT CASE metric WHEN 'messages' THEN 1"
	              " WHEN 'recipients' THEN 2 WHEN 'bytes' THEN 4 ELSE 0 END), 0) FROM limits",
	[P_LIMITS_OWN] = "SELECT metric, window_seconds, max_count FROM limits WHERE login_id = ?1"
	                 " ORDER BY CASE metric WHEN 'messages' THEN 0 WHEN 'recipients' THEN 1"
	                 " ELSE 2 END, window_seconds LIMIT ?2",
	[P_LIMITS_DEL_METRIC] = "DELETE FROM limits WHERE login_id = ?1 AND metric = ?2",
	[P_LIMITS_DEL_ALL] = "DELETE FROM limits WHERE login_id = ?1",
	[P_LIMITS_INSERT] = "INSERT INTO limits (login_id, metric, window_seconds, max_count)"
	                    " VALUES (?1, ?2, ?3, ?4)",
	[P_SET_FLAGS] = "UPDATE logins SET rate_exempt = coalesce(?2, rate_exempt),"
	                " hold_over_limit = coalesce(?3, hold_over_limit), updated_at = ?4"
	                " WHERE id = ?1",
	/* What read_limits() would see for each login (?2: that login; 0: the defaults and
	 * every login): its own rows, plus the defaults of each metric it has no row for —
	 * the same rule as P_LIMITS_EFFECTIVE. Rows over ?1 are the ones the reader refuses. */
	[P_LIMITS_OVER] =
		"SELECT name, n FROM ("
		"SELECT 0 AS id, NULL AS name, count(*) AS n FROM limits WHERE login_id = 0 AND ?2 = 0"
		" UNION ALL"
		" SELECT l.id, l.name, (SELECT count(*) FROM limits o WHERE o.login_id = l.id)"
		" + (SELECT count(*) FROM limits d WHERE d.login_id = 0 AND NOT EXISTS"
		" (SELECT 1 FROM limits o WHERE o.login_id = l.id AND o.metric = d.metric))"
		" FROM logins l WHERE ?2 = 0 OR l.id = ?2)"
		" WHERE n > ?1 ORDER BY id",
	[P_LIMITS_COUNT_OWN] = "SELECT count(*) FROM limits WHERE login_id = ?1",
	[P_SAVEPOINT] = "SAVEPOINT rdb_limits",
	[P_RELEASE] = "RELEASE rdb_limits",
	[P_ROLLBACK_TO] = "ROLLBACK TO rdb_limits",
};

struct rdb_policy {
	struct rdb *db;
	sqlite3 *h;
	sqlite3_stmt *st[P_COUNT_];
	char err[256];
};

static const char *const metric_names[RDB_METRICS] = { "messages", "recipients", "bytes" };

const char *rdb_metric_name(enum rdb_metric m)
{
	return (unsigned)m < RDB_METRICS ? metric_names[m] : "?";
}

bool rdb_metric_parse(const char *s, enum rdb_metric *out)
{
	for (int m = 0; m < RDB_METRICS; m++) {
		if (strcmp(s, metric_names[m]) == 0) {
			*out = (enum rdb_metric)m;
			return true;
		}
	}
	return false;
}

__attribute__((format(printf, 3, 4)))
static enum rdb_result failf(struct rdb_policy *p, enum rdb_result r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(p->err, sizeof p->err, fmt, ap);
	va_end(ap);
	return r;
}

static enum rdb_result fail_sqlite(struct rdb_policy *p, const char *what)
{
	return failf(p, RDB_ERROR, "%s: %s", what, sqlite3_errmsg(p->h));
}

enum rdb_result rdb_policy_new(struct rdb *db, struct rdb_policy **out)
{
	struct rdb_policy *p = calloc(1, sizeof *p);

	*out = NULL;
	if (p == NULL)
		return RDB_ERROR;
	p->db = db;
	p->h = (sqlite3 *)rdb_handle(db);
	for (int k = 0; k < P_COUNT_; k++) {
		if (sqlite3_prepare_v3(p->h, sql[k], -1, SQLITE_PREPARE_PERSISTENT, &p->st[k], NULL) !=
		    SQLITE_OK) {
			rdb_policy_free(p);
			return RDB_ERROR;
		}
	}
	*out = p;
	return RDB_OK;
}

void rdb_policy_free(struct rdb_policy *p)
{
	if (p == NULL)
		return;
	for (int k = 0; k < P_COUNT_; k++)
		sqlite3_finalize(p->st[k]);
	free(p);
}

const char *rdb_policy_errmsg(const struct rdb_policy *p)
{
	return p->err;
}

static bool col_int(sqlite3_stmt *st, int c)
{
	return sqlite3_column_type(st, c) == SQLITE_INTEGER;
}

/* Looks up id and fills the login columns; RDB_NOTFOUND if absent. */
static enum rdb_result login_row(struct rdb_policy *p, const char *name, int64_t *id,
                                 struct rdb_login_policy *out)
{
	sqlite3_stmt *st = p->st[P_LOGIN];
	enum rdb_result r;
	int rc;

	if (strlen(name) > RDB_NAME_MAX)
		return failf(p, RDB_NOTFOUND, "no such login");
	if (sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC) != SQLITE_OK) {
		r = fail_sqlite(p, "bind");
		goto out;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		r = failf(p, RDB_NOTFOUND, "no such login: %s", name);
		goto out;
	}
	if (rc != SQLITE_ROW) {
		r = fail_sqlite(p, "login lookup");
		goto out;
	}
	if (!col_int(st, 0) || sqlite3_column_type(st, 1) != SQLITE_TEXT || !col_int(st, 2) ||
	    !(col_int(st, 3) || sqlite3_column_type(st, 3) == SQLITE_NULL) || !col_int(st, 4) ||
	    !col_int(st, 5) || sqlite3_column_bytes(st, 1) > RDB_NAME_MAX) {
		r = failf(p, RDB_ERROR, "login row has an unexpected shape");
		goto out;
	}
	*id = sqlite3_column_int64(st, 0);
	if (out != NULL) {
		snprintf(out->name, sizeof out->name, "%s", (const char *)sqlite3_column_text(st, 1));
		out->enabled = sqlite3_column_int64(st, 2) != 0;
		out->has_expiry = sqlite3_column_type(st, 3) == SQLITE_INTEGER;
		out->expires_at = out->has_expiry ? sqlite3_column_int64(st, 3) : 0;
		out->rate_exempt = sqlite3_column_int64(st, 4) != 0;
		out->hold_over_limit = sqlite3_column_int64(st, 5) != 0;
	}
	r = RDB_OK;
out:
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return r;
}

/* Reads metric, window, max rows of st (already bound) into out. */
static enum rdb_result read_limits(struct rdb_policy *p, sqlite3_stmt *st, struct rdb_limit *out,
                                   size_t max, size_t *n)
{
	int rc;

	*n = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		enum rdb_metric m;

		if (sqlite3_column_type(st, 0) != SQLITE_TEXT || !col_int(st, 1) || !col_int(st, 2) ||
		    !rdb_metric_parse((const char *)sqlite3_column_text(st, 0), &m) ||
		    sqlite3_column_int64(st, 1) < 1 || sqlite3_column_int64(st, 2) < 0)
			return failf(p, RDB_ERROR, "limit row has an unexpected shape");
		if (*n >= max)
			return failf(p, RDB_ERROR, "more than %zu limits in effect (relay-admin check "
			             "names the logins)", max);
		out[*n] = (struct rdb_limit){ m, sqlite3_column_int64(st, 1),
		                              (uint64_t)sqlite3_column_int64(st, 2) };
		(*n)++;
	}
	return rc == SQLITE_DONE ? RDB_OK : fail_sqlite(p, "limits");
}

enum rdb_result rdb_policy_login(struct rdb_policy *p, const char *name,
                                 struct rdb_login_policy *out)
{
	sqlite3_stmt *st = p->st[P_LIMITS_EFFECTIVE];
	int64_t id;
	enum rdb_result r;

	memset(out, 0, sizeof *out);
	if ((r = login_row(p, name, &id, out)) != RDB_OK)
		return r;
	if (sqlite3_bind_int64(st, 1, id) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 2, RDB_LIMITS_MAX + 1) != SQLITE_OK)
		r = fail_sqlite(p, "bind");
	else
		r = read_limits(p, st, out->limits, RDB_LIMITS_MAX, &out->nlimits);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return r;
}

enum rdb_result rdb_policy_senders(struct rdb_policy *p, const char *name,
                                   int (*fn)(const char *pattern, void *arg), void *arg)
{
	sqlite3_stmt *st = p->st[P_SENDERS];
	enum rdb_result r = RDB_OK;
	int rc;

	if (sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC) != SQLITE_OK) {
		r = fail_sqlite(p, "bind");
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (sqlite3_column_type(st, 0) != SQLITE_TEXT ||
		    sqlite3_column_bytes(st, 0) > RDB_PATTERN_MAX) {
			r = failf(p, RDB_ERROR, "sender row has an unexpected shape");
			goto out;
		}
		if (fn((const char *)sqlite3_column_text(st, 0), arg) != 0) {
			r = failf(p, RDB_ERROR, "sender callback failed");
			goto out;
		}
	}
	if (rc != SQLITE_DONE)
		r = fail_sqlite(p, "senders");
out:
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return r;
}

static enum rdb_result one_int(struct rdb_policy *p, int which, int64_t *out)
{
	sqlite3_stmt *st = p->st[which];
	enum rdb_result r;

	if (sqlite3_step(st) == SQLITE_ROW && col_int(st, 0)) {
		*out = sqlite3_column_int64(st, 0);
		r = RDB_OK;
	} else {
		r = fail_sqlite(p, sql[which]);
	}
	sqlite3_reset(st);
	return r;
}

enum rdb_result rdb_policy_data_version(struct rdb_policy *p, int64_t *out)
{
	return one_int(p, P_DATA_VERSION, out);
}

enum rdb_result rdb_policy_max_window(struct rdb_policy *p, int64_t *out)
{
	return one_int(p, P_MAX_WINDOW, out);
}

enum rdb_result rdb_policy_metrics(struct rdb_policy *p, unsigned *mask)
{
	int64_t v = 0;
	enum rdb_result r = one_int(p, P_METRICS, &v);

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
	sqlite3_stmt *st = p->st[P_LIMITS_OWN];
	int64_t id;
	enum rdb_result r;

	*n = 0;
	if ((r = resolve(p, name, &id)) != RDB_OK)
		return r;
	/* one row more than fits, so that too many is an error rather than a silent cut */
	if (sqlite3_bind_int64(st, 1, id) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 2, max < (size_t)INT64_MAX ? (int64_t)max + 1 : INT64_MAX)
	    != SQLITE_OK)
		r = fail_sqlite(p, "bind");
	else
		r = read_limits(p, st, out, max, n);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return r;
}

static enum rdb_result exec(struct rdb_policy *p, int which)
{
	sqlite3_stmt *st = p->st[which];
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE ? RDB_OK : fail_sqlite(p, sql[which]);
}

/* Walks P_LIMITS_OVER for login `id` (0: the defaults and every login): fn(name or NULL
 * for the defaults, count, arg) for each whose limits in effect exceed RDB_LIMITS_MAX. A
 * non-zero return from fn stops the walk early (still RDB_OK): the writer wants one. */
static enum rdb_result walk_over(struct rdb_policy *p, int64_t id,
                                 int (*fn)(const char *name, int64_t n, void *arg), void *arg)
{
	sqlite3_stmt *st = p->st[P_LIMITS_OVER];
	enum rdb_result r = RDB_OK;
	int rc;

	if (sqlite3_bind_int64(st, 1, RDB_LIMITS_MAX) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 2, id) != SQLITE_OK) {
		r = fail_sqlite(p, "bind");
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int t = sqlite3_column_type(st, 0);

		if ((t != SQLITE_TEXT && t != SQLITE_NULL) || !col_int(st, 1) ||
		    sqlite3_column_bytes(st, 0) > RDB_NAME_MAX) {
			r = failf(p, RDB_ERROR, "limit count has an unexpected shape");
			goto out;
		}
		if (fn(t == SQLITE_NULL ? NULL : (const char *)sqlite3_column_text(st, 0),
		       sqlite3_column_int64(st, 1), arg) != 0)
			goto out;
	}
	if (rc != SQLITE_DONE)
		r = fail_sqlite(p, "counting limits");
out:
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
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
	sqlite3_stmt *st = p->st[P_LIMITS_COUNT_OWN];
	int64_t have = 0, total;
	int rc;

	if (sqlite3_bind_int64(st, 1, id) != SQLITE_OK)
		return fail_sqlite(p, "bind");
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		have = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_ROW)
		return fail_sqlite(p, sql[P_LIMITS_COUNT_OWN]);
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

enum rdb_result rdb_limits_set(struct rdb_policy *p, const char *name,
                               const struct rdb_limit *lims, size_t n)
{
	bool touched[RDB_METRICS] = { false };
	int64_t id;
	enum rdb_result r;

	if (n > RDB_LIMITS_MAX)
		return failf(p, RDB_INVALID, "at most %d limits", RDB_LIMITS_MAX);
	for (size_t k = 0; k < n; k++) {
		if ((unsigned)lims[k].metric >= RDB_METRICS)
			return failf(p, RDB_INVALID, "unknown metric");
		if (lims[k].window_seconds < 1 || lims[k].window_seconds > RDB_WINDOW_MAX)
			return failf(p, RDB_INVALID, "window must be 1s..366d");
		if (lims[k].max_count > (uint64_t)INT64_MAX)
			return failf(p, RDB_INVALID, "limit too large");
		for (size_t j = 0; j < k; j++)
			if (lims[j].metric == lims[k].metric &&
			    lims[j].window_seconds == lims[k].window_seconds)
				return failf(p, RDB_INVALID, "two %s limits over the same window",
				             rdb_metric_name(lims[k].metric));
		touched[lims[k].metric] = true;
	}
	if ((r = exec(p, P_SAVEPOINT)) != RDB_OK)
		return r;
	if ((r = resolve(p, name, &id)) != RDB_OK)
		goto undo;
	for (int m = 0; m < RDB_METRICS; m++) {
		sqlite3_stmt *st = p->st[P_LIMITS_DEL_METRIC];

		if (!touched[m])
			continue;
		if (sqlite3_bind_int64(st, 1, id) != SQLITE_OK ||
		    sqlite3_bind_text(st, 2, metric_names[m], -1, SQLITE_STATIC) != SQLITE_OK) {
			r = fail_sqlite(p, "bind");
			goto undo;
		}
		if ((r = exec(p, P_LIMITS_DEL_METRIC)) != RDB_OK)
			goto undo;
	}
	if ((r = refuse_own_rows(p, name, id, n)) != RDB_OK)
		goto undo;
	for (size_t k = 0; k < n; k++) {
		sqlite3_stmt *st = p->st[P_LIMITS_INSERT];

		if (sqlite3_bind_int64(st, 1, id) != SQLITE_OK ||
		    sqlite3_bind_text(st, 2, metric_names[lims[k].metric], -1, SQLITE_STATIC) != SQLITE_OK ||
		    sqlite3_bind_int64(st, 3, lims[k].window_seconds) != SQLITE_OK ||
		    sqlite3_bind_int64(st, 4, (int64_t)lims[k].max_count) != SQLITE_OK) {
			r = fail_sqlite(p, "bind");
			goto undo;
		}
		if ((r = exec(p, P_LIMITS_INSERT)) != RDB_OK)
			goto undo;
	}
	/* Counted after the write, in the same transaction: only the whole database says how
	 * many rows a login ends up with (its other metrics, the defaults it inherits, or —
	 * for a change of the defaults — every login that inherits them). */
	if ((r = refuse_over(p, id)) != RDB_OK)
		goto undo;
	return exec(p, P_RELEASE);
undo:
	exec(p, P_ROLLBACK_TO);
	exec(p, P_RELEASE);
	return r;
}

/* No count needed: without its own rows a login inherits only the defaults, which the
 * writer keeps within RDB_LIMITS_MAX, and without defaults a login keeps only its own. */
enum rdb_result rdb_limits_clear(struct rdb_policy *p, const char *name)
{
	sqlite3_stmt *st = p->st[P_LIMITS_DEL_ALL];
	int64_t id;
	enum rdb_result r;

	if ((r = resolve(p, name, &id)) != RDB_OK)
		return r;
	if (sqlite3_bind_int64(st, 1, id) != SQLITE_OK)
		return fail_sqlite(p, "bind");
	return exec(p, P_LIMITS_DEL_ALL);
}

enum rdb_result rdb_policy_set_flags(struct rdb_policy *p, const char *name, int rate_exempt,
                                     int hold_over_limit, int64_t now)
{
	sqlite3_stmt *st = p->st[P_SET_FLAGS];
	int64_t id;
	enum rdb_result r;

	if ((r = login_row(p, name, &id, NULL)) != RDB_OK)
		return r;
	if (sqlite3_bind_int64(st, 1, id) != SQLITE_OK ||
	    (rate_exempt >= 0 ? sqlite3_bind_int(st, 2, rate_exempt != 0)
	                      : sqlite3_bind_null(st, 2)) != SQLITE_OK ||
	    (hold_over_limit >= 0 ? sqlite3_bind_int(st, 3, hold_over_limit != 0)
	                          : sqlite3_bind_null(st, 3)) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 4, now) != SQLITE_OK)
		return fail_sqlite(p, "bind");
	return exec(p, P_SET_FLAGS);
}
