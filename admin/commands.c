/*
 * commands.c — relay-admin's command table: every command's words, handler, synopsis,
 * one-line help and (optionally) a longer text for `COMMAND --help`.
 *
 * The dispatcher (dispatch.c) finds commands here, prints `relay-admin --help` from it and
 * answers `COMMAND [SUB] --help` from it, so a command's usage is written once. A
 * synopsis names every option its handler reads (tests/admin/test_help.py checks that
 * each one is accepted as documented). Adding a command is one entry below (see adm.h).
 */
#include <stddef.h>

#include "adm.h"
#include "relay-config.h"

#define SELFTEST_ARGS \
	"--host HOST --port PORT --user NAME\n" \
	"         [--tls starttls|implicit] [--ca FILE] [--tls-name NAME]\n" \
	"         [--from ADDR] [--send TO] [--timeout SECONDS] [--insecure]\n" \
	"         [--json] [--verbose]\n" \
	"         [--upstream HOST:PORT [--upstream-tls starttls|implicit]\n" \
	"          [--upstream-ca FILE] [--upstream-user NAME]]"

#define SELFTEST_MORE \
	"The password comes from RELAY_PASSWORD or the first line of stdin; the upstream\n" \
	"password from RELAY_UPSTREAM_PASSWORD or the next line of stdin.\n" \
	"No password is sent unless the server's certificate verifies against --ca\n" \
	"(--upstream-ca) or the system CAs, for --tls-name (the host); --insecure sends\n" \
	"the relay's anyway (never the upstream's) and the report says INSECURE.\n" \
	"Exit status: the number of failed checks (at most 100); 2 for a usage error.\n"

#define CHECK_MORE \
	"Static health of the relay: users and state databases, the relaydb plugin,\n" \
	"smtpd.conf, the Postfix settings relay-admin setup writes, the milter socket\n" \
	"and the certificates. Exit status: the number of failures (at most 100).\n" \
	"  --name NAME   the host name (or address) clients connect to; the certificate\n" \
	"                must name it (default: the service's myhostname)\n"

#define SETUP_ARGS \
	"[--postfix-config DIR] [--port [ADDR:]PORT] [--tls-port [ADDR:]PORT]\n" \
	"         [--cert FILE --key FILE] [--hostname NAME] [--db FILE]\n" \
	"         [--sasl-plugin-dir DIR] [--rate-limit N] [--message-size SIZE]\n" \
	"         [--keep-client-received] [--proxy-protocol]\n" \
	"         [--upstream HOST[:PORT] [--upstream-tls starttls|implicit]\n" \
	"          [--upstream-user NAME] [--upstream-ca FILE] [--upstream-insecure]]\n" \
	"         [--milter SOCKET|--no-milter] [--no-reload] [--dry-run]"

#define SETUP_MORE \
	"  --postfix-config DIR    Postfix instance to configure (default /etc/postfix)\n" \
	"  --port [ADDR:]PORT      submission service with mandatory STARTTLS (default 443)\n" \
	"  --tls-port [ADDR:]PORT  also an implicit-TLS service on this port\n" \
	"  --cert FILE --key FILE  server certificate (PEM, chain allowed) and its key;\n" \
	"                          without them a self-signed certificate is generated\n" \
	"  --hostname NAME         name for a generated certificate (default: $myhostname)\n" \
	"  --db FILE               users database for relaydb (default: relay-admin --db,\n" \
	"                          $RELAY_DB, else " RELAY_DEFAULT_DB ")\n" \
	"                          or PostgreSQL: pg:/conninfo-file or postgresql://URI\n" \
	"  --sasl-plugin-dir DIR   load librelaydb.so from DIR (sets SASL_PATH for Postfix)\n" \
	"  --rate-limit N          AUTH commands per client IP and minute (default 20, 0 = off)\n" \
	"  --message-size SIZE     largest message, bytes or with K/M/G (default: main.cf's\n" \
	"                          message_size_limit, 10240000 unless set there)\n" \
	"  --keep-client-received  keep the client's address and HELO name in the relay's\n" \
	"                          Received: header (default: hidden, privacy)\n" \
	"  --proxy-protocol        the services sit behind a TCP load balancer (HAProxy\n" \
	"                          send-proxy-v2): the client address comes from its PROXY\n" \
	"                          header; only the proxy may reach the ports (firewall)\n" \
	"  --upstream HOST[:PORT]  smarthost for the relay services' mail (port 587 if omitted)\n" \
	"  --upstream-tls starttls|implicit  (default: implicit on 465, else starttls)\n" \
	"  --upstream-user NAME    upstream login; password from RELAY_UPSTREAM_PASSWORD or stdin\n" \
	"  --upstream-ca FILE      CA file to verify the upstream with (default: system CAs)\n" \
	"  --upstream-insecure     do not verify the upstream certificate (warns)\n" \
	"  --milter SOCKET         register relay-milter on the service (default\n" \
	"                          " ADM_DEFAULT_MILTER " when relay-milter is installed)\n" \
	"  --no-milter             do not register a milter\n" \
	"  --no-reload             do not reload a running Postfix\n" \
	"  --dry-run               print the changes; change nothing\n"

#define LOG_MORE \
	"TIME: a date (2026-11-26), an RFC 3339 UTC time or a duration back from now (2h, 7d).\n" \
	"--follow prints the newest N (default 10) and then each record as it is committed,\n" \
	"one per line (one JSON object per line with --json), until SIGINT, SIGTERM or a\n" \
	"closed stdout; a replaced or missing state database is waited for and reopened.\n"

#define METRICS_MORE \
	"Totals over every run of relay-milter on this state database, as of its last commit;\n" \
	"relay-milter's metrics_file has the same names, counted since that process started.\n"
#define CREDENTIAL_MORE \
	"  add NAME LABEL     make credential LABEL ([a-z0-9-], 1-32) for login NAME and print\n" \
	"                     its generated secret once; clients authenticate as NAME+LABEL\n" \
	"                     (local+LABEL@domain for local@domain) with that secret\n" \
	"  list NAME          label, authentication name, created, last used\n" \
	"  revoke NAME LABEL  delete one credential; the login and its others stay\n" \
	"Senders, limits, usage and the audit log are the login's; disabling, expiring or\n" \
	"deleting the login stops its credentials too. See relay-admin(8).\n"
#define GRANTS_MORE \
	"For a users and state database on PostgreSQL (--db / --state-db postgresql://... or\n" \
	"pg:FILE). The tables belong to the role that ran relay-admin init; run the printed\n" \
	"SQL as that role. It grants on the users tables and on the state tables, for one\n" \
	"database holding both; --only users or --only state when they are two databases.\n" \
	"  --plugin ROLE   the relaydb plugin in smtpd: reads logins, app credentials and\n" \
	"                  site_secret (no state table)\n" \
	"  --milter ROLE   relay-milter: reads the users tables (no secret column), writes\n" \
	"                  the state tables\n" \
	"  --admin ROLE    relay-admin: reads and writes the users tables, reads the state\n" \
	"                  tables (usage, log, metrics, held) and writes them for copy --state\n" \
	"  --only users|state  print only that kind's grants\n"

#define COPY_MORE \
	"DB is an SQLite path, a postgresql:// URI or pg:FILE; the target must exist at\n" \
	"the current schema (relay-admin --db DB init). Copies logins with their secrets,\n" \
	"senders, limits, app credentials and the site secret in one transaction on the\n" \
	"target, and keeps it only if the target's counts then equal the source's. A target\n" \
	"that already holds logins, senders, limits or credentials is refused unless\n" \
	"--replace (which deletes them first, in the same transaction).\n" \
	"--state: FROM and TO are state databases; usage, last use, the audit log, credential\n" \
	"use and counters are copied into an empty target (created if need be), verified by\n" \
	"counts.\n"

#define HELD_MORE \
	"Postfix's hold queue of the instance in --postfix-config (default /etc/postfix),\n" \
	"joined with relay-milter's audit log (--state-db) by queue id. Release uses\n" \
	"postsuper -H (the queue file as it is, so the relay's content_filter takes it\n" \
	"upstream), never -r. Every ID is checked first: one that is not a queue id or not\n" \
	"in the hold queue refuses the whole command, nothing done.\n"

const struct adm_cmd adm_commands[] = {
	{ "init", NULL, adm_cmd_init, "[--milter-user USER]",
	  "create the databases, or migrate them to the current schema", NULL, false },
	{ "grants", NULL, adm_cmd_grants,
	  "[--plugin ROLE] [--milter ROLE] [--admin ROLE] [--only users|state]",
	  "print the GRANT statements each PostgreSQL role needs", GRANTS_MORE, false },
	{ "copy", NULL, adm_cmd_copy, "--from DB --to DB [--replace | --state] [--json]",
	  "copy the users data (--state: the state data) between databases (SQLite or "
	  "PostgreSQL), verified by counts",
	  COPY_MORE, false },
	{ "user", "add", adm_cmd_user_add,
	  "NAME [--password-stdin] [--allow-weak] [--expires DATE] [--note TEXT] [--sender PATTERN]...",
	  "create a login (prints a generated password unless --password-stdin)", NULL, false },
	{ "user", "passwd", adm_cmd_user_passwd, "NAME [--password-stdin] [--allow-weak]",
	  "set a new password (generated unless --password-stdin)", NULL, false },
	{ "user", "del", adm_cmd_user_del, "NAME", "delete a login with its senders and limits", NULL, false },
	{ "user", "enable", adm_cmd_user_enable, "NAME", "allow a login to authenticate", NULL, false },
	{ "user", "disable", adm_cmd_user_disable, "NAME", "stop a login from authenticating", NULL, false },
	{ "user", "set", adm_cmd_user_set, "NAME [--expires DATE|never] [--note TEXT]",
	  "change a login's expiry or note", NULL, false },
	{ "user", "list", adm_cmd_user_list, "", "list logins", NULL, true },
	{ "user", "show", adm_cmd_user_show, "NAME", "show one login and its senders", NULL, true },
	{ "user", "credential", adm_cmd_user_credential,
	  "add NAME LABEL | list NAME | revoke NAME LABEL [--json]",
	  "app credentials: more secrets for a login, each revocable alone", CREDENTIAL_MORE, true },
	{ "sender", "add", adm_cmd_sender_add, "NAME PATTERN",
	  "allow a sender (local@domain, @domain or <>)", NULL, false },
	{ "sender", "del", adm_cmd_sender_del, "NAME PATTERN", "remove an allowed sender", NULL, false },
	{ "sender", "list", adm_cmd_sender_list, "NAME", "list a login's allowed senders", NULL, true },
	{ "limit", "set", adm_cmd_limit_set, "(NAME|--default) [--messages N/PERIOD]... [--recipients N/PERIOD]... [--bytes SIZE/PERIOD]... [--exempt|--no-exempt] [--hold|--no-hold] [--json]",
	  "set rate limits (see relay-admin-limits(8))", NULL, false },
	{ "limit", "show", adm_cmd_limit_show, "[NAME] [--json]",
	  "show the default limits, or a login's own and effective limits", NULL, true },
	{ "limit", "clear", adm_cmd_limit_clear, "(NAME|--default) [--json]",
	  "remove a login's own limits (the defaults apply again)", NULL, false },
	/* before "usage": a two-word entry must come first to be found (dispatch.c) */
	{ "usage", "reset", adm_cmd_usage_reset,
	  "NAME [--metric messages|recipients|bytes]... [--json]",
	  "clear a login's counters (all metrics unless --metric); relay-milter applies it "
	  "within policy_refresh_ms", NULL, false },
	{ "usage", NULL, adm_cmd_usage, "[NAME] [--json]",
	  "current counts against each limit and when room frees up", NULL, true },
	{ "held", "list", adm_cmd_held_list, "[NAME] [--postfix-config DIR] [--json]",
	  "mail relay-milter put on hold: queue id, login, sender, recipients, size, age, why",
	  HELD_MORE, true },
	{ "held", "release", adm_cmd_held_release,
	  "(ID...|--user NAME) [--postfix-config DIR] [--json]",
	  "release held mail (postsuper -H): it goes on upstream through the relay", HELD_MORE,
	  false },
	{ "held", "delete", adm_cmd_held_delete,
	  "(ID...|--user NAME) [--postfix-config DIR] [--json]",
	  "delete held mail (postsuper -d, hold queue only)", HELD_MORE, false },
	{ "log", NULL, adm_cmd_log,
	  "[--user NAME] [--verdict accepted|refused|held|tempfail] [--since TIME] [--limit N] [--follow] [--json]",
	  "the milter's audit log, one record per message (--follow: as it grows)", LOG_MORE,
	  false },
	{ "metrics", NULL, adm_cmd_metrics, "",
	  "the milter's metrics in the Prometheus text format, from the state database",
	  METRICS_MORE, true },
	{ "import-sasldb", NULL, adm_cmd_import_sasldb, "PATH",
	  "import the logins of a sasldb2 file (Cyrus saslpasswd2), keeping their passwords", NULL, false },
	{ "selftest", NULL, adm_cmd_selftest, SELFTEST_ARGS,
	  "test a running relay live, as the how-to does by hand (password on stdin)",
	  SELFTEST_MORE, false },
	{ "check", NULL, adm_cmd_check, "[--postfix-config DIR] [--name NAME] [--json] [--verbose]",
	  "static health: databases, plugin, smtpd.conf, Postfix settings, milter, certificates",
	  CHECK_MORE, false },
	{ "setup", NULL, adm_cmd_setup, SETUP_ARGS,
	  "configure Postfix as the authenticated relay (idempotent; --dry-run)", SETUP_MORE, false },
};

const size_t adm_ncommands = sizeof adm_commands / sizeof adm_commands[0];
