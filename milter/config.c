/*
 * config.c — the key table and the parser for milter.conf (see config.h).
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "rdb.h"
#include "relay-config.h"
#include "window.h"

/* K_DB: a database name, an absolute path or a PostgreSQL name (rdb_is_postgresql()) */
enum key_type {
	K_STRING, K_PATH, K_OPTPATH, K_DB, K_SOCKET, K_MODE, K_BOOL, K_ENUM, K_DURATION, K_INT,
	K_MAILBOX
};

struct enum_val {
	const char *name;
	int value;
};

static const struct enum_val log_sinks[] = {
	{ "syslog", MLT_LOG_SYSLOG }, { "stderr", MLT_LOG_STDERR }, { NULL, 0 } };
static const struct enum_val facilities[] = {
	{ "mail", LOG_MAIL }, { "daemon", LOG_DAEMON }, { "user", LOG_USER },
	{ "local0", LOG_LOCAL0 }, { "local1", LOG_LOCAL1 }, { "local2", LOG_LOCAL2 },
	{ "local3", LOG_LOCAL3 }, { "local4", LOG_LOCAL4 }, { "local5", LOG_LOCAL5 },
	{ "local6", LOG_LOCAL6 }, { "local7", LOG_LOCAL7 }, { NULL, 0 } };
static const struct enum_val levels[] = {
	{ "error", LOG_ERR }, { "warning", LOG_WARNING }, { "info", LOG_INFO },
	{ "debug", LOG_DEBUG }, { NULL, 0 } };
static const struct enum_val tls_versions[] = {
	{ "TLSv1", 10 }, { "TLSv1.1", 11 }, { "TLSv1.2", 12 }, { "TLSv1.3", 13 }, { NULL, 0 } };

struct key {
	const char *name;
	enum key_type type;
	size_t offset;
	size_t size;                 /* strings: buffer size */
	int64_t min, max;            /* durations (seconds or ms), ints, modes */
	const struct enum_val *vals; /* enums */
};

#define F(field) offsetof(struct mlt_config, field), sizeof(((struct mlt_config *)0)->field)

static const struct key keys[] = {
	{ "socket", K_SOCKET, F(socket), 0, 0, NULL },
	{ "socket_mode", K_MODE, F(socket_mode), 0, 0777, NULL },
	{ "user", K_STRING, F(user), 0, 0, NULL },
	{ "pid_file", K_OPTPATH, F(pid_file), 0, 0, NULL },
	{ "users_db", K_DB, F(users_db), 0, 0, NULL },
	{ "state_db", K_DB, F(state_db), 0, 0, NULL },
	{ "log", K_ENUM, F(log), 0, 0, log_sinks },
	{ "log_facility", K_ENUM, F(log_facility), 0, 0, facilities },
	{ "log_level", K_ENUM, F(log_level), 0, 0, levels },
	{ "require_tls", K_BOOL, F(require_tls), 0, 0, NULL },
	{ "tls_min_version", K_ENUM, F(tls_min_version), 0, 0, tls_versions },
	{ "check_header_from", K_BOOL, F(check_header_from), 0, 0, NULL },
	{ "daemon_name", K_STRING, F(daemon_name), 0, 0, NULL },
	{ "audit_retention", K_DURATION, F(audit_retention), 86400, 3650 * INT64_C(86400), NULL },
	{ "policy_refresh_ms", K_INT, F(policy_refresh_ms), 0, 60000, NULL },
	{ "state_flush_ms", K_INT, F(state_flush_ms), 10, 10000, NULL },
	{ "stop_flush_timeout", K_DURATION, F(stop_flush_timeout), 1, 300, NULL },
	{ "timeout", K_DURATION, F(timeout), 1, 86400, NULL },
	{ "metrics_file", K_OPTPATH, F(metrics_file), 0, 0, NULL },
	{ "metrics_interval", K_DURATION, F(metrics_interval), 1, 3600, NULL },
	{ "notify_to", K_MAILBOX, F(notify_to), 0, 0, NULL },
	{ "notify_from", K_MAILBOX, F(notify_from), 0, 0, NULL },
	{ "notify_sendmail", K_PATH, F(notify_sendmail), 0, 0, NULL },
	{ "notify_postfix_config", K_OPTPATH, F(notify_postfix_config), 0, 0, NULL },
	{ "notify_period", K_DURATION, F(notify_period), 60, 30 * INT64_C(86400), NULL },
	{ "notify_refused_senders", K_INT, F(notify_refused_senders), 0, 1000000, NULL },
	{ "notify_timeout", K_DURATION, F(notify_timeout), 1, 600, NULL },
	{ "reservation_ttl", K_DURATION, F(reservation_ttl), 1, 2 * 86400, NULL },
};
#define NKEYS (sizeof keys / sizeof keys[0])

void mlt_config_defaults(struct mlt_config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	snprintf(cfg->socket, sizeof cfg->socket, "unix:/run/relay-milter/milter.sock");
	cfg->socket_mode = 0660;
	snprintf(cfg->users_db, sizeof cfg->users_db, "%s", RELAY_DEFAULT_DB);
	snprintf(cfg->state_db, sizeof cfg->state_db, "%s", RELAY_DEFAULT_STATE_DB);
	cfg->log = MLT_LOG_SYSLOG;
	cfg->log_facility = LOG_MAIL;
	cfg->log_level = LOG_INFO;
	cfg->require_tls = true;
	cfg->tls_min_version = 12;
	cfg->check_header_from = true;
	cfg->audit_retention = 90 * INT64_C(86400);
	cfg->policy_refresh_ms = 1000;
	cfg->state_flush_ms = 200;
	/* below the systemd unit's TimeoutStopSec=30, so we exit and say what was lost
	 * before systemd kills us without a word */
	cfg->stop_flush_timeout = 20;
	cfg->timeout = 7210;
	cfg->metrics_interval = 5;
	/* unqualified on purpose: Postfix's cleanup appends @$myorigin to it */
	snprintf(cfg->notify_from, sizeof cfg->notify_from, "relay-milter");
	snprintf(cfg->notify_sendmail, sizeof cfg->notify_sendmail, "/usr/sbin/sendmail");
	cfg->notify_period = 3600;
	cfg->notify_refused_senders = 5;
	cfg->notify_timeout = 30;
	/* a PostgreSQL state database: how long an admitted message's reservation counts
	 * without news from its node (longer than `timeout`, see config.h) */
	cfg->reservation_ttl = 7300;
}

int mlt_tls_rank(const char *v)
{
	if (v == NULL)
		return 0;
	if (strcmp(v, "SSLv3") == 0)
		return 3;
	if (strcmp(v, "TLSv1") == 0)
		return 10;
	if (strncmp(v, "TLSv1.", 6) == 0 && v[6] >= '0' && v[6] <= '9' && v[7] == '\0')
		return 10 + (v[6] - '0');
	return 0;
}

__attribute__((format(printf, 5, 6)))
static bool bad(char *err, size_t errlen, const char *name, unsigned line, const char *fmt, ...)
{
	char msg[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	snprintf(err, errlen, "%s:%u: %s", name, line, msg);
	return false;
}

static bool printable(const char *v)
{
	for (; *v; v++)
		if (!isprint((unsigned char)*v))
			return false;
	return true;
}

/* An address handed to sendmail as an argument and written into a header: one word of
 * printable ASCII without the characters that would end a header field, start another
 * address or read as an option (a leading '-'). Empty is allowed (notify_to: off). */
static bool mailbox_valid(const char *v, const char **why)
{
	if (v[0] == '-') {
		*why = "must not begin with '-'";
		return false;
	}
	for (; *v; v++) {
		if (*v <= ' ' || *v >= 0x7f || strchr("<>()[],;:\\\"", *v) != NULL) {
			*why = "expected one address like admin@example.org (no spaces, brackets, quotes)";
			return false;
		}
	}
	return true;
}

/* libmilter's socket syntax; we accept unix:/local: with an absolute path, and inet/inet6
 * only on loopback (the milter speaks to a Postfix on the same host). */
static bool socket_valid(const char *v, const char **why)
{
	const char *at;
	char *end;

	if (strncmp(v, "unix:/", 6) == 0 || strncmp(v, "local:/", 7) == 0)
		return true;
	if (strncmp(v, "inet:", 5) == 0 || strncmp(v, "inet6:", 6) == 0) {
		const char *p = strchr(v, ':') + 1;
		long port;

		errno = 0;
		port = strtol(p, &end, 10);
		if (errno || end == p || *end != '@' || port < 1 || port > 65535) {
			*why = "expected inet:PORT@HOST with PORT in 1..65535";
			return false;
		}
		at = end + 1;
		if (strcmp(at, "127.0.0.1") != 0 && strcmp(at, "localhost") != 0 &&
		    strcmp(at, "::1") != 0 && strcmp(at, "[::1]") != 0) {
			*why = "inet sockets must listen on loopback (127.0.0.1 or ::1)";
			return false;
		}
		return true;
	}
	*why = "expected unix:/PATH or inet:PORT@127.0.0.1";
	return false;
}

static bool set_value(const struct key *k, const char *v, struct mlt_config *cfg,
                      const char *name, unsigned line, char *err, size_t errlen)
{
	char *field = (char *)cfg + k->offset;
	const char *why = NULL;

	switch (k->type) {
	case K_SOCKET:
		if (!socket_valid(v, &why))
			return bad(err, errlen, name, line, "socket: %s", why);
		/* fall through */
	case K_MAILBOX:
		if (k->type == K_MAILBOX && !mailbox_valid(v, &why))
			return bad(err, errlen, name, line, "%s: %s", k->name, why);
		/* fall through */
	case K_STRING:
	case K_PATH:
	case K_OPTPATH:
	case K_DB:
		if (strlen(v) >= k->size)
			return bad(err, errlen, name, line, "%s: value longer than %zu bytes", k->name,
			           k->size - 1);
		if (!printable(v))
			return bad(err, errlen, name, line, "%s: non-printable character", k->name);
		if (k->type == K_DB && rdb_is_postgresql(v) && strncmp(v, "pg:", 3) == 0 &&
		    v[3] != '/')
			return bad(err, errlen, name, line, "%s: pg: must name an absolute path", k->name);
		if (k->type == K_DB && rdb_is_postgresql(v)) {
			memcpy(field, v, strlen(v) + 1);
			return true;
		}
		if ((k->type == K_PATH || k->type == K_OPTPATH || k->type == K_DB) && v[0] != '\0' &&
		    v[0] != '/')
			return bad(err, errlen, name, line, "%s: must be an absolute path", k->name);
		/* K_OPTPATH: "" switches the file off */
		if ((k->type == K_PATH || k->type == K_DB) && v[0] == '\0')
			return bad(err, errlen, name, line, "%s: must not be empty", k->name);
		memcpy(field, v, strlen(v) + 1);
		return true;
	case K_MODE: {
		char *end;
		unsigned long m;

		errno = 0;
		m = strtoul(v, &end, 8);
		if (errno || end == v || *end != '\0' || m > (unsigned long)k->max)
			return bad(err, errlen, name, line, "%s: expected an octal mode like 0660", k->name);
		*(unsigned *)(void *)field = (unsigned)m;
		return true;
	}
	case K_BOOL:
		if (strcmp(v, "yes") == 0 || strcmp(v, "true") == 0)
			*(bool *)(void *)field = true;
		else if (strcmp(v, "no") == 0 || strcmp(v, "false") == 0)
			*(bool *)(void *)field = false;
		else
			return bad(err, errlen, name, line, "%s: expected yes or no", k->name);
		return true;
	case K_ENUM:
		for (const struct enum_val *e = k->vals; e->name; e++) {
			if (strcmp(e->name, v) == 0) {
				*(int *)(void *)field = e->value;
				return true;
			}
		}
		return bad(err, errlen, name, line, "%s: unknown value \"%s\"", k->name, v);
	case K_DURATION: {
		int64_t d;

		if (!mlt_parse_duration(v, k->max, &d) || d < k->min)
			return bad(err, errlen, name, line,
			           "%s: expected a duration like 30s, 5m, 1h, 90d (%lld..%lld seconds)",
			           k->name, (long long)k->min, (long long)k->max);
		*(int64_t *)(void *)field = d;
		return true;
	}
	case K_INT: {
		char *end;
		long long n;

		errno = 0;
		n = strtoll(v, &end, 10);
		if (errno || end == v || *end != '\0' || n < k->min || n > k->max)
			return bad(err, errlen, name, line, "%s: expected an integer in %lld..%lld",
			           k->name, (long long)k->min, (long long)k->max);
		*(int64_t *)(void *)field = n;
		return true;
	}
	}
	return bad(err, errlen, name, line, "%s: internal error", k->name);
}

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

bool mlt_config_parse(const char *text, const char *name, struct mlt_config *cfg,
                      char *err, size_t errlen)
{
	bool seen[NKEYS] = { false };
	unsigned line = 0;
	const char *p = text;

	mlt_config_defaults(cfg);
	while (*p) {
		char buf[1024];
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		char *s, *eq, *key, *val;
		size_t k;

		line++;
		if (len >= sizeof buf)
			return bad(err, errlen, name, line, "line longer than %zu bytes", sizeof buf - 1);
		memcpy(buf, p, len);
		buf[len] = '\0';
		p += len + (nl ? 1 : 0);
		s = trim(buf);
		if (*s == '\0' || *s == '#')
			continue;
		eq = strchr(s, '=');
		if (eq == NULL)
			return bad(err, errlen, name, line, "expected key = value");
		*eq = '\0';
		key = trim(s);
		val = trim(eq + 1);
		for (k = 0; k < NKEYS; k++)
			if (strcmp(keys[k].name, key) == 0)
				break;
		if (k == NKEYS)
			return bad(err, errlen, name, line, "unknown key \"%.64s\"", key);
		if (seen[k])
			return bad(err, errlen, name, line, "duplicate key \"%s\"", key);
		seen[k] = true;
		if (!set_value(&keys[k], val, cfg, name, line, err, errlen))
			return false;
	}
	/* a reservation must outlive the longest pause of a session in flight, or a live
	 * message's reservation could stop counting and another node admit past the limit */
	if (rdb_is_postgresql(cfg->state_db) && cfg->reservation_ttl <= cfg->timeout) {
		snprintf(err, errlen, "%s: reservation_ttl (%lld s) must be longer than timeout "
		         "(%lld s) with a PostgreSQL state_db", name, (long long)cfg->reservation_ttl,
		         (long long)cfg->timeout);
		return false;
	}
	return true;
}

bool mlt_config_load(const char *path, struct mlt_config *cfg, char *err, size_t errlen)
{
	enum { MAXSZ = 64 * 1024 };
	char *buf;
	ssize_t n;
	size_t got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	bool okay;

	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return false;
	}
	buf = malloc(MAXSZ + 1);
	if (buf == NULL) {
		close(fd);
		snprintf(err, errlen, "%s: out of memory", path);
		return false;
	}
	while ((n = read(fd, buf + got, MAXSZ + 1 - got)) > 0 && got < MAXSZ + 1)
		got += (size_t)n;
	close(fd);
	if (n < 0 || got > MAXSZ) {
		snprintf(err, errlen, "%s: %s", path, n < 0 ? strerror(errno) : "larger than 64 KiB");
		free(buf);
		return false;
	}
	buf[got] = '\0';
	if (memchr(buf, '\0', got) != NULL) {
		snprintf(err, errlen, "%s: contains a NUL byte", path);
		free(buf);
		return false;
	}
	okay = mlt_config_parse(buf, path, cfg, err, errlen);
	free(buf);
	return okay;
}
