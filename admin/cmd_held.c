/*
 * cmd_held.c — `relay-admin held list|release|delete`: the mail relay-milter put on hold
 * (a login over its limit with `limit set --hold`), from Postfix's hold queue, joined with
 * the milter's audit log by queue id for the login and the reason.
 *
 *   held list [NAME] [--postfix-config DIR]
 *   held release (ID...|--user NAME) [--postfix-config DIR]
 *   held delete (ID...|--user NAME) [--postfix-config DIR]
 *
 * Postfix's own tools do the work (queue.h): postqueue -j lists, postsuper -H releases
 * (the queue file as it is, so the relay's content_filter takes it upstream), postsuper -d
 * deletes, always on the instance in --postfix-config (default /etc/postfix) and only in
 * its hold queue. Every id is checked before anything runs: its shape, then that it is in
 * the hold queue; one bad id refuses the whole command (exit 2 or 3) with nothing done.
 * After acting the hold queue is listed again: what is still there is reported as failed.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "adm.h"
#include "queue.h"
#include "render.h"
#include "state.h"

#define DEFAULT_POSTFIX_CONFIG "/etc/postfix"
/* audit records older than the oldest held message by more than this are not looked at:
 * the milter writes the record after the queue file exists, clocks aside */
#define AUDIT_SLACK 3600

/* What the audit log says about one held message. */
struct why {
	char queue_id[ADM_QUEUE_ID_MAX + 1];
	char login[RDB_NAME_MAX + 1];
	char reason[RDB_AUDIT_FIELD_MAX + 1];
	int64_t ts;
};

struct held {
	struct adm_queue *q;
	struct why *why;          /* one per message of q (login "" if the log has none) */
};

static void held_free(struct held *h)
{
	adm_queue_free(h->q);
	free(h->why);
}

static int join_row(const struct rdb_audit *a, void *arg)
{
	struct held *h = arg;

	/* the newest record for a queue id wins: rows come oldest first */
	for (size_t k = 0; k < h->q->n; k++) {
		struct why *w = &h->why[k];

		if (strcmp(h->q->v[k].queue_id, a->queue_id) != 0)
			continue;
		snprintf(w->login, sizeof w->login, "%s", a->login);
		snprintf(w->reason, sizeof w->reason, "%s", a->reason);
		w->ts = a->ts;
	}
	return 0;
}

/* The hold queue of `dir` and, for each message, its audit record. Returns an exit code,
 * having said why on failure. */
static int load(struct adm_ctx *ctx, const char *dir, struct held *h)
{
	struct rdb_state *st = NULL;
	char err[512];
	int64_t since = INT64_MAX;
	enum rdb_result r;

	memset(h, 0, sizeof *h);
	if (adm_queue_list(dir, &h->q, err, sizeof err) != 0) {
		adm_err(ctx, "listing the hold queue of %s: %s", dir, err);
		return ADM_EXIT_FAIL;
	}
	h->why = calloc(h->q->n + 1, sizeof *h->why);
	if (h->why == NULL) {
		adm_err(ctx, "out of memory");
		return ADM_EXIT_FAIL;
	}
	if (h->q->n == 0)
		return ADM_EXIT_OK;
	for (size_t k = 0; k < h->q->n; k++)
		if (h->q->v[k].arrival_time < since)
			since = h->q->v[k].arrival_time;
	/* the login and the reason are the audit log's: without it, fail (closed) and say so */
	if (rdb_state_open(ctx->state_db_path, RDB_READONLY, &st, err, sizeof err) != RDB_OK) {
		adm_err(ctx, "%s", err);
		return ADM_EXIT_DB;
	}
	r = rdb_state_audit_held_foreach(st, since - AUDIT_SLACK, join_row, h);
	if (r != RDB_OK)
		adm_err(ctx, "state database: %s", rdb_state_errmsg(st));
	rdb_state_close(st);
	return r == RDB_OK ? ADM_EXIT_OK : ADM_EXIT_DB;
}

static void out_message(struct adm_ctx *ctx, struct adm_out *o, const struct adm_qmsg *m,
                        const struct why *w)
{
	int64_t age = ctx->now > m->arrival_time ? ctx->now - m->arrival_time : 0;

	adm_out_obj(o, NULL);
	adm_out_str(o, "queue_id", m->queue_id, "%s");
	if (w->login[0])
		adm_out_safe(o, "login", w->login, "  %s");
	else
		adm_out_null(o, "login", "  (no audit record: not held by relay-milter?)");
	adm_out_int(o, "size", m->size, "  %lld bytes");
	adm_out_time(o, "arrival_time", m->arrival_time, NULL);
	adm_out_int(o, "age_seconds", age, "  held %llds ago\n");
	adm_out_safe(o, "sender", m->sender, "  from: <%s>\n");
	adm_out_arr(o, "recipients");
	for (size_t k = 0; k < m->nrcpt; k++) {
		adm_out_text(o, "%s", k == 0 ? "  to:   " : ", ");
		adm_out_safe(o, NULL, m->rcpt[k], "%s");
	}
	adm_out_end(o);
	adm_out_text(o, "\n");
	if (w->login[0])
		adm_out_safe(o, "reason", w->reason, "  why:  %s\n");
	else
		adm_out_null(o, "reason", NULL);
	adm_out_end(o);
}

/* --postfix-config DIR: an absolute folder (it goes to -c of Postfix's tools). */
static int config_arg(struct adm_ctx *ctx, const char *arg, const char **dir)
{
	char safe[128];

	if (arg[0] != '/')
		return adm_usage(ctx, "--postfix-config %s: expected an absolute folder",
		                 adm_safe(arg, safe, sizeof safe));
	*dir = arg;
	return ADM_EXIT_OK;
}

static const struct option opts[] = {
	{ "postfix-config", required_argument, NULL, 'c' },
	{ "user", required_argument, NULL, 'u' },
	{ "json", no_argument, NULL, 'J' },
	{ NULL, 0, NULL, 0 },
};

int adm_cmd_held_list(struct adm_ctx *ctx, int argc, char **argv)
{
	const char *dir = DEFAULT_POSTFIX_CONFIG, *name = NULL;
	struct held h;
	struct adm_out o;
	size_t shown = 0;
	int opt, rc;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (opt == 'J')
			ctx->json = true;
		else if (opt == 'c' && (rc = config_arg(ctx, optarg, &dir)) != ADM_EXIT_OK)
			return rc;
		else if (opt != 'c')
			return adm_usage(ctx, "unknown option: %s", argv[optind - 1]);
	}
	if (argc - optind > 1)
		return adm_usage(ctx, "expected at most one login name");
	if (argc - optind == 1 && (rc = adm_check_name(ctx, name = argv[optind])) != ADM_EXIT_OK)
		return rc;
	if ((rc = load(ctx, dir, &h)) == ADM_EXIT_OK) {
		adm_out_begin(&o, ctx);
		adm_out_arr(&o, NULL);
		for (size_t k = 0; k < h.q->n; k++) {
			if (name != NULL && strcasecmp(h.why[k].login, name) != 0)
				continue;
			out_message(ctx, &o, &h.q->v[k], &h.why[k]);
			shown++;
		}
		adm_out_text(&o, "%zu held message%s%s%s\n", shown, shown == 1 ? "" : "s",
		             name ? " of " : "", name ? name : "");
		adm_out_finish(&o);
	}
	held_free(&h);
	return rc;
}

/* The ids to act on: the operands (each checked: shape, then in the hold queue) or every
 * held message of --user. *ids points into h (valid while h is). */
static int pick(struct adm_ctx *ctx, struct held *h, char **operands, int n, const char *user,
                const char ***ids, size_t *nids)
{
	const char **v = calloc((size_t)n + h->q->n + 1, sizeof *v);
	char safe[64];

	*ids = v;
	*nids = 0;
	if (v == NULL) {
		adm_err(ctx, "out of memory");
		return ADM_EXIT_FAIL;
	}
	for (int k = 0; k < n; k++) {
		const struct adm_qmsg *m = adm_queue_find(h->q, operands[k]);
		bool dup = false;

		if (m == NULL) {
			adm_err(ctx, "%s: not in the hold queue; nothing done",
			        adm_safe(operands[k], safe, sizeof safe));
			return ADM_EXIT_NOTFOUND;
		}
		for (size_t j = 0; j < *nids; j++)
			dup |= strcmp(v[j], m->queue_id) == 0;
		if (!dup)
			v[(*nids)++] = m->queue_id;
	}
	for (size_t k = 0; user != NULL && k < h->q->n; k++)
		if (strcasecmp(h->why[k].login, user) == 0)
			v[(*nids)++] = h->q->v[k].queue_id;
	return ADM_EXIT_OK;
}

/* What is still held after the action: those failed. */
static int report(struct adm_ctx *ctx, const char *dir, const char *done, const char **ids,
                  size_t n)
{
	struct adm_queue *after = NULL;
	struct adm_out o;
	char err[512];
	size_t failed = 0;

	if (adm_queue_list(dir, &after, err, sizeof err) != 0) {
		adm_err(ctx, "listing the hold queue again: %s (the action ran)", err);
		return ADM_EXIT_FAIL;
	}
	adm_out_begin(&o, ctx);
	adm_out_obj(&o, NULL);
	adm_out_text(&o, "%s:", done);
	adm_out_arr(&o, done);
	for (size_t k = 0; k < n; k++)
		if (adm_queue_find(after, ids[k]) == NULL)
			adm_out_str(&o, NULL, ids[k], " %s");
	adm_out_end(&o);
	adm_out_text(&o, "%s\n", n ? "" : " (nothing held)");
	adm_out_arr(&o, "failed");
	for (size_t k = 0; k < n; k++) {
		if (adm_queue_find(after, ids[k]) != NULL) {
			adm_out_str(&o, NULL, ids[k], "still held: %s\n");
			failed++;
		}
	}
	adm_out_end(&o);
	adm_out_text(&o, "%zu %s, %zu failed\n", n - failed, done, failed);
	adm_out_finish(&o);
	adm_queue_free(after);
	return failed ? ADM_EXIT_FAIL : ADM_EXIT_OK;
}

static int act(struct adm_ctx *ctx, int argc, char **argv, bool release)
{
	const char *dir = DEFAULT_POSTFIX_CONFIG, *user = NULL;
	const char **ids = NULL;
	size_t nids = 0;
	struct held h = { 0 };
	char err[512], safe[64];
	int opt, rc;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (opt == 'J')
			ctx->json = true;
		else if (opt == 'u')
			user = optarg;
		else if (opt == 'c' && (rc = config_arg(ctx, optarg, &dir)) != ADM_EXIT_OK)
			return rc;
		else if (opt != 'c')
			return adm_usage(ctx, "unknown option: %s", argv[optind - 1]);
	}
	if ((user != NULL) == (argc - optind > 0))
		return adm_usage(ctx, "expected queue ids or --user NAME (not both)");
	if (user != NULL && (rc = adm_check_name(ctx, user)) != ADM_EXIT_OK)
		return rc;
	/* the shape of every id first: nothing runs, not even the listing, for a bad one */
	for (int k = optind; k < argc; k++)
		if (!adm_queue_id_valid(argv[k]))
			return adm_usage(ctx, "%s: not a Postfix queue id; nothing done",
			                 adm_safe(argv[k], safe, sizeof safe));
	if ((rc = load(ctx, dir, &h)) != ADM_EXIT_OK ||
	    (rc = pick(ctx, &h, argv + optind, argc - optind, user, &ids, &nids)) != ADM_EXIT_OK)
		goto out;
	if ((release ? adm_queue_release : adm_queue_delete)(dir, ids, nids, err, sizeof err) != 0) {
		adm_err(ctx, "%s: %s", release ? "postsuper -H" : "postsuper -d", err);
		rc = ADM_EXIT_FAIL;
		goto out;
	}
	rc = report(ctx, dir, release ? "released" : "deleted", ids, nids);
out:
	free(ids);
	held_free(&h);
	return rc;
}

int adm_cmd_held_release(struct adm_ctx *ctx, int argc, char **argv)
{
	return act(ctx, argc, argv, true);
}

int adm_cmd_held_delete(struct adm_ctx *ctx, int argc, char **argv)
{
	return act(ctx, argc, argv, false);
}
