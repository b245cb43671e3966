/*
 * reset.h — counter resets in relay-milter: `relay-admin usage reset NAME [--metric M]`
 * writes a row to the users database (table usage_reset); the milter applies it here.
 *
 * Why the users database: relay-admin is its only writer and the milter already watches it
 * (PRAGMA data_version, every policy_refresh_ms), so a reset reaches a running milter on its
 * next policy refresh with no new channel; the state database stays written by the milter
 * alone (its folder belongs to the milter's user).
 *
 * Applying a reset means: the in-memory windows (rate.c) lose the reset metrics of
 * everything counted at or before the reset's time; a record goes to the state writer that
 * zeroes the same in the state database's usage rows and, the first time that file sees
 * the reset (its reset mark), writes an audit record (verdict "admin", reason "usage reset:
 * METRICS", client "relay-admin:WHO"). At start every reset younger than the longest window
 * is applied again after the crash journal was replayed and the counters loaded, so
 * neither a restart nor a replayed journal brings reset counts back.
 *
 * Clock: a reset's time is the wall clock of relay-admin; it is turned into the limiter's
 * clock (rate.h) as a persisted row's time is, so "at or before" means the same on both.
 * Ownership: struct mlt_reset_ctx is a plain value owned by the caller (main.c), borrowed
 * by the store's watcher for the whole run. Thread safety: mlt_reset_apply() may run on any
 * thread (rate and writer have their own locks).
 */
#ifndef RELAY_MLT_RESET_H
#define RELAY_MLT_RESET_H

#include <stdint.h>

#include "policy.h"
#include "rate.h"
#include "store.h"
#include "writer.h"

struct mlt_reset_ctx {
	struct mlt_rate *rate;
	struct mlt_writer *writer;
};

/* Applies one reset: clears rate's windows and queues the writer's record. */
void mlt_reset_apply(const struct rdb_usage_reset *r, void *ctx);

/* Start-up, after the counters were loaded: applies every reset younger than `keep`
 * seconds, then has the store pass on each new one as it appears. -1 (err set) if the
 * users database cannot answer. */
int mlt_reset_start(struct mlt_store *store, struct mlt_reset_ctx *ctx, int64_t keep,
                    char *err, size_t errlen);

#endif
