/*
 * state.h — the state database (default RELAY_DEFAULT_STATE_DB): rate-limit usage per
 * login and second, the last use of each login and app credential, and the audit log.
 *
 * Written only by relay-milter (one writer thread, batched transactions); read by
 * relay-admin (`usage`, `log`, `user list`). WAL journal, so readers never block the
 * writer; the folder must belong to the milter's user because WAL creates files beside
 * the database. Schema in state-schema.sql, versioned with PRAGMA user_version and
 * created through the same migration path as the users database; marked with its own
 * application_id so neither database can be mistaken for the other.
 *
 * Ownership: struct rdb_state is opaque, from rdb_state_open(), freed by rdb_state_close()
 * (NULL-safe). Strings passed in are borrowed; strings handed to callbacks live until the
 * callback returns. Not thread safe: one handle per thread, or a lock.
 *
 * Errors: enum rdb_result as in rdb.h; RDB_ERROR means "the database could not answer"
 * (callers fail closed), with the reason from rdb_state_errmsg().
 */
#ifndef RELAY_RDB_STATE_H
#define RELAY_RDB_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rdb.h"

#define RDB_STATE_SCHEMA_VERSION 5        /* 2: journal_mark (relay-milter's crash journal);
                                           * 3: counters (relay-milter's metrics);
                                           * 4: audit.credential, credential_use;
                                           * 5: reset_mark (counter resets applied) */
#define RDB_STATE_APPLICATION_ID 1919706227 /* 0x726C7973, "rlys" */
#define RDB_AUDIT_FIELD_MAX 255             /* bytes kept of any audit text field */

struct rdb_state;

/* Every function below takes either engine's name (rdb_is_postgresql(), rdb.h): a
 * PostgreSQL state database (sql/pg-state-schema.sql) is shared by several relay-milters. */

/* Creates the database (WAL) or checks/migrates an existing one. Refuses a foreign file or
 * a newer schema. The folder must exist; file modes follow the caller's umask. */
enum rdb_result rdb_state_init(const char *path, char *err, size_t errlen);

/* Reads the header only, read-only (relay-admin check): RDB_OK with *version for a state
 * database of any version, RDB_NOTFOUND for an empty SQLite file, RDB_INVALID for any
 * other file (a users database, a foreign SQLite file), RDB_ERROR if it cannot be read;
 * err says which. */
enum rdb_result rdb_state_probe(const char *path, int64_t *version, char *err, size_t errlen);

/* Opens an existing state database; RDB_READONLY for readers, RDB_READWRITE for the milter. */
enum rdb_result rdb_state_open(const char *path, enum rdb_mode mode, struct rdb_state **out,
                               char *err, size_t errlen);
void rdb_state_close(struct rdb_state *st);
const char *rdb_state_errmsg(const struct rdb_state *st);
/* A shared (PostgreSQL) state database: admission belongs in it (admit.h), and it has no
 * file, no WAL and no crash journal (checkpoint is a no-op, the journal mark RDB_ERROR). */
bool rdb_state_shared(const struct rdb_state *st);

enum rdb_result rdb_state_begin(struct rdb_state *st);
enum rdb_result rdb_state_commit(struct rdb_state *st);
void rdb_state_rollback(struct rdb_state *st);

/* One audit record. Text fields may be NULL (stored as ""); they are clamped to
 * RDB_AUDIT_FIELD_MAX bytes and control characters are replaced by '?'. */
struct rdb_audit {
	int64_t id;                /* filled in by readers */
	int64_t ts;
	const char *login;
	const char *client_addr;
	const char *tls_version;
	const char *cipher;
	const char *env_from;
	const char *header_from;
	uint64_t rcpt_count;
	uint64_t size;
	const char *queue_id;
	const char *verdict;       /* accepted, held, rejected, tempfailed */
	const char *reason;
	const char *credential;    /* the app credential's label; "" or NULL = the login's own */
};

enum rdb_result rdb_state_audit_add(struct rdb_state *st, const struct rdb_audit *a);

/* Adds to the usage row of (login, ts), creating it. */
enum rdb_result rdb_state_usage_add(struct rdb_state *st, const char *login, int64_t ts,
                                    uint64_t messages, uint64_t recipients, uint64_t bytes);

/* Records that `login` sent at `ts` from `client_addr`. */
enum rdb_result rdb_state_touch(struct rdb_state *st, const char *login, int64_t ts,
                                const char *client_addr);

/* Records that app credential `label` of `login` was used at `ts` from `client_addr`. */
enum rdb_result rdb_state_credential_touch(struct rdb_state *st, const char *login,
                                           const char *label, int64_t ts,
                                           const char *client_addr);

/* Deletes usage rows with ts <= usage_before and audit rows with ts <= audit_before. */
enum rdb_result rdb_state_prune(struct rdb_state *st, int64_t usage_before, int64_t audit_before);

/* Usage rows with ts > since, ordered by login then ts; login NULL = every login. A
 * non-zero return from fn means it could not take the row: the walk stops with RDB_ERROR
 * (a caller that kept only part of the rows must not carry on as if it had them all). */
enum rdb_result rdb_state_usage_foreach(struct rdb_state *st, const char *login, int64_t since,
                                        int (*fn)(const char *login, int64_t ts,
                                                  const uint64_t v[3], void *arg),
                                        void *arg);

/* The newest `limit` audit records with ts >= since (login NULL = all), oldest first.
 * A non-zero return from fn stops the walk with RDB_ERROR, as above. */
enum rdb_result rdb_state_audit_foreach(struct rdb_state *st, const char *login, int64_t since,
                                        int64_t limit,
                                        int (*fn)(const struct rdb_audit *a, void *arg),
                                        void *arg);

/* Which audit records a query wants: ids in (after_id, upto_id], ts >= since, login and
 * verdict when not NULL (login without regard to case); `limit` > 0: only the newest that
 * many, else all. Records come oldest first. */
struct rdb_audit_filter {
	int64_t after_id, upto_id;
	int64_t since;
	const char *login;
	const char *verdict;       /* as stored: accepted, held, rejected, tempfailed */
	int64_t limit;
};

/* The records `f` selects, oldest first; a non-zero return from fn stops the walk with
 * RDB_ERROR, as above. */
enum rdb_result rdb_state_audit_query(struct rdb_state *st, const struct rdb_audit_filter *f,
                                      int (*fn)(const struct rdb_audit *a, void *arg),
                                      void *arg);

/* The highest audit id (0: none). A reader that follows the log reads this first and then
 * the records up to it, so a commit in between is read at the next turn, never skipped. */
enum rdb_result rdb_state_audit_max_id(struct rdb_state *st, int64_t *id);

/* PRAGMA data_version: changes when another connection commits to the file, so a reader
 * polls cheaply (no query of the audit table while nothing happened). */
enum rdb_result rdb_state_data_version(struct rdb_state *st, int64_t *version);

/* relay-milter's persisted metrics (table counters, version 3; names from prom.h): adds
 * `delta` to (name, label) inside the caller's transaction (read-write handles). */
enum rdb_result rdb_state_counter_add(struct rdb_state *st, const char *name, const char *label,
                                      uint64_t delta);
/* Every counter row, ordered by name and label. RDB_NOTFOUND (fn never called) for a file
 * older than version 3, which has none yet. A non-zero return from fn stops the walk with
 * RDB_ERROR. */
enum rdb_result rdb_state_counter_foreach(struct rdb_state *st,
                                          int (*fn)(const char *name, const char *label,
                                                    uint64_t value, void *arg),
                                          void *arg);

/* The audit records with verdict "held" and ts >= since, oldest first (relay-admin held
 * joins them to the hold queue by queue_id). A non-zero return from fn stops the walk
 * with RDB_ERROR. */
enum rdb_result rdb_state_audit_held_foreach(struct rdb_state *st, int64_t since,
                                             int (*fn)(const struct rdb_audit *a, void *arg),
                                             void *arg);

/* When the login last sent (RDB_NOTFOUND: never); client may be NULL, else 64 bytes. */
enum rdb_result rdb_state_last_use(struct rdb_state *st, const char *login, int64_t *ts,
                                   char *client, size_t clientlen);

/* When app credential `label` of `login` was last used (RDB_NOTFOUND: never, or a file
 * from before version 3); client as above. */
enum rdb_result rdb_state_credential_last_use(struct rdb_state *st, const char *login,
                                              const char *label, int64_t *ts, char *client,
                                              size_t clientlen);

/* Carrying counters over into a replacement file (relay-milter, when the file at its path
 * was replaced): per (login, second) the larger count wins, so a row merged twice, or
 * into a copy that already has it, is not counted twice. */
enum rdb_result rdb_state_usage_merge(struct rdb_state *st, const char *login, int64_t ts,
                                      const uint64_t v[3]);
/* Keeps the later of the stored and the given last use. */
enum rdb_result rdb_state_last_use_merge(struct rdb_state *st, const char *login, int64_t ts,
                                         const char *client_addr);
/* The same for the last use of app credentials: keeps the later one. */
enum rdb_result rdb_state_credential_use_merge(struct rdb_state *st, const char *login,
                                               const char *label, int64_t ts,
                                               const char *client_addr);
/* Every credential_use row; a non-zero return from fn stops the walk with RDB_ERROR. */
enum rdb_result rdb_state_credential_use_foreach(struct rdb_state *st,
                                                 int (*fn)(const char *login, const char *label,
                                                           int64_t ts, const char *client_addr,
                                                           void *arg),
                                                 void *arg);
/* Every last_use row; a non-zero return from fn stops the walk with RDB_ERROR. */
enum rdb_result rdb_state_last_use_foreach(struct rdb_state *st,
                                           int (*fn)(const char *login, int64_t ts,
                                                     const char *client_addr, void *arg),
                                           void *arg);

/* relay-milter's crash journal (milter/journal.h): the id and sequence number of the last
 * journal record applied to this file (RDB_NOTFOUND: none yet). Set it in the transaction
 * that applies the records. Read-write handles only (RDB_ERROR on a read-only one). */
enum rdb_result rdb_state_journal_get(struct rdb_state *st, uint64_t *journal_id, uint64_t *seq);
enum rdb_result rdb_state_journal_set(struct rdb_state *st, uint64_t journal_id, uint64_t seq);

/* A counter reset (relay-admin usage reset, applied by relay-milter): the metrics in
 * `metrics` (bits 1 << enum rdb_metric) of the login's usage rows with ts <= before become
 * 0; rows left all zero are deleted. Idempotent. Read-write handles only. */
enum rdb_result rdb_state_usage_reset(struct rdb_state *st, const char *login, unsigned metrics,
                                      int64_t before);

/* The id of the last counter reset (users database, usage_reset) applied to this file
 * (0: none). set keeps the larger of the stored and the given id. Set it in the
 * transaction that applies the reset, so its audit record is written once. Read-write
 * handles only. */
enum rdb_result rdb_state_reset_mark_get(struct rdb_state *st, int64_t *reset_id);
enum rdb_result rdb_state_reset_mark_set(struct rdb_state *st, int64_t reset_id);

/* Copies the WAL into the database file and empties it (PRAGMA wal_checkpoint(TRUNCATE));
 * RDB_ERROR if that failed or a reader kept the WAL in use. */
enum rdb_result rdb_state_checkpoint(struct rdb_state *st);

/* Closes a handle whose file is no longer at its path (moved, deleted, replaced) without
 * letting SQLite delete "<path>-wal" and "<path>-shm": those names may already belong to
 * the file now at the path. Checkpoint first, or the old file keeps part of its data in a
 * WAL under a name that is no longer its own. NULL-safe. */
void rdb_state_close_moved(struct rdb_state *st);

#endif
