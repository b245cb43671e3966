/*
 * store.h — relay-milter's view of the users database: a cache of struct mlt_login by
 * login name, invalidated when the database changes (PRAGMA data_version, asked at most
 * every policy_refresh_ms), so relay-admin changes apply without a restart and a MAIL
 * normally costs no database access at all.
 *
 * Ownership: mlt_store_get() hands out a reference; drop it with mlt_store_put() (NULL
 * safe). Entries are immutable; an invalidated entry lives until its last reference goes.
 * Thread safety: every function may be called from any thread (one internal mutex guards
 * the SQLite handle and the cache).
 * Errors: MLT_LOOKUP_ERROR whenever the database cannot answer (never cached): the caller
 * tempfails.
 */
#ifndef RELAY_MLT_STORE_H
#define RELAY_MLT_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "decide.h"
#include "policy.h"

struct mlt_store;

int mlt_store_open(const char *users_db, int64_t refresh_ms, struct mlt_store **out,
                   char *err, size_t errlen);
void mlt_store_close(struct mlt_store *s);
void mlt_store_set_refresh(struct mlt_store *s, int64_t refresh_ms);

/* Looks `name` up as of `now` (unix seconds). On MLT_LOOKUP_FOUND *out holds a reference. */
enum mlt_lookup mlt_store_get(struct mlt_store *s, const char *name, int64_t now,
                              const struct mlt_login **out);
void mlt_store_put(const struct mlt_login *l);

/* How long usage must be kept: the longest limit window in the database as of the last
 * refresh, and at least a day (so a limit added later still sees the last day's traffic,
 * and `relay-admin usage` has something to show). */
#define MLT_HORIZON_MIN 86400

/* Which metrics any limit in the database counts, as bits 1 << enum mlt_metric, as of a
 * refresh at most policy_refresh_ms old (refreshing if due): negotiation asks the MTA only
 * for the stages these need. -1 when the database cannot answer (ask for everything). */
int mlt_store_metrics(struct mlt_store *s);
int64_t mlt_store_horizon(struct mlt_store *s);

/* Counter resets (relay-admin usage reset; milter/reset.h). mlt_store_resets() calls fn
 * for every reset with id > after_id and ts >= since, now (-1 with err set if the database
 * cannot answer). mlt_store_watch_resets() makes every refresh that finds the database
 * changed call fn for the resets newer than the last one seen (starting after after_id),
 * under the store's lock: fn must not call back into the store. A reset that cannot be
 * read fails the refresh (the milter tempfails until it can). */
int mlt_store_resets(struct mlt_store *s, int64_t after_id, int64_t since,
                     int (*fn)(const struct rdb_usage_reset *r, void *arg), void *arg,
                     char *err, size_t errlen);
void mlt_store_watch_resets(struct mlt_store *s, int64_t after_id,
                            void (*fn)(const struct rdb_usage_reset *r, void *arg), void *arg);

#endif
