/*
 * window.h — sliding-window rate arithmetic for one login: a time-ordered log of what was
 * sent (messages, recipients, bytes per second), sums over any window, and the time until
 * a request fits under a limit.
 *
 * Model: a limit is "at most MAX of METRIC in any WINDOW seconds ending now". The log
 * keeps one entry per second with traffic (entries of the same second are merged), so
 * every window is exact to the second. Memory is bounded: past MLT_USAGE_MAX entries the
 * two oldest neighbours are merged, keeping the later time, which can only over-count
 * (the conservative direction for a limiter).
 *
 * Clock steps: times are whatever clock the caller uses (relay-milter: its steady limiter
 * clock, see rate.h; relay-admin: the wall clock of the persisted rows). An entry dated
 * after `now` can only come from a clock that stepped back; it is never skipped — that let
 * a login send without limit until the clock caught up — but counts as if dated `now`;
 * mlt_usage_clamp() (and any add) re-dates it to `now`, so it leaves every window at most
 * one window after the step is seen, not one window after the clock catches up with it.
 *
 * Ownership: struct mlt_usage is created by mlt_usage_new() and freed by mlt_usage_free()
 * (NULL-safe). Not thread safe: the caller (rate.c) holds a lock.
 * Errors: mlt_usage_add() returns false only when memory runs out.
 */
#ifndef RELAY_MLT_WINDOW_H
#define RELAY_MLT_WINDOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum mlt_metric { MLT_MESSAGES, MLT_RECIPIENTS, MLT_BYTES, MLT_METRICS };

#define MLT_USAGE_MAX 8192
#define MLT_WAIT_NEVER INT64_C(-1) /* the request can never fit (it exceeds the limit alone) */

struct mlt_limit {
	enum mlt_metric metric;
	int64_t window;  /* seconds, >= 1 */
	uint64_t max;
};

struct mlt_usage;

struct mlt_usage *mlt_usage_new(void);
void mlt_usage_free(struct mlt_usage *u);

/* Records v[metric] at time t (seconds). Entries after t (the clock stepped back) are first
 * re-dated to t and merged: counted in full, for one window from t. */
bool mlt_usage_add(struct mlt_usage *u, int64_t t, const uint64_t v[MLT_METRICS]);

/* Re-dates entries after `now` to `now` (merged into one entry). O(1) when there are none. */
void mlt_usage_clamp(struct mlt_usage *u, int64_t now);

/* Sum of `metric` over entries with now - window < t; entries after now count as at now. */
uint64_t mlt_usage_sum(const struct mlt_usage *u, enum mlt_metric metric, int64_t window,
                       int64_t now);

/* Drops entries that no window of `keep` seconds can see any more. */
void mlt_usage_prune(struct mlt_usage *u, int64_t now, int64_t keep);
size_t mlt_usage_len(const struct mlt_usage *u);

/* Seconds from `now` until `need` more fits under `lim` when `reserved` is already
 * promised to messages in flight: 0 if it fits now, MLT_WAIT_NEVER if need > lim->max.
 * Reservations are assumed to commit now (so they leave the window `window` seconds from
 * now): the answer is the earliest time a retry can succeed if nothing else is sent.
 * `u` may be NULL (nothing sent yet). */
int64_t mlt_window_wait(const struct mlt_usage *u, const struct mlt_limit *lim,
                        uint64_t reserved, uint64_t need, int64_t now);

/* Checks every limit against need[metric] (+ reserved[metric]); returns 0 if all fit, else
 * the largest wait among the limits that do not fit (MLT_WAIT_NEVER dominates) and sets
 * *which to the index of the limit that decided it. */
int64_t mlt_limits_wait(const struct mlt_usage *u, const struct mlt_limit *lims, size_t n,
                        const uint64_t reserved[MLT_METRICS], const uint64_t need[MLT_METRICS],
                        int64_t now, size_t *which);

/* ---- units: N/PERIOD, durations, sizes (pure; also used by tests) ------------------ */

/* "90", "10s", "5m", "1h", "1d", "1w" → seconds in [1, max]. */
bool mlt_parse_duration(const char *s, int64_t max, int64_t *out);
/* "1000", "50K", "50M", "2G" (powers of 1024) → bytes. */
bool mlt_parse_size(const char *s, uint64_t *out);
/* Formats seconds as the shortest exact unit: "90s", "10m", "1h", "1d". */
void mlt_format_duration(int64_t seconds, char *out, size_t outlen);

const char *mlt_metric_name(enum mlt_metric m);

#endif
