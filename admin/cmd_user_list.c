/*
 * cmd_user_list.c — `relay-admin user list` and `user show NAME`: the logins as an admin
 * sees them (never their secrets), with the last use recorded by relay-milter in the state
 * database when there is one to ask (see adm_state_for_last_use()).
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
#include "render.h"
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
	struct adm_out o;
	enum rdb_result r;      /* a failure inside a callback */
};

/* The state database, when the admin's options point at one (the same rule as init: an
 * explicit --state-db, or the installed layout) and it exists. A state database that exists
 * but cannot be read is reported, and the listing goes on without it. */
struct rdb_state *adm_state_for_last_use(const struct adm_ctx *ctx)
{
	struct rdb_state *st = NULL;
	char err[512];

	if (!ctx->state_db_explicit && ctx->db_explicit)
		return NULL;
	if (!rdb_is_postgresql(ctx->state_db_path) && access(ctx->state_db_path, F_OK) != 0)
		return NULL;
	if (rdb_state_open(ctx->state_db_path, RDB_READONLY, &st, err, sizeof err) != RDB_OK) {
		adm_warn(ctx, "last use unknown: %s", err);
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

/* A sender: a line of `user show`; in a `user list` row, JSON only. */
static int sender_show(const char *pattern, void *arg)
{
	adm_out_str(arg, NULL, pattern, "  %s\n");
	return 0;
}

static int sender_row(const char *pattern, void *arg)
{
	adm_out_str(arg, NULL, pattern, NULL);
	return 0;
}

/* Text templates only for `user show` (a row of `user list` is one line of its own). */
#define SHOW(t) (show ? (t) : NULL)

/* One login as a result: every field in JSON; `user show`'s lines in text. */
static enum rdb_result login_fields(struct list_ctx *lc, const struct rdb_login *l, bool show)
{
	struct adm_out *o = &lc->o;
	char client[64];
	int64_t used = 0;
	enum rdb_result r;

	adm_out_obj(o, NULL);
	adm_out_str(o, "name", l->name, SHOW("name:             %s\n"));
	adm_out_str(o, "state", state_of(l, lc->ctx->now), SHOW("state:            %s\n"));
	adm_out_bool(o, "enabled", l->enabled, NULL);
	if (l->has_expiry)
		adm_out_time(o, "expires_at", l->expires_at, SHOW("expires:          %s\n"));
	else
		adm_out_null(o, "expires_at", SHOW("expires:          never\n"));
	adm_out_safe(o, "note", l->note, SHOW("note:             %s\n"));
	adm_out_str(o, "source", l->source, SHOW("source:           %s\n"));
	adm_out_bool(o, "scram", l->has_scram, NULL);
	adm_out_bool(o, "rate_exempt", l->rate_exempt, NULL);
	adm_out_bool(o, "hold_over_limit", l->hold_over_limit, NULL);
	if (show) {
		adm_out_text(o, "secrets:          PLAIN%s\n", l->has_scram ? ", SCRAM-SHA-256" : "");
		adm_out_text(o, "rate limits:      %s%s\n", l->rate_exempt ? "exempt" : "enforced",
		             l->hold_over_limit ? ", hold over limit" : "");
	}
	adm_out_time(o, "created_at", l->created_at, SHOW("created:          %s\n"));
	adm_out_time(o, "updated_at", l->updated_at, SHOW("updated:          %s\n"));
	adm_out_time(o, "password_changed_at", l->password_changed_at,
	             SHOW("password changed: %s\n"));
	if (last_use(lc, l->name, &used, client)) {
		adm_out_time(o, "last_used", used, SHOW("last used:        %s from "));
		adm_out_safe(o, "last_client", client, SHOW("%s\n"));
	} else {
		adm_out_null(o, "last_used", SHOW(lc->st ? "last used:        never\n"
		                                         : "last used:        unknown\n"));
	}
	if (show)
		adm_out_text(o, "senders:%s\n", l->nsenders ? "" : " none");
	adm_out_arr(o, "senders");
	r = rdb_sender_foreach(lc->db, l->name, show ? sender_show : sender_row, o, NULL);
	adm_out_end(o);
	adm_out_end(o);
	return r;
}

#undef SHOW

static int list_row(const struct rdb_login *l, void *arg)
{
	struct list_ctx *lc = arg;
	char when[ADM_TIME_LEN], used[ADM_TIME_LEN], client[64];
	int64_t ts = 0;

	if (l->has_expiry)
		adm_format_time(l->expires_at, when);
	else
		strcpy(when, "-");
	if (last_use(lc, l->name, &ts, client))
		adm_format_time(ts, used);
	else
		strcpy(used, "-");
	adm_out_text(&lc->o, "%-32s %-8s %-20s %-20s %7u  %-6s ", l->name,
	             state_of(l, lc->ctx->now), when, used, l->nsenders, l->source);
	adm_out_text_safe(&lc->o, "%s\n", l->note);
	lc->r = login_fields(lc, l, false);
	return lc->r != RDB_OK;
}

/* What list and show both read: the users database, and the state database when there is
 * one. Returns ADM_EXIT_OK, or the exit code with nothing left open. */
static int list_open(struct adm_ctx *ctx, struct list_ctx *lc)
{
	int rc = adm_db_open(ctx, RDB_READONLY, &lc->db);

	if (rc != ADM_EXIT_OK)
		return rc;
	lc->st = adm_state_for_last_use(ctx);
	adm_out_begin(&lc->o, ctx);
	return ADM_EXIT_OK;
}

/* Ends the read snapshot, renders the result or reports the failure r, closes both
 * databases. Returns the exit code. */
static int list_close(struct list_ctx *lc, enum rdb_result r)
{
	int rc = ADM_EXIT_OK;

	rdb_rollback(lc->db);
	if (r != RDB_OK)
		rc = adm_rdb_fail(lc->ctx, lc->db, r);
	else
		adm_out_finish(&lc->o);
	rdb_state_close(lc->st);
	rdb_close(lc->db);
	return rc;
}

int adm_cmd_user_list(struct adm_ctx *ctx, int argc, char **argv)
{
	struct list_ctx lc = { .ctx = ctx };
	enum rdb_result r;
	int rc = adm_operands(ctx, argc, argv, 0, "user list takes no arguments");

	if (rc != ADM_EXIT_OK)
		return rc;
	rc = list_open(ctx, &lc);
	if (rc != ADM_EXIT_OK)
		return rc;
	adm_out_obj(&lc.o, NULL);
	adm_out_arr(&lc.o, "logins");
	adm_out_text(&lc.o, "%-32s %-8s %-20s %-20s %7s  %-6s %s\n", "NAME", "STATE",
	             "EXPIRES", "LAST USED", "SENDERS", "SOURCE", "NOTE");
	/* Read everything in one snapshot, not a row at a time between writers. */
	r = rdb_begin_read(lc.db);
	if (r == RDB_OK)
		r = rdb_login_foreach(lc.db, list_row, &lc, NULL);
	if (r == RDB_OK)
		r = lc.r;
	return list_close(&lc, r);
}

int adm_cmd_user_show(struct adm_ctx *ctx, int argc, char **argv)
{
	struct list_ctx lc = { .ctx = ctx };
	struct rdb_login l;
	const char *name;
	enum rdb_result r;
	int rc = adm_name_arg(ctx, argc, argv, &name);

	if (rc != ADM_EXIT_OK)
		return rc;
	rc = list_open(ctx, &lc);
	if (rc != ADM_EXIT_OK)
		return rc;
	r = rdb_begin_read(lc.db);
	if (r == RDB_OK)
		r = rdb_login_get(lc.db, name, &l);
	if (r == RDB_OK)
		r = login_fields(&lc, &l, true);
	return list_close(&lc, r);
}
