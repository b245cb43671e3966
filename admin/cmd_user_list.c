/*
 * cmd_user_list.c — `relay-admin user list` and `user show NAME`: the logins as an admin
 * sees them (never their secrets), with the last use recorded by relay-milter in the state
 * database when there is one to ask (see open_state()).
 *
 * Each command reads inside one snapshot (rdb_begin_read), so a concurrent writer never
 * shows up half-way through a listing, and prints nothing unless the whole listing or JSON
 * document could be produced.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "adm.h"
#include "state.h"

static const char *state_of(const struct rdb_login *l, int64_t now)
{
	if (!l->enabled)
		return "disabled";
	if (l->has_expiry && now >= l->expires_at)
		return "expired";
	return "active";
}

/* ---- user list / show ------------------------------------------------------------------ */

struct list_ctx {
	struct adm_ctx *ctx;
	struct rdb *db;
	struct rdb_state *st;   /* NULL: no state database to ask about last use */
	FILE *out;              /* where the listing is assembled */
	struct adm_json j;
	enum rdb_result r;      /* a failure inside a callback */
};

/* The state database, when the admin's options point at one (the same rule as init: an
 * explicit --state-db, or the installed layout) and it exists. A state database that exists
 * but cannot be read is reported, and the listing goes on without it. */
static struct rdb_state *open_state(const struct adm_ctx *ctx)
{
	struct rdb_state *st = NULL;
	char err[512];

	if (!ctx->state_db_explicit && ctx->db_explicit)
		return NULL;
	if (access(ctx->state_db_path, F_OK) != 0)
		return NULL;
	if (rdb_state_open(ctx->state_db_path, RDB_READONLY, &st, err, sizeof err) != RDB_OK) {
		adm_err(ctx, "warning: last use unknown: %s", err);
		return NULL;
	}
	return st;
}

/* Last use of a login: false if never, unknown, or no state database. */
static bool last_use(const struct list_ctx *lc, const char *name, int64_t *ts, char client[64])
{
	client[0] = '\0';
	return lc->st != NULL && rdb_state_last_use(lc->st, name, ts, client, 64) == RDB_OK;
}

static int sender_json(const char *pattern, void *arg)
{
	adm_json_str(arg, pattern);
	return 0;
}

static enum rdb_result login_json(struct list_ctx *lc, const struct rdb_login *l)
{
	struct adm_json *j = &lc->j;
	char client[64];
	int64_t used = 0;
	enum rdb_result r;

	adm_json_obj(j);
	adm_json_key(j, "name");
	adm_json_str(j, l->name);
	adm_json_key(j, "state");
	adm_json_str(j, state_of(l, lc->ctx->now));
	adm_json_key(j, "enabled");
	adm_json_bool(j, l->enabled);
	adm_json_key(j, "expires_at");
	if (l->has_expiry)
		adm_json_time(j, l->expires_at);
	else
		adm_json_null(j);
	adm_json_key(j, "note");
	adm_json_str(j, l->note);
	adm_json_key(j, "source");
	adm_json_str(j, l->source);
	adm_json_key(j, "scram");
	adm_json_bool(j, l->has_scram);
	adm_json_key(j, "rate_exempt");
	adm_json_bool(j, l->rate_exempt);
	adm_json_key(j, "hold_over_limit");
	adm_json_bool(j, l->hold_over_limit);
	adm_json_key(j, "created_at");
	adm_json_time(j, l->created_at);
	adm_json_key(j, "updated_at");
	adm_json_time(j, l->updated_at);
	adm_json_key(j, "password_changed_at");
	adm_json_time(j, l->password_changed_at);
	adm_json_key(j, "last_used");
	if (last_use(lc, l->name, &used, client)) {
		adm_json_time(j, used);
		adm_json_key(j, "last_client");
		adm_json_str(j, client);
	} else {
		adm_json_null(j);
	}
	adm_json_key(j, "senders");
	adm_json_arr(j);
	r = rdb_sender_foreach(lc->db, l->name, sender_json, j, NULL);
	adm_json_end(j);
	adm_json_end(j);
	return r;
}

static int list_row(const struct rdb_login *l, void *arg)
{
	struct list_ctx *lc = arg;
	FILE *out = lc->out;
	char when[ADM_TIME_LEN], used[ADM_TIME_LEN], client[64];
	int64_t ts = 0;

	if (lc->ctx->json) {
		lc->r = login_json(lc, l);
		return lc->r != RDB_OK;
	}
	if (l->has_expiry)
		adm_format_time(l->expires_at, when);
	else
		strcpy(when, "-");
	if (last_use(lc, l->name, &ts, client))
		adm_format_time(ts, used);
	else
		strcpy(used, "-");
	fprintf(out, "%-32s %-8s %-20s %-20s %7u  %-6s ", l->name, state_of(l, lc->ctx->now),
	        when, used, l->nsenders, l->source);
	adm_print_safe(out, l->note);
	fputc('\n', out);
	return 0;
}

/* Output is assembled in memory and written only once complete, so a failure half-way
 * never leaves a truncated listing or JSON document on stdout. */
struct sink {
	char *data;
	size_t len;
	FILE *f;
};

static bool sink_open(const struct adm_ctx *ctx, struct sink *k)
{
	k->data = NULL;
	k->len = 0;
	k->f = open_memstream(&k->data, &k->len);
	if (k->f == NULL)
		adm_err(ctx, "out of memory");
	return k->f != NULL;
}

/* Closes the sink; writes it to ctx->out if rc is ADM_EXIT_OK. */
static int sink_close(const struct adm_ctx *ctx, struct sink *k, int rc)
{
	if (fclose(k->f) != 0 && rc == ADM_EXIT_OK) {
		adm_err(ctx, "out of memory");
		rc = ADM_EXIT_FAIL;
	}
	if (rc == ADM_EXIT_OK)
		fwrite(k->data, 1, k->len, ctx->out);
	free(k->data);
	return rc;
}

/* What list and show both read from and write to: the users database, the sink, and the
 * state database when there is one. Returns ADM_EXIT_OK, or the exit code with nothing
 * left open. */
static int list_open(struct adm_ctx *ctx, struct list_ctx *lc, struct sink *k)
{
	int rc = adm_db_open(ctx, RDB_READONLY, &lc->db);

	if (rc != ADM_EXIT_OK)
		return rc;
	if (!sink_open(ctx, k)) {
		rdb_close(lc->db);
		return ADM_EXIT_FAIL;
	}
	lc->out = k->f;
	lc->st = open_state(ctx);
	return ADM_EXIT_OK;
}

/* Undoes list_open(); the sink reaches ctx->out only if rc is ADM_EXIT_OK. */
static int list_close(struct adm_ctx *ctx, struct list_ctx *lc, struct sink *k, int rc)
{
	rc = sink_close(ctx, k, rc);
	rdb_state_close(lc->st);
	rdb_close(lc->db);
	return rc;
}

int adm_cmd_user_list(struct adm_ctx *ctx, int argc, char **argv)
{
	static const struct option none[] = { { NULL, 0, NULL, 0 } };
	struct list_ctx lc = { .ctx = ctx };
	struct sink k;
	enum rdb_result r;
	int rc;

	if (getopt_long(argc, argv, "", none, NULL) != -1)
		return adm_usage(ctx, "unknown option: %s", argv[optind - 1]);
	if (argc - optind != 0)
		return adm_usage(ctx, "user list takes no arguments");
	rc = list_open(ctx, &lc, &k);
	if (rc != ADM_EXIT_OK)
		return rc;
	if (ctx->json) {
		adm_json_init(&lc.j, lc.out);
		adm_json_obj(&lc.j);
		adm_json_key(&lc.j, "logins");
		adm_json_arr(&lc.j);
	} else {
		fprintf(lc.out, "%-32s %-8s %-20s %-20s %7s  %-6s %s\n", "NAME", "STATE",
		        "EXPIRES", "LAST USED", "SENDERS", "SOURCE", "NOTE");
	}
	/* Read everything in one snapshot, not a row at a time between writers. */
	r = rdb_begin_read(lc.db);
	if (r == RDB_OK)
		r = rdb_login_foreach(lc.db, list_row, &lc, NULL);
	if (r == RDB_OK)
		r = lc.r;
	rdb_rollback(lc.db);
	if (r != RDB_OK)
		rc = adm_rdb_fail(ctx, lc.db, r);
	else if (ctx->json)
		adm_json_finish(&lc.j);
	return list_close(ctx, &lc, &k, rc);
}

static int sender_line(const char *pattern, void *arg)
{
	fprintf(arg, "  %s\n", pattern);
	return 0;
}

static enum rdb_result show_text(struct list_ctx *lc, const struct rdb_login *l)
{
	FILE *out = lc->out;
	char t[ADM_TIME_LEN], client[64];
	int64_t ts = 0;

	fprintf(out, "name:             %s\n", l->name);
	fprintf(out, "state:            %s\n", state_of(l, lc->ctx->now));
	if (l->has_expiry)
		adm_format_time(l->expires_at, t);
	fprintf(out, "expires:          %s\n", l->has_expiry ? t : "never");
	fprintf(out, "note:             ");
	adm_print_safe(out, l->note);
	fprintf(out, "\nsource:           %s\n", l->source);
	fprintf(out, "secrets:          PLAIN%s\n", l->has_scram ? ", SCRAM-SHA-256" : "");
	fprintf(out, "rate limits:      %s%s\n", l->rate_exempt ? "exempt" : "enforced",
	        l->hold_over_limit ? ", hold over limit" : "");
	adm_format_time(l->created_at, t);
	fprintf(out, "created:          %s\n", t);
	adm_format_time(l->updated_at, t);
	fprintf(out, "updated:          %s\n", t);
	adm_format_time(l->password_changed_at, t);
	fprintf(out, "password changed: %s\n", t);
	if (last_use(lc, l->name, &ts, client)) {
		adm_format_time(ts, t);
		fprintf(out, "last used:        %s from ", t);
		adm_print_safe(out, client);
		fputc('\n', out);
	} else {
		fprintf(out, "last used:        %s\n", lc->st ? "never" : "unknown");
	}
	fprintf(out, "senders:%s\n", l->nsenders ? "" : " none");
	return rdb_sender_foreach(lc->db, l->name, sender_line, out, NULL);
}

int adm_cmd_user_show(struct adm_ctx *ctx, int argc, char **argv)
{
	struct list_ctx lc = { .ctx = ctx };
	struct rdb_login l;
	struct sink k;
	const char *name;
	enum rdb_result r;
	int rc = adm_name_arg(ctx, argc, argv, &name);

	if (rc != ADM_EXIT_OK)
		return rc;
	rc = list_open(ctx, &lc, &k);
	if (rc != ADM_EXIT_OK)
		return rc;
	r = rdb_begin_read(lc.db);
	if (r == RDB_OK)
		r = rdb_login_get(lc.db, name, &l);
	if (r == RDB_OK && ctx->json) {
		adm_json_init(&lc.j, lc.out);
		r = login_json(&lc, &l);
		if (r == RDB_OK)
			adm_json_finish(&lc.j);
	} else if (r == RDB_OK) {
		r = show_text(&lc, &l);
	}
	rdb_rollback(lc.db);
	if (r != RDB_OK)
		rc = adm_rdb_fail(ctx, lc.db, r);
	return list_close(ctx, &lc, &k, rc);
}
