/*
 * reset.h — counter resets in relay-milter: `relay-admin usage reset NAME [--metric M]`
 * writes a row to the users database (table usage_reset); the milter applies it here.
 *
 * Why the users database: relay-admin is its only writer and the milter already watches it
 * (PRAGMA data_version, every policy_refresh_ms), so a reset reaches a running milter on its
 * next policy refresh with no new channel; the state database stays written by the milter
 * alone (its folder belongs to the milter's user).
 *
 * A reset at wall-clock second T clears the usage counted at or before T, metric by metric:
 *   - running (the store's watcher, mlt_reset_apply with live = true): the in-memory
 *     windows (rate.c) lose it; where T ends on the limiter's clock is found to the
 *     nanosecond, and the entries of that limiter second go too, so everything counted
 *     before the reset is cleared — and at most the next second's worth after it;
 *   - every time (live or not): a record goes to the state writer that zeroes the state
 *     database's usage rows with ts <= T and, the first time that file sees the reset (its
 *     reset mark), writes the audit record (verdict "admin", reason "usage reset: METRICS",
 *     client "relay-admin:WHO");
 *   - at start (mlt_reset_list_load before the counters are loaded, mlt_reset_filter on
 *     each persisted row, then mlt_reset_start): rows with ts <= T are loaded without the
 *     reset metrics — after the crash journal was replayed, so neither a restart nor a
 *     replayed journal brings reset counts back — and every reset younger than the longest
 *     window is pushed to the writer again (idempotent; audited once).
 *
 * Ownership: struct mlt_reset_ctx is a plain value owned by the caller (main.c), borrowed
 * by the store's watcher for the whole run; struct mlt_reset_list is freed with
 * mlt_reset_list_free(). Thread safety: mlt_reset_apply() may run on any thread (rate and
 * writer have their own locks); the list is read-only once loaded.
 */
#ifndef RELAY_MLT_RESET_H
#define RELAY_MLT_RESET_H

#include <stdbool.h>
#include <stdint.h>

#include "policy.h"
#include "rate.h"
#include "store.h"
#include "writer.h"

struct mlt_reset_ctx {
	struct mlt_rate *rate;
	struct mlt_writer *writer;
};

struct mlt_reset_list {
	struct rdb_usage_reset *v;
	size_t n;
};

/* Applies one reset: with `live`, clears rate's windows; always queues the writer's record. */
void mlt_reset_apply(struct mlt_reset_ctx *ctx, const struct rdb_usage_reset *r, bool live);

/* Start-up, before the counters are loaded: every reset younger than `keep` seconds. -1
 * (err set) if the users database cannot answer or memory runs out. */
int mlt_reset_list_load(struct mlt_store *store, int64_t keep, struct mlt_reset_list *out,
                        char *err, size_t errlen);
void mlt_reset_list_free(struct mlt_reset_list *l);

/* A persisted usage row of `login` at wall-clock `ts`: zeroes in v the metrics a reset at
 * or after ts cleared. */
void mlt_reset_filter(const struct mlt_reset_list *l, const char *login, int64_t ts,
                      uint64_t v[RDB_METRICS]);

/* Start-up, after the counters were loaded: queues every reset of the list for the state
 * writer, then has the store pass on each new one (live) as it appears. */
void mlt_reset_start(struct mlt_store *store, struct mlt_reset_ctx *ctx,
                     const struct mlt_reset_list *l);

#endif
