/*
 * reset.c — counter resets in relay-milter (see reset.h): from a usage_reset row to the
 * cleared in-memory windows and the state writer's record.
 */
#include "reset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "log.h"

/* The limiter keys logins as the callbacks do: lowercase. */
static void lower(char *out, size_t outlen, const char *in)
{
	size_t o = 0;

	for (; *in && o + 1 < outlen; in++)
		out[o++] = (*in >= 'A' && *in <= 'Z') ? (char)(*in - 'A' + 'a') : *in;
	out[o] = '\0';
}

/* "messages,bytes" for the audit record and the log. */
static void metric_list(unsigned metrics, char *out, size_t outlen)
{
	size_t n = 0;

	out[0] = '\0';
	for (int m = 0; m < RDB_METRICS; m++)
		if ((metrics & (1u << m)) && n < outlen)
			n += (size_t)snprintf(out + n, outlen - n, "%s%s", n ? "," : "",
			                      rdb_metric_name((enum rdb_metric)m));
}

/* The limiter second up to which a reset at wall-clock second `ts` clears (see reset.h):
 * the one that holds the last nanosecond of ts; now if that has not come yet (the admin's
 * clock ahead of ours). */
static int64_t live_boundary(int64_t ts)
{
	struct timespec rt;
	int64_t end_ns;

	clock_gettime(CLOCK_REALTIME, &rt);
	if (ts >= (int64_t)rt.tv_sec || ts > INT64_MAX / 1000000000 - 1)
		return mlt_rate_clock();
	end_ns = (ts + 1) * 1000000000 - 1;
	return mlt_rate_clock_of_wall(end_ns);
}

void mlt_reset_apply(struct mlt_reset_ctx *ctx, const struct rdb_usage_reset *r, bool live)
{
	struct mlt_record *rec;
	char key[RDB_NAME_MAX + 1], what[40];

	lower(key, sizeof key, r->login);
	metric_list(r->metrics, what, sizeof what);
	if (live)
		mlt_rate_reset(ctx->rate, key, r->metrics, live_boundary(r->ts));
	rec = calloc(1, sizeof *rec);
	if (rec == NULL) {
		/* the memory is cleared; the file is cleared at the next start at the latest */
		mlt_log(LOG_ERR, "counter reset %lld of %s: out of memory, not recorded",
		        (long long)r->id, key);
		return;
	}
	rec->reset_id = r->id;
	rec->reset_metrics = r->metrics;
	rec->ts = r->ts;
	snprintf(rec->login, sizeof rec->login, "%s", key);
	snprintf(rec->verdict, sizeof rec->verdict, "admin");
	snprintf(rec->reason, sizeof rec->reason, "usage reset: %s", what);
	snprintf(rec->client_addr, sizeof rec->client_addr, "relay-admin:%s", r->admin);
	mlt_writer_push(ctx->writer, rec);
	mlt_log(LOG_INFO, "counter reset %lld: %s of %s (by %s)%s", (long long)r->id, what, key,
	        r->admin, live ? "" : ", at start");
}

/* The store's watcher: a reset relay-admin just added. */
static void on_reset(const struct rdb_usage_reset *r, void *arg)
{
	mlt_reset_apply(arg, r, true);
}

static int collect(const struct rdb_usage_reset *r, void *arg)
{
	struct mlt_reset_list *l = arg;
	struct rdb_usage_reset *v = realloc(l->v, (l->n + 1) * sizeof *v);

	if (v == NULL)
		return 1;
	l->v = v;
	l->v[l->n++] = *r;
	return 0;
}

int mlt_reset_list_load(struct mlt_store *store, int64_t keep, struct mlt_reset_list *out,
                        char *err, size_t errlen)
{
	out->v = NULL;
	out->n = 0;
	if (mlt_store_resets(store, 0, (int64_t)time(NULL) - keep, collect, out, err,
	                     errlen) != 0) {
		mlt_reset_list_free(out);
		return -1;
	}
	return 0;
}

void mlt_reset_list_free(struct mlt_reset_list *l)
{
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

void mlt_reset_filter(const struct mlt_reset_list *l, const char *login, int64_t ts,
                      uint64_t v[RDB_METRICS])
{
	for (size_t k = 0; k < l->n; k++) {
		if (ts > l->v[k].ts || strcasecmp(l->v[k].login, login) != 0)
			continue;
		for (int m = 0; m < RDB_METRICS; m++)
			if (l->v[k].metrics & (1u << m))
				v[m] = 0;
	}
}

void mlt_reset_start(struct mlt_store *store, struct mlt_reset_ctx *ctx,
                     const struct mlt_reset_list *l)
{
	int64_t last = 0;

	for (size_t k = 0; k < l->n; k++) {
		mlt_reset_apply(ctx, &l->v[k], false);
		if (l->v[k].id > last)
			last = l->v[k].id;
	}
	mlt_store_watch_resets(store, last, on_reset, ctx);
}
