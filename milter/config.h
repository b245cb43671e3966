/*
 * config.h — relay-milter's configuration file: `key = value` lines, `#` comments.
 *
 * Declarative and strict: a table of typed keys with bounds (config.c); an unknown key,
 * a duplicate key, a value out of bounds or a malformed line is an error naming the file
 * and line, and nothing is half-applied. The reference lives in man/relay-milter.8.
 *
 * Ownership: struct mlt_config is a plain value (fixed-size strings, no pointers), so a
 * reload builds a new one and swaps a pointer (main.c); it is never modified after parse.
 * Thread safety: parsing is pure; a parsed config is read-only and may be shared.
 */
#ifndef RELAY_MLT_CONFIG_H
#define RELAY_MLT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MLT_PATH_MAX 256

enum mlt_log_sink { MLT_LOG_SYSLOG, MLT_LOG_STDERR };

struct mlt_config {
	char socket[MLT_PATH_MAX];     /* libmilter spelling: unix:PATH or inet:PORT@HOST */
	unsigned socket_mode;          /* for unix sockets, applied through the umask */
	char user[64];                 /* drop privileges to this user; "" = stay */
	char pid_file[MLT_PATH_MAX];   /* "" = none */
	char users_db[MLT_PATH_MAX];
	char state_db[MLT_PATH_MAX];
	int log;                       /* enum mlt_log_sink */
	int log_facility;              /* syslog LOG_* facility */
	int log_level;                 /* syslog LOG_* priority: messages above it are dropped */
	bool require_tls;
	int tls_min_version;           /* mlt_tls_rank() of the minimum, e.g. 12 for TLSv1.2 */
	bool check_header_from;
	char daemon_name[64];          /* "" = any; else {daemon_name} must equal it */
	int64_t audit_retention;       /* seconds */
	int64_t policy_refresh_ms;     /* how often to ask the users db whether it changed */
	int64_t state_flush_ms;        /* how often the writer thread commits to the state db */
	int64_t stop_flush_timeout;    /* seconds a stop keeps retrying the last state commit */
	int64_t timeout;               /* smfi_settimeout seconds */
	char metrics_file[MLT_PATH_MAX]; /* Prometheus textfile-collector file; "" = off */
	int64_t metrics_interval;      /* seconds between two writes of metrics_file */
	/* limit-hit notifications (notify.h); off while notify_to is empty */
	char notify_to[MLT_PATH_MAX];          /* the admin's address */
	char notify_from[MLT_PATH_MAX];        /* envelope and header sender */
	char notify_sendmail[MLT_PATH_MAX];    /* Postfix's sendmail(1) */
	char notify_postfix_config[MLT_PATH_MAX]; /* sendmail -C DIR; "" = the default instance */
	int64_t notify_period;         /* seconds: one notification per login and kind */
	int64_t notify_refused_senders; /* refused senders per period that notify; 0 = never */
	int64_t notify_timeout;        /* seconds sendmail may take before it is killed */
	int64_t reservation_ttl;       /* PostgreSQL state_db: seconds an admitted message's
	                                * reservation counts (sql/admit.h); > timeout */
};

void mlt_config_defaults(struct mlt_config *cfg);

/* Parses `text` (named `name` in messages) over the defaults into *cfg. On error returns
 * false with "name:line: reason" in err and leaves *cfg unspecified. */
bool mlt_config_parse(const char *text, const char *name, struct mlt_config *cfg,
                      char *err, size_t errlen);

/* Reads and parses a file (at most 64 KiB). */
bool mlt_config_load(const char *path, struct mlt_config *cfg, char *err, size_t errlen);

/* "TLSv1.3" → 13, "TLSv1.2" → 12, "TLSv1" → 10, "SSLv3" → 3; 0 for anything else. */
int mlt_tls_rank(const char *version);

#endif
