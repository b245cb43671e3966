/*
 * pgstate.h — the state database on PostgreSQL: the operations of state.h (audit, usage,
 * last use, prune, copy helpers) and the exact admission of admit.h, over libpq. Internal
 * to sql/: state.c hands a handle here when the database name selects PostgreSQL
 * (rdb_state_name_is_pg()), so the front ends never see the engine.
 *
 * Connection: one PGconn per handle, opened with the conninfo the name gives (a URI, or
 * the contents of a `pg:` file that only its owner may read), connect_timeout 5 s unless
 * the conninfo says otherwise, every statement prepared right after connecting (the
 * table in pgstate.c). A lost connection is an RDB_ERROR for the call that met it (the
 * caller fails closed: 451); the next call outside a transaction connects again.
 *
 * Ownership: struct rdb_pgstate from rdb_pgstate_open(), freed by rdb_pgstate_close()
 * (NULL-safe). Not thread safe: one handle per thread, or a lock (milter/admit.c keeps a
 * small pool). Errors: enum rdb_result; the reason in rdb_pgstate_errmsg().
 */
#ifndef RELAY_RDB_PGSTATE_H
#define RELAY_RDB_PGSTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "limit.h"
#include "state.h"

struct rdb_pgstate;

enum rdb_result rdb_pgstate_init(const char *name, char *err, size_t errlen);
enum rdb_result rdb_pgstate_probe(const char *name, int64_t *version, char *err, size_t errlen);
enum rdb_result rdb_pgstate_open(const char *name, enum rdb_mode mode, struct rdb_pgstate **out,
                                 char *err, size_t errlen);
void rdb_pgstate_close(struct rdb_pgstate *p);
const char *rdb_pgstate_errmsg(const struct rdb_pgstate *p);

enum rdb_result rdb_pgstate_begin(struct rdb_pgstate *p);
enum rdb_result rdb_pgstate_commit(struct rdb_pgstate *p);
void rdb_pgstate_rollback(struct rdb_pgstate *p);

enum rdb_result rdb_pgstate_audit_add(struct rdb_pgstate *p, const struct rdb_audit *a);
enum rdb_result rdb_pgstate_usage_write(struct rdb_pgstate *p, bool merge, const char *login,
                                        int64_t ts, const uint64_t v[3]);
enum rdb_result rdb_pgstate_last_use_write(struct rdb_pgstate *p, bool merge, const char *login,
                                           int64_t ts, const char *client_addr);
enum rdb_result rdb_pgstate_prune(struct rdb_pgstate *p, int64_t usage_before,
                                  int64_t audit_before);
enum rdb_result rdb_pgstate_usage_foreach(struct rdb_pgstate *p, const char *login,
                                          int64_t since,
                                          int (*fn)(const char *login, int64_t ts,
                                                    const uint64_t v[3], void *arg),
                                          void *arg);
enum rdb_result rdb_pgstate_audit_foreach(struct rdb_pgstate *p, const char *login,
                                          int64_t since, int64_t limit,
                                          int (*fn)(const struct rdb_audit *a, void *arg),
                                          void *arg);
enum rdb_result rdb_pgstate_last_use(struct rdb_pgstate *p, const char *login, int64_t *ts,
                                     char *client, size_t clientlen);
enum rdb_result rdb_pgstate_last_use_foreach(struct rdb_pgstate *p,
                                             int (*fn)(const char *login, int64_t ts,
                                                       const char *client_addr, void *arg),
                                             void *arg);

/* admit.h on PostgreSQL (the only engine that has it) */
enum rdb_result rdb_pgstate_admit(struct rdb_pgstate *p, bool commit, const char *login,
                                  const char *node, int64_t ttl, const struct rdb_limit *lims,
                                  size_t n, const uint64_t amount[RDB_METRICS], int64_t *resv_id,
                                  uint64_t resv_v[RDB_METRICS], int64_t *wait, size_t *which);
enum rdb_result rdb_pgstate_release(struct rdb_pgstate *p, int64_t resv_id);

#endif
