/*
 * limits_fmt.c — what `limit` and `usage` share (see limits_fmt.h): parsing and printing
 * "N/PERIOD" and "SIZE/PERIOD" limits, the `[--json] [NAME]` arguments and opening the
 * limit queries. Library code: commands use it, not each other.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adm.h"
#include "limits_fmt.h"
#include "policy.h"
#include "limit.h"

bool adm_limit_parse(const char *spec, enum rdb_metric m, struct rdb_limit *out, char *why,
                     size_t whylen)
{
	char buf[64];
	char *slash;
	int64_t window;
	uint64_t max;

	if (strlen(spec) >= sizeof buf) {
		snprintf(why, whylen, "too long");
		return false;
	}
	memcpy(buf, spec, strlen(spec) + 1);
	slash = strchr(buf, '/');
	if (slash == NULL) {
		snprintf(why, whylen, "expected %s/PERIOD, e.g. %s", m == RDB_METRIC_BYTES ? "SIZE" : "N",
		         m == RDB_METRIC_BYTES ? "50M/1d" : "100/1h");
		return false;
	}
	*slash = '\0';
	if (m == RDB_METRIC_BYTES ? !rdb_parse_size(buf, &max)
	                          : !(buf[0] >= '0' && buf[0] <= '9' && rdb_parse_size(buf, &max) &&
	                              strspn(buf, "0123456789") == strlen(buf))) {
		snprintf(why, whylen, m == RDB_METRIC_BYTES ? "bad size \"%s\" (e.g. 50M, 1G, 1000)"
		                                            : "bad count \"%s\"", buf);
		return false;
	}
	if (max > (uint64_t)INT64_MAX) {
		snprintf(why, whylen, "limit too large");
		return false;
	}
	if (!rdb_parse_duration(slash + 1, RDB_WINDOW_MAX, &window)) {
		snprintf(why, whylen, "bad period \"%s\" (e.g. 30s, 10m, 1h, 1d, 1w; at most 366d)",
		         slash + 1);
		return false;
	}
	*out = (struct rdb_limit){ m, window, max };
	return true;
}

void adm_limit_format(const struct rdb_limit *l, char *out, size_t outlen)
{
	char period[24];

	rdb_format_duration(l->window, period, sizeof period);
	if (l->metric == RDB_METRIC_BYTES) {
		static const char units[] = "KMGT";
		uint64_t v = l->max;
		int u = -1;

		while (v >= 1024 && v % 1024 == 0 && u < 3) {
			v /= 1024;
			u++;
		}
		if (u >= 0)
			snprintf(out, outlen, "%" PRIu64 "%c/%s", v, units[u], period);
		else
			snprintf(out, outlen, "%" PRIu64 "/%s", v, period);
	} else {
		snprintf(out, outlen, "%" PRIu64 "/%s", l->max, period);
	}
}

int adm_open_policy(const struct adm_ctx *ctx, enum rdb_mode mode, struct rdb **db,
                    struct rdb_policy **pol)
{
	int rc = adm_db_open(ctx, mode, db);

	if (rc != ADM_EXIT_OK)
		return rc;
	if (rdb_policy_new(*db, pol) != RDB_OK) {
		adm_err(ctx, "preparing limit queries: %s", rdb_errmsg(*db));
		rdb_close(*db);
		*db = NULL;
		return ADM_EXIT_DB;
	}
	return ADM_EXIT_OK;
}

int adm_json_name_args(struct adm_ctx *ctx, int argc, char **argv)
{
	static const struct option json_only[] = {
		{ "json", no_argument, NULL, 'J' },
		{ NULL, 0, NULL, 0 },
	};

	for (int opt; (opt = getopt_long(argc, argv, "", json_only, NULL)) != -1;) {
		if (opt != 'J')
			return adm_usage(ctx, "unknown option: %s", argv[optind - 1]);
		ctx->json = true;
	}
	if (argc - optind > 1)
		return adm_usage(ctx, "expected at most one login name");
	return ADM_EXIT_OK;
}

