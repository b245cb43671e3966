/*
 * admit.h — exact admission across relay nodes: the rate decision as one atomic step in a
 * shared (PostgreSQL) state database, so that a limit of N messages an hour means N in
 * total, however many relay-milters share the database.
 *
 * Per check, in one transaction serialised per login (pg_advisory_xact_lock on the
 * lower-cased login): the login's usage in each limit's window ending at the database's
 * now(), plus the open reservations of every node (expired ones do not count), against
 * the limits; if admitted, the amount goes into this message's reservation row (created
 * at the first check, with the node's name and expires_at = now() + ttl, extended at each
 * later check) before the transaction commits. The arithmetic (which limits a request
 * touches, the time until it fits) is sql/limit.h's, the same as the SQLite path's
 * in-memory limiter (milter/rate.c): only the numbers come from the database.
 *
 *   reserve  — at MAIL (1 message, SIZE=) and each RCPT (1 recipient); a request no
 *              limit of the login counts is admitted without a round trip (held in
 *              resv_v, written with the row's next change);
 *   commit   — at end of message: the actual bytes against the byte limits (the whole
 *              message against every limit if its reservation expired meanwhile); if it
 *              fits, the reservation becomes usage {1, recipients, bytes} dated now();
 *   release  — at abort, close, refusal or hold: the row is deleted.
 * A node that dies leaves its rows behind; they stop counting at expires_at and prune
 * deletes them. `ttl` must outlast the longest pause of a session in flight (relay-milter
 * requires reservation_ttl > timeout).
 *
 * Results: RDB_OK with *wait = 0 (admitted; *resv_id/resv_v updated), RDB_OK with
 * *wait > 0 or RDB_WAIT_NEVER (refused: *which is the deciding limit's index, nothing
 * changed); RDB_ERROR when the database could not answer (unreachable, connection lost,
 * serialization failure...): the caller tempfails, never accepts unchecked. On a SQLite
 * state database every function is RDB_ERROR ("admission needs PostgreSQL"): the milter
 * uses its in-memory limiter there.
 *
 * Ownership: the reservation (*resv_id, resv_v) is a plain value of the caller's message;
 * release zeroes it (idempotent). Thread safety: that of the handle (state.h).
 */
#ifndef RELAY_RDB_ADMIT_H
#define RELAY_RDB_ADMIT_H

#include <stdint.h>

#include "limit.h"
#include "state.h"

enum rdb_result rdb_admit_reserve(struct rdb_state *st, const char *login, const char *node,
                                  int64_t ttl, const struct rdb_limit *lims, size_t n,
                                  const uint64_t need[RDB_METRICS], int64_t *resv_id,
                                  uint64_t resv_v[RDB_METRICS], int64_t *wait, size_t *which);

enum rdb_result rdb_admit_commit(struct rdb_state *st, const char *login,
                                 const struct rdb_limit *lims, size_t n,
                                 const uint64_t actual[RDB_METRICS], int64_t *resv_id,
                                 uint64_t resv_v[RDB_METRICS], int64_t *wait, size_t *which);

enum rdb_result rdb_admit_release(struct rdb_state *st, int64_t *resv_id,
                                  uint64_t resv_v[RDB_METRICS]);

#endif
