/*
 * cmd_log.c — `relay-admin log [--user NAME] [--verdict V] [--since TIME] [--limit N]
 * [--follow] [--json]`: the audit log relay-milter keeps in the state database, one record
 * per message decision, oldest first among the newest N (default 100; 10 with --follow,
 * which then keeps printing new records: cmd_log_follow.c). TIME is a date (2026-11-26),
 * an RFC 3339 UTC time (2026-11-26T10:00:00Z) or a duration back from now (30m, 2h, 7d,
 * the units of sql/limit.c). V is accepted, refused (stored as "rejected"), held or
 * tempfail ("tempfailed").
 * A message that came through an app credential names it (credential=LABEL; JSON
 * "credential", "" for the login's own password).
 * Every string from the log is printed through adm_print_safe(): it came from clients.
 * The listing is all or nothing (adm_run_buffered); a follower writes as it goes.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adm.h"
#include "audit_log.h"
#include "limit.h"

struct out_ctx {
	struct adm_out o;
	size_t n;
};

/* One record: every string through adm_out_safe() (it came from clients). JSON carries
 * the id and an empty queue_id as ""; text shows "-" for it. */
void adm_log_record(struct adm_out *o, const struct rdb_audit *a)
{
	adm_out_obj(o, NULL);
	adm_out_int(o, "id", a->id, NULL);
	adm_out_time(o, "time", a->ts, "%s ");
	adm_out_text_safe(o, "%s", a->verdict);   /* first in text, in JSON after queue_id */
	adm_out_safe(o, "login", a->login, " login=%s");
	/* the app credential the message came through ("" = the login's own password) */
	adm_out_safe(o, "credential", a->credential ? a->credential : "", NULL);
	if (a->credential != NULL && a->credential[0] != '\0')
		adm_out_text_safe(o, " credential=%s", a->credential);
	adm_out_safe(o, "client_addr", a->client_addr, " client=%s");
	adm_out_safe(o, "tls_version", a->tls_version, " tls=%s");
	adm_out_safe(o, "cipher", a->cipher, "/%s");
	adm_out_safe(o, "envelope_from", a->env_from, " from=<%s>");
	adm_out_safe(o, "header_from", a->header_from, " header_from=<%s>");
	adm_out_int(o, "recipients", (int64_t)a->rcpt_count, " rcpts=%lld");
	adm_out_int(o, "size", (int64_t)a->size, " size=%lld");
	adm_out_safe(o, "queue_id", a->queue_id, NULL);
	adm_out_text_safe(o, " queue_id=%s", a->queue_id[0] ? a->queue_id : "-");
	adm_out_safe(o, "verdict", a->verdict, NULL);
	adm_out_safe(o, "reason", a->reason, " reason=%s\n");
	adm_out_end(o);
}

static int print_one(const struct rdb_audit *a, void *arg)
{
	struct out_ctx *x = arg;

	x->n++;
	adm_log_record(&x->o, a);
	return 0;
}

/* --verdict: the words an admin uses → what the milter stores. */
static const char *verdict_stored(const char *v)
{
	static const struct { const char *word, *stored; } map[] = {
		{ "accepted", "accepted" }, { "refused", "rejected" }, { "rejected", "rejected" },
		{ "held", "held" }, { "tempfail", "tempfailed" }, { "tempfailed", "tempfailed" },
	};

	for (size_t k = 0; k < sizeof map / sizeof map[0]; k++)
		if (strcmp(map[k].word, v) == 0)
			return map[k].stored;
	return NULL;
}

static int parse(struct adm_ctx *ctx, int argc, char **argv, struct adm_log_query *q)
{
	static const struct option opts[] = {
		{ "user", required_argument, NULL, 'u' },
		{ "verdict", required_argument, NULL, 'v' },
		{ "since", required_argument, NULL, 's' },
		{ "limit", required_argument, NULL, 'l' },
		{ "follow", no_argument, NULL, 'f' },
		{ "json", no_argument, NULL, 'J' },
		{ NULL, 0, NULL, 0 },
	};
	bool limit_given = false;
	char why[128];
	int opt;

	*q = (struct adm_log_query){ .limit = 100 };
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'J':
			ctx->json = true;
			break;
		case 'f':
			q->follow = true;
			break;
		case 'u':
			q->user = optarg;
			if (!rdb_name_valid(q->user, why, sizeof why))
				return adm_usage(ctx, "invalid login name: %s", why);
			break;
		case 'v':
			q->verdict = verdict_stored(optarg);
			if (q->verdict == NULL)
				return adm_usage(ctx, "--verdict: expected accepted, refused, held or tempfail");
			break;
		case 's': {
			int64_t ago;

			if (adm_parse_time(optarg, &q->since))
				break;
			if (!rdb_parse_duration(optarg, INT64_C(100) * 366 * 86400, &ago))
				return adm_usage(ctx, "--since: expected a date, an RFC 3339 UTC time or a"
				                 " duration like 2h or 7d");
			q->since = ctx->now - ago;
			break;
		}
		case 'l': {
			char *end;

			errno = 0;
			q->limit = strtoll(optarg, &end, 10);
			if (errno || *end != '\0' || end == optarg || q->limit < 1 || q->limit > 1000000)
				return adm_usage(ctx, "--limit: expected 1..1000000");
			limit_given = true;
			break;
		}
		default:
			return adm_usage(ctx, "unknown option: %s", argv[optind - 1]);
		}
	}
	if (argc != optind)
		return adm_usage(ctx, "unexpected argument: %s", argv[optind]);
	if (q->follow && !limit_given)
		q->limit = 10;   /* as tail -f: a little context, then what comes */
	return ADM_EXIT_OK;
}

/* The listing, run through adm_run_buffered(): all of it or nothing. */
static int list(struct adm_ctx *ctx, int argc, char **argv)
{
	struct adm_log_query q;
	struct rdb_state *st = NULL;
	struct out_ctx o = { .n = 0 };
	struct rdb_audit_filter f;
	char err[512];
	int rc;

	if ((rc = parse(ctx, argc, argv, &q)) != ADM_EXIT_OK)
		return rc;
	if (rdb_state_open(ctx->state_db_path, RDB_READONLY, &st, err, sizeof err) != RDB_OK) {
		adm_err(ctx, "%s", err);
		return ADM_EXIT_DB;
	}
	f = (struct rdb_audit_filter){ .after_id = 0, .upto_id = INT64_MAX, .since = q.since,
	                               .login = q.user, .verdict = q.verdict, .limit = q.limit };
	adm_out_begin(&o.o, ctx);
	adm_out_arr(&o.o, NULL);
	if (rdb_state_audit_query(st, &f, print_one, &o) != RDB_OK) {
		adm_err(ctx, "state database: %s", rdb_state_errmsg(st));
		rdb_state_close(st);
		return ADM_EXIT_DB;
	}
	if (o.n == 0)
		adm_out_text(&o.o, "no records\n");
	adm_out_finish(&o.o);
	rdb_state_close(st);
	return ADM_EXIT_OK;
}

int adm_cmd_log(struct adm_ctx *ctx, int argc, char **argv)
{
	struct adm_log_query q;
	int rc = parse(ctx, argc, argv, &q);

	if (rc != ADM_EXIT_OK)
		return rc;
	if (q.follow)
		return adm_log_follow(ctx, &q);
	optind = 0;   /* list() parses again (the same, valid, options) */
	return adm_run_buffered(ctx, list, argc, argv);
}
