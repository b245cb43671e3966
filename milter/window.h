/*
 * window.h — the milter's names for the limit domain, which lives in the shared library
 * (sql/limit.h): windows, metrics, units and the usage log are one model for relay-milter,
 * relay-admin and the database. These are aliases, not copies — `struct mlt_limit` *is*
 * `struct rdb_limit` — so nothing is converted or cast between the two, and a value read
 * from the users database goes to the limiter as it is. New code writes the rdb_ names;
 * the aliases keep the milter's policy modules (decide.c, callbacks.c, config.c) and
 * their tests unchanged while those are reworked elsewhere, and can go once none is left.
 *
 * Ownership, thread safety and errors: as in sql/limit.h.
 */
#ifndef RELAY_MLT_WINDOW_H
#define RELAY_MLT_WINDOW_H

#include "limit.h"

#define mlt_metric rdb_metric
#define MLT_MESSAGES RDB_METRIC_MESSAGES
#define MLT_RECIPIENTS RDB_METRIC_RECIPIENTS
#define MLT_BYTES RDB_METRIC_BYTES
#define MLT_METRICS RDB_METRICS
#define mlt_metric_name rdb_metric_name

#define mlt_limit rdb_limit
#define MLT_USAGE_MAX RDB_USAGE_MAX
#define MLT_WAIT_NEVER RDB_WAIT_NEVER

#define mlt_usage rdb_usage
#define mlt_usage_new rdb_usage_new
#define mlt_usage_free rdb_usage_free
#define mlt_usage_add rdb_usage_add
#define mlt_usage_clamp rdb_usage_clamp
#define mlt_usage_sum rdb_usage_sum
#define mlt_usage_prune rdb_usage_prune
#define mlt_usage_len rdb_usage_len
#define mlt_window_wait rdb_window_wait
#define mlt_limits_wait rdb_limits_wait

#define mlt_parse_duration rdb_parse_duration
#define mlt_parse_size rdb_parse_size
#define mlt_format_duration rdb_format_duration

#endif
