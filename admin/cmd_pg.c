/*
 * cmd_pg.c — the relay-admin commands for a shared PostgreSQL database:
 *   grants  prints the GRANT statements each part's role needs on the users tables and on
 *           the state tables (the tables belong to the role that ran `relay-admin init`;
 *           that role runs them, e.g. with psql). Both kinds by default, because the README
 *           keeps both schemas in one database and one `grants | psql` must make every role
 *           work; --only users|state for a state kept in a database of its own;
 *   copy    copies the users data (app credentials included) between two databases, SQLite or PostgreSQL on either
 *           side, in one transaction on the target, verified by counts (sql/copy.c).
 *
 * Roles, least privilege: the relaydb plugin (smtpd) reads the login and app-credential
 * columns it authenticates with and the site secret; relay-milter reads the users tables
 * without any secret column (of credentials: which login and label a name is) and writes
 * its state; relay-admin reads and writes the users tables.
 * The texts live with the schema (sql/rdb.c), so they cannot drift from it.
 *
 * Neither command takes a password: database names are URIs (put the password in a
 * ~/.pgpass / PGPASSFILE) or pg:FILE (a 0600 file with the conninfo string).
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "adm.h"
#include "copy_state.h"
#include "render.h"

/* The grants of one part: the users tables' and/or the state tables' (a part that needs
 * nothing of a kind, the plugin of the state, prints nothing for it). */
static int print_grants(const struct adm_ctx *ctx, enum rdb_role part, const char *role,
                        const char *what, const char *state_what, unsigned kinds)
{
	char *sql[2] = { NULL, NULL };
	int rc = ADM_EXIT_OK;

	sql[0] = (kinds & 1) ? rdb_pg_grants(part, role) : strdup("");
	sql[1] = (kinds & 2) ? rdb_pg_state_grants(part, role) : strdup("");
	if (sql[0] == NULL || sql[1] == NULL) {
		rc = adm_usage(ctx, "invalid role name for %s (1..63 bytes, no control "
		               "characters)", what);
	} else {
		if (sql[0][0] != '\0')
			fprintf(ctx->out, "-- %s: role %s\n%s", what, role, sql[0]);
		if (sql[1][0] != '\0')
			fprintf(ctx->out, "-- %s: role %s\n%s", state_what, role, sql[1]);
	}
	free(sql[0]);
	free(sql[1]);
	return rc;
}

int adm_cmd_grants(struct adm_ctx *ctx, int argc, char **argv)
{
	enum { O_PLUGIN = 1, O_MILTER, O_ADMIN, O_ONLY };
	static const struct option opts[] = {
		{ "plugin", required_argument, NULL, O_PLUGIN },
		{ "milter", required_argument, NULL, O_MILTER },
		{ "admin", required_argument, NULL, O_ADMIN },
		{ "only", required_argument, NULL, O_ONLY },
		{ NULL, 0, NULL, 0 },
	};
	const char *role[3] = { NULL, NULL, NULL };
	static const char *const what[3] = {
		"the relaydb plugin (smtpd): reads logins, app credentials and site_secret",
		"relay-milter: reads the users tables, no secrets",
		"relay-admin: reads and writes the users tables",
	};
	static const char *const state_what[3] = {
		"the relaydb plugin (smtpd): no state tables",
		"relay-milter: writes the state tables (usage, audit, counters, reservations ...)",
		"relay-admin: reads the state tables (usage, log, metrics, held), copy --state "
		"writes them",
	};
	unsigned kinds = 3;  /* 1: users tables, 2: state tables */
	int c, rc = ADM_EXIT_OK;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c >= O_PLUGIN && c <= O_ADMIN)
			role[c - O_PLUGIN] = optarg;
		else if (c == O_ONLY && strcmp(optarg, "users") == 0)
			kinds = 1;
		else if (c == O_ONLY && strcmp(optarg, "state") == 0)
			kinds = 2;
		else if (c == O_ONLY)
			return adm_usage(ctx, "--only takes users or state, not '%s'", optarg);
		else
			return adm_usage(ctx, "unknown or incomplete option: %s", argv[optind - 1]);
	}
	if (argc - optind != 0)
		return adm_usage(ctx, "grants takes no arguments");
	if (role[0] == NULL && role[1] == NULL && role[2] == NULL)
		return adm_usage(ctx, "name at least one role: --plugin ROLE, --milter ROLE, "
		                 "--admin ROLE");
	for (int i = 0; i < 3 && rc == ADM_EXIT_OK; i++)
		if (role[i] != NULL)
			rc = print_grants(ctx, (enum rdb_role)i, role[i], what[i], state_what[i],
			                  kinds);
	return rc;
}

static int open_side(const struct adm_ctx *ctx, const char *name, enum rdb_mode mode,
                     struct rdb **db, const char *side)
{
	char err[512];

	if (rdb_open(name, mode, db, err, sizeof err) != RDB_OK) {
		adm_err(ctx, "%s: %s", side, err);
		return ADM_EXIT_DB;
	}
	return ADM_EXIT_OK;
}

int adm_cmd_copy(struct adm_ctx *ctx, int argc, char **argv)
{
	enum { O_FROM = 1, O_TO, O_REPLACE, O_JSON, O_STATE };
	static const struct option opts[] = {
		{ "from", required_argument, NULL, O_FROM },
		{ "to", required_argument, NULL, O_TO },
		{ "replace", no_argument, NULL, O_REPLACE },
		{ "json", no_argument, NULL, O_JSON },
		{ "state", no_argument, NULL, O_STATE },
		{ NULL, 0, NULL, 0 },
	};
	const char *from_name = NULL, *to_name = NULL;
	char shown_from[512], shown_to[512];
	struct rdb *from = NULL, *to = NULL;
	struct rdb_copy_counts n;
	bool replace = false, state = false;
	struct adm_out o;
	enum rdb_result r;
	int c, rc, which = 0;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case O_FROM: from_name = optarg; break;
		case O_TO: to_name = optarg; break;
		case O_REPLACE: replace = true; break;
		case O_JSON: ctx->json = true; break;
		case O_STATE: state = true; break;
		default: return adm_usage(ctx, "unknown or incomplete option: %s", argv[optind - 1]);
		}
	}
	if (argc - optind != 0 || from_name == NULL || to_name == NULL ||
	    from_name[0] == '\0' || to_name[0] == '\0')
		return adm_usage(ctx, "copy needs --from DB and --to DB");
	rdb_name_display(from_name, shown_from, sizeof shown_from);
	rdb_name_display(to_name, shown_to, sizeof shown_to);
	if (strcmp(from_name, to_name) == 0)
		return adm_usage(ctx, "--from and --to name the same database");
	/* the state databases: their own part (admin/copy_state.c) */
	if (state)
		return replace ? adm_usage(ctx, "--replace does not apply to --state: the target "
		                           "state database must be empty")
		               : adm_copy_state_run(ctx, from_name, to_name, shown_from, shown_to);
	rc = open_side(ctx, from_name, RDB_READONLY, &from, "--from");
	if (rc == ADM_EXIT_OK)
		rc = open_side(ctx, to_name, RDB_READWRITE, &to, "--to");
	if (rc != ADM_EXIT_OK) {
		rdb_close(from);
		return rc;
	}
	r = rdb_copy_users(from, to, replace, &n, &which);
	if (r != RDB_OK) {
		adm_err(ctx, "copy %s -> %s failed, nothing changed: %s", shown_from, shown_to,
		        rdb_errmsg(which == 0 ? from : to));
		rc = adm_exit_for(r);
	} else {
		adm_out_begin(&o, ctx);
		adm_out_obj(&o, NULL);
		adm_out_str(&o, "from", shown_from, NULL);
		adm_out_str(&o, "to", shown_to, NULL);
		adm_out_bool(&o, "replaced", replace, NULL);
		adm_out_int(&o, "logins", n.logins, NULL);
		adm_out_int(&o, "senders", n.senders, NULL);
		adm_out_int(&o, "limits", n.limits, NULL);
		adm_out_int(&o, "credentials", n.credentials, NULL);
		adm_out_text(&o, "copied %s -> %s: %lld logins, %lld senders, %lld limits, %lld app "
		             "credentials and the site secret; the target's counts match the "
		             "source's\n", shown_from, shown_to, (long long)n.logins,
		             (long long)n.senders, (long long)n.limits, (long long)n.credentials);
		adm_out_finish(&o);
	}
	rdb_close(from);
	rdb_close(to);
	return rc;
}
