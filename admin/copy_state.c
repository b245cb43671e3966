/*
 * copy_state.c — the state part of `relay-admin copy` (see copy_state.h): streamed row by
 * row from the source's readers into the destination's writers, so memory does not grow
 * with the audit log.
 */
#include "copy_state.h"

#include <stdint.h>
#include <stdio.h>

#include "adm.h"
#include "render.h"
#include "state.h"

struct sink {
	struct rdb_state *to;
	size_t n;
};

static int put_usage(const char *login, int64_t ts, const uint64_t v[3], void *arg)
{
	struct sink *s = arg;

	s->n++;
	return rdb_state_usage_merge(s->to, login, ts, v) == RDB_OK ? 0 : -1;
}

static int put_last(const char *login, int64_t ts, const char *client, void *arg)
{
	struct sink *s = arg;

	s->n++;
	return rdb_state_last_use_merge(s->to, login, ts, client) == RDB_OK ? 0 : -1;
}

static int put_audit(const struct rdb_audit *a, void *arg)
{
	struct sink *s = arg;

	s->n++;
	return rdb_state_audit_add(s->to, a) == RDB_OK ? 0 : -1;
}

static int put_cred_use(const char *login, const char *label, int64_t ts, const char *client,
                        void *arg)
{
	struct sink *s = arg;

	s->n++;
	return rdb_state_credential_use_merge(s->to, login, label, ts, client) == RDB_OK ? 0 : -1;
}

static int put_counter(const char *name, const char *label, uint64_t value, void *arg)
{
	struct sink *s = arg;

	s->n++;
	/* the target is empty: adding is setting */
	return rdb_state_counter_add(s->to, name, label, value) == RDB_OK ? 0 : -1;
}

static int count_cred_use(const char *login, const char *label, int64_t ts, const char *client,
                          void *arg)
{
	(void)login, (void)label, (void)ts, (void)client;
	++*(size_t *)arg;
	return 0;
}

static int count_counter(const char *name, const char *label, uint64_t value, void *arg)
{
	(void)name, (void)label, (void)value;
	++*(size_t *)arg;
	return 0;
}

/* The counters of a state database; a file older than version 3 has none (NOTFOUND). */
static enum rdb_result counters_foreach(struct rdb_state *st,
                                        int (*fn)(const char *, const char *, uint64_t, void *),
                                        void *arg)
{
	enum rdb_result r = rdb_state_counter_foreach(st, fn, arg);

	return r == RDB_NOTFOUND ? RDB_OK : r;
}

static int count_usage(const char *login, int64_t ts, const uint64_t v[3], void *arg)
{
	(void)login, (void)ts, (void)v;
	++*(size_t *)arg;
	return 0;
}

static int count_last(const char *login, int64_t ts, const char *client, void *arg)
{
	(void)login, (void)ts, (void)client;
	++*(size_t *)arg;
	return 0;
}

static int count_audit(const struct rdb_audit *a, void *arg)
{
	(void)a;
	++*(size_t *)arg;
	return 0;
}

/* What `st` holds: rows of usage, last use, audit, credential use and counters. */
static enum rdb_result count_rows(struct rdb_state *st, struct adm_copy_state_counts *c)
{
	*c = (struct adm_copy_state_counts){ 0, 0, 0, 0, 0 };
	if (rdb_state_usage_foreach(st, NULL, INT64_MIN, count_usage, &c->usage) != RDB_OK ||
	    rdb_state_last_use_foreach(st, count_last, &c->last_use) != RDB_OK ||
	    rdb_state_audit_foreach(st, NULL, INT64_MIN, INT64_MAX, count_audit, &c->audit) != RDB_OK ||
	    rdb_state_credential_use_foreach(st, count_cred_use, &c->credential_use) != RDB_OK ||
	    counters_foreach(st, count_counter, &c->counters) != RDB_OK)
		return RDB_ERROR;
	return RDB_OK;
}

/* Streams the five tables of `from` into `to`, inside the caller's transaction. */
static enum rdb_result copy_rows(struct rdb_state *from, struct rdb_state *to,
                                 struct adm_copy_state_counts *n, const char **failed)
{
	struct sink u = { to, 0 }, l = { to, 0 }, a = { to, 0 }, cu = { to, 0 }, k = { to, 0 };

	*failed = "usage";
	if (rdb_state_usage_foreach(from, NULL, INT64_MIN, put_usage, &u) != RDB_OK)
		return RDB_ERROR;
	*failed = "last use";
	if (rdb_state_last_use_foreach(from, put_last, &l) != RDB_OK)
		return RDB_ERROR;
	*failed = "audit log";
	if (rdb_state_audit_foreach(from, NULL, INT64_MIN, INT64_MAX, put_audit, &a) != RDB_OK)
		return RDB_ERROR;
	*failed = "credential use";
	if (rdb_state_credential_use_foreach(from, put_cred_use, &cu) != RDB_OK)
		return RDB_ERROR;
	*failed = "counters";
	if (counters_foreach(from, put_counter, &k) != RDB_OK)
		return RDB_ERROR;
	*n = (struct adm_copy_state_counts){ u.n, l.n, a.n, cu.n, k.n };
	return RDB_OK;
}

int adm_copy_state(const char *from, const char *to, struct adm_copy_state_counts *n,
                   char *err, size_t errlen)
{
	struct rdb_state *src = NULL, *dst = NULL;
	struct adm_copy_state_counts had, got;
	const char *failed = "";
	int rc = -1;

	if (rdb_state_open(from, RDB_READONLY, &src, err, errlen) != RDB_OK)
		return -1;
	if (rdb_state_init(to, err, errlen) != RDB_OK ||
	    rdb_state_open(to, RDB_READWRITE, &dst, err, errlen) != RDB_OK)
		goto out;
	if (count_rows(dst, &had) != RDB_OK) {
		snprintf(err, errlen, "%s: %s", to, rdb_state_errmsg(dst));
		goto out;
	}
	if (had.usage + had.last_use + had.audit + had.credential_use + had.counters > 0) {
		snprintf(err, errlen, "%s: already holds state (%zu usage, %zu last use, %zu audit, "
		         "%zu credential use, %zu counters rows): copy only into an empty state "
		         "database", to, had.usage, had.last_use, had.audit, had.credential_use,
		         had.counters);
		goto out;
	}
	if (rdb_state_begin(dst) != RDB_OK) {
		snprintf(err, errlen, "%s: %s", to, rdb_state_errmsg(dst));
		goto out;
	}
	if (copy_rows(src, dst, n, &failed) != RDB_OK) {
		/* the reader's callback failing means the writer failed: say the writer's reason */
		snprintf(err, errlen, "copying the %s: %s / %s", failed, rdb_state_errmsg(src),
		         rdb_state_errmsg(dst));
		rdb_state_rollback(dst);
		goto out;
	}
	if (rdb_state_commit(dst) != RDB_OK) {
		snprintf(err, errlen, "%s: commit: %s", to, rdb_state_errmsg(dst));
		rdb_state_rollback(dst);
		goto out;
	}
	if (count_rows(dst, &got) != RDB_OK) {
		snprintf(err, errlen, "%s: verifying: %s", to, rdb_state_errmsg(dst));
		goto out;
	}
	if (got.usage != n->usage || got.last_use != n->last_use || got.audit != n->audit ||
	    got.credential_use != n->credential_use || got.counters != n->counters) {
		snprintf(err, errlen, "%s: verification failed: read %zu/%zu/%zu/%zu/%zu usage/last "
		         "use/audit/credential use/counters rows, the copy holds %zu/%zu/%zu/%zu/%zu",
		         to, n->usage, n->last_use, n->audit, n->credential_use, n->counters,
		         got.usage, got.last_use, got.audit, got.credential_use, got.counters);
		goto out;
	}
	rc = 0;
out:
	rdb_state_close(src);
	rdb_state_close(dst);
	return rc;
}

int adm_copy_state_run(struct adm_ctx *ctx, const char *from, const char *to,
                       const char *shown_from, const char *shown_to)
{
	struct adm_copy_state_counts n;
	struct adm_out o;
	char err[1024];

	if (adm_copy_state(from, to, &n, err, sizeof err) != 0) {
		adm_err(ctx, "copy --state %s -> %s failed: %s", shown_from, shown_to, err);
		return ADM_EXIT_DB;
	}
	adm_out_begin(&o, ctx);
	adm_out_obj(&o, NULL);
	adm_out_str(&o, "from", shown_from, NULL);
	adm_out_str(&o, "to", shown_to, NULL);
	adm_out_int(&o, "usage", (int64_t)n.usage, NULL);
	adm_out_int(&o, "last_use", (int64_t)n.last_use, NULL);
	adm_out_int(&o, "audit", (int64_t)n.audit, NULL);
	adm_out_int(&o, "credential_use", (int64_t)n.credential_use, NULL);
	adm_out_int(&o, "counters", (int64_t)n.counters, NULL);
	adm_out_text(&o, "copied state %s -> %s: %zu usage rows, %zu last uses, %zu audit "
	             "records, %zu credential last uses, %zu counters; the target's counts "
	             "match\n", shown_from, shown_to, n.usage, n.last_use, n.audit,
	             n.credential_use, n.counters);
	adm_out_finish(&o);
	return ADM_EXIT_OK;
}
