/*
 * admit.c — exact admission in a PostgreSQL state database (see admit.h), on the state
 * kind's statements (state.c: S_A_*) through the engine-neutral API of the connection
 * core, which connects, prepares, reconnects after a lost connection and maps every
 * failure to RDB_ERROR (pgconn.c).
 *
 * One check is one transaction: the advisory lock with now(), the window sums of every
 * limit (one query over unnest() of the windows), the other reservations, then the
 * write. Only a refusal reads the login's usage rows, to compute the time until it fits
 * with rdb_limits_wait() — the SQLite path's arithmetic on the database's numbers.
 */
#include "admit.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "errbuf.h"
#include "state-private.h"

static uint64_t sat_add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static int64_t clamp64(uint64_t v)
{
	return v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v;
}

static enum rdb_result shape(struct rdb_conn *c, const char *what)
{
	return rdb_conn_fail(c, RDB_ERROR, "state database: %s row has an unexpected shape", what);
}

/* A one-row read: RDB_OK with the statement on its row (the caller reads, then done). */
static enum rdb_result one_row(struct rdb_conn *c, struct rdb_st *s, const char *what)
{
	int rc = rdb_step(s);

	if (rc == RDB_STEP_ROW)
		return RDB_OK;
	rdb_st_done(s);
	if (rc == RDB_STEP_DONE)
		return shape(c, what);
	return rdb_conn_fail_db(c, what);
}

static bool cols_int(struct rdb_st *s, int from, int to)
{
	for (int i = from; i <= to; i++)
		if (rdb_col_type(s, i) != RDB_COL_INT || rdb_col_int64(s, i) < 0)
			return false;
	return true;
}

/* The window sums of every limit as of the database's now (one row per limit, in order). */
static enum rdb_result window_sums(struct rdb_conn *c, const char *login,
                                   const struct rdb_limit *lims, size_t n,
                                   uint64_t used[][RDB_METRICS])
{
	char arr[RDB_LIMITS_MAX * 24 + 4];
	struct rdb_st *s = rdb_conn_q(c, S_A_SUMS);
	size_t o = 0, rows = 0;
	enum rdb_result r = RDB_OK;
	int rc;

	arr[o++] = '{';
	for (size_t k = 0; k < n; k++)
		o += (size_t)snprintf(arr + o, sizeof arr - o, "%s%" PRId64, k ? "," : "",
		                      lims[k].window);
	snprintf(arr + o, sizeof arr - o, "}");
	if (rdb_bind_text(s, 1, login) != RDB_SQL_OK || rdb_bind_text(s, 2, arr) != RDB_SQL_OK) {
		rdb_st_done(s);
		return rdb_conn_fail_db(c, "binding window sums");
	}
	while ((rc = rdb_step(s)) == RDB_STEP_ROW && r == RDB_OK) {
		if (rows >= n || rdb_col_count(s) != 4 || !cols_int(s, 0, 3)) {
			r = shape(c, "window sum");
			break;
		}
		for (int m = 0; m < RDB_METRICS; m++)
			used[rows][m] = (uint64_t)rdb_col_int64(s, 1 + m);
		rows++;
	}
	if (r == RDB_OK && rc != RDB_STEP_DONE)
		r = rdb_conn_fail_db(c, "reading window sums");
	else if (r == RDB_OK && rows != n)
		r = shape(c, "window sum");
	rdb_st_done(s);
	return r;
}

/* The time until `need` fits, from the login's rows (a refusal only). */
static enum rdb_result refusal_wait(struct rdb_conn *c, const char *login,
                                    const struct rdb_limit *lims, size_t n,
                                    const uint64_t reserved[RDB_METRICS],
                                    const uint64_t need[RDB_METRICS], int64_t now,
                                    int64_t *wait, size_t *which)
{
	struct rdb_usage *u = rdb_usage_new();
	struct rdb_st *s = rdb_conn_q(c, S_A_ROWS);
	int64_t longest = 1;
	enum rdb_result r = RDB_OK;
	int rc = RDB_STEP_DONE;

	if (u == NULL)
		return rdb_conn_fail(c, RDB_ERROR, "out of memory");
	for (size_t k = 0; k < n; k++)
		if (need[lims[k].metric] > 0 && lims[k].window > longest)
			longest = lims[k].window;
	if (rdb_bind_text(s, 1, login) != RDB_SQL_OK || rdb_bind_int64(s, 2, longest) != RDB_SQL_OK)
		r = rdb_conn_fail_db(c, "binding usage rows");
	while (r == RDB_OK && (rc = rdb_step(s)) == RDB_STEP_ROW) {
		uint64_t v[3];

		if (rdb_col_count(s) != 4 || rdb_col_type(s, 0) != RDB_COL_INT || !cols_int(s, 1, 3)) {
			r = shape(c, "usage");
			break;
		}
		for (int m = 0; m < RDB_METRICS; m++)
			v[m] = (uint64_t)rdb_col_int64(s, 1 + m);
		if (!rdb_usage_add(u, rdb_col_int64(s, 0), v))
			r = rdb_conn_fail(c, RDB_ERROR, "out of memory");
	}
	if (r == RDB_OK && rc != RDB_STEP_DONE)
		r = rdb_conn_fail_db(c, "reading usage rows");
	rdb_st_done(s);
	if (r == RDB_OK) {
		*wait = rdb_limits_wait(u, lims, n, reserved, need, now, which);
		if (*wait == 0)
			*wait = 1; /* the sums said no: a second from now is the earliest retry */
	}
	rdb_usage_free(u);
	return r;
}

/* Does any limit count a metric `need` asks for? */
static bool touches_any(const struct rdb_limit *lims, size_t n, const uint64_t need[RDB_METRICS])
{
	for (size_t k = 0; k < n; k++)
		if (need[lims[k].metric] > 0)
			return true;
	return false;
}

/* Does `need` fit under every limit it touches, given the sums and the reservations? */
static bool fits(const struct rdb_limit *lims, size_t n, uint64_t used[][RDB_METRICS],
                 const uint64_t reserved[RDB_METRICS], const uint64_t need[RDB_METRICS],
                 size_t *which)
{
	for (size_t k = 0; k < n; k++) {
		enum rdb_metric m = lims[k].metric;

		if (need[m] == 0)
			continue;
		if (sat_add(sat_add(used[k][m], reserved[m]), need[m]) > lims[k].max) {
			*which = k;
			return false;
		}
	}
	return true;
}

/* The check, inside the caller's transaction: lock, clock, sums, reservations. own[] is
 * what this message holds; it counts as reserved when count_own (a later check of the
 * same message, as in milter/rate.c) and its row still lives (*own_live). */
static enum rdb_result check(struct rdb_conn *c, const char *login,
                             const struct rdb_limit *lims, size_t n, int64_t resv_id,
                             const uint64_t own[RDB_METRICS], bool count_own,
                             const uint64_t need[RDB_METRICS], bool *own_live, int64_t *wait,
                             size_t *which)
{
	uint64_t used[RDB_LIMITS_MAX][RDB_METRICS], reserved[RDB_METRICS];
	struct rdb_st *s;
	int64_t now, live;
	enum rdb_result r;

	if (n > RDB_LIMITS_MAX)
		return rdb_conn_fail(c, RDB_ERROR, "more than %d limits", RDB_LIMITS_MAX);
	s = rdb_conn_q(c, S_A_LOCK);
	if (rdb_bind_text(s, 1, login) != RDB_SQL_OK) {
		rdb_st_done(s);
		return rdb_conn_fail_db(c, "binding the login lock");
	}
	if ((r = one_row(c, s, "taking the login's lock")) != RDB_OK)
		return r;
	if (rdb_col_type(s, 1) != RDB_COL_INT) {
		rdb_st_done(s);
		return shape(c, "clock");
	}
	now = rdb_col_int64(s, 1);
	rdb_st_done(s);
	if (window_sums(c, login, lims, n, used) != RDB_OK)
		return RDB_ERROR;
	s = rdb_conn_q(c, S_A_RESERVED);
	if (rdb_bind_text(s, 1, login) != RDB_SQL_OK || rdb_bind_int64(s, 2, resv_id) != RDB_SQL_OK) {
		rdb_st_done(s);
		return rdb_conn_fail_db(c, "binding reservations");
	}
	if ((r = one_row(c, s, "reading reservations")) != RDB_OK)
		return r;
	if (rdb_col_count(s) != 4 || !cols_int(s, 0, 3)) {
		rdb_st_done(s);
		return shape(c, "reservation sum");
	}
	for (int m = 0; m < RDB_METRICS; m++)
		reserved[m] = (uint64_t)rdb_col_int64(s, m);
	live = rdb_col_int64(s, 3);
	rdb_st_done(s);
	*own_live = resv_id > 0 && live > 0;
	if (count_own && *own_live)
		for (int m = 0; m < RDB_METRICS; m++)
			reserved[m] = sat_add(reserved[m], own[m]);
	*wait = 0;
	if (fits(lims, n, used, reserved, need, which))
		return RDB_OK;
	return refusal_wait(c, login, lims, n, reserved, need, now, wait, which);
}

/* Commits what went well, rolls back what did not (also a refusal: nothing to keep). */
static enum rdb_result finish(struct rdb_state *st, enum rdb_result r)
{
	if (r == RDB_OK && rdb_state_commit(st) == RDB_OK)
		return RDB_OK;
	rdb_state_rollback(st);
	return RDB_ERROR;
}

/* A refusal: nothing was written; rolling back ends the transaction and its lock. */
static enum rdb_result refused(struct rdb_state *st)
{
	rdb_state_rollback(st);
	return RDB_OK;
}

static enum rdb_result exec_id(struct rdb_conn *c, int id, int64_t v, const char *what)
{
	struct rdb_st *s = rdb_conn_q(c, (size_t)id);
	int rc;

	if (rdb_bind_int64(s, 1, v) != RDB_SQL_OK) {
		rdb_st_done(s);
		return rdb_conn_fail_db(c, what);
	}
	rc = rdb_step(s);
	rdb_st_done(s);
	return rc == RDB_STEP_DONE ? RDB_OK : rdb_conn_fail_db(c, what);
}

/* Writes the admitted reservation: the row extended, or a new row for everything this
 * message holds (its first check, or its row expired meanwhile). */
static enum rdb_result reserve_write(struct rdb_conn *c, const char *login, const char *node,
                                     int64_t ttl, bool own_live, int64_t *resv_id,
                                     const uint64_t total[RDB_METRICS])
{
	struct rdb_st *s;
	int64_t newid;
	enum rdb_result r;
	int rc;

	if (own_live) {
		s = rdb_conn_q(c, S_A_UPDATE);
		if (rdb_bind_int64(s, 1, *resv_id) != RDB_SQL_OK ||
		    rdb_bind_int64(s, 2, clamp64(total[0])) != RDB_SQL_OK ||
		    rdb_bind_int64(s, 3, clamp64(total[1])) != RDB_SQL_OK ||
		    rdb_bind_int64(s, 4, clamp64(total[2])) != RDB_SQL_OK ||
		    rdb_bind_int64(s, 5, ttl) != RDB_SQL_OK) {
			rdb_st_done(s);
			return rdb_conn_fail_db(c, "binding a reservation");
		}
		rc = rdb_step(s);
		rdb_st_done(s);
		return rc == RDB_STEP_DONE ? RDB_OK : rdb_conn_fail_db(c, "extending a reservation");
	}
	s = rdb_conn_q(c, S_A_INSERT);
	if (rdb_bind_text(s, 1, login) != RDB_SQL_OK || rdb_bind_text(s, 2, node) != RDB_SQL_OK ||
	    rdb_bind_int64(s, 3, clamp64(total[0])) != RDB_SQL_OK ||
	    rdb_bind_int64(s, 4, clamp64(total[1])) != RDB_SQL_OK ||
	    rdb_bind_int64(s, 5, clamp64(total[2])) != RDB_SQL_OK ||
	    rdb_bind_int64(s, 6, ttl) != RDB_SQL_OK) {
		rdb_st_done(s);
		return rdb_conn_fail_db(c, "binding a reservation");
	}
	if ((r = one_row(c, s, "writing a reservation")) != RDB_OK)
		return r;
	if (rdb_col_type(s, 0) != RDB_COL_INT || (newid = rdb_col_int64(s, 0)) <= 0) {
		rdb_st_done(s);
		return shape(c, "reservation");
	}
	rdb_st_done(s);
	/* the expired row: gone from every count already, delete it */
	if (*resv_id > 0 && exec_id(c, S_A_DELETE, *resv_id, "deleting a reservation") != RDB_OK)
		return RDB_ERROR;
	*resv_id = newid;
	return RDB_OK;
}

/* The reservation becomes usage dated now(): {1, recipients, bytes} as sent. */
static enum rdb_result count_write(struct rdb_conn *c, const char *login, int64_t resv_id,
                                   const uint64_t actual[RDB_METRICS])
{
	struct rdb_st *s;
	int rc;

	if (resv_id > 0 && exec_id(c, S_A_DELETE, resv_id, "deleting a reservation") != RDB_OK)
		return RDB_ERROR;
	s = rdb_conn_q(c, S_A_COUNT);
	if (rdb_bind_text(s, 1, login) != RDB_SQL_OK ||
	    rdb_bind_int64(s, 2, clamp64(actual[0])) != RDB_SQL_OK ||
	    rdb_bind_int64(s, 3, clamp64(actual[1])) != RDB_SQL_OK ||
	    rdb_bind_int64(s, 4, clamp64(actual[2])) != RDB_SQL_OK) {
		rdb_st_done(s);
		return rdb_conn_fail_db(c, "binding usage");
	}
	rc = rdb_step(s);
	rdb_st_done(s);
	return rc == RDB_STEP_DONE ? RDB_OK : rdb_conn_fail_db(c, "counting a message");
}

static enum rdb_result no_admission(struct rdb_conn *c)
{
	return rdb_conn_fail(c, RDB_ERROR, "admission in the database needs a PostgreSQL state"
	                     " database");
}

enum rdb_result rdb_admit_reserve(struct rdb_state *st, const char *login, const char *node,
                                  int64_t ttl, const struct rdb_limit *lims, size_t n,
                                  const uint64_t need[RDB_METRICS], int64_t *resv_id,
                                  uint64_t resv_v[RDB_METRICS], int64_t *wait, size_t *which)
{
	struct rdb_conn *c = rdb_state_conn(st);
	uint64_t total[RDB_METRICS];
	bool own_live = false;
	enum rdb_result r;

	*wait = 0;
	if (!rdb_state_shared(st))
		return no_admission(c);
	/* No limit of this login counts what is asked for (e.g. RCPT without a recipient
	 * limit): nothing to decide, so no round trip. The amount is still held in resv_v, and
	 * reaches the row with the next write: the row never holds less than the message. */
	if (!touches_any(lims, n, need)) {
		for (int m = 0; m < RDB_METRICS; m++)
			resv_v[m] = sat_add(resv_v[m], need[m]);
		return RDB_OK;
	}
	if (rdb_state_begin(st) != RDB_OK)
		return finish(st, RDB_ERROR);
	r = check(c, login, lims, n, *resv_id, resv_v, true, need, &own_live, wait, which);
	if (r != RDB_OK)
		return finish(st, r);
	if (*wait != 0)
		return refused(st);
	/* the row holds the message's total; a new row (first check, or the old one expired)
	 * takes over everything the message held before */
	for (int m = 0; m < RDB_METRICS; m++)
		total[m] = sat_add(resv_v[m], need[m]);
	r = finish(st, reserve_write(c, login, node, ttl, own_live, resv_id, total));
	if (r == RDB_OK)
		memcpy(resv_v, total, sizeof total);
	return r;
}

enum rdb_result rdb_admit_commit(struct rdb_state *st, const char *login,
                                 const struct rdb_limit *lims, size_t n,
                                 const uint64_t actual[RDB_METRICS], int64_t *resv_id,
                                 uint64_t resv_v[RDB_METRICS], int64_t *wait, size_t *which)
{
	struct rdb_conn *c = rdb_state_conn(st);
	const uint64_t none[RDB_METRICS] = { 0, 0, 0 };
	uint64_t bytes[RDB_METRICS] = { 0, 0, actual[RDB_METRIC_BYTES] };
	bool own_live = false, again;
	enum rdb_result r;

	*wait = 0;
	if (!rdb_state_shared(st))
		return no_admission(c);
	if (rdb_state_begin(st) != RDB_OK)
		return finish(st, RDB_ERROR);
	/* the actual bytes replace the reserved ones (the others' reservations count) */
	r = check(c, login, lims, n, *resv_id, none, false, bytes, &own_live, wait, which);
	/* a reservation that expired no longer held anything: the whole message is new */
	if (r == RDB_OK && *wait == 0 && !own_live)
		r = check(c, login, lims, n, *resv_id, none, false, actual, &again, wait, which);
	if (r != RDB_OK)
		return finish(st, r);
	if (*wait != 0)
		return refused(st);
	r = finish(st, count_write(c, login, *resv_id, actual));
	if (r == RDB_OK) {
		*resv_id = 0;
		memset(resv_v, 0, RDB_METRICS * sizeof resv_v[0]);
	}
	return r;
}

enum rdb_result rdb_admit_release(struct rdb_state *st, int64_t *resv_id,
                                  uint64_t resv_v[RDB_METRICS])
{
	struct rdb_conn *c = rdb_state_conn(st);
	enum rdb_result r = RDB_OK;

	if (!rdb_state_shared(st))
		return no_admission(c);
	/* on its own (autocommit); zeroed whatever happens: a row the database did not
	 * delete expires on its own */
	if (*resv_id > 0)
		r = exec_id(c, S_A_DELETE, *resv_id, "releasing a reservation");
	*resv_id = 0;
	memset(resv_v, 0, RDB_METRICS * sizeof resv_v[0]);
	return r;
}
