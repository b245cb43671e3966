/*
 * dispatch.c — relay-admin's front door: global options (--db, --state-db, --json, --help,
 * --version), finding the command in adm_commands (commands.c) by its one or two words,
 * answering `COMMAND [SUB] --help` from the table, and running the handler.
 *
 * adm_main() returns the exit code (enum adm_exit in adm.h); main.c only passes it on.
 * stdout carries results (text or one JSON document) and help asked for; stderr errors,
 * all through adm_err()/adm_usage().
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "adm.h"
#include "relay-config.h"

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
	for (size_t i = 0; i < adm_ncommands; i++) {
		const struct adm_cmd *c = &adm_commands[i];
		fprintf(f, "  %s%s%s %s\n      %s\n", c->name, c->sub ? " " : "",
		        c->sub ? c->sub : "", c->args, c->help);
	}
	fprintf(f, "\nexit codes: 0 ok, 1 failed, 2 usage or bad input, 3 not found, "
	           "4 already exists, 5 database error, 6 permission or I/O error\n"
	           "See relay-admin(8).\n");
}

void adm_usage_line(FILE *f, const struct adm_ctx *ctx, const struct adm_cmd *c)
{
	fprintf(f, "usage: %s [--db PATH] [--json] %s%s%s %s\n", ctx->prog, c->name,
	        c->sub ? " " : "", c->sub ? c->sub : "", c->args);
}

/* `COMMAND [SUB] --help`: the table's synopsis, its line of help and its longer text. */
static void command_help(FILE *f, const struct adm_ctx *ctx, const struct adm_cmd *c)
{
	adm_usage_line(f, ctx, c);
	fprintf(f, "%s\n", c->help);
	if (c->more != NULL)
		fprintf(f, "%s", c->more);
}

/* True when the command's arguments ask for help: a "--help" before any "--". A value
 * spelled "--help" (`--note --help`) is read as the request too; no option of ours takes
 * such a value on purpose. */
static bool wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			return false;
		if (strcmp(argv[i], "--help") == 0)
			return true;
	}
	return false;
}

static const char *env_or(const char *name, const char *fallback)
{
	const char *v = getenv(name);

	return v != NULL && v[0] != '\0' ? v : fallback;
}

/* "unknown command", or which second words a first word takes. */
static void not_found(const struct adm_ctx *ctx, const char *word, bool has_subs)
{
	char safe[128], subs[256] = "";
	size_t n = 0;

	adm_safe(word, safe, sizeof safe);
	if (!has_subs) {
		adm_err(ctx, "unknown command: %s (try %s --help)", safe, ctx->prog);
		return;
	}
	for (size_t i = 0; i < adm_ncommands && n < sizeof subs; i++)
		if (strcmp(adm_commands[i].name, word) == 0)
			n += (size_t)snprintf(subs + n, sizeof subs - n, " %s", adm_commands[i].sub);
	adm_err(ctx, "%s needs one of:%s", word, subs);
}

/* Finds the command named by argv[0] (and argv[1] for two-word commands). Sets *words to
 * the number of words consumed, or returns NULL having printed why. */
static const struct adm_cmd *find(const struct adm_ctx *ctx, int argc, char **argv, int *words)
{
	bool has_subs = false;

	for (size_t i = 0; i < adm_ncommands; i++) {
		const struct adm_cmd *c = &adm_commands[i];

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
	not_found(ctx, argv[0], has_subs);
	return NULL;
}

/* Global options up to the command word. Returns -1 to go on, else the exit code. */
static int global_options(struct adm_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "db", required_argument, NULL, 'd' },
		{ "state-db", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	char safe[128];
	int c;

	opterr = 0;
	/* '+': stop at the first non-option, the command; its own options are its own. */
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'd': ctx->db_path = optarg; ctx->db_explicit = true; break;
		case 's': ctx->state_db_path = optarg; ctx->state_db_explicit = true; break;
		case 'j': ctx->json = true; break;
		case 'h': help(stdout, ctx->prog); return ADM_EXIT_OK;
		case 'V': printf("relay-admin %s\n", RELAY_VERSION); return ADM_EXIT_OK;
		default:
			adm_safe(argv[optind - 1], safe, sizeof safe);
			adm_err(ctx, "unknown or incomplete option: %s (try %s --help)", safe, ctx->prog);
			return ADM_EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		help(stderr, ctx->prog);
		return ADM_EXIT_USAGE;
	}
	if (strcmp(argv[optind], "help") == 0) {
		help(stdout, ctx->prog);
		return ADM_EXIT_OK;
	}
	if (ctx->db_path[0] == '\0') {
		adm_err(ctx, "--db needs a path");
		return ADM_EXIT_USAGE;
	}
	return -1;
}

int adm_main(int argc, char **argv)
{
	struct adm_ctx ctx = {
		.prog = "relay-admin",
		.out = stdout,
		.now = (int64_t)time(NULL),
	};
	const struct adm_cmd *cmd;
	int words = 0, rc;

	ctx.db_path = env_or("RELAY_DB", RELAY_DEFAULT_DB);
	ctx.state_db_path = env_or("RELAY_STATE_DB", RELAY_DEFAULT_STATE_DB);
	ctx.db_explicit = env_or("RELAY_DB", NULL) != NULL;
	ctx.state_db_explicit = env_or("RELAY_STATE_DB", NULL) != NULL;
	/* Files we create (databases, journals) are never world-readable. */
	umask(027);

	if ((rc = global_options(&ctx, argc, argv)) >= 0)
		return rc;
	cmd = find(&ctx, argc - optind, argv + optind, &words);
	if (cmd == NULL)
		return ADM_EXIT_USAGE;
	ctx.cmd = cmd;
	/* The handler sees its last command word as argv[0], then its own arguments. */
	argv += optind + words - 1;
	argc -= optind + words - 1;
	if (wants_help(argc, argv)) {
		command_help(stdout, &ctx, cmd);
		rc = ADM_EXIT_OK;
	} else {
		optind = 0;
		opterr = 0;
		rc = cmd->buffered ? adm_run_buffered(&ctx, cmd->run, argc, argv)
		                   : cmd->run(&ctx, argc, argv);
	}
	if (fflush(stdout) != 0 || ferror(stdout)) {
		adm_err(&ctx, "cannot write the output");
		if (rc == ADM_EXIT_OK)
			rc = ADM_EXIT_IO;
	}
	return rc;
}
