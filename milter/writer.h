/*
 * writer.h — the state-database writer: one thread that takes usage, last-use and audit
 * records from a queue and commits them in batches (every state_flush_ms), so no milter
 * callback ever waits for the disk. It also prunes old usage and audit rows.
 *
 * Durability: a record is on disk within state_flush_ms (plus the commit); a clean stop
 * (SIGTERM/SIGHUP) flushes everything. A kill -9 loses at most the last interval.
 * Health: if a commit fails the records stay queued and are retried; until a commit
 * succeeds again mlt_writer_healthy() is false and the milter tempfails new mail (fail
 * closed: counters that cannot be saved must not be spent).
 *
 * Ownership: records are allocated by the caller with calloc and handed over by
 * mlt_writer_push() (the writer frees them, also on failure).
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
	uint64_t rcpt_count;
	uint64_t size;
	struct mlt_record *next;
};

struct mlt_writer;

/* Opens (creating if needed) the state database and starts the thread. */
int mlt_writer_start(const char *state_db, int64_t flush_ms, int64_t audit_retention,
                     struct mlt_writer **out, char *err, size_t errlen);
/* Flushes what is queued, stops the thread, closes the database. NULL-safe. */
void mlt_writer_stop(struct mlt_writer *w);

void mlt_writer_push(struct mlt_writer *w, struct mlt_record *rec);
bool mlt_writer_healthy(struct mlt_writer *w);

/* Reload: new intervals; `usage_keep` is the longest limit window (usage older is pruned). */
void mlt_writer_set(struct mlt_writer *w, int64_t flush_ms, int64_t audit_retention,
                    int64_t usage_keep);

/* Start-up: loads usage younger than `keep` seconds, calling fn per row. */
int mlt_writer_load_usage(const char *state_db, int64_t now, int64_t keep,
                          int (*fn)(const char *login, int64_t ts, const uint64_t v[3], void *),
                          void *arg, char *err, size_t errlen);

#endif
