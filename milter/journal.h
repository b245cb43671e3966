/*
 * journal.h — the crash journal of accepted messages: what makes a message's count and
 * audit record survive a kill -9 of relay-milter between its "accept" and the writer's
 * next commit (issue 13).
 *
 * Each accepted decision is appended to the journal with one write() before the verdict
 * goes back to Postfix. A write() to a regular file is in the kernel's page cache when it
 * returns, so the record outlives the process (not a power loss: nothing here calls
 * fsync, so no callback waits for the disk). At start, before the milter answers anyone,
 * mlt_journal_recover() applies the records the state database does not have yet, then
 * the journal starts afresh.
 *
 * Exactly once: every record carries the journal's id (random, new at each start) and a
 * sequence number; the state database keeps the (id, seq) of the last record it applied
 * in the same transaction as the record itself (rdb_state_journal_set). A record at or
 * below that mark is never applied again, whether the crash came after a commit and
 * before the journal was emptied, or in the middle of a replay.
 *
 * Bounded size: two files, "<state_db>.journal-0" and "-1". Appends go to the active one;
 * when the writer takes a batch it switches to the other file if that one is empty
 * (mlt_journal_switch), so the file it leaves holds only records of that batch or of
 * earlier ones; once the batch is committed that file is emptied (mlt_journal_release).
 * Records are only ever skipped, never lost, if a step fails: at worst they are applied
 * at the next start.
 *
 * Record: a 32-byte header (magic, payload length, FNV-1a 64 of id, seq and payload,
 * journal id, seq) and the payload (numbers little-endian, strings with a 2-byte length).
 * A torn record at the end (a write cut short by the kill) fails its length or checksum
 * and is dropped with what follows it: its verdict never went back, so Postfix did not
 * accept that message.
 *
 * Ownership: struct mlt_journal from mlt_journal_open(), freed by mlt_journal_close()
 * (NULL-safe). Thread safety: none inside; the writer (writer.c) calls append and switch
 * under its queue mutex, release and recover from its thread or before it starts.
 * Errors: -1 with a message in err (open, recover) or errno (append).
 */
#ifndef RELAY_MLT_JOURNAL_H
#define RELAY_MLT_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rdb.h"
#include "writer.h"

struct mlt_journal;
struct rdb_state;

/* Opens (creating, mode 0600) the two journal files of `state_db`. Nothing is read yet. */
int mlt_journal_open(const char *state_db, struct mlt_journal **out, char *err, size_t errlen);
void mlt_journal_close(struct mlt_journal *j);

/* Applies the records of both files that `st` has not seen, in one transaction with the
 * new mark; then empties both files and picks a new journal id. *recovered = records
 * applied, *skipped = records the database already had, *torn = bytes dropped. */
int mlt_journal_recover(struct mlt_journal *j, struct rdb_state *st, size_t *recovered,
                        size_t *skipped, size_t *torn, char *err, size_t errlen);

/* Appends `rec` with one write(); sets rec->journal_seq. -1 (errno set) if it is not all
 * in the file: then the message must not be accepted. */
int mlt_journal_append(struct mlt_journal *j, struct mlt_record *rec);

/* The writer takes a batch: move appends to the other file if it is empty. */
void mlt_journal_switch(struct mlt_journal *j);
/* The batch taken at the last switch (and all before it) is committed: empty the file the
 * appends left then. -1 if it could not be emptied (its records are then skipped at the
 * next start, by their mark). */
int mlt_journal_release(struct mlt_journal *j);

/* Writes one record into `st` (usage, last use, audit record; or a counter reset) inside
 * the caller's transaction: the one place both the writer and the recovery do it. */
enum rdb_result mlt_record_write(struct rdb_state *st, const struct mlt_record *r);

/* The journal id (for rdb_state_journal_set). */
uint64_t mlt_journal_id(const struct mlt_journal *j);

#endif
