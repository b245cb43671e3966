/*
 * main.c — relay-admin: global options and the command table.
 *
 * What it is: parses the global options (--db, --state-db, --json, --help, --version),
 * finds the command in `commands` by its one or two words, and returns the handler's exit
 * code (see enum adm_exit in adm.h). Adding a command is one line in the table below;
 * adm.h explains the rest.
 *
 * Only main() exits. stdout carries results (text or one JSON document), stderr errors.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "adm.h"
#include "relay-config.h"

static const struct adm_cmd commands[] = {
	{ "init", NULL, adm_cmd_init, "[--milter-user USER]",
	  "create the databases, or migrate them to the current schema" },
	{ "user", "add", adm_cmd_user_add,
	  "NAME [--password-stdin] [--allow-weak] [--expires DATE] [--note TEXT] [--sender PATTERN]...",
	  "create a login (prints a generated password unless --password-stdin)" },
	{ "user", "passwd", adm_cmd_user_passwd, "NAME [--password-stdin] [--allow-weak]",
	  "set a new password (generated unless --password-stdin)" },
	{ "user", "del", adm_cmd_user_del, "NAME", "delete a login with its senders and limits" },
	{ "user", "enable", adm_cmd_user_enable, "NAME", "allow a login to authenticate" },
	{ "user", "disable", adm_cmd_user_disable, "NAME", "stop a login from authenticating" },
	{ "user", "set", adm_cmd_user_set, "NAME [--expires DATE|never] [--note TEXT]",
	  "change a login's expiry or note" },
	{ "user", "list", adm_cmd_user_list, "", "list logins" },
	{ "user", "show", adm_cmd_user_show, "NAME", "show one login and its senders" },
	{ "sender", "add", adm_cmd_sender_add, "NAME PATTERN",
	  "allow a sender (local@domain, @domain or <>)" },
	{ "sender", "del", adm_cmd_sender_del, "NAME PATTERN", "remove an allowed sender" },
	{ "sender", "list", adm_cmd_sender_list, "NAME", "list a login's allowed senders" },
	{ "limit", "set", adm_cmd_limit_set, "(NAME|--default) [--messages N/PERIOD]... [--recipients N/PERIOD]... [--bytes SIZE/PERIOD]... [--exempt|--no-exempt] [--hold|--no-hold]", "set rate limits (see relay-admin-limits(8))" },
	{ "limit", "show", adm_cmd_limit_show, "[NAME]", "show the default limits, or a login's own and effective limits" },
	{ "limit", "clear", adm_cmd_limit_clear, "(NAME|--default)", "remove a login's own limits (the defaults apply again)" },
	{ "usage", NULL, adm_cmd_usage, "[NAME]", "current counts against each limit and when room frees up" },
	{ "log", NULL, adm_cmd_log, "[--user NAME] [--since TIME] [--limit N]", "the milter's audit log, one record per message" },
	{ "import-sasldb", NULL, adm_cmd_import_sasldb, "PATH",
	  "import the logins of a sasldb2 file (Cyrus saslpasswd2), keeping their passwords" },
	{ "selftest", NULL, adm_cmd_selftest, "--host H --port P --user NAME [--tls starttls|implicit] [--ca FILE] [--insecure] [--send TO] [--upstream HOST:PORT] ... (see relay-admin-selftest(8))",
	  "test a running relay live, as the how-to does by hand (password on stdin)" },
	{ "check", NULL, adm_cmd_check, "[--postfix-config DIR] (see relay-admin-check(8))",
	  "static health: databases, plugin, smtpd.conf, Postfix settings, milter, certificates" },
	{ "setup", NULL, adm_cmd_setup, "[--postfix-config DIR] [--port P] [--upstream HOST:PORT] ... (see relay-admin-setup(8))",
	  "configure Postfix as the authenticated relay (idempotent; --dry-run)" },
};

static const size_t ncommands = sizeof commands / sizeof commands[0];

static void help(FILE *f, const char *prog)
{
	fprintf(f, "usage: %s [--db PATH] [--state-db PATH] [--json] COMMAND [ARGS]\n\n"
	           "Manage the logins of the smtp-relay SASL plugin and milter.\n\n"
	           "global options:\n"
	           "  --db PATH        users database (default $RELAY_DB, else %s)\n"
	           "  --state-db PATH  state database (default $RELAY_STATE_DB, else %s)\n"
	           "  --json           machine-readable output: one JSON document on stdout\n"
	           "  --help, --version\n\ncommands:\n",
	        prog, RELAY_DEFAULT_DB, RELAY_DEFAULT_STATE_DB);
	for (size_t i = 0; i < ncommands; i++) {
		const struct adm_cmd *c = &commands[i];
		fprintf(f, "  %s%s%s %s\n      %s\n", c->name, c->sub ? " " : "",
		        c->sub ? c->sub : "", c->args, c->help);
	}
	fprintf(f, "\nexit codes: 0 ok, 1 failed, 2 usage or bad input, 3 not found, "
	           "4 already exists, 5 database error, 6 permission or I/O error\n"
	           "See relay-admin(8).\n");
}

static const char *env_or(const char *name, const char *fallback)
{
	const char *v = getenv(name);

	return v != NULL && v[0] != '\0' ? v : fallback;
}

/* Finds the command named by argv[0] (and argv[1] for two-word commands). Sets *words to
 * the number of words consumed, or returns NULL having printed why. */
static const struct adm_cmd *find(const struct adm_ctx *ctx, int argc, char **argv, int *words)
{
	bool has_subs = false;

	for (size_t i = 0; i < ncommands; i++) {
		const struct adm_cmd *c = &commands[i];

		if (strcmp(c->name, argv[0]) != 0)
			continue;
		if (c->sub == NULL) {
			*words = 1;
			return c;
		}
		has_subs = true;
		if (argc > 1 && strcmp(c->sub, argv[1]) == 0) {
			*words = 2;
			return c;
		}
	}
	if (!has_subs) {
		fprintf(stderr, "%s: unknown command: ", ctx->prog);
		adm_print_safe(stderr, argv[0]);
		fprintf(stderr, " (try %s --help)\n", ctx->prog);
		return NULL;
	}
	fprintf(stderr, "%s: %s needs one of:", ctx->prog, argv[0]);
	for (size_t i = 0; i < ncommands; i++)
		if (strcmp(commands[i].name, argv[0]) == 0)
			fprintf(stderr, " %s", commands[i].sub);
	fputc('\n', stderr);
	return NULL;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "db", required_argument, NULL, 'd' },
		{ "state-db", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct adm_ctx ctx = {
		.prog = "relay-admin",
		.out = stdout,
		.now = (int64_t)time(NULL),
	};
	const struct adm_cmd *cmd;
	int c, words = 0, rc;

	ctx.db_path = env_or("RELAY_DB", RELAY_DEFAULT_DB);
	ctx.state_db_path = env_or("RELAY_STATE_DB", RELAY_DEFAULT_STATE_DB);
	ctx.db_explicit = env_or("RELAY_DB", NULL) != NULL;
	ctx.state_db_explicit = env_or("RELAY_STATE_DB", NULL) != NULL;
	/* Files we create (databases, journals) are never world-readable. */
	umask(027);

	opterr = 0;
	/* '+': stop at the first non-option, the command; its own options are its own. */
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'd': ctx.db_path = optarg; ctx.db_explicit = true; break;
		case 's': ctx.state_db_path = optarg; ctx.state_db_explicit = true; break;
		case 'j': ctx.json = true; break;
		case 'h': help(stdout, ctx.prog); return ADM_EXIT_OK;
		case 'V': printf("relay-admin %s\n", RELAY_VERSION); return ADM_EXIT_OK;
		default:
			fprintf(stderr, "%s: unknown or incomplete option: ", ctx.prog);
			adm_print_safe(stderr, argv[optind - 1]);
			fprintf(stderr, " (try %s --help)\n", ctx.prog);
			return ADM_EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		help(stderr, ctx.prog);
		return ADM_EXIT_USAGE;
	}
	if (strcmp(argv[optind], "help") == 0) {
		help(stdout, ctx.prog);
		return ADM_EXIT_OK;
	}
	if (ctx.db_path[0] == '\0') {
		fprintf(stderr, "%s: --db needs a path\n", ctx.prog);
		return ADM_EXIT_USAGE;
	}
	cmd = find(&ctx, argc - optind, argv + optind, &words);
	if (cmd == NULL)
		return ADM_EXIT_USAGE;
	ctx.cmd = cmd;
	/* The handler sees its last command word as argv[0], then its own arguments. */
	argv += optind + words - 1;
	argc -= optind + words - 1;
	optind = 0;
	opterr = 0;
	rc = cmd->run(&ctx, argc, argv);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "%s: cannot write the output\n", ctx.prog);
		if (rc == ADM_EXIT_OK)
			rc = ADM_EXIT_IO;
	}
	return rc;
}
