/*
 * cmd_usage_reset.c — `relay-admin usage reset NAME [--metric messages|recipients|bytes]...`:
 * clears a login's counters (all three metrics unless --metric names some).
 *
 * The reset is a row in the users database (table usage_reset), not a change to the state
 * database: relay-admin is the users database's only writer and relay-milter already
 * watches it, so a running milter applies the reset on its next policy refresh
 * (policy_refresh_ms) — clears its in-memory windows, zeroes the state database's rows and
 * writes an audit record naming who asked — and applies it again at every start, so
 * neither a restart nor its crash journal brings the old counts back (milter/reset.h).
 * `relay-admin usage` takes the row into account at once.
 *
 * Who asked: the name of the user running relay-admin; as root under sudo, the invoking
 * user's name (SUDO_USER) is added, e.g. "root(sudo:alice)", kept to safe characters.
 */
#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "adm.h"
#include "limits_fmt.h"
#include "policy.h"
#include "render.h"

/* Letters, digits and . _ - only: the name ends up in logs and the audit log. */
static void clean_name(const char *in, char *out, size_t outlen)
{
	size_t o = 0;

	for (; *in && o + 1 < outlen; in++) {
		char c = *in;
		bool okc = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		           (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';

		out[o++] = okc ? c : '?';
	}
	out[o] = '\0';
}

/* Who asks, at most RDB_RESET_ADMIN_MAX bytes. */
static void admin_name(char *out, size_t outlen)
{
	const struct passwd *pw = getpwuid(getuid());
	const char *sudo = getenv("SUDO_USER");
	char user[20], by[20];   /* "user(sudo:by)" fits RDB_RESET_ADMIN_MAX */

	if (pw != NULL)
		clean_name(pw->pw_name, user, sizeof user);
	else
		snprintf(user, sizeof user, "uid%ld", (long)getuid());
	if (getuid() == 0 && sudo != NULL && sudo[0] != '\0') {
		clean_name(sudo, by, sizeof by);
		snprintf(out, outlen, "%s(sudo:%s)", user, by);
	} else {
		snprintf(out, outlen, "%s", user);
	}
}

static int options(struct adm_ctx *ctx, int argc, char **argv, unsigned *metrics,
                   const char **name)
{
	static const struct option opts[] = {
		{ "metric", required_argument, NULL, 'm' },
		{ "json", no_argument, NULL, 'J' },
		{ NULL, 0, NULL, 0 },
	};
	enum rdb_metric m;
	int opt;

	*metrics = 0;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (opt == 'J') {
			ctx->json = true;
		} else if (opt == 'm') {
			if (!rdb_metric_parse(optarg, &m)) {
				char safe[64];

				return adm_usage(ctx, "--metric %s: expected messages, recipients or bytes",
				                 adm_safe(optarg, safe, sizeof safe));
			}
			*metrics |= 1u << m;
		} else {
			return adm_usage(ctx, "unknown option: %s", argv[optind - 1]);
		}
	}
	if (*metrics == 0)
		*metrics = (1u << RDB_METRICS) - 1;
	if (argc - optind != 1)
		return adm_usage(ctx, "expected a login name");
	*name = argv[optind];
	return adm_check_name(ctx, *name);
}

int adm_cmd_usage_reset(struct adm_ctx *ctx, int argc, char **argv)
{
	struct rdb *db = NULL;
	struct rdb_policy *pol = NULL;
	const char *name = NULL;
	char admin[RDB_RESET_ADMIN_MAX + 1];
	unsigned metrics;
	int64_t id = 0;
	enum rdb_result r;
	struct adm_out o;
	int rc;

	if ((rc = options(ctx, argc, argv, &metrics, &name)) != ADM_EXIT_OK)
		return rc;
	admin_name(admin, sizeof admin);
	if ((rc = adm_open_policy(ctx, RDB_READWRITE, &db, &pol)) != ADM_EXIT_OK)
		return rc;
	if ((r = rdb_begin(db)) != RDB_OK) {
		rc = adm_rdb_fail(ctx, db, r);
		goto out;
	}
	if ((r = rdb_usage_reset_add(pol, name, metrics, admin, ctx->now, &id)) != RDB_OK ||
	    (r = rdb_commit(db)) != RDB_OK) {
		rc = adm_rdb_fail(ctx, db, r);   /* the message before the rollback resets it */
		rdb_rollback(db);
		goto out;
	}
	adm_out_begin(&o, ctx);
	adm_out_obj(&o, NULL);
	adm_out_str(&o, "login", name, NULL);
	adm_out_arr(&o, "metrics");
	for (int m = 0; m < RDB_METRICS; m++)
		if (metrics & (1u << m))
			adm_out_str(&o, NULL, rdb_metric_name((enum rdb_metric)m), NULL);
	adm_out_end(&o);
	adm_out_time(&o, "reset_at", ctx->now, NULL);
	adm_out_str(&o, "by", admin, NULL);
	adm_out_int(&o, "id", id, NULL);
	adm_out_text(&o, "counters of %s reset (", name);
	for (int m = 0, n = 0; m < RDB_METRICS; m++)
		if (metrics & (1u << m))
			adm_out_text(&o, "%s%s", n++ ? ", " : "", rdb_metric_name((enum rdb_metric)m));
	adm_out_text(&o, "); a running relay-milter applies this within its policy_refresh_ms\n");
	adm_out_finish(&o);
out:
	rdb_policy_free(pol);
	rdb_close(db);
	return rc;
}
