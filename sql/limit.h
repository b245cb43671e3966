/*
 * limit.h — the limit domain, one model for everything that counts: relay-milter admits
 * and counts with it, relay-admin shows usage and parses limits with it, and the users
 * database stores limits in its terms (sql/policy.h reads and writes them).
 *
 * What it holds: the metrics (messages, recipients, bytes) and their stored names; a limit
 * ("at most MAX of METRIC in any WINDOW seconds ending now") and how many a login may
 * have in effect; a time-ordered usage log per login with sums over any window and the
 * time until a request fits; the units admins write (N/PERIOD, sizes, durations); and the
 * rule that makes a login active, disabled or expired at a given time.
 *
 * Usage log: one entry per second with traffic (entries of the same second are merged),
 * so every window is exact to the second. Memory is bounded: past RDB_USAGE_MAX entries
 * the two oldest neighbours are merged, keeping the later time, which can only over-count
 * (the conservative direction for a limiter).
 *
 * Clock steps: times are whatever clock the caller uses (relay-milter: its steady limiter
 * clock, see milter/rate.h; relay-admin: the wall clock of the persisted rows). An entry
 * dated after `now` can only come from a clock that stepped back; it is never skipped —
 * that let a login send without limit until the clock caught up — but counts as if dated
 * `now`; rdb_usage_clamp() (and any add) re-dates it to `now`, so it leaves every window at
 * most one window after the step is seen, not one window after the clock catches up.
 *
 * Ownership: struct rdb_usage is created by rdb_usage_new() and freed by rdb_usage_free()
 * (NULL-safe). Not thread safe: the caller (milter/rate.c) holds a lock. Everything else
 * here is a pure function.
 * Errors: rdb_usage_add() returns false only when memory runs out.
 */
#ifndef RELAY_RDB_LIMIT_H
#define RELAY_RDB_LIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rdb.h"

/* The most limits in effect for one login (its own rows plus the defaults it inherits, all
 * metrics together), and for the defaults alone. One number for everyone: the reader
 * (rdb_policy_login, rdb_limits_get) refuses more as RDB_ERROR — the milter then tempfails
 * the login's mail — so the writer (rdb_limits_set) refuses any change that would leave
 * more, relay-admin check reports a database that already has more, the schema's trigger
 * limits_per_login_max caps the rows (test-rdb checks its number against this one), and
 * relay-milter's MLT_LIMITS_MAX is held equal by a static_assert (milter/store.c). */
#define RDB_LIMITS_MAX 32
#define RDB_WINDOW_MAX 31622400    /* 366 days, as the schema's CHECK */

/* The order is the stored order (policy.c sorts by it) and the index of every
 * uint64_t v[RDB_METRICS] vector. */
enum rdb_metric { RDB_METRIC_MESSAGES, RDB_METRIC_RECIPIENTS, RDB_METRIC_BYTES, RDB_METRICS };

#define RDB_USAGE_MAX 8192
#define RDB_WAIT_NEVER INT64_C(-1) /* the request can never fit (it exceeds the limit alone) */

struct rdb_limit {
	enum rdb_metric metric;
	int64_t window;  /* seconds, 1..RDB_WINDOW_MAX */
	uint64_t max;
};

const char *rdb_metric_name(enum rdb_metric m);
bool rdb_metric_parse(const char *s, enum rdb_metric *out);

/* The one rule for a login's state at `now` (unix seconds): disabled wins, then an expiry
 * at or before now. The plugin, the milter and relay-admin all ask this. */
enum rdb_login_state rdb_login_state_at(bool enabled, bool has_expiry, int64_t expires_at,
                                        int64_t now);

/* ---- the usage log --------------------------------------------------------------------- */

struct rdb_usage;

struct rdb_usage *rdb_usage_new(void);
void rdb_usage_free(struct rdb_usage *u);

/* Records v[metric] at time t (seconds). Entries after t (the clock stepped back) are first
 * re-dated to t and merged: counted in full, for one window from t. */
bool rdb_usage_add(struct rdb_usage *u, int64_t t, const uint64_t v[RDB_METRICS]);

/* Re-dates entries after `now` to `now` (merged into one entry). O(1) when there are none. */
void rdb_usage_clamp(struct rdb_usage *u, int64_t now);

/* Sum of `metric` over entries with now - window < t; entries after now count as at now. */
uint64_t rdb_usage_sum(const struct rdb_usage *u, enum rdb_metric metric, int64_t window,
                       int64_t now);

/* Drops entries that no window of `keep` seconds can see any more. */
void rdb_usage_prune(struct rdb_usage *u, int64_t now, int64_t keep);
size_t rdb_usage_len(const struct rdb_usage *u);

/* A counter reset: the metrics in `metrics` (bits 1 << enum rdb_metric) of entries with
 * t <= before become 0 (entries stay; the ring keeps its order). */
void rdb_usage_zero(struct rdb_usage *u, unsigned metrics, int64_t before);

/* Seconds from `now` until `need` more fits under `lim` when `reserved` is already
 * promised to messages in flight: 0 if it fits now, RDB_WAIT_NEVER if need > lim->max.
 * Reservations are assumed to commit now (so they leave the window `window` seconds from
 * now): the answer is the earliest time a retry can succeed if nothing else is sent.
 * `u` may be NULL (nothing sent yet). */
int64_t rdb_window_wait(const struct rdb_usage *u, const struct rdb_limit *lim,
                        uint64_t reserved, uint64_t need, int64_t now);

/* Checks every limit against need[metric] (+ reserved[metric]); returns 0 if all fit, else
 * the largest wait among the limits that do not fit (RDB_WAIT_NEVER dominates) and sets
 * *which to the index of the limit that decided it. */
int64_t rdb_limits_wait(const struct rdb_usage *u, const struct rdb_limit *lims, size_t n,
                        const uint64_t reserved[RDB_METRICS], const uint64_t need[RDB_METRICS],
                        int64_t now, size_t *which);

/* ---- units: N/PERIOD, durations, sizes (pure; also used by tests) ------------------ */

/* "90", "10s", "5m", "1h", "1d", "1w" → seconds in [1, max]. */
bool rdb_parse_duration(const char *s, int64_t max, int64_t *out);
/* "1000", "50K", "50M", "2G" (powers of 1024) → bytes. */
bool rdb_parse_size(const char *s, uint64_t *out);
/* Formats seconds as the shortest exact unit: "90s", "10m", "1h", "1d". */
void rdb_format_duration(int64_t seconds, char *out, size_t outlen);

#endif
