/*
 * reset.c — counter resets in relay-milter (see reset.h): from a usage_reset row to the
 * cleared in-memory windows and the state writer's record.
 */
#include "reset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

void mlt_reset_apply(const struct rdb_usage_reset *r, void *arg)
{
	struct mlt_reset_ctx *ctx = arg;
	struct mlt_record *rec;
	char key[RDB_NAME_MAX + 1], what[40];
	int64_t wall = (int64_t)time(NULL), now = mlt_rate_clock(), before;

	lower(key, sizeof key, r->login);
	metric_list(r->metrics, what, sizeof what);
	/* the reset's wall-clock time on the limiter's clock, as mlt_rate_load() dates a row;
	 * a reset from "the future" (the admin's clock ahead) clears everything until now */
	before = r->ts >= wall ? now : now - (wall - r->ts);
	mlt_rate_reset(ctx->rate, key, r->metrics, before);
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
	mlt_log(LOG_INFO, "counter reset %lld: %s of %s (by %s)", (long long)r->id, what, key,
	        r->admin);
}

struct start_ctx {
	struct mlt_reset_ctx *ctx;
	int64_t last;
};

static int start_one(const struct rdb_usage_reset *r, void *arg)
{
	struct start_ctx *s = arg;

	mlt_reset_apply(r, s->ctx);
	s->last = r->id;
	return 0;
}

int mlt_reset_start(struct mlt_store *store, struct mlt_reset_ctx *ctx, int64_t keep,
                    char *err, size_t errlen)
{
	struct start_ctx s = { ctx, 0 };

	if (mlt_store_resets(store, 0, (int64_t)time(NULL) - keep, start_one, &s, err, errlen) != 0)
		return -1;
	mlt_store_watch_resets(store, s.last, mlt_reset_apply, ctx);
	return 0;
}
