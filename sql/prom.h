/*
 * prom.h — relay metrics in the Prometheus text exposition format (version 0.0.4): the one
 * catalogue of metric names, types, help texts and label keys, and a writer for it.
 *
 * Why here: relay-milter writes these metrics to its textfile-collector file from its
 * in-memory counters, and `relay-admin metrics` prints them from the counters the milter
 * persists in the state database (state.h, table `counters`). Both must print the same
 * names, types and labels, so both render through this module and neither spells a name.
 *
 * Conventions (https://prometheus.io/docs/practices/naming/): every name starts with
 * `relay_`, counters end in `_total`, sizes are bytes and times seconds; no login is ever
 * a label (unbounded cardinality, and a privacy matter). Label values are short tags
 * ([a-z0-9._-], see rdb_prom_label_ok()), so they never need escaping.
 *
 * Ownership: struct rdb_prom_buf owns its text (rdb_prom_buf_free(), NULL-safe); the
 * catalogue is static. Thread safety: the catalogue is read-only; a buffer belongs to one
 * thread. Errors: out of memory marks the buffer failed (b->failed); nothing is printed
 * half, the caller checks once at the end.
 */
#ifndef RELAY_RDB_PROM_H
#define RELAY_RDB_PROM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum rdb_prom_id {
	RDB_PROM_ACCEPTED,          /* relay_messages_accepted_total */
	RDB_PROM_ACCEPTED_RCPTS,    /* relay_accepted_recipients_total */
	RDB_PROM_ACCEPTED_BYTES,    /* relay_accepted_bytes_total */
	RDB_PROM_REFUSED,           /* relay_messages_refused_total{reason} (5xx) */
	RDB_PROM_TEMPFAILS,         /* relay_tempfails_total{reason} (4xx) */
	RDB_PROM_HELD,              /* relay_messages_held_total */
	RDB_PROM_LIMIT_HITS,        /* relay_limit_hits_total{metric} */
	RDB_PROM_POLICY_RELOADS,    /* relay_policy_reloads_total */
	RDB_PROM_CONFIG_RELOADS,    /* relay_config_reloads_total */
	RDB_PROM_WRITER_FAILURES,   /* relay_state_writer_failures_total */
	RDB_PROM_DB_ERRORS,         /* relay_database_errors_total{database} */
	/* live values of a running relay-milter: in its file only, never persisted */
	RDB_PROM_WRITER_BACKLOG,    /* relay_state_writer_backlog (gauge) */
	RDB_PROM_START_TIME,        /* relay_milter_start_time_seconds (gauge) */
	RDB_PROM_COUNT_
};

/* The first id that is not persisted in the state database. */
#define RDB_PROM_PERSISTED RDB_PROM_WRITER_BACKLOG

struct rdb_prom_family {
	const char *name;
	const char *help;
	const char *label;   /* the label key, or NULL for a family of one sample */
	bool gauge;          /* else a counter */
};

const struct rdb_prom_family *rdb_prom_family(enum rdb_prom_id id);

/* The id whose name is `name`; false for a name not in the catalogue. */
bool rdb_prom_lookup(const char *name, enum rdb_prom_id *out);

/* A label value we print: 1..64 bytes of [a-z0-9._-]. Anything else (a damaged or hostile
 * state database) is never printed. */
bool rdb_prom_label_ok(const char *v);

struct rdb_prom_buf {
	char *text;
	size_t len, cap;
	bool failed;         /* out of memory: the text is incomplete */
};

/* "# HELP" and "# TYPE" lines of a family. */
void rdb_prom_head(struct rdb_prom_buf *b, enum rdb_prom_id id);
/* One sample; `label` is the label's value (NULL for a family without a label; a value
 * rdb_prom_label_ok() refuses is skipped). */
void rdb_prom_sample(struct rdb_prom_buf *b, enum rdb_prom_id id, const char *label,
                     uint64_t value);
void rdb_prom_buf_free(struct rdb_prom_buf *b);

#endif
