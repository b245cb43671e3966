/*
 * admission.h — relay-milter's exact admission on a shared PostgreSQL state database: the
 * same reserve / commit / release protocol as the in-memory limiter (rate.h), but each
 * step is one transaction in the database (sql/admit.h), so every relay-milter sharing
 * the database counts against the same limits. Used instead of rate.c when state_db
 * names PostgreSQL; rate.c stays the SQLite path.
 *
 * Connections: a small pool (ADMIT_CONNS), opened lazily; a callback takes a free one or
 * waits for one (the milter's worker threads outnumber useful database sessions on a
 * two-core node). A connection that failed reconnects at its next use (the connection core, sql/pgconn.c).
 * Node name: "<hostname>:<pid>" on every reservation row, so an admin can see which node
 * holds what (and that a dead node's rows are waiting to expire).
 *
 * Errors: MLT_ADMIT_ERROR when the database could not answer — the caller tempfails
 * (451 4.3.0), never accepts unchecked; the reason is logged here, once per call.
 * Ownership: struct mlt_admit from mlt_admit_new(), freed by mlt_admit_free() (NULL-safe).
 * Thread safety: every function may be called from any thread.
 */
#ifndef RELAY_MLT_ADMISSION_H
#define RELAY_MLT_ADMISSION_H

#include <stddef.h>
#include <stdint.h>

#include "limit.h"
#include "rate.h"

#define MLT_ADMIT_ERROR (INT64_MIN + 1)

struct mlt_admit;

/* Checks that the database answers (one connection opened now). */
int mlt_admit_new(const char *state_db, struct mlt_admit **out, char *err, size_t errlen);
void mlt_admit_free(struct mlt_admit *a);

/* rate.h's mlt_rate_reserve / commit / release, in the database; `ttl` is the
 * reservation lifetime (reservation_ttl); *resv_id the message's reservation row (0: none
 * yet), kept beside *resv by the caller. Returns 0 (admitted), a wait or RDB_WAIT_NEVER
 * (*which set), or MLT_ADMIT_ERROR. */
int64_t mlt_admit_reserve(struct mlt_admit *a, const char *login, const struct rdb_limit *lims,
                          size_t n, const uint64_t need[RDB_METRICS], int64_t ttl,
                          struct mlt_resv *resv, int64_t *resv_id, size_t *which);
int64_t mlt_admit_commit(struct mlt_admit *a, const char *login, const struct rdb_limit *lims,
                         size_t n, struct mlt_resv *resv, int64_t *resv_id,
                         const uint64_t actual[RDB_METRICS], size_t *which);
/* Deletes the reservation row; if the database cannot be reached the row expires on its
 * own (logged). Zeroes *resv. */
void mlt_admit_release(struct mlt_admit *a, const char *login, struct mlt_resv *resv,
                       int64_t *resv_id);

#endif
