/*
 * cmd_sender.c — `relay-admin sender add|del|list NAME [PATTERN]`: the envelope and
 * header senders a login may use (local@domain, @domain, or <> for the null sender).
 * Patterns are validated before the database is opened and stored lowercase.
 */
#include <getopt.h>
#include <stdio.h>

#include "adm.h"
#include "render.h"

/* NAME PATTERN, both validated (`list` takes NAME alone: adm_name_arg). */
static int args(const struct adm_ctx *ctx, int argc, char **argv, const char **name,
                const char **pattern)
{
	char why[128];
	int rc = adm_operands(ctx, argc, argv, 2, "expected a login name and a sender pattern");

	if (rc != ADM_EXIT_OK)
		return rc;
	*name = argv[optind];
	if ((rc = adm_check_name(ctx, *name)) != ADM_EXIT_OK)
		return rc;
	*pattern = argv[optind + 1];
	if (!rdb_pattern_valid(*pattern, why, sizeof why))
		return adm_usage(ctx, "invalid sender pattern: %s", why);
	return ADM_EXIT_OK;
}

static int change(struct adm_ctx *ctx, int argc, char **argv, bool add)
{
	char canon[RDB_PATTERN_MAX + 1];
	const char *name = NULL, *pattern = NULL;
	struct adm_out o;
	struct rdb *db = NULL;
	enum rdb_result r;
	int rc = args(ctx, argc, argv, &name, &pattern);

	if (rc != ADM_EXIT_OK)
		return rc;
	rc = adm_db_open(ctx, RDB_READWRITE, &db);
	if (rc != ADM_EXIT_OK)
		return rc;
	r = rdb_begin(db);
	if (r == RDB_OK)
		r = add ? rdb_sender_add(db, name, pattern, ctx->now) :
		          rdb_sender_del(db, name, pattern, ctx->now);
	if (r == RDB_OK)
		r = rdb_commit(db);
	if (r != RDB_OK) {
		rdb_rollback(db);
		rc = adm_rdb_fail(ctx, db, r);
	}
	rdb_close(db);
	if (rc != ADM_EXIT_OK)
		return rc;
	rdb_pattern_canon(pattern, canon);
	adm_out_begin(&o, ctx);
	adm_out_obj(&o, NULL);
	adm_out_str(&o, "name", name, NULL);
	adm_out_str(&o, "sender", canon, NULL);
	adm_out_bool(&o, add ? "added" : "deleted", true, NULL);
	adm_out_text(&o, "%s sender %s %s %s\n", add ? "added" : "deleted", canon,
	             add ? "to" : "from", name);
	adm_out_finish(&o);
	return ADM_EXIT_OK;
}

int adm_cmd_sender_add(struct adm_ctx *ctx, int argc, char **argv)
{
	return change(ctx, argc, argv, true);
}

int adm_cmd_sender_del(struct adm_ctx *ctx, int argc, char **argv)
{
	return change(ctx, argc, argv, false);
}

static int one(const char *pattern, void *arg)
{
	adm_out_str(arg, NULL, pattern, "%s\n");
	return 0;
}

int adm_cmd_sender_list(struct adm_ctx *ctx, int argc, char **argv)
{
	const char *name = NULL;
	struct rdb *db = NULL;
	struct adm_out o;
	enum rdb_result r;
	int rc = adm_name_arg(ctx, argc, argv, &name);

	if (rc != ADM_EXIT_OK)
		return rc;
	rc = adm_db_open(ctx, RDB_READONLY, &db);
	if (rc != ADM_EXIT_OK)
		return rc;
	/* One snapshot; and an unknown login fails before any output starts. */
	r = rdb_begin_read(db);
	if (r == RDB_OK) {
		struct rdb_login l;

		r = rdb_login_get(db, name, &l);
	}
	if (r != RDB_OK) {
		rc = adm_rdb_fail(ctx, db, r);
		rdb_rollback(db);
		rdb_close(db);
		return rc;
	}
	adm_out_begin(&o, ctx);
	adm_out_obj(&o, NULL);
	adm_out_str(&o, "name", name, NULL);
	adm_out_arr(&o, "senders");
	r = rdb_sender_foreach(db, name, one, &o, NULL);
	if (r != RDB_OK)
		rc = adm_rdb_fail(ctx, db, r);
	else
		adm_out_finish(&o);
	rdb_rollback(db);
	rdb_close(db);
	return rc;
}
