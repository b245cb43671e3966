/*
 * test-mlt-config.c — milter.conf parsing (milter/config.c): defaults, every key type,
 * bounds, and the errors: unknown key, duplicate key, bad values, malformed lines.
 */
#include <string.h>
#include <syslog.h>

#include "config.h"
#include "tap.h"

static const struct {
	const char *text;
	const char *err; /* substring of the error, NULL = must parse */
} cases[] = {
	{ "", NULL },
	{ "# only a comment\n\n   \n", NULL },
	{ "socket = unix:/run/x.sock\nsocket_mode = 0600\n", NULL },
	{ "socket = inet:8891@127.0.0.1\n", NULL },
	{ "socket = inet6:8891@::1\n", NULL },
	{ "socket = inet:8891@0.0.0.0\n", "loopback" },
	{ "socket = inet:99999@127.0.0.1\n", "PORT" },
	{ "socket = tcp:x\n", "expected unix" },
	{ "socket_mode = 0999\n", "octal" },
	{ "socket_mode = 01777\n", "octal" },
	{ "user = relay-milter\npid_file = /run/relay-milter/pid\n", NULL },
	{ "pid_file = relative/path\n", "absolute" },
	{ "users_db = \n", "must not be empty" },
	{ "log = stderr\nlog_facility = local3\nlog_level = debug\n", NULL },
	{ "log = journald\n", "unknown value" },
	{ "require_tls = no\ntls_min_version = TLSv1.3\ncheck_header_from = false\n", NULL },
	{ "require_tls = maybe\n", "yes or no" },
	{ "tls_min_version = TLSv1.4\n", "unknown value" },
	{ "audit_retention = 30d\n", NULL },
	{ "audit_retention = 1h\n", "duration" },
	{ "audit_retention = 100y\n", "duration" },
	{ "policy_refresh_ms = 0\nstate_flush_ms = 50\ntimeout = 1h\n", NULL },
	{ "state_flush_ms = 5\n", "integer in 10..10000" },
	{ "stop_flush_timeout = 5s\n", NULL },
	{ "stop_flush_timeout = 0\n", "duration" },
	{ "stop_flush_timeout = 1h\n", "duration" },
	{ "policy_refresh_ms = ten\n", "integer" },
	{ "bogus = 1\n", "unknown key \"bogus\"" },
	{ "user = a\nuser = b\n", "duplicate key \"user\"" },
	{ "just some words\n", "expected key = value" },
	{ "daemon_name = ORIGINATING\n", NULL },
	{ "daemon_name = bad\x01\n", "non-printable" },
	{ "metrics_file = /var/lib/prometheus/node-exporter/relay.prom\nmetrics_interval = 10s\n",
	  NULL },
	{ "metrics_file = \n", NULL },                      /* off, as by default */
	{ "metrics_file = relay.prom\n", "absolute" },
	{ "metrics_interval = 0\n", "duration" },
	{ "metrics_interval = 2h\n", "duration" },
	/* limit-hit notifications */
	{ "notify_to = admin@example.org\nnotify_from = relay@example.org\n"
	  "notify_sendmail = /usr/sbin/sendmail\nnotify_postfix_config = /etc/postfix-relay\n"
	  "notify_period = 2h\nnotify_refused_senders = 0\nnotify_timeout = 10s\n", NULL },
	{ "notify_to = \nnotify_from = \nnotify_postfix_config = \n", NULL },
	{ "notify_to = -oQ/tmp/x\n", "must not begin with '-'" },
	{ "notify_to = a@b.example, evil@c.example\n", "expected one address" },
	{ "notify_to = admin@example.org\rBcc: x@y\n", "expected one address" },
	{ "notify_from = <a@b>\n", "expected one address" },
	{ "notify_from = \"x\"@b\n", "expected one address" },
	{ "notify_sendmail = sendmail\n", "absolute" },
	{ "notify_sendmail = \n", "must not be empty" },
	{ "notify_postfix_config = etc/postfix\n", "absolute" },
	{ "notify_period = 10s\n", "duration" },
	{ "notify_refused_senders = -1\n", "integer" },
	{ "notify_timeout = 0\n", "duration" },
	/* a PostgreSQL state_db: shared state, exact admission; reservations must outlive
	 * the longest pause of a live session (timeout) */
	{ "state_db = postgresql://relay@db.example/relay\ntimeout = 30s\n"
	  "reservation_ttl = 60s\n", NULL },
	{ "state_db = postgres://db.example/relay\n", NULL },
	{ "state_db = pg:/etc/relay/state.conninfo\n", NULL },
	{ "state_db = pg:relative\n", "pg: must name an absolute path" },
	{ "state_db = postgresql://db.example/relay\ntimeout = 60s\nreservation_ttl = 60s\n",
	  "reservation_ttl (60 s) must be longer than timeout" },
	{ "state_db = postgresql://db.example/relay\n", NULL }, /* defaults 7300 > 7210 */
	{ "state_db = /var/lib/x.db\ntimeout = 60s\nreservation_ttl = 10s\n", NULL },
	{ "reservation_ttl = 0\n", "duration" },
};

int main(void)
{
	struct mlt_config cfg;
	char err[256];

	mlt_config_defaults(&cfg);
	is_int(cfg.socket_mode, 0660, "default socket mode");
	ok(strcmp(cfg.socket, "unix:/run/relay-milter/milter.sock") == 0, "default socket");
	is_int(cfg.tls_min_version, 12, "default TLS minimum 1.2");
	ok(cfg.require_tls && cfg.check_header_from, "TLS and From: checks on by default");
	is_int(cfg.log, MLT_LOG_SYSLOG, "syslog by default");
	/* below the unit's TimeoutStopSec=30: we must be the ones to report a loss */
	is_int(cfg.stop_flush_timeout, 20, "a stop retries the state flush for 20 s");
	ok(cfg.metrics_file[0] == '\0', "no metrics file by default");
	is_int(cfg.metrics_interval, 5, "metrics written every 5 s when on");
	is_str(cfg.notify_to, "", "notifications off by default");
	is_str(cfg.notify_from, "relay-milter", "notify_from: Postfix qualifies it");
	is_str(cfg.notify_sendmail, "/usr/sbin/sendmail", "Postfix's sendmail");
	is_str(cfg.notify_postfix_config, "", "the default Postfix instance");
	is_int(cfg.notify_period, 3600, "one notification per login and kind per hour");
	is_int(cfg.notify_refused_senders, 5, "5 refused senders notify");
	is_int(cfg.notify_timeout, 30, "sendmail gets 30 s");

	for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
		bool r;

		err[0] = '\0';
		r = mlt_config_parse(cases[k].text, "t.conf", &cfg, err, sizeof err);
		if (cases[k].err == NULL)
			ok(r, "case %zu parses (%s)", k, err);
		else
			ok(!r && strstr(err, cases[k].err) != NULL && strncmp(err, "t.conf:", 7) == 0,
			   "case %zu fails with \"%s\": got \"%s\"", k, cases[k].err, err);
	}
	ok(mlt_config_parse("log = stderr\nlog_facility = local3\nlog_level = debug\n"
	                    "tls_min_version = TLSv1.3\nsocket_mode = 0600\naudit_retention = 2d\n",
	                    "t", &cfg, err, sizeof err), "full parse");
	is_int(cfg.log, MLT_LOG_STDERR, "log = stderr");
	is_int(cfg.log_facility, LOG_LOCAL3, "facility local3");
	is_int(cfg.log_level, LOG_DEBUG, "level debug");
	is_int(cfg.tls_min_version, 13, "TLSv1.3");
	is_int(cfg.socket_mode, 0600, "mode 0600");
	is_int(cfg.audit_retention, 172800, "2d");
	ok(!mlt_config_parse("a = b\n", "t", &cfg, err, sizeof err) && strstr(err, "t:1:") != NULL,
	   "error names the line: %s", err);
	ok(!mlt_config_parse("\n\nuser = x\nuser = y\n", "t", &cfg, err, sizeof err) &&
	   strstr(err, "t:4:") != NULL, "duplicate reported at its line: %s", err);
	ok(!mlt_config_load("/nonexistent/milter.conf", &cfg, err, sizeof err), "missing file fails");
	is_int(mlt_tls_rank("TLSv1.3"), 13, "rank 1.3");
	is_int(mlt_tls_rank("TLSv1"), 10, "rank 1.0");
	is_int(mlt_tls_rank(NULL), 0, "rank none");
	return tap_done();
}
