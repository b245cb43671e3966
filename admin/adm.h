/*
 * adm.h — relay-admin's shared interface: the command context, exit codes, the command
 * table, and the helpers every command uses (diagnostics, JSON writer, reading a secret,
 * dates). Results are rendered through render.h.
 *
 * All of admin/ but main.c is one static library (libadm); tests link it (adm_dep).
 *
 * HOW TO ADD A COMMAND
 *   1. Write admin/cmd_<name>.c with one function per (sub)command:
 *          int adm_cmd_limit_set(struct adm_ctx *ctx, int argc, char **argv);
 *      argv[0] is the last command word ("set" for `relay-admin limit set ...`), so
 *      getopt_long(argc, argv, "...", longopts, NULL) works directly: the dispatcher has
 *      reset optind (= 0) and set opterr = 0 — report a bad option with
 *      `return adm_usage(ctx, "unknown option: %s", argv[optind - 1]);`.
 *      Parse and validate, act, then describe the result once through the renderer
 *      (render.h): it prints the text or, with --json, one JSON document on ctx->out;
 *      never test ctx->json. Return an ADM_EXIT_* code; never call exit(). Diagnostics
 *      go through adm_err()/adm_warn()/adm_note() (stderr, "relay-admin: " prefix).
 *   2. Add its prototype to the "command handlers" list at the end of this header.
 *   3. Add one entry to the `adm_commands` table in admin/commands.c:
 *          { "limit", "set", adm_cmd_limit_set, "NAME [--json]", "set a rate limit", NULL,
 *            false },
 *      (name, sub or NULL, handler, synopsis naming every option it reads, one-line help,
 *      longer help or NULL, and `true` if its output must be all or nothing).
 *      `COMMAND --help` is answered from this entry by the dispatcher: the handler never
 *      sees --help.
 *   4. Append the file to adm_sources in admin/meson.build, and document the command in
 *      man/relay-admin.8 (or your own page, listed in man/meson.build).
 *
 * Databases: adm_db_open(ctx, RDB_READWRITE, &db) opens ctx->db_path and prints the
 * reason on failure (returning the exit code to pass back). Write through rdb_begin() /
 * rdb_commit() so that concurrent relay-admin runs serialise; map a failed rdb_* call with
 * `return adm_rdb_fail(ctx, db, r);` (prints rdb_errmsg(), returns the exit code).
 *
 * Secrets: never take a password from argv. adm_read_secret() reads one from stdin: from a
 * terminal it prompts on stderr with echo off (optionally twice, to confirm); from a pipe
 * it reads one line. The caller wipes the buffer with explicit_bzero() when done.
 *
 * Ownership and threads: struct adm_ctx lives in main() for the whole run; commands
 * borrow it. relay-admin is single-threaded.
 */
#ifndef RELAY_ADM_H
#define RELAY_ADM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "rdb.h"

/* Exit codes: stable, documented in relay-admin(8). */
enum adm_exit {
	ADM_EXIT_OK = 0,        /* success */
	ADM_EXIT_FAIL = 1,      /* the command ran but failed (e.g. checks failed, partial import) */
	ADM_EXIT_USAGE = 2,     /* bad command line or bad input (invalid name, pattern, date, weak password) */
	ADM_EXIT_NOTFOUND = 3,  /* no such login, sender pattern or limit */
	ADM_EXIT_EXISTS = 4,    /* already exists */
	ADM_EXIT_DB = 5,        /* database error: missing, foreign, newer schema, busy, corrupt */
	ADM_EXIT_IO = 6,        /* permission or I/O error outside the database (files, folders, terminal) */
};

struct adm_cmd;

struct adm_ctx {
	const char *prog;          /* "relay-admin", for messages */
	const char *db_path;       /* --db, else $RELAY_DB, else RELAY_DEFAULT_DB */
	const char *state_db_path; /* --state-db, else $RELAY_STATE_DB, else RELAY_DEFAULT_STATE_DB */
	bool db_explicit;          /* --db or $RELAY_DB was given */
	bool state_db_explicit;    /* --state-db or $RELAY_STATE_DB was given */
	bool json;                 /* --json */
	FILE *out;                 /* stdout */
	int64_t now;               /* time(NULL) at start: one clock for the whole run */
	const struct adm_cmd *cmd; /* the command being run (for adm_usage) */
};

struct adm_cmd {
	const char *name;          /* first word: "user" */
	const char *sub;           /* second word ("add"), or NULL for one-word commands */
	int (*run)(struct adm_ctx *ctx, int argc, char **argv);
	const char *args;          /* synopsis of the arguments: every option the handler reads */
	const char *help;          /* one line */
	const char *more;          /* longer text for `COMMAND --help`, or NULL */
	bool buffered;             /* run through adm_run_buffered(): all of stdout or nothing */
};

/* ---- the command table and the dispatcher (commands.c, dispatch.c) ---------------------- */

/* Every command, in the order `relay-admin --help` lists them. */
extern const struct adm_cmd adm_commands[];
extern const size_t adm_ncommands;

/* The whole program: global options, the command (or its --help, answered from the
 * table on stdout with exit 0), the exit code. main() returns what this returns. */
int adm_main(int argc, char **argv);

/* "usage: relay-admin [--db PATH] [--json] WORDS SYNOPSIS\n" on f. */
void adm_usage_line(FILE *f, const struct adm_ctx *ctx, const struct adm_cmd *c);

/* The milter socket `setup` registers by default (also in its --help). */
#define ADM_DEFAULT_MILTER "unix:/run/relay-milter/milter.sock"

/* ---- messages ------------------------------------------------------------------------- */

/* The one way a diagnostic leaves relay-admin: "relay-admin: [warning: |note: ]<message>\n"
 * on stderr, after flushing ctx->out so that the two streams interleave in order. Results
 * (and notes that are part of a result) go to ctx->out instead. */
enum adm_diag { ADM_DIAG_ERROR, ADM_DIAG_WARNING, ADM_DIAG_NOTE };
__attribute__((format(printf, 3, 4)))
void adm_diag(const struct adm_ctx *ctx, enum adm_diag kind, const char *fmt, ...);

/* The three kinds, by name: adm_err(ctx, "cannot open %s", path). */
#define adm_err(ctx, ...) adm_diag((ctx), ADM_DIAG_ERROR, __VA_ARGS__)
#define adm_warn(ctx, ...) adm_diag((ctx), ADM_DIAG_WARNING, __VA_ARGS__)
#define adm_note(ctx, ...) adm_diag((ctx), ADM_DIAG_NOTE, __VA_ARGS__)

/* Prints the message and the command's synopsis on stderr; returns ADM_EXIT_USAGE. */
__attribute__((format(printf, 2, 3)))
int adm_usage(const struct adm_ctx *ctx, const char *fmt, ...);

/* Runs run(ctx, argc, argv) with ctx->out collected in memory and copies it to the real
 * ctx->out only when run returns ADM_EXIT_OK: a failure (no such login, a database error
 * half-way through a listing) leaves nothing on stdout, never a partial listing or JSON
 * document. Returns run's exit code. */
int adm_run_buffered(struct adm_ctx *ctx, int (*run)(struct adm_ctx *, int, char **),
                     int argc, char **argv);

/* The exit code for a data-layer result (RDB_OK → 0, RDB_INVALID → USAGE, ...). */
int adm_exit_for(enum rdb_result r);

/* Prints rdb_errmsg(db) and returns adm_exit_for(r). */
int adm_rdb_fail(const struct adm_ctx *ctx, const struct rdb *db, enum rdb_result r);

/* Runs write(db, arg) inside BEGIN IMMEDIATE ... COMMIT; any failure rolls back, prints why
 * and returns the exit code (ADM_EXIT_OK when committed). */
int adm_in_transaction(const struct adm_ctx *ctx, struct rdb *db,
                       enum rdb_result (*write)(struct rdb *db, void *arg),
                       void *arg);

/* Opens ctx->db_path; on failure prints why and returns ADM_EXIT_DB (ADM_EXIT_OK on
 * success, *db set). */
int adm_db_open(const struct adm_ctx *ctx, enum rdb_mode mode, struct rdb **db);

/* Validates a login name; on failure prints why (with the synopsis) and returns
 * ADM_EXIT_USAGE. */
int adm_check_name(const struct adm_ctx *ctx, const char *name);

/* For commands without options: exactly n operands after argv[0] (left at argv[optind]),
 * else the usage error with `expected` ("expected a login name and a pattern"). */
int adm_operands(const struct adm_ctx *ctx, int argc, char **argv, int n, const char *expected);

/* For commands that take exactly one NAME and no options: parses argv (getopt_long),
 * validates the name and sets *name; returns ADM_EXIT_OK or the usage error. */
int adm_name_arg(const struct adm_ctx *ctx, int argc, char **argv, const char **name);

/* Writes s to f with every byte outside printable ASCII (and backslash) as \xNN, so a
 * hostile string from a database or log can never drive the terminal. */
void adm_print_safe(FILE *f, const char *s);

/* The same escaping into buf (truncated to fit, always terminated), for adm_err()'s
 * arguments. Returns buf. */
const char *adm_safe(const char *s, char *buf, size_t len);

/* ---- JSON writer (used by render.c and checklist.c; commands use render.h) ------------ */

/* A minimal streaming JSON writer: commas and nesting are tracked for you.
 *     struct adm_json j; adm_json_init(&j, ctx->out);
 *     adm_json_obj(&j); adm_json_key(&j, "name"); adm_json_str(&j, "alice");
 *     adm_json_end(&j); adm_json_finish(&j);       (finish adds the final newline)
 * Strings are escaped per RFC 8259; invalid UTF-8 bytes become U+FFFD. At most
 * ADM_JSON_DEPTH levels of nesting. */
#define ADM_JSON_DEPTH 16
struct adm_json {
	FILE *f;
	int depth;
	bool first[ADM_JSON_DEPTH];
	char close[ADM_JSON_DEPTH];
	bool after_key;
};
void adm_json_init(struct adm_json *j, FILE *f);
void adm_json_obj(struct adm_json *j);
void adm_json_arr(struct adm_json *j);
void adm_json_end(struct adm_json *j);
void adm_json_key(struct adm_json *j, const char *key);
void adm_json_str(struct adm_json *j, const char *s);
void adm_json_int(struct adm_json *j, int64_t v);
void adm_json_bool(struct adm_json *j, bool v);
void adm_json_null(struct adm_json *j);
/* A time as an RFC 3339 UTC string ("2026-11-26T10:00:00Z"). */
void adm_json_time(struct adm_json *j, int64_t t);
void adm_json_finish(struct adm_json *j);

/* ---- input ---------------------------------------------------------------------------- */

/* Reads a secret from stdin into buf (NUL-terminated). From a terminal: prompt on stderr,
 * echo off, asked twice if `confirm` (mismatch is an error). From a pipe or file: one line,
 * its trailing "\n" or "\r\n" removed. Refuses an empty secret, a NUL byte, or one that
 * does not fit. Returns ADM_EXIT_OK, ADM_EXIT_USAGE (bad secret) or ADM_EXIT_IO, having
 * printed why; buf is wiped on failure. */
int adm_read_secret(const struct adm_ctx *ctx, const char *prompt, bool confirm,
                    char *buf, size_t buflen);

/* Parses "YYYY-MM-DD" (00:00:00 UTC that day) or "YYYY-MM-DDTHH:MM:SSZ" strictly. */
bool adm_parse_time(const char *s, int64_t *out);

/* Formats unix seconds as "YYYY-MM-DDTHH:MM:SSZ" (out: ADM_TIME_LEN bytes). */
#define ADM_TIME_LEN 32
void adm_format_time(int64_t t, char out[ADM_TIME_LEN]);

/* The state database for "last used" columns, read-only, when the admin's options point
 * at one (an explicit --state-db, or the installed layout) and it exists; NULL otherwise,
 * or with a warning when it exists but cannot be read (cmd_user_list.c). */
struct rdb_state;
struct rdb_state *adm_state_for_last_use(const struct adm_ctx *ctx);

/* ---- command handlers (one line each; keep sorted by file) ------------------------------ */

/* cmd_init.c */
int adm_cmd_init(struct adm_ctx *ctx, int argc, char **argv);
/* cmd_check.c */
int adm_cmd_check(struct adm_ctx *ctx, int argc, char **argv);
/* cmd_held.c */
int adm_cmd_held_list(struct adm_ctx *ctx, int argc, char **argv);
int adm_cmd_held_release(struct adm_ctx *ctx, int argc, char **argv);
int adm_cmd_held_delete(struct adm_ctx *ctx, int argc, char **argv);
/* cmd_import.c */
int adm_cmd_import_sasldb(struct adm_ctx *ctx, int argc, char **argv);
/* cmd_limit.c, cmd_usage.c, cmd_log.c (milter) */
int adm_cmd_limit_set(struct adm_ctx *ctx, int argc, char **argv);
int adm_cmd_limit_show(struct adm_ctx *ctx, int argc, char **argv);
int adm_cmd_limit_clear(struct adm_ctx *ctx, int argc, char **argv);
int adm_cmd_usage(struct adm_ctx *ctx, int argc, char **argv);
/* cmd_usage_reset.c */
int adm_cmd_usage_reset(struct adm_ctx *ctx, int argc, char **argv);
int adm_cmd_log(struct adm_ctx *ctx, int argc, char **argv);
/* cmd_metrics.c */
int adm_cmd_metrics(struct adm_ctx *ctx, int argc, char **argv);
/* cmd_pg.c (shared PostgreSQL database) */
int adm_cmd_grants(struct adm_ctx *ctx, int argc, char **argv);
int adm_cmd_copy(struct adm_ctx *ctx, int argc, char **argv);
/* cmd_sender.c */
int adm_cmd_sender_add(struct adm_ctx *ctx, int argc, char **argv);
int adm_cmd_sender_del(struct adm_ctx *ctx, int argc, char **argv);
int adm_cmd_sender_list(struct adm_ctx *ctx, int argc, char **argv);
/* cmd_setup.c */
int adm_cmd_setup(struct adm_ctx *ctx, int argc, char **argv);
/* cmd_selftest.c */
int adm_cmd_selftest(struct adm_ctx *ctx, int argc, char **argv);
/* cmd_user.c, cmd_user_list.c */
int adm_cmd_user_add(struct adm_ctx *ctx, int argc, char **argv);
int adm_cmd_user_passwd(struct adm_ctx *ctx, int argc, char **argv);
int adm_cmd_user_del(struct adm_ctx *ctx, int argc, char **argv);
int adm_cmd_user_enable(struct adm_ctx *ctx, int argc, char **argv);
int adm_cmd_user_disable(struct adm_ctx *ctx, int argc, char **argv);
int adm_cmd_user_set(struct adm_ctx *ctx, int argc, char **argv);
int adm_cmd_user_list(struct adm_ctx *ctx, int argc, char **argv);
int adm_cmd_user_show(struct adm_ctx *ctx, int argc, char **argv);
/* cmd_credential.c */
int adm_cmd_user_credential(struct adm_ctx *ctx, int argc, char **argv);

#endif
