/*
 * cmd_limit.c — `relay-admin limit set|show|clear`: per-login rate limits and their
 * defaults, plus the per-login knobs rate_exempt and hold_over_limit.
 *
 *   limit set (NAME|--default) [--messages N/PERIOD]... [--recipients N/PERIOD]...
 *             [--bytes SIZE/PERIOD]... [--exempt|--no-exempt] [--hold|--no-hold]
 *   limit show [NAME]
 *   limit clear (NAME|--default)
 *
 * `clear` removes limit rows only; the login's flags (--hold, --exempt) stay, and clear
 * says so with the command that clears each (`limit set --no-hold`, `--no-exempt`).
 * `set` replaces the rows of each metric it names (other metrics keep theirs), all in one
 * transaction; everything is validated before the database is opened. relay-milter sees
 * the change within its policy_refresh_ms, without a restart.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adm.h"
#include "render.h"
#include "limits_fmt.h"
#include "policy.h"
#include "limit.h"

static int policy_fail(struct adm_ctx *ctx, struct rdb_policy *p, enum rdb_result r)
{
	adm_err(ctx, "%s", rdb_policy_errmsg(p));
	return adm_exit_for(r);
}

/* The NAME|--default operand of `set` and `clear`, after the options: *name is the login,
 * or NULL for the defaults. Returns ADM_EXIT_OK or the usage error. */
static int target_arg(const struct adm_ctx *ctx, int argc, char **argv, bool defaults,
                      const char **name)
{
	*name = NULL;
	if (defaults ? argc - optind != 0 : argc - optind != 1)
		return adm_usage(ctx, "expected a login name or --default");
	if (defaults)
		return ADM_EXIT_OK;
	*name = argv[optind];
	return adm_check_name(ctx, *name);
}

/* `"key": "NAME"`, or null for the defaults (JSON only). */
static void out_target(struct adm_out *o, const char *key, const char *name)
{
	if (name)
		adm_out_str(o, key, name, NULL);
	else
		adm_out_null(o, key, NULL);
}

/* Limits: in JSON every row under `key`; in text (label not NULL) one line per metric,
 * "  LABEL METRIC SPEC, SPEC", or "(none)". */
static void out_limits(struct adm_out *o, const char *key, const char *label,
                       const struct rdb_limit *l, size_t n)
{
	char buf[64];

	adm_out_arr(o, key);
	for (size_t k = 0; k < n; k++) {
		adm_limit_format(&l[k], buf, sizeof buf);
		adm_out_obj(o, NULL);
		adm_out_str(o, "metric", rdb_metric_name(l[k].metric), NULL);
		adm_out_int(o, "max", (int64_t)l[k].max, NULL);
		adm_out_int(o, "window_seconds", l[k].window, NULL);
		adm_out_str(o, "spec", buf, NULL);
		adm_out_end(o);
	}
	adm_out_end(o);
	if (label == NULL)
		return;
	if (n == 0)
		adm_out_text(o, "  %-10s (none)\n", label);
	for (int m = 0; m < RDB_METRICS; m++) {
		bool any = false;

		for (size_t k = 0; k < n; k++) {
			if (l[k].metric != (enum rdb_metric)m)
				continue;
			adm_limit_format(&l[k], buf, sizeof buf);
			if (!any)
				adm_out_text(o, "  %-10s %-11s %s", label, rdb_metric_name(l[k].metric), buf);
			else
				adm_out_text(o, ", %s", buf);
			any = true;
		}
		if (any)
			adm_out_text(o, "\n");
	}
}

/* What `limit set` was asked to do, validated before the database is opened. */
struct set_req {
	struct rdb_limit lims[RDB_LIMITS_MAX];
	size_t n;
	const char *name;      /* NULL: the defaults */
	int exempt, hold;      /* -1: unchanged */
};

static int set_options(struct adm_ctx *ctx, int argc, char **argv, struct set_req *q)
{
	static const struct option opts[] = {
		{ "default", no_argument, NULL, 'D' },
		{ "messages", required_argument, NULL, 'm' },
		{ "recipients", required_argument, NULL, 'r' },
		{ "bytes", required_argument, NULL, 'b' },
		{ "exempt", no_argument, NULL, 'e' },
		{ "no-exempt", no_argument, NULL, 'E' },
		{ "hold", no_argument, NULL, 'o' },
		{ "no-hold", no_argument, NULL, 'O' },
		{ "json", no_argument, NULL, 'J' },
		{ NULL, 0, NULL, 0 },
	};
	bool defaults = false;
	char why[128];
	int opt, rc;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		enum rdb_metric m;

		switch (opt) {
		case 'D': defaults = true; continue;
		case 'J': ctx->json = true; continue;
		case 'e': q->exempt = 1; continue;
		case 'E': q->exempt = 0; continue;
		case 'o': q->hold = 1; continue;
		case 'O': q->hold = 0; continue;
		case 'm': m = RDB_METRIC_MESSAGES; break;
		case 'r': m = RDB_METRIC_RECIPIENTS; break;
		case 'b': m = RDB_METRIC_BYTES; break;
		default: return adm_usage(ctx, "unknown option: %s", argv[optind - 1]);
		}
		if (q->n == RDB_LIMITS_MAX)
			return adm_usage(ctx, "at most %d limits", RDB_LIMITS_MAX);
		if (!adm_limit_parse(optarg, m, &q->lims[q->n], why, sizeof why))
			return adm_usage(ctx, "--%s %s: %s", rdb_metric_name(m), optarg, why);
		for (size_t k = 0; k < q->n; k++)
			if (q->lims[k].metric == m &&
			    q->lims[k].window == q->lims[q->n].window)
				return adm_usage(ctx, "two --%s limits over the same period", rdb_metric_name(m));
		q->n++;
	}
	if ((rc = target_arg(ctx, argc, argv, defaults, &q->name)) != ADM_EXIT_OK)
		return rc;
	if (defaults && (q->exempt >= 0 || q->hold >= 0))
		return adm_usage(ctx, "--exempt and --hold apply to a login, not to --default");
	if (q->n == 0 && q->exempt < 0 && q->hold < 0)
		return adm_usage(ctx, "nothing to set: give --messages, --recipients, --bytes, --exempt or --hold");
	return ADM_EXIT_OK;
}

/* The rows and the flags in one transaction. Returns an exit code, having said why. */
static int set_write(struct adm_ctx *ctx, struct rdb *db, struct rdb_policy *pol,
                     const struct set_req *q)
{
	enum rdb_result r = rdb_begin(db);
	int rc;

	if (r != RDB_OK)
		return adm_rdb_fail(ctx, db, r);
	if (q->n > 0 && (r = rdb_limits_set(pol, q->name, q->lims, q->n)) != RDB_OK)
		goto policy;
	if ((q->exempt >= 0 || q->hold >= 0) &&
	    (r = rdb_policy_set_flags(pol, q->name, q->exempt, q->hold, ctx->now)) != RDB_OK)
		goto policy;
	if ((r = rdb_commit(db)) != RDB_OK) {
		rc = adm_rdb_fail(ctx, db, r);   /* the message before the rollback resets it */
		rdb_rollback(db);
		return rc;
	}
	return ADM_EXIT_OK;
policy:
	rc = policy_fail(ctx, pol, r);
	rdb_rollback(db);
	return rc;
}

int adm_cmd_limit_set(struct adm_ctx *ctx, int argc, char **argv)
{
	struct set_req *q = calloc(1, sizeof *q);
	struct rdb *db = NULL;
	struct rdb_policy *pol = NULL;
	struct adm_out o;
	int rc;

	if (q == NULL) {
		adm_err(ctx, "out of memory");
		return ADM_EXIT_FAIL;
	}
	q->exempt = q->hold = -1;
	if ((rc = set_options(ctx, argc, argv, q)) != ADM_EXIT_OK ||
	    (rc = adm_open_policy(ctx, RDB_READWRITE, &db, &pol)) != ADM_EXIT_OK)
		goto out;
	if ((rc = set_write(ctx, db, pol, q)) != ADM_EXIT_OK)
		goto out;
	adm_out_begin(&o, ctx);
	adm_out_obj(&o, NULL);
	out_target(&o, "login", q->name);
	out_limits(&o, "set", NULL, q->lims, q->n);
	adm_out_text(&o, "limits of %s updated\n", q->name ? q->name : "the defaults");
	adm_out_finish(&o);
out:
	rdb_policy_free(pol);
	rdb_close(db);
	free(q);
	return rc;
}

struct show_ctx {
	struct adm_ctx *ctx;
	struct rdb_policy *pol;
	struct adm_out o;
	enum rdb_result r;
	char names[64][RDB_NAME_MAX + 1];
	size_t nnames;
	bool more;
};

static int collect(const struct rdb_login *l, void *arg)
{
	struct show_ctx *s = arg;

	if (s->nnames == sizeof s->names / sizeof s->names[0]) {
		s->more = true;
		return 0;
	}
	snprintf(s->names[s->nnames++], RDB_NAME_MAX + 1, "%s", l->name);
	return 0;
}

/* One login: own rows, effective limits, flags. Returns an exit code. */
static int show_login(struct show_ctx *s, const char *name, bool only_if_special)
{
	struct rdb_limit own[RDB_LIMITS_MAX];
	struct rdb_login_policy lp;
	size_t nown = 0;
	enum rdb_result r;

	if ((r = rdb_policy_login(s->pol, name, &lp)) != RDB_OK ||
	    (r = rdb_limits_get(s->pol, name, own, RDB_LIMITS_MAX, &nown)) != RDB_OK)
		return policy_fail(s->ctx, s->pol, r);
	if (only_if_special && nown == 0 && !lp.rate_exempt && !lp.hold_over_limit)
		return ADM_EXIT_OK;
	adm_out_obj(&s->o, NULL);
	adm_out_str(&s->o, "login", lp.name, "%s");
	adm_out_bool(&s->o, "rate_exempt", lp.rate_exempt, NULL);
	adm_out_bool(&s->o, "hold_over_limit", lp.hold_over_limit, NULL);
	adm_out_text(&s->o, "%s%s\n", lp.rate_exempt ? " (exempt)" : "",
	             lp.hold_over_limit ? " (holds over limit)" : "");
	out_limits(&s->o, "own", "own", own, nown);
	out_limits(&s->o, "effective", "effective", lp.limits, lp.nlimits);
	adm_out_end(&s->o);
	return ADM_EXIT_OK;
}

int adm_cmd_limit_show(struct adm_ctx *ctx, int argc, char **argv)
{
	struct rdb_limit defs[RDB_LIMITS_MAX];
	struct show_ctx *s;
	struct rdb *db = NULL;
	struct rdb_policy *pol = NULL;
	size_t ndefs = 0;
	enum rdb_result r;
	int rc;

	if ((rc = adm_json_name_args(ctx, argc, argv)) != ADM_EXIT_OK)
		return rc;
	if ((rc = adm_open_policy(ctx, RDB_READONLY, &db, &pol)) != ADM_EXIT_OK)
		return rc;
	s = calloc(1, sizeof *s);
	if (s == NULL) {
		adm_err(ctx, "out of memory");
		rc = ADM_EXIT_FAIL;
		goto out;
	}
	s->ctx = ctx;
	s->pol = pol;
	if ((r = rdb_limits_get(pol, NULL, defs, RDB_LIMITS_MAX, &ndefs)) != RDB_OK) {
		rc = policy_fail(ctx, pol, r);
		goto out;
	}
	if (argc - optind == 0 && (r = rdb_login_foreach(db, collect, s, NULL)) != RDB_OK) {
		rc = adm_rdb_fail(ctx, db, r);
		goto out;
	}
	adm_out_begin(&s->o, ctx);
	adm_out_obj(&s->o, NULL);
	adm_out_text(&s->o, "defaults\n");
	out_limits(&s->o, "defaults", "limits", defs, ndefs);
	adm_out_arr(&s->o, "logins");
	if (argc - optind == 1) {
		rc = show_login(s, argv[optind], false);
	} else {
		rc = ADM_EXIT_OK;
		for (size_t k = 0; k < s->nnames && rc == ADM_EXIT_OK; k++)
			rc = show_login(s, s->names[k], true);
	}
	if (s->more)
		adm_out_text(&s->o, "(only the first %zu logins were examined; name one to see "
		             "it)\n", s->nnames);
	adm_out_finish(&s->o);
out:
	free(s);
	rdb_policy_free(pol);
	rdb_close(db);
	return rc;
}


/* What `limit clear` leaves of a login's limit knobs: the limit rows go, the per-login
 * flags stay (they are not limits), so say so, with the command that clears each. */
static void out_left(struct adm_out *o, const struct rdb_login_policy *lp)
{
	adm_out_obj(o, "left");
	adm_out_bool(o, "hold_over_limit", lp->hold_over_limit, NULL);
	adm_out_bool(o, "rate_exempt", lp->rate_exempt, NULL);
	adm_out_end(o);
	if (lp->hold_over_limit)
		adm_out_text(o, "hold on over-limit still set; use limit set --no-hold\n");
	if (lp->rate_exempt)
		adm_out_text(o, "exempt from limits still set; use limit set --no-exempt\n");
}

int adm_cmd_limit_clear(struct adm_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "default", no_argument, NULL, 'D' },
		{ "json", no_argument, NULL, 'J' },
		{ NULL, 0, NULL, 0 },
	};
	struct rdb *db = NULL;
	struct rdb_policy *pol = NULL;
	struct rdb_login_policy lp;
	const char *name = NULL;
	bool defaults = false;
	enum rdb_result r;
	int opt, rc;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (opt == 'J')
			ctx->json = true;
		else if (opt == 'D')
			defaults = true;
		else
			return adm_usage(ctx, "unknown option: %s", argv[optind - 1]);
	}
	if ((rc = target_arg(ctx, argc, argv, defaults, &name)) != ADM_EXIT_OK)
		return rc;
	if ((rc = adm_open_policy(ctx, RDB_READWRITE, &db, &pol)) != ADM_EXIT_OK)
		return rc;
	if ((r = rdb_begin(db)) != RDB_OK) {
		rc = adm_rdb_fail(ctx, db, r);
	} else if ((r = rdb_limits_clear(pol, name)) != RDB_OK) {
		rc = policy_fail(ctx, pol, r);
		rdb_rollback(db);
	} else if (name != NULL && (r = rdb_policy_login(pol, name, &lp)) != RDB_OK) {
		rc = policy_fail(ctx, pol, r);
		rdb_rollback(db);
	} else if ((r = rdb_commit(db)) != RDB_OK) {
		rc = adm_rdb_fail(ctx, db, r);
		rdb_rollback(db);
	} else {
		struct adm_out o;

		adm_out_begin(&o, ctx);
		adm_out_obj(&o, NULL);
		out_target(&o, "cleared", name);
		adm_out_text(&o, "limits of %s cleared%s\n", name ? name : "the defaults",
		             name ? " (the defaults apply)" : "");
		if (name != NULL)
			out_left(&o, &lp);
		adm_out_finish(&o);
	}
	rdb_policy_free(pol);
	rdb_close(db);
	return rc;
}
