/*
 * prom.c — the metric catalogue and the exposition writer (see prom.h).
 */
#include "prom.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct rdb_prom_family families[RDB_PROM_COUNT_] = {
	[RDB_PROM_ACCEPTED] = { "relay_messages_accepted_total",
		"Messages relay-milter accepted (exempt logins included).", NULL, false },
	[RDB_PROM_ACCEPTED_RCPTS] = { "relay_accepted_recipients_total",
		"Recipients of the accepted messages.", NULL, false },
	[RDB_PROM_ACCEPTED_BYTES] = { "relay_accepted_bytes_total",
		"Size of the accepted messages in bytes.", NULL, false },
	[RDB_PROM_REFUSED] = { "relay_messages_refused_total",
		"Messages refused permanently (5xx), by the audit log's reason.", "reason", false },
	[RDB_PROM_TEMPFAILS] = { "relay_tempfails_total",
		"Messages refused for now (4xx: rate limits, internal trouble), by reason.",
		"reason", false },
	[RDB_PROM_HELD] = { "relay_messages_held_total",
		"Messages put in Postfix's hold queue instead of being refused over a limit.",
		NULL, false },
	[RDB_PROM_LIMIT_HITS] = { "relay_limit_hits_total",
		"Times a login was over one of its rate limits, by the limit's metric.",
		"metric", false },
	[RDB_PROM_POLICY_RELOADS] = { "relay_policy_reloads_total",
		"Changes of the users database relay-milter picked up (cache dropped).", NULL,
		false },
	[RDB_PROM_CONFIG_RELOADS] = { "relay_config_reloads_total",
		"Configuration reloads (SIGUSR1) relay-milter applied.", NULL, false },
	[RDB_PROM_WRITER_FAILURES] = { "relay_state_writer_failures_total",
		"Times the state writer could not commit its queued records (retried).", NULL,
		false },
	[RDB_PROM_DB_ERRORS] = { "relay_database_errors_total",
		"Database errors relay-milter met, by database (users or state).", "database",
		false },
	[RDB_PROM_WRITER_BACKLOG] = { "relay_state_writer_backlog",
		"Records queued for the state database, not yet committed.", NULL, true },
	[RDB_PROM_START_TIME] = { "relay_milter_start_time_seconds",
		"When this relay-milter process started, in unix seconds.", NULL, true },
};

const struct rdb_prom_family *rdb_prom_family(enum rdb_prom_id id)
{
	return (unsigned)id < RDB_PROM_COUNT_ ? &families[id] : NULL;
}

bool rdb_prom_lookup(const char *name, enum rdb_prom_id *out)
{
	for (int k = 0; k < RDB_PROM_COUNT_; k++) {
		if (strcmp(families[k].name, name) == 0) {
			*out = (enum rdb_prom_id)k;
			return true;
		}
	}
	return false;
}

bool rdb_prom_label_ok(const char *v)
{
	size_t n = 0;

	for (; v != NULL && v[n] != '\0'; n++) {
		char c = v[n];

		if (n >= 64 || !((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
		                 c == '_' || c == '-'))
			return false;
	}
	return n > 0;
}

__attribute__((format(printf, 2, 3)))
static void put(struct rdb_prom_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->failed)
		return;
	for (;;) {
		size_t room = b->cap - b->len;

		va_start(ap, fmt);
		n = vsnprintf(b->text ? b->text + b->len : NULL, room, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->failed = true;
			return;
		}
		if ((size_t)n < room) {
			b->len += (size_t)n;
			return;
		}
		{
			size_t cap = b->cap ? b->cap * 2 : 4096;
			char *t;

			while (cap - b->len <= (size_t)n)
				cap *= 2;
			t = realloc(b->text, cap);
			if (t == NULL) {
				b->failed = true;
				return;
			}
			b->text = t;
			b->cap = cap;
		}
	}
}

void rdb_prom_head(struct rdb_prom_buf *b, enum rdb_prom_id id)
{
	const struct rdb_prom_family *f = rdb_prom_family(id);

	if (f == NULL)
		return;
	put(b, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name,
	    f->gauge ? "gauge" : "counter");
}

void rdb_prom_sample(struct rdb_prom_buf *b, enum rdb_prom_id id, const char *label,
                     uint64_t value)
{
	const struct rdb_prom_family *f = rdb_prom_family(id);

	if (f == NULL)
		return;
	if (f->label == NULL)
		put(b, "%s %" PRIu64 "\n", f->name, value);
	else if (rdb_prom_label_ok(label))
		put(b, "%s{%s=\"%s\"} %" PRIu64 "\n", f->name, f->label, label, value);
}

void rdb_prom_buf_free(struct rdb_prom_buf *b)
{
	if (b == NULL)
		return;
	free(b->text);
	memset(b, 0, sizeof *b);
}
