/*
 * writer.h — the state-database writer: one thread that takes usage, last-use and audit
 * records from a queue and commits them in batches (every state_flush_ms), so no milter
 * callback ever waits for the disk. It also prunes old usage and audit rows.
 *
 * Durability: a record is in the state database within state_flush_ms (plus the commit);
 * a clean stop (SIGTERM/SIGHUP) flushes everything, retrying for up to stop_flush_timeout
 * seconds (disk full, file missing); what still cannot be written is logged record by
 * record and mlt_writer_stop() fails, so the milter exits non-zero. Counted records (the
 * accepted messages) go through the crash journal first (journal.h): mlt_writer_push()
 * appends them with one write() before it returns, mlt_writer_start() applies what a
 * killed milter left there before anything else, so a kill -9 loses none of them; the
 * other records (refusals, held messages) are audit only and a kill -9 loses at most the
 * last interval of them.
 * Health: if a commit fails the records stay queued and are retried; until a commit
 * succeeds again mlt_writer_healthy() is false and the milter tempfails new mail (fail
 * closed: counters that cannot be saved must not be spent).
 * The file: before each commit (every wake-up, also when idle) the writer stat()s the path
 * and compares it with the file it holds open, so it never counts into a file nobody reads:
 *   - missing (moved away, deleted): unhealthy until a file is back at the path; the old
 *     file's WAL is checkpointed into it so the moved file is complete on its own;
 *   - the same file back: carry on;
 *   - another file (a restore, a fresh database): the usage of the longest window and the
 *     last uses are read from the old file, the old file is checkpointed and closed, the new
 *     one is opened (created or migrated as at start) and those counters are merged into it
 *     (per login and second the larger count wins); then the queued records follow;
 *   - missing at stop: the file is created afresh and the counters carried over, so that
 *     the next start, which would create it anyway, does not begin at zero.
 * The in-memory counters (rate.c) are not touched by any of this: they keep counting.
 *
 * Ownership: records are allocated by the caller with calloc and handed over by
 * mlt_writer_push() (the writer frees them, also on failure).
 * Journal ↔ state database: the writer stores the journal mark (rdb_state_journal_set) in
 * each batch's transaction and empties a journal file only once its records are committed.
 * Thread safety: push/healthy/set from any thread; start/stop from the main thread.
 */
#ifndef RELAY_MLT_WRITER_H
#define RELAY_MLT_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "window.h"

struct mlt_record {
	int64_t ts;
	bool counted;                   /* add v[] to the login's usage */
	bool touch;                     /* update the login's last use */
	uint64_t v[MLT_METRICS];
	char login[256];
	char client_addr[64];
	char tls_version[32];
	char cipher[64];
	char env_from[256];
	char header_from[256];
	char queue_id[32];
	char verdict[16];
	char reason[64];
	char credential[33];            /* app credential label (RDB_LABEL_MAX); "" = own password */
	uint64_t rcpt_count;
	uint64_t size;
	uint64_t journal_seq;           /* set by the writer: 0 = not in the journal */
	/* A counter reset (milter/reset.h) instead of a message, when reset_id > 0: the usage
	 * of `login` at or before `ts` loses the metrics in reset_metrics, and the first time
	 * this file sees reset_id (its reset mark) the audit record is written. Never counted,
	 * never journaled: relay-milter pushes every recent reset again at each start. */
	int64_t reset_id;
	unsigned reset_metrics;
	struct mlt_record *next;
};

struct mlt_writer;

/* Opens (creating if needed) the state database, applies what the crash journal holds
 * (logging how many records it recovered) and starts the thread. */
int mlt_writer_start(const char *state_db, int64_t flush_ms, int64_t audit_retention,
                     struct mlt_writer **out, char *err, size_t errlen);
/* Stops taking mail (mlt_writer_healthy() is false from now on), flushes what is queued,
 * retrying for up to `retry_s` seconds, stops the thread, closes the database. Returns 0
 * when everything reached the file at the path, -1 when records or carried-over counters
 * were lost (each one logged). NULL-safe (0). */
int mlt_writer_stop(struct mlt_writer *w, int64_t retry_s);

/* Queues rec. A counted record is first appended to the crash journal: -1 if that failed
 * (disk full, I/O error, queue full), and the message must not be accepted (fail closed:
 * a count that may not survive a crash must not be spent). Other records: always 0 (one
 * that cannot be queued is logged and dropped). */
int mlt_writer_push(struct mlt_writer *w, struct mlt_record *rec);
bool mlt_writer_healthy(struct mlt_writer *w);

/* Reload: new intervals; `usage_keep` is the longest limit window (usage older is pruned). */
void mlt_writer_set(struct mlt_writer *w, int64_t flush_ms, int64_t audit_retention,
                    int64_t usage_keep);

/* Start-up: loads usage younger than `keep` seconds, calling fn per row. */
int mlt_writer_load_usage(const char *state_db, int64_t now, int64_t keep,
                          int (*fn)(const char *login, int64_t ts, const uint64_t v[3], void *),
                          void *arg, char *err, size_t errlen);

#endif
