/*
 * cmd_user.c — `relay-admin user add|passwd|del|enable|disable|set` (list and show are in
 * cmd_user_list.c).
 *
 * Every argument is validated before the database is touched; writes run in one
 * BEGIN IMMEDIATE transaction, so a login and its senders appear together or not at all
 * and concurrent runs serialise. Passwords come from stdin (adm_read_secret) or are
 * generated (rdb_generate_password) and printed once; they are turned into the stored
 * secrets at once and wiped.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adm.h"
#include "render.h"

#define PASSWORD_MAX 1024   /* bytes of a password read from stdin */
#define WEAK_BELOW 16       /* characters: shorter chosen passwords need --allow-weak */
#define MAX_SENDERS 64      /* --sender options on one `user add` */

/* ---- shared pieces ------------------------------------------------------------------- */

struct secrets {
	unsigned char plain[RDB_PLAIN_SECRET_LEN];
	char scram[RDB_SCRAM_MAX];
};

/* Characters, not bytes: a UTF-8 continuation byte does not start one. */
static size_t utf8_chars(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += ((unsigned char)*s & 0xc0) != 0x80;
	return n;
}

/* Gets a password (stdin or generated), checks its strength, derives the secrets and
 * wipes it. *generated receives a generated password to print (caller wipes it). */
static int obtain_secrets(const struct adm_ctx *ctx, bool from_stdin, bool allow_weak,
                          struct secrets *s, char generated[RDB_PASSWORD_GEN_LEN + 1])
{
	char *pw;
	size_t len;
	int rc = ADM_EXIT_OK;

	generated[0] = '\0';
	pw = malloc(PASSWORD_MAX + 1);
	if (pw == NULL) {
		adm_err(ctx, "out of memory");
		return ADM_EXIT_FAIL;
	}
	if (from_stdin) {
		rc = adm_read_secret(ctx, "Password: ", true, pw, PASSWORD_MAX + 1);
		if (rc != ADM_EXIT_OK)
			goto out;
		if (!allow_weak && utf8_chars(pw) < WEAK_BELOW) {
			adm_err(ctx, "password shorter than %d characters; use a longer one, omit "
			        "--password-stdin to get a generated one, or pass --allow-weak",
			        WEAK_BELOW);
			rc = ADM_EXIT_USAGE;
			goto out;
		}
	} else if (rdb_generate_password(pw, PASSWORD_MAX + 1) != RDB_OK) {
		adm_err(ctx, "cannot generate a password (random source failed)");
		rc = ADM_EXIT_FAIL;
		goto out;
	}
	len = strlen(pw);
	if (rdb_secret_plain(pw, len, NULL, s->plain) != RDB_OK ||
	    rdb_secret_scram_sha256(pw, len, RDB_SCRAM_ITERATIONS, NULL, 0, s->scram) != RDB_OK) {
		adm_err(ctx, "cannot compute the password secrets (OpenSSL or random source failed)");
		rc = ADM_EXIT_FAIL;
		goto out;
	}
	if (!from_stdin)
		memcpy(generated, pw, RDB_PASSWORD_GEN_LEN + 1);
out:
	explicit_bzero(pw, PASSWORD_MAX + 1);
	free(pw);
	if (rc != ADM_EXIT_OK)
		explicit_bzero(s, sizeof *s);
	return rc;
}

static int parse_expiry(const struct adm_ctx *ctx, const char *arg, bool allow_never,
                        bool *has, int64_t *at)
{
	if (allow_never && strcmp(arg, "never") == 0) {
		*has = false;
		*at = 0;
		return ADM_EXIT_OK;
	}
	if (!adm_parse_time(arg, at))
		return adm_usage(ctx, "bad date for --expires: use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (UTC)%s",
		                 allow_never ? ", or never" : "");
	*has = true;
	/* Allowed (it is how to retire a login on purpose), but rarely meant. */
	if (*at <= ctx->now)
		adm_err(ctx, "warning: --expires %s is not in the future: the login cannot authenticate",
		        arg);
	return ADM_EXIT_OK;
}

static int check_note(const struct adm_ctx *ctx, const char *note)
{
	char why[128];

	if (note != NULL && !rdb_note_valid(note, why, sizeof why))
		return adm_usage(ctx, "invalid --note: %s", why);
	return ADM_EXIT_OK;
}

/* Reports a change to one login: with --json {"name": NAME, KEY: true}, plus "password"
 * if one was generated; else the line "TEXT NAME", and the generated password, shown
 * once, on the next. */
static void report_done(const struct adm_ctx *ctx, const char *name, const char *key,
                        const char *text, const char *generated)
{
	bool show = generated != NULL && generated[0] != '\0';
	struct adm_out o;

	adm_out_begin(&o, ctx);
	adm_out_obj(&o, NULL);
	adm_out_str(&o, "name", name, NULL);
	adm_out_bool(&o, key, true, NULL);
	adm_out_text(&o, "%s %s\n", text, name);
	if (show)
		adm_out_str(&o, "password", generated, "password (shown once): %s\n");
	adm_out_finish(&o);
}

/* The second half of add and passwd, once the login has been checked: gets the password
 * (stdin or generated) into *s, runs write(db, arg) in a transaction — arg refers to *s —
 * wipes *s and closes db. */
static int write_with_secrets(const struct adm_ctx *ctx, struct rdb *db, bool from_stdin,
                              bool allow_weak, struct secrets *s,
                              char generated[RDB_PASSWORD_GEN_LEN + 1],
                              enum rdb_result (*write)(struct rdb *db, void *arg),
                              void *arg)
{
	int rc = obtain_secrets(ctx, from_stdin, allow_weak, s, generated);

	if (rc == ADM_EXIT_OK)
		rc = adm_in_transaction(ctx, db, write, arg);
	explicit_bzero(s, sizeof *s);
	rdb_close(db);
	return rc;
}

/* ---- user add -------------------------------------------------------------------------- */

struct add_args {
	struct rdb_login_new login;
	const char *senders[MAX_SENDERS];
	int nsenders;
	int64_t now;
};

static enum rdb_result add_write(struct rdb *db, void *p)
{
	const struct add_args *a = p;
	enum rdb_result r = rdb_login_add(db, &a->login);

	for (int i = 0; r == RDB_OK && i < a->nsenders; i++) {
		r = rdb_sender_add(db, a->login.name, a->senders[i], a->now);
		/* the same pattern twice on one command line is not an error */
		if (r == RDB_EXISTS)
			r = RDB_OK;
	}
	return r;
}

int adm_cmd_user_add(struct adm_ctx *ctx, int argc, char **argv)
{
	enum { O_STDIN = 1, O_WEAK, O_EXPIRES, O_NOTE, O_SENDER };
	static const struct option opts[] = {
		{ "password-stdin", no_argument, NULL, O_STDIN },
		{ "allow-weak", no_argument, NULL, O_WEAK },
		{ "expires", required_argument, NULL, O_EXPIRES },
		{ "note", required_argument, NULL, O_NOTE },
		{ "sender", required_argument, NULL, O_SENDER },
		{ NULL, 0, NULL, 0 },
	};
	struct add_args a = { .now = ctx->now };
	struct secrets s;
	char generated[RDB_PASSWORD_GEN_LEN + 1];
	bool from_stdin = false, allow_weak = false;
	struct rdb *db = NULL;
	int c, rc;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case O_STDIN: from_stdin = true; break;
		case O_WEAK: allow_weak = true; break;
		case O_EXPIRES:
			rc = parse_expiry(ctx, optarg, false, &a.login.has_expiry, &a.login.expires_at);
			if (rc != ADM_EXIT_OK)
				return rc;
			break;
		case O_NOTE: a.login.note = optarg; break;
		case O_SENDER: {
			char why[128];

			if (!rdb_pattern_valid(optarg, why, sizeof why))
				return adm_usage(ctx, "invalid --sender: %s", why);
			if (a.nsenders == MAX_SENDERS)
				return adm_usage(ctx, "at most %d --sender options", MAX_SENDERS);
			a.senders[a.nsenders++] = optarg;
			break;
		}
		default:
			return adm_usage(ctx, "unknown or incomplete option: %s", argv[optind - 1]);
		}
	}
	if (argc - optind != 1)
		return adm_usage(ctx, "expected one login name");
	a.login.name = argv[optind];
	a.login.source = "admin";
	a.login.now = ctx->now;
	if ((rc = adm_check_name(ctx, a.login.name)) != ADM_EXIT_OK ||
	    (rc = check_note(ctx, a.login.note)) != ADM_EXIT_OK)
		return rc;

	rc = adm_db_open(ctx, RDB_READWRITE, &db);
	if (rc != ADM_EXIT_OK)
		return rc;
	{
		/* Say "exists" before asking for a password; the insert checks again. */
		struct rdb_login l;
		enum rdb_result r = rdb_login_get(db, a.login.name, &l);

		if (r != RDB_NOTFOUND) {
			rc = r == RDB_OK ? (adm_err(ctx, "login already exists: %s", l.name), ADM_EXIT_EXISTS)
			                 : adm_rdb_fail(ctx, db, r);
			rdb_close(db);
			return rc;
		}
	}
	a.login.plain = s.plain;
	a.login.scram = s.scram;
	rc = write_with_secrets(ctx, db, from_stdin, allow_weak, &s, generated, add_write, &a);
	if (rc == ADM_EXIT_OK)
		report_done(ctx, a.login.name, "added", "added login", generated);
	explicit_bzero(generated, sizeof generated);
	return rc;
}

/* ---- user passwd ----------------------------------------------------------------------- */

struct passwd_args {
	const char *name;
	const struct secrets *s;
	int64_t now;
};

static enum rdb_result passwd_write(struct rdb *db, void *p)
{
	const struct passwd_args *a = p;

	return rdb_login_set_secrets(db, a->name, a->s->plain, a->s->scram, a->now);
}

int adm_cmd_user_passwd(struct adm_ctx *ctx, int argc, char **argv)
{
	enum { O_STDIN = 1, O_WEAK };
	static const struct option opts[] = {
		{ "password-stdin", no_argument, NULL, O_STDIN },
		{ "allow-weak", no_argument, NULL, O_WEAK },
		{ NULL, 0, NULL, 0 },
	};
	char generated[RDB_PASSWORD_GEN_LEN + 1];
	bool from_stdin = false, allow_weak = false;
	struct rdb_login l;
	struct secrets s;
	struct passwd_args a = { .s = &s, .now = ctx->now };
	struct rdb *db = NULL;
	enum rdb_result r;
	int c, rc;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case O_STDIN: from_stdin = true; break;
		case O_WEAK: allow_weak = true; break;
		default:
			return adm_usage(ctx, "unknown option: %s", argv[optind - 1]);
		}
	}
	if (argc - optind != 1)
		return adm_usage(ctx, "expected one login name");
	a.name = argv[optind];
	if ((rc = adm_check_name(ctx, a.name)) != ADM_EXIT_OK)
		return rc;
	rc = adm_db_open(ctx, RDB_READWRITE, &db);
	if (rc != ADM_EXIT_OK)
		return rc;
	/* Refuse an unknown login before asking for a password. */
	r = rdb_login_get(db, a.name, &l);
	if (r != RDB_OK) {
		rc = adm_rdb_fail(ctx, db, r);
		rdb_close(db);
		return rc;
	}
	rc = write_with_secrets(ctx, db, from_stdin, allow_weak, &s, generated, passwd_write, &a);
	if (rc == ADM_EXIT_OK)
		report_done(ctx, l.name, "password_changed", "password changed for", generated);
	explicit_bzero(generated, sizeof generated);
	return rc;
}

/* ---- user del / enable / disable ------------------------------------------------------- */

struct simple_args {
	const char *name;
	bool flag;
	int64_t now;
};

static enum rdb_result del_write(struct rdb *db, void *p)
{
	return rdb_login_delete(db, ((const struct simple_args *)p)->name);
}

static enum rdb_result enable_write(struct rdb *db, void *p)
{
	const struct simple_args *a = p;

	return rdb_login_set_enabled(db, a->name, a->flag, a->now);
}

static int simple_change(struct adm_ctx *ctx, int argc, char **argv,
                         enum rdb_result (*write)(struct rdb *db, void *arg), bool flag,
                         const char *key, const char *text)
{
	struct simple_args a = { .flag = flag, .now = ctx->now };
	struct rdb *db = NULL;
	int rc = adm_name_arg(ctx, argc, argv, &a.name);

	if (rc != ADM_EXIT_OK)
		return rc;
	rc = adm_db_open(ctx, RDB_READWRITE, &db);
	if (rc != ADM_EXIT_OK)
		return rc;
	rc = adm_in_transaction(ctx, db, write, &a);
	rdb_close(db);
	if (rc == ADM_EXIT_OK)
		report_done(ctx, a.name, key, text, NULL);
	return rc;
}

int adm_cmd_user_del(struct adm_ctx *ctx, int argc, char **argv)
{
	return simple_change(ctx, argc, argv, del_write, false, "deleted", "deleted login");
}

int adm_cmd_user_enable(struct adm_ctx *ctx, int argc, char **argv)
{
	return simple_change(ctx, argc, argv, enable_write, true, "enabled", "enabled login");
}

int adm_cmd_user_disable(struct adm_ctx *ctx, int argc, char **argv)
{
	return simple_change(ctx, argc, argv, enable_write, false, "disabled", "disabled login");
}

/* ---- user set -------------------------------------------------------------------------- */

struct set_args {
	const char *name;
	bool set_expiry, has_expiry;
	int64_t expires_at;
	const char *note;
	int64_t now;
};

static enum rdb_result set_write(struct rdb *db, void *p)
{
	const struct set_args *a = p;
	enum rdb_result r = RDB_OK;

	if (a->set_expiry)
		r = rdb_login_set_expiry(db, a->name, a->has_expiry, a->expires_at, a->now);
	if (r == RDB_OK && a->note != NULL)
		r = rdb_login_set_note(db, a->name, a->note, a->now);
	return r;
}

int adm_cmd_user_set(struct adm_ctx *ctx, int argc, char **argv)
{
	enum { O_EXPIRES = 1, O_NOTE };
	static const struct option opts[] = {
		{ "expires", required_argument, NULL, O_EXPIRES },
		{ "note", required_argument, NULL, O_NOTE },
		{ NULL, 0, NULL, 0 },
	};
	struct set_args a = { .now = ctx->now };
	struct rdb *db = NULL;
	int c, rc;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case O_EXPIRES:
			rc = parse_expiry(ctx, optarg, true, &a.has_expiry, &a.expires_at);
			if (rc != ADM_EXIT_OK)
				return rc;
			a.set_expiry = true;
			break;
		case O_NOTE: a.note = optarg; break;
		default:
			return adm_usage(ctx, "unknown or incomplete option: %s", argv[optind - 1]);
		}
	}
	if (argc - optind != 1)
		return adm_usage(ctx, "expected one login name");
	a.name = argv[optind];
	if (!a.set_expiry && a.note == NULL)
		return adm_usage(ctx, "nothing to change: give --expires and/or --note");
	if ((rc = adm_check_name(ctx, a.name)) != ADM_EXIT_OK ||
	    (rc = check_note(ctx, a.note)) != ADM_EXIT_OK)
		return rc;
	rc = adm_db_open(ctx, RDB_READWRITE, &db);
	if (rc != ADM_EXIT_OK)
		return rc;
	rc = adm_in_transaction(ctx, db, set_write, &a);
	rdb_close(db);
	if (rc == ADM_EXIT_OK)
		report_done(ctx, a.name, "updated", "updated login", NULL);
	return rc;
}
