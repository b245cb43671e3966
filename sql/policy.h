/*
 * policy.h — users-database queries for the milter's policy and relay-admin's `limit`
 * command: a login's state and knobs, the login behind an app credential, its allowed senders, its effective rate limits
 * (own rows per metric, else the defaults of login_id 0), and writing limits.
 *
 * The limit domain itself (metrics, struct rdb_limit, RDB_LIMITS_MAX) is limit.h.
 *
 * Ownership: struct rdb_policy is a view of a struct rdb (borrowed: the rdb must outlive
 * it) whose statements were prepared when the rdb opened; rdb_policy_free(NULL) is safe.
 * Not thread safe: use one per rdb handle, under the same lock as the handle.
 *
 * Errors: RDB_NOTFOUND only for "no such login"; anything the database cannot answer is
 * RDB_ERROR and callers fail closed. Messages go to the rdb's one error holder:
 * rdb_policy_errmsg(p) and rdb_errmsg(db) say the same, and a failed rdb_policy_new()
 * always leaves a reason in rdb_errmsg(db).
 * Columns are type-checked; a row of the wrong shape is RDB_ERROR, never a default.
 */
#ifndef RELAY_RDB_POLICY_H
#define RELAY_RDB_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "limit.h"
#include "rdb.h"

struct rdb_login_policy {
	char name[RDB_NAME_MAX + 1];   /* as stored */
	bool enabled;
	bool has_expiry;
	int64_t expires_at;
	bool rate_exempt;
	bool hold_over_limit;
	size_t nlimits;                /* effective limits: own rows per metric, else defaults */
	struct rdb_limit limits[RDB_LIMITS_MAX];
};

struct rdb_policy;

enum rdb_result rdb_policy_new(struct rdb *db, struct rdb_policy **out);
void rdb_policy_free(struct rdb_policy *p);
const char *rdb_policy_errmsg(const struct rdb_policy *p);

/* The login (case-insensitive) with its effective limits. */
enum rdb_result rdb_policy_login(struct rdb_policy *p, const char *name,
                                 struct rdb_login_policy *out);

/* The login an app credential's authentication name belongs to (case-insensitive):
 * `login` (RDB_NAME_MAX + 1) gets the login's stored name, `label` (RDB_LABEL_MAX + 1)
 * the credential's label. RDB_NOTFOUND when no credential has that name. */
enum rdb_result rdb_policy_credential(struct rdb_policy *p, const char *authname, char *login,
                                      char *label);

/* Calls fn for each allowed sender pattern of the login (none: no calls). A non-zero
 * return from fn stops the walk and makes the call RDB_ERROR (e.g. out of memory). */
enum rdb_result rdb_policy_senders(struct rdb_policy *p, const char *name,
                                   int (*fn)(const char *pattern, void *arg), void *arg);

/* PRAGMA data_version: changes whenever another connection commits. Cheap. */
enum rdb_result rdb_policy_data_version(struct rdb_policy *p, int64_t *out);

/* The longest window of any limit in the database (0 if none). */
enum rdb_result rdb_policy_max_window(struct rdb_policy *p, int64_t *out);

/* Which metrics any limit in the database counts (defaults or any login's own rows), as
 * bits 1 << enum rdb_metric (0 if there are no limits). */
enum rdb_result rdb_policy_metrics(struct rdb_policy *p, unsigned *mask);

/* ---- relay-admin: limits as stored (name NULL = the defaults) ----------------------- */

/* The login's own rows (or the defaults), ordered by metric and window. */
enum rdb_result rdb_limits_get(struct rdb_policy *p, const char *name, struct rdb_limit *out,
                               size_t max, size_t *n);

/* Replaces the rows of every metric that appears in `lims` (other metrics untouched).
 * Validates windows (1..RDB_WINDOW_MAX) and duplicates (RDB_INVALID). RDB_INVALID, with
 * nothing changed, when afterwards the login — or for the defaults, the defaults or any
 * login inheriting them — would have more than RDB_LIMITS_MAX limits in effect. Runs in
 * the caller's transaction if one is open (rdb_begin), else in its own. */
enum rdb_result rdb_limits_set(struct rdb_policy *p, const char *name,
                               const struct rdb_limit *lims, size_t n);

/* Calls fn(name, n, arg) for every login with more than RDB_LIMITS_MAX limits in effect,
 * by id, first the defaults themselves (name NULL) if they alone are too many. Such a
 * database was written around relay-admin. A non-zero return from fn stops the walk. */
enum rdb_result rdb_limits_over(struct rdb_policy *p,
                                int (*fn)(const char *name, int64_t n, void *arg), void *arg);

/* Removes all of the login's own rows (or all defaults). */
enum rdb_result rdb_limits_clear(struct rdb_policy *p, const char *name);

/* Sets the per-login knobs; a negative value leaves that knob unchanged. */
enum rdb_result rdb_policy_set_flags(struct rdb_policy *p, const char *name, int rate_exempt,
                                     int hold_over_limit, int64_t now);

/* ---- counter resets (relay-admin usage reset → relay-milter) ------------------------- */

/* Usage of `login` counted at or before `ts` no longer counts for the metrics in
 * `metrics` (bits 1 << enum rdb_metric). `admin` says who asked (audit log). */
#define RDB_RESET_ADMIN_MAX 48       /* as the schema's CHECK */
struct rdb_usage_reset {
	int64_t id;                       /* increasing, never reused */
	char login[RDB_NAME_MAX + 1];     /* the login's name as stored when it was reset */
	unsigned metrics;
	int64_t ts;
	char admin[RDB_RESET_ADMIN_MAX + 1];
};

/* Records a reset of the login's counters at `now` (RDB_NOTFOUND: no such login;
 * RDB_INVALID: metrics not a non-empty subset of the three) and deletes resets older than
 * any window (RDB_WINDOW_MAX). Sets *id. Runs in the caller's transaction if one is open. */
enum rdb_result rdb_usage_reset_add(struct rdb_policy *p, const char *name, unsigned metrics,
                                    const char *admin, int64_t now, int64_t *id);

/* Calls fn for every reset with id > after_id and ts >= since (login NULL: of every login,
 * else of that one, case-insensitively), by id. A non-zero return from fn stops the walk
 * with RDB_ERROR. */
enum rdb_result rdb_usage_reset_foreach(struct rdb_policy *p, const char *login,
                                        int64_t after_id, int64_t since,
                                        int (*fn)(const struct rdb_usage_reset *r, void *arg),
                                        void *arg);

#endif
