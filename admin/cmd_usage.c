/*
 * cmd_usage.c — `relay-admin usage [NAME] [--json]`: for each login, the current count
 * against each of its effective limits and when room frees up, from the state database
 * (what relay-milter has committed; it writes every state_flush_ms) and the limits in the
 * users database.
 *
 * The arithmetic is relay-milter's own (sql/limit.c), over the same per-second rows the
 * milter reloads after a restart, so both agree. Messages still in flight are not visible
 * here: they are counted when accepted.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "adm.h"
#include "render.h"
#include "limits_fmt.h"
#include "policy.h"
#include "state.h"
#include "limit.h"

struct names {
	char (*v)[RDB_NAME_MAX + 1];
	size_t n, cap;
	bool oom;
};

static int collect(const struct rdb_login *l, void *arg)
{
	struct names *nm = arg;

	if (nm->n == nm->cap) {
		size_t cap = nm->cap ? nm->cap * 2 : 64;
		void *v = realloc(nm->v, cap * sizeof *nm->v);

		if (v == NULL) {
			nm->oom = true;
			return 1;
		}
		nm->v = v;
		nm->cap = cap;
	}
	snprintf(nm->v[nm->n++], RDB_NAME_MAX + 1, "%s", l->name);
	return 0;
}

/* The rows of one login, less what a counter reset (relay-admin usage reset) cleared:
 * until relay-milter applies the reset to the file (its next policy refresh) the rows are
 * still there, and a replayed crash journal could bring some back; the reset decides. */
struct rows {
	struct rdb_usage *u;
	int64_t reset_at[RDB_METRICS];  /* latest reset of each metric, INT64_MIN: none */
};

static int latest_reset(const struct rdb_usage_reset *r, void *arg)
{
	struct rows *rw = arg;

	for (int m = 0; m < RDB_METRICS; m++)
		if ((r->metrics & (1u << m)) && r->ts > rw->reset_at[m])
			rw->reset_at[m] = r->ts;
	return 0;
}

static int add_row(const char *login, int64_t ts, const uint64_t v[3], void *arg)
{
	struct rows *rw = arg;
	uint64_t left[RDB_METRICS];

	for (int m = 0; m < RDB_METRICS; m++)
		left[m] = ts <= rw->reset_at[m] ? 0 : v[m];
	return rdb_usage_add(rw->u, ts, left) ? 0 : 1;
}

static void lower(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

/* A login's part of the result: JSON fields; text "NAME[ (exempt)]  last use: ...". The
 * client address was written by the milter's user, not by us: escaped like every stored
 * string. */
static void out_login(struct adm_out *o, const struct rdb_login_policy *lp, bool have_last,
                      int64_t last, const char *client)
{
	adm_out_obj(o, NULL);
	adm_out_str(o, "login", lp->name, "%s");
	adm_out_bool(o, "rate_exempt", lp->rate_exempt, NULL);
	adm_out_text(o, "%s", lp->rate_exempt ? " (exempt)" : "");
	adm_out_bool(o, "hold_over_limit", lp->hold_over_limit, NULL);
	if (have_last) {
		adm_out_time(o, "last_use", last, "  last use: %s");
		adm_out_text(o, "%s", client[0] ? " from " : "");
		adm_out_text_safe(o, "%s", client);
	} else {
		adm_out_null(o, "last_use", "  last use: never");
	}
	adm_out_text(o, "\n");
	if (lp->nlimits == 0)
		adm_out_text(o, "  no limits\n");
	adm_out_arr(o, "limits");
}

/* One limit: the count against it and when room frees up (null/"limit is 0": never). */
static void out_limit(struct adm_out *o, const struct rdb_limit *l, const char *spec,
                      uint64_t used, int64_t wait)
{
	char room[48];

	adm_out_obj(o, NULL);
	adm_out_str(o, "metric", rdb_metric_name(l->metric), NULL);
	adm_out_str(o, "spec", spec, NULL);
	adm_out_int(o, "max", (int64_t)l->max, NULL);
	adm_out_int(o, "window_seconds", l->window, NULL);
	adm_out_int(o, "used", used > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)used, NULL);
	if (wait == RDB_WAIT_NEVER)
		adm_out_null(o, "room_in_seconds", NULL);
	else
		adm_out_int(o, "room_in_seconds", wait, NULL);
	adm_out_end(o);
	if (wait == 0)
		snprintf(room, sizeof room, "room now");
	else if (wait == RDB_WAIT_NEVER)
		snprintf(room, sizeof room, "limit is 0");
	else
		snprintf(room, sizeof room, "room in %" PRId64 "s", wait);
	adm_out_text(o, "  %-10s %12" PRIu64 " of %-14s %s\n", rdb_metric_name(l->metric), used,
	             spec, room);
}

static int one(struct adm_ctx *ctx, struct adm_out *o, struct rdb_policy *pol,
               struct rdb_state *st, const char *name)
{
	struct rdb_login_policy lp;
	struct rdb_usage *u;
	struct rows rw = { .reset_at = { INT64_MIN, INT64_MIN, INT64_MIN } };
	int64_t since = ctx->now - RDB_WINDOW_MAX, last = 0;
	char key[RDB_NAME_MAX + 1], client[64] = "";
	enum rdb_result r;
	bool have_last;

	if ((r = rdb_policy_login(pol, name, &lp)) != RDB_OK) {
		adm_err(ctx, "%s", rdb_policy_errmsg(pol));
		return adm_exit_for(r);
	}
	snprintf(key, sizeof key, "%s", lp.name);
	lower(key);
	if ((r = rdb_usage_reset_foreach(pol, lp.name, 0, since, latest_reset, &rw)) != RDB_OK) {
		adm_err(ctx, "%s", rdb_policy_errmsg(pol));
		return adm_exit_for(r);
	}
	u = rw.u = rdb_usage_new();
	if (u == NULL) {
		adm_err(ctx, "out of memory");
		return ADM_EXIT_FAIL;
	}
	if ((r = rdb_state_usage_foreach(st, key, since, add_row, &rw)) != RDB_OK ||
	    ((r = rdb_state_last_use(st, key, &last, client, sizeof client)) != RDB_OK &&
	     r != RDB_NOTFOUND)) {
		adm_err(ctx, "state database: %s", rdb_state_errmsg(st));
		rdb_usage_free(u);
		return ADM_EXIT_DB;
	}
	have_last = r == RDB_OK;
	out_login(o, &lp, have_last, last, client);
	for (size_t k = 0; k < lp.nlimits; k++) {
		const struct rdb_limit *l = &lp.limits[k];
		uint64_t used = rdb_usage_sum(u, l->metric, l->window, ctx->now);
		int64_t wait = rdb_window_wait(u, l, 0, 1, ctx->now);
		char spec[64];

		adm_limit_format(&lp.limits[k], spec, sizeof spec);
		out_limit(o, &lp.limits[k], spec, used, wait);
	}
	adm_out_end(o);
	adm_out_end(o);
	rdb_usage_free(u);
	return ADM_EXIT_OK;
}

int adm_cmd_usage(struct adm_ctx *ctx, int argc, char **argv)
{
	struct names nm = { 0 };
	struct rdb *db = NULL;
	struct rdb_policy *pol = NULL;
	struct rdb_state *st = NULL;
	struct adm_out o;
	char err[512];
	enum rdb_result r;
	int rc;

	if ((rc = adm_json_name_args(ctx, argc, argv)) != ADM_EXIT_OK)
		return rc;
	if (argc - optind == 1 && (rc = adm_check_name(ctx, argv[optind])) != ADM_EXIT_OK)
		return rc;
	if ((rc = adm_open_policy(ctx, RDB_READONLY, &db, &pol)) != ADM_EXIT_OK)
		return rc;
	if (rdb_state_open(ctx->state_db_path, RDB_READONLY, &st, err, sizeof err) != RDB_OK) {
		adm_err(ctx, "%s", err);
		rc = ADM_EXIT_DB;
		goto out;
	}
	if (argc - optind == 0) {
		if ((r = rdb_login_foreach(db, collect, &nm, NULL)) != RDB_OK || nm.oom) {
			rc = nm.oom ? ADM_EXIT_FAIL : adm_rdb_fail(ctx, db, r);
			goto out;
		}
	} else if (collect(&(struct rdb_login){ 0 }, &nm) == 0) {
		snprintf(nm.v[0], RDB_NAME_MAX + 1, "%s", argv[optind]);
	}
	adm_out_begin(&o, ctx);
	adm_out_arr(&o, NULL);
	rc = ADM_EXIT_OK;
	for (size_t k = 0; k < nm.n && rc == ADM_EXIT_OK; k++)
		rc = one(ctx, &o, pol, st, nm.v[k]);
	adm_out_finish(&o);
out:
	free(nm.v);
	rdb_state_close(st);
	rdb_policy_free(pol);
	rdb_close(db);
	return rc;
}
