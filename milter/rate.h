/*
 * rate.h — per-login rate state shared by every session: the usage log of each login
 * (sql/limit.h) plus what messages in flight have reserved, under one mutex, so that
 * concurrent sessions of one login cannot slip past a limit together.
 *
 * Protocol per message: mlt_rate_reserve() at MAIL (1 message, SIZE= bytes) and at each
 * RCPT (1 recipient) — it admits and reserves atomically, or reports the wait; then either
 * mlt_rate_commit() at end of message (checks the real byte count, turns the reservation
 * into usage) or mlt_rate_release() at abort/close/refusal.
 *
 * Clock: every `now` here is the limiter's clock, mlt_rate_clock() — seconds on
 * CLOCK_BOOTTIME, which the wall clock's steps (NTP, VM restore, `date -s`) do not move and
 * which keeps counting while the machine sleeps. Windows therefore last exactly their real
 * length in a running milter, whatever the wall clock does: a backward step cannot make
 * entries look "in the future" and a forward step cannot age them early. The wall clock is
 * used only where a time outlives the process (the state database): mlt_rate_load() turns
 * a persisted wall-clock time into an age, and a row dated after the current wall clock
 * (the clock stepped back since it was written) counts as written now — in full, and for at
 * most one window from the restart. A forward step across a restart cannot be told from
 * downtime: rows then look older than they are (see relay-milter(8)).
 *
 * Ownership: struct mlt_rate from mlt_rate_new(), freed by mlt_rate_free() (NULL-safe);
 * struct mlt_resv is a plain value owned by the message context.
 * Thread safety: every function may be called from any thread.
 * Errors: MLT_RATE_ERROR (out of memory) — the caller tempfails.
 */
#ifndef RELAY_MLT_RATE_H
#define RELAY_MLT_RATE_H

#include <stddef.h>
#include <stdint.h>

#include "limit.h"

#define MLT_RATE_ERROR INT64_MIN

struct mlt_resv {
	uint64_t v[RDB_METRICS];
};

struct mlt_rate;

struct mlt_rate *mlt_rate_new(void);
void mlt_rate_free(struct mlt_rate *r);

/* The limiter's clock (see above), in whole seconds. */
int64_t mlt_rate_clock(void);

/* The limiter-clock second that holds the wall-clock instant `wall_ns` (nanoseconds since
 * the epoch), by the offset between the two clocks now, to the nanosecond: where a
 * wall-clock boundary (a counter reset) falls among entries stamped in limiter seconds. */
int64_t mlt_rate_clock_of_wall(int64_t wall_ns);

/* Adds persisted usage at start-up: `ts` is the row's wall-clock time, `wall_now` the wall
 * clock and `now` the limiter clock at load; the row is dated now - (wall_now - ts), and
 * never after now. false on out of memory. */
bool mlt_rate_load(struct mlt_rate *r, const char *login, int64_t ts,
                   const uint64_t v[RDB_METRICS], int64_t wall_now, int64_t now);

/* Admits `need` under every limit counting all reservations; on success adds it to *resv
 * and the login's reservations and returns 0; else returns the wait (or RDB_WAIT_NEVER)
 * and sets *which to the deciding limit's index, changing nothing. */
int64_t mlt_rate_reserve(struct mlt_rate *r, const char *login, const struct rdb_limit *lims,
                         size_t n, const uint64_t need[RDB_METRICS], int64_t now,
                         struct mlt_resv *resv, size_t *which);

/* At end of message: checks `actual` bytes against the byte limits with the other
 * messages' reservations; on success turns *resv into usage {1, recipients, bytes} at
 * `now`, prunes entries older than `keep` seconds, zeroes *resv and returns 0. On a wait
 * nothing changes (the caller releases). */
int64_t mlt_rate_commit(struct mlt_rate *r, const char *login, const struct rdb_limit *lims,
                        size_t n, struct mlt_resv *resv, const uint64_t actual[RDB_METRICS],
                        int64_t now, int64_t keep, size_t *which);

/* Gives back a reservation (idempotent: zeroes *resv). */
void mlt_rate_release(struct mlt_rate *r, const char *login, struct mlt_resv *resv);

/* A counter reset (relay-admin usage reset): the metrics in `metrics` (bits 1 << enum
 * rdb_metric) counted at or before `before` (limiter clock) no longer count. Reservations
 * of messages in flight stay. `login` as the callbacks key it (lowercase). */
void mlt_rate_reset(struct mlt_rate *r, const char *login, unsigned metrics, int64_t before);

/* For tests and `usage`: current sum of a metric over a window. */
uint64_t mlt_rate_sum(struct mlt_rate *r, const char *login, enum rdb_metric m,
                      int64_t window, int64_t now);

#endif
