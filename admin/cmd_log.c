/*
 * cmd_log.c — `relay-admin log [--user NAME] [--since TIME] [--limit N] [--json]`: the
 * audit log relay-milter keeps in the state database, one record per message decision,
 * oldest first among the newest N (default 100). TIME is a date (2026-11-26), an RFC 3339
 * UTC time (2026-11-26T10:00:00Z) or a duration back from now (30m, 2h, 7d).
 * Every string from the log is printed through adm_print_safe(): it came from clients.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "adm.h"
#include "state.h"
#include "limit.h"

struct out_ctx {
	struct adm_ctx *ctx;
	struct adm_json *j;
	size_t n;
};

static void field(struct out_ctx *o, const char *key, const char *v)
{
	adm_json_key(o->j, key);
	adm_json_str(o->j, v);
}

static int print_one(const struct rdb_audit *a, void *arg)
{
	struct out_ctx *o = arg;
	FILE *f = o->ctx->out;
	char when[ADM_TIME_LEN];

	o->n++;
	if (o->ctx->json) {
		adm_json_obj(o->j);
		adm_json_key(o->j, "id");
		adm_json_int(o->j, a->id);
		adm_json_key(o->j, "time");
		adm_json_time(o->j, a->ts);
		field(o, "login", a->login);
		field(o, "client_addr", a->client_addr);
		field(o, "tls_version", a->tls_version);
		field(o, "cipher", a->cipher);
		field(o, "envelope_from", a->env_from);
		field(o, "header_from", a->header_from);
		adm_json_key(o->j, "recipients");
		adm_json_int(o->j, (int64_t)a->rcpt_count);
		adm_json_key(o->j, "size");
		adm_json_int(o->j, (int64_t)a->size);
		field(o, "queue_id", a->queue_id);
		field(o, "verdict", a->verdict);
		field(o, "reason", a->reason);
		adm_json_end(o->j);
		return 0;
	}
	adm_format_time(a->ts, when);
	fprintf(f, "%s ", when);
	adm_print_safe(f, a->verdict);
	fprintf(f, " login=");
	adm_print_safe(f, a->login);
	fprintf(f, " client=");
	adm_print_safe(f, a->client_addr);
	fprintf(f, " tls=");
	adm_print_safe(f, a->tls_version);
	fprintf(f, "/");
	adm_print_safe(f, a->cipher);
	fprintf(f, " from=<");
	adm_print_safe(f, a->env_from);
	fprintf(f, "> header_from=<");
	adm_print_safe(f, a->header_from);
	fprintf(f, "> rcpts=%" PRIu64 " size=%" PRIu64 " queue_id=", a->rcpt_count, a->size);
	adm_print_safe(f, a->queue_id[0] ? a->queue_id : "-");
	fprintf(f, " reason=");
	adm_print_safe(f, a->reason);
	fprintf(f, "\n");
	return 0;
}

int adm_cmd_log(struct adm_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "user", required_argument, NULL, 'u' },
		{ "since", required_argument, NULL, 's' },
		{ "limit", required_argument, NULL, 'l' },
		{ "json", no_argument, NULL, 'J' },
		{ NULL, 0, NULL, 0 },
	};
	const char *user = NULL;
	int64_t since = 0, limit = 100;
	struct rdb_state *st = NULL;
	struct adm_json j;
	struct out_ctx o = { .ctx = ctx, .j = &j };
	char err[512], why[128];
	int opt;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'J':
			ctx->json = true;
			break;
		case 'u':
			user = optarg;
			if (!rdb_name_valid(user, why, sizeof why))
				return adm_usage(ctx, "invalid login name: %s", why);
			break;
		case 's': {
			int64_t ago;

			if (adm_parse_time(optarg, &since))
				break;
			if (!rdb_parse_duration(optarg, INT64_C(100) * 366 * 86400, &ago))
				return adm_usage(ctx, "--since: expected a date, an RFC 3339 UTC time or a"
				                 " duration like 2h or 7d");
			since = ctx->now - ago;
			break;
		}
		case 'l': {
			char *end;

			errno = 0;
			limit = strtoll(optarg, &end, 10);
			if (errno || *end != '\0' || end == optarg || limit < 1 || limit > 1000000)
				return adm_usage(ctx, "--limit: expected 1..1000000");
			break;
		}
		default:
			return adm_usage(ctx, "unknown option: %s", argv[optind - 1]);
		}
	}
	if (argc != optind)
		return adm_usage(ctx, "unexpected argument: %s", argv[optind]);
	if (rdb_state_open(ctx->state_db_path, RDB_READONLY, &st, err, sizeof err) != RDB_OK) {
		adm_err(ctx, "%s", err);
		return ADM_EXIT_DB;
	}
	if (ctx->json) {
		adm_json_init(&j, ctx->out);
		adm_json_arr(&j);
	}
	if (rdb_state_audit_foreach(st, user, since, limit, print_one, &o) != RDB_OK) {
		adm_err(ctx, "state database: %s", rdb_state_errmsg(st));
		rdb_state_close(st);
		return ADM_EXIT_DB;
	}
	if (ctx->json) {
		adm_json_end(&j);
		adm_json_finish(&j);
	} else if (o.n == 0) {
		fprintf(ctx->out, "no records\n");
	}
	rdb_state_close(st);
	return ADM_EXIT_OK;
}
