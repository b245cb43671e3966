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

static int add_row(const char *login, int64_t ts, const uint64_t v[3], void *arg)
{
	return rdb_usage_add(arg, ts, v) ? 0 : 1;
}

static void lower(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

static int one(struct adm_ctx *ctx, struct adm_json *j, struct rdb_policy *pol,
               struct rdb_state *st, const char *name)
{
	struct rdb_login_policy lp;
	struct rdb_usage *u;
	int64_t since = ctx->now - RDB_WINDOW_MAX, last = 0;
	char key[RDB_NAME_MAX + 1], client[64] = "", when[ADM_TIME_LEN];
	enum rdb_result r;
	bool have_last;

	if ((r = rdb_policy_login(pol, name, &lp)) != RDB_OK) {
		adm_err(ctx, "%s", rdb_policy_errmsg(pol));
		return adm_exit_for(r);
	}
	snprintf(key, sizeof key, "%s", lp.name);
	lower(key);
	u = rdb_usage_new();
	if (u == NULL) {
		adm_err(ctx, "out of memory");
		return ADM_EXIT_FAIL;
	}
	if ((r = rdb_state_usage_foreach(st, key, since, add_row, u)) != RDB_OK ||
	    ((r = rdb_state_last_use(st, key, &last, client, sizeof client)) != RDB_OK &&
	     r != RDB_NOTFOUND)) {
		adm_err(ctx, "state database: %s", rdb_state_errmsg(st));
		rdb_usage_free(u);
		return ADM_EXIT_DB;
	}
	have_last = r == RDB_OK;
	if (ctx->json) {
		adm_json_obj(j);
		adm_json_key(j, "login");
		adm_json_str(j, lp.name);
		adm_json_key(j, "rate_exempt");
		adm_json_bool(j, lp.rate_exempt);
		adm_json_key(j, "hold_over_limit");
		adm_json_bool(j, lp.hold_over_limit);
		adm_json_key(j, "last_use");
		if (have_last)
			adm_json_time(j, last);
		else
			adm_json_null(j);
		adm_json_key(j, "limits");
		adm_json_arr(j);
	} else {
		if (have_last)
			adm_format_time(last, when);
		fprintf(ctx->out, "%s%s  last use: %s%s", lp.name, lp.rate_exempt ? " (exempt)" : "",
		        have_last ? when : "never", have_last && client[0] ? " from " : "");
		/* written by the milter's user, not by us: escaped like every stored string */
		if (have_last)
			adm_print_safe(ctx->out, client);
		fputc('\n', ctx->out);
		if (lp.nlimits == 0)
			fprintf(ctx->out, "  no limits\n");
	}
	for (size_t k = 0; k < lp.nlimits; k++) {
		const struct rdb_limit *l = &lp.limits[k];
		uint64_t used = rdb_usage_sum(u, l->metric, l->window, ctx->now);
		int64_t wait = rdb_window_wait(u, l, 0, 1, ctx->now);
		char spec[64];

		adm_limit_format(&lp.limits[k], spec, sizeof spec);
		if (ctx->json) {
			adm_json_obj(j);
			adm_json_key(j, "metric");
			adm_json_str(j, rdb_metric_name(lp.limits[k].metric));
			adm_json_key(j, "spec");
			adm_json_str(j, spec);
			adm_json_key(j, "max");
			adm_json_int(j, (int64_t)l->max);
			adm_json_key(j, "window_seconds");
			adm_json_int(j, l->window);
			adm_json_key(j, "used");
			adm_json_int(j, used > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)used);
			adm_json_key(j, "room_in_seconds");
			if (wait == RDB_WAIT_NEVER)
				adm_json_null(j);
			else
				adm_json_int(j, wait);
			adm_json_end(j);
		} else {
			char room[48];

			if (wait == 0)
				snprintf(room, sizeof room, "room now");
			else if (wait == RDB_WAIT_NEVER)
				snprintf(room, sizeof room, "limit is 0");
			else
				snprintf(room, sizeof room, "room in %" PRId64 "s", wait);
			fprintf(ctx->out, "  %-10s %12" PRIu64 " of %-14s %s\n",
			        rdb_metric_name(lp.limits[k].metric), used, spec, room);
		}
	}
	if (ctx->json) {
		adm_json_end(j);
		adm_json_end(j);
	}
	rdb_usage_free(u);
	return ADM_EXIT_OK;
}

static int usage_run(struct adm_ctx *ctx, int argc, char **argv)
{
	struct names nm = { 0 };
	struct rdb *db = NULL;
	struct rdb_policy *pol = NULL;
	struct rdb_state *st = NULL;
	struct adm_json j;
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
	if (ctx->json) {
		adm_json_init(&j, ctx->out);
		adm_json_arr(&j);
	}
	rc = ADM_EXIT_OK;
	for (size_t k = 0; k < nm.n && rc == ADM_EXIT_OK; k++)
		rc = one(ctx, &j, pol, st, nm.v[k]);
	if (ctx->json) {
		adm_json_end(&j);
		adm_json_finish(&j);
	}
out:
	free(nm.v);
	rdb_state_close(st);
	rdb_policy_free(pol);
	rdb_close(db);
	return rc;
}

/* Buffered: on failure stdout holds nothing, never a partial document. */
int adm_cmd_usage(struct adm_ctx *ctx, int argc, char **argv)
{
	return adm_run_buffered(ctx, usage_run, argc, argv);
}
