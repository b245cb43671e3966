/*
 * cmd_credential.c — `relay-admin user credential add NAME LABEL | list NAME | revoke NAME
 * LABEL`: app credentials, several named secrets per login (sql/credentials.c says why
 * each has its own authentication name, NAME+LABEL or local+LABEL@domain).
 *
 * add generates the secret (never from argv, never chosen: like rdb_generate_password()
 * for a login, >= 128 bits), stores only its two derived forms and prints it once. list
 * shows label, authentication name, created and last used (relay-milter's record in the
 * state database, when there is one to ask); revoke deletes one credential and nothing
 * else. Every argument is checked before the database is touched; writes run in one
 * BEGIN IMMEDIATE transaction.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "adm.h"
#include "render.h"
#include "state.h"

struct cred_args {
	const char *name;
	const char *label;
	unsigned char plain[RDB_PLAIN_SECRET_LEN];
	char scram[RDB_SCRAM_MAX];
	char authname[RDB_NAME_MAX + 1];
	int64_t now;
};

/* Options (only --json) and exactly `n` operands after the action word; checks NAME and,
 * with two operands, LABEL. */
static int parse(struct adm_ctx *ctx, int argc, char **argv, int n, struct cred_args *a)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'J' },
		{ NULL, 0, NULL, 0 },
	};
	char why[128];
	int opt, rc;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (opt != 'J')
			return adm_usage(ctx, "unknown option: %s", argv[optind - 1]);
		ctx->json = true;
	}
	if (argc - optind != n)
		return adm_usage(ctx, n == 1 ? "expected a login name" :
		                 "expected a login name and a label");
	a->name = argv[optind];
	if ((rc = adm_check_name(ctx, a->name)) != ADM_EXIT_OK)
		return rc;
	if (n == 2) {
		a->label = argv[optind + 1];
		if (!rdb_label_valid(a->label, why, sizeof why))
			return adm_usage(ctx, "invalid label: %s", why);
	}
	return ADM_EXIT_OK;
}

/* ---- add ----------------------------------------------------------------------------- */

static enum rdb_result add_write(struct rdb *db, void *arg)
{
	struct cred_args *a = arg;

	return rdb_credential_add(db, a->name, a->label, a->plain, a->scram, a->now, a->authname);
}

/* A fresh secret into *a (its two stored forms) and `secret` (to print once). */
static int make_secret(const struct adm_ctx *ctx, struct cred_args *a,
                       char secret[RDB_PASSWORD_GEN_LEN + 1])
{
	if (rdb_generate_password(secret, RDB_PASSWORD_GEN_LEN + 1) != RDB_OK) {
		adm_err(ctx, "cannot generate a secret (random source failed)");
		return ADM_EXIT_FAIL;
	}
	if (rdb_secret_plain(secret, strlen(secret), NULL, a->plain) != RDB_OK ||
	    rdb_secret_scram_sha256(secret, strlen(secret), RDB_SCRAM_ITERATIONS, NULL, 0,
	                            a->scram) != RDB_OK) {
		adm_err(ctx, "cannot compute the secret's forms (OpenSSL or random source failed)");
		return ADM_EXIT_FAIL;
	}
	return ADM_EXIT_OK;
}

static int credential_add(struct adm_ctx *ctx, int argc, char **argv)
{
	struct cred_args a = { .now = ctx->now };
	char secret[RDB_PASSWORD_GEN_LEN + 1] = "";
	struct rdb *db = NULL;
	struct adm_out o;
	int rc = parse(ctx, argc, argv, 2, &a);

	if (rc != ADM_EXIT_OK)
		return rc;
	if ((rc = adm_db_open(ctx, RDB_READWRITE, &db)) != ADM_EXIT_OK)
		return rc;
	rc = make_secret(ctx, &a, secret);
	if (rc == ADM_EXIT_OK)
		rc = adm_in_transaction(ctx, db, add_write, &a);
	rdb_close(db);
	if (rc == ADM_EXIT_OK) {
		adm_out_begin(&o, ctx);
		adm_out_obj(&o, NULL);
		adm_out_str(&o, "name", a.name, NULL);
		adm_out_str(&o, "label", a.label, NULL);
		adm_out_text(&o, "added credential %s to %s\n", a.label, a.name);
		adm_out_str(&o, "authname", a.authname, "authentication name: %s\n");
		adm_out_time(&o, "created", a.now, NULL);
		adm_out_str(&o, "secret", secret, "secret (shown once): %s\n");
		adm_out_finish(&o);
	}
	explicit_bzero(secret, sizeof secret);
	explicit_bzero(&a, sizeof a);
	return rc;
}

/* ---- list ---------------------------------------------------------------------------- */

struct list_ctx {
	const struct adm_ctx *ctx;
	struct adm_out o;
	struct rdb_state *st;   /* NULL: no state database to ask about last use */
	const char *name;
	enum rdb_result r;      /* a state-database failure inside the walk */
};

static int list_row(const struct rdb_credential *c, void *arg)
{
	struct list_ctx *lc = arg;
	char created[ADM_TIME_LEN], used[ADM_TIME_LEN] = "-", client[64] = "";
	int64_t ts = 0;
	enum rdb_result r = RDB_NOTFOUND;

	if (lc->st != NULL)
		r = rdb_state_credential_last_use(lc->st, lc->name, c->label, &ts, client,
		                                  sizeof client);
	if (r == RDB_ERROR) {
		adm_warn(lc->ctx, "last use unknown: %s", rdb_state_errmsg(lc->st));
		r = RDB_NOTFOUND;
	}
	/* a use from before the credential was made belongs to an earlier one of that label */
	if (r == RDB_OK && ts < c->created_at)
		r = RDB_NOTFOUND;
	adm_format_time(c->created_at, created);
	if (r == RDB_OK)
		adm_format_time(ts, used);
	adm_out_obj(&lc->o, NULL);
	adm_out_str(&lc->o, "label", c->label, NULL);
	adm_out_str(&lc->o, "authname", c->authname, NULL);
	adm_out_time(&lc->o, "created", c->created_at, NULL);
	if (r == RDB_OK) {
		adm_out_time(&lc->o, "last_used", ts, NULL);
		adm_out_str(&lc->o, "last_client", client, NULL);
	} else {
		adm_out_null(&lc->o, "last_used", NULL);
		adm_out_null(&lc->o, "last_client", NULL);
	}
	adm_out_end(&lc->o);
	adm_out_text(&lc->o, "%-32s %-40s %-20s %s\n", c->label, c->authname, created, used);
	return 0;
}

static int credential_list(struct adm_ctx *ctx, int argc, char **argv)
{
	struct cred_args a = { .now = ctx->now };
	struct list_ctx lc = { .ctx = ctx, .r = RDB_OK };
	struct rdb *db = NULL;
	enum rdb_result r;
	int rc = parse(ctx, argc, argv, 1, &a);

	if (rc != ADM_EXIT_OK)
		return rc;
	if ((rc = adm_db_open(ctx, RDB_READONLY, &db)) != ADM_EXIT_OK)
		return rc;
	lc.name = a.name;
	lc.st = adm_state_for_last_use(ctx);
	adm_out_begin(&lc.o, ctx);
	adm_out_obj(&lc.o, NULL);
	adm_out_str(&lc.o, "name", a.name, NULL);
	adm_out_arr(&lc.o, "credentials");
	adm_out_text(&lc.o, "%-32s %-40s %-20s %s\n", "LABEL", "AUTHENTICATION NAME",
	             "CREATED", "LAST USED");
	r = rdb_begin_read(db);
	if (r == RDB_OK)
		r = rdb_credential_foreach(db, a.name, list_row, &lc, NULL);
	rdb_rollback(db);
	if (r != RDB_OK)
		rc = adm_rdb_fail(ctx, db, r);
	else
		adm_out_finish(&lc.o);
	rdb_state_close(lc.st);
	rdb_close(db);
	return rc;
}

/* ---- revoke -------------------------------------------------------------------------- */

static enum rdb_result revoke_write(struct rdb *db, void *arg)
{
	struct cred_args *a = arg;

	return rdb_credential_revoke(db, a->name, a->label);
}

static int credential_revoke(struct adm_ctx *ctx, int argc, char **argv)
{
	struct cred_args a = { .now = ctx->now };
	struct rdb *db = NULL;
	struct adm_out o;
	int rc = parse(ctx, argc, argv, 2, &a);

	if (rc != ADM_EXIT_OK)
		return rc;
	if ((rc = adm_db_open(ctx, RDB_READWRITE, &db)) != ADM_EXIT_OK)
		return rc;
	rc = adm_in_transaction(ctx, db, revoke_write, &a);
	rdb_close(db);
	if (rc == ADM_EXIT_OK) {
		adm_out_begin(&o, ctx);
		adm_out_obj(&o, NULL);
		adm_out_str(&o, "name", a.name, NULL);
		adm_out_str(&o, "label", a.label, NULL);
		adm_out_bool(&o, "revoked", true, NULL);
		adm_out_text(&o, "revoked credential %s of %s\n", a.label, a.name);
		adm_out_finish(&o);
	}
	return rc;
}

int adm_cmd_user_credential(struct adm_ctx *ctx, int argc, char **argv)
{
	static const struct {
		const char *word;
		int (*run)(struct adm_ctx *ctx, int argc, char **argv);
	} actions[] = {
		{ "add", credential_add },
		{ "list", credential_list },
		{ "revoke", credential_revoke },
	};

	/* argv[0] is "credential", argv[1] the action: the action's handler sees itself as
	 * argv[0], as every command handler does */
	for (size_t i = 0; argc > 1 && i < sizeof actions / sizeof actions[0]; i++)
		if (strcmp(argv[1], actions[i].word) == 0)
			return actions[i].run(ctx, argc - 1, argv + 1);
	return adm_usage(ctx, "user credential needs one of: add, list, revoke");
}
