/*
 * metrics.h — relay-milter's metrics: counters the callbacks, the users-database cache and
 * the state writer bump (lock-free atomics, so a callback never waits for them), the file
 * a Prometheus node_exporter textfile collector reads (`metrics_file` in milter.conf), and
 * the running totals the state writer persists for `relay-admin metrics`.
 *
 * Names, types, help texts and labels come from the shared catalogue (sql/prom.h). What is
 * counted where:
 *   - every message decision once, as the audit log records it: accepted (with its
 *     recipients and bytes), held, refused permanently (5xx) or temporarily (4xx) with the
 *     reason tag of decide.c's table; a temporary failure that has no message to audit
 *     (no session context) is counted too;
 *   - each time a login is over a limit (refused, held, or one recipient refused), by the
 *     limit's metric; users-database changes picked up; SIGUSR1 reloads applied;
 *   - state-writer wake-ups that could not commit, database errors by database, and the
 *     writer's queue length (a gauge).
 *
 * The file: written from a thread of its own every `metrics_interval` seconds, and once more
 * at stop, through sql/safefs.h (a temporary file beside it, fsync, rename: a scraper never
 * reads half a file; no link on the way is followed unless it sits in a folder nobody else
 * can write). A failure to write it is logged (once per distinct reason) and never touches
 * mail.
 * Persisting: the state writer calls mlt_metrics_persist() inside each batch transaction;
 * it adds what each counter gained since the last committed call (rdb_state_counter_add),
 * and mlt_metrics_persisted() after the commit moves the mark. A failed commit moves
 * nothing, so the next one carries the same gain.
 *
 * Ownership: the counters are process-wide (one milter per process); the file thread is
 * owned by main(). Thread safety: the mlt_metrics_* bumps from any thread; persist/dirty/
 * persisted from the state writer thread only; start/stop from the main thread.
 */
#ifndef RELAY_MLT_METRICS_H
#define RELAY_MLT_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "decide.h"
#include "prom.h"
#include "state.h"

enum mlt_metrics_db { MLT_DB_USERS, MLT_DB_STATE };

/* A decision that ends a message (or, without a message, a session's MAIL): by action —
 * REJECT refused, TEMPFAIL tempfails, HOLD held; CONTINUE counts nothing. */
void mlt_metrics_verdict(const struct mlt_verdict *v);
void mlt_metrics_accepted(uint64_t recipients, uint64_t bytes);
void mlt_metrics_held(void);
void mlt_metrics_limit_hit(enum mlt_metric m);
void mlt_metrics_policy_reload(void);
void mlt_metrics_config_reload(void);
void mlt_metrics_writer_failure(void);
void mlt_metrics_db_error(enum mlt_metrics_db which);
void mlt_metrics_backlog(size_t queued);

/* The whole exposition text into b (appended); false when memory ran out. */
bool mlt_metrics_render(struct rdb_prom_buf *b);

/* Counters: the fixed ones, 3 limit metrics, 2 databases, and a reason slot per enum mlt_why
 * for refusals and for temporary failures. */
#define MLT_METRICS_SLOTS (7 + 3 + 2 + 2 * MLT_WHY_COUNT_)

struct mlt_metrics_mark {
	uint64_t v[MLT_METRICS_SLOTS];
};

/* Writer thread: adds the gains since the last persisted mark to st (inside the caller's
 * transaction) and records the values it used in *taken. */
enum rdb_result mlt_metrics_persist(struct rdb_state *st, struct mlt_metrics_mark *taken);
/* After the commit: *taken becomes the persisted mark. */
void mlt_metrics_persisted(const struct mlt_metrics_mark *taken);
/* Has any counter gained since the persisted mark? (The writer then commits even without
 * records, so `relay-admin metrics` sees e.g. a reload on an idle relay.) */
bool mlt_metrics_dirty(void);

struct mlt_metrics_file;

/* Starts the thread that writes `path` every interval_s seconds (it writes once before this
 * returns, logging a failure). NULL *out and 0 when path is "" (metrics_file off). */
int mlt_metrics_file_start(const char *path, int64_t interval_s, struct mlt_metrics_file **out,
                           char *err, size_t errlen);
/* Stops the thread and writes the file a last time. NULL-safe. */
void mlt_metrics_file_stop(struct mlt_metrics_file *f);

#endif
