/*
 * cmd_init.c — `relay-admin init`: create the users database or migrate it to the current
 * schema, and, run as root, give it the ownership Postfix's smtpd needs to read it
 * (root:postfix, file 0640, folder 0750).
 *
 * It also creates the state database (sql/state.h; written by relay-milter, in WAL mode),
 * but only where the admin means it: when --state-db or $RELAY_STATE_DB names it, or when
 * neither --db nor $RELAY_DB was given (the installed layout). `--db T init` alone leaves
 * the machine's default state path alone, so tests and scratch databases stay hermetic.
 * As root with --milter-user USER, the state folder and file go to USER (WAL writes files
 * beside the database, so the milter must own its folder).
 *
 * Only a folder we create, or the folder of the default database, has its mode and owner
 * changed: `--db /tmp/x.db` must never chmod /tmp. A foreign or newer file is refused
 * untouched (rdb_init, rdb_state_init).
 */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <libgen.h>
#include <pwd.h>
#include <stdlib.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "adm.h"
#include "relay-config.h"
#include "state.h"

/* mkdir -p for the parent folders of path (mode 0750); *created tells whether the
 * immediate parent was made now. */
static int make_parents(const struct adm_ctx *ctx, const char *path, bool *created)
{
	char buf[PATH_MAX];
	size_t len = strlen(path);

	*created = false;
	if (len >= sizeof buf) {
		adm_err(ctx, "path too long: %s", path);
		return ADM_EXIT_USAGE;
	}
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1; *p; p++) {
		char *slash = strchr(p, '/');

		if (slash == NULL)
			break;
		*slash = '\0';
		if (mkdir(buf, 0750) == 0)
			*created = true;
		else if (errno == EEXIST)
			*created = false;
		else {
			adm_err(ctx, "cannot create folder %s: %s", buf, strerror(errno));
			return ADM_EXIT_IO;
		}
		*slash = '/';
		p = slash;
	}
	return ADM_EXIT_OK;
}

static int set_owner(const struct adm_ctx *ctx, const char *path, uid_t uid, gid_t gid,
                     mode_t mode)
{
	if (chown(path, uid, gid) != 0 || chmod(path, mode) != 0) {
		adm_err(ctx, "cannot set owner and mode of %s: %s", path, strerror(errno));
		return ADM_EXIT_IO;
	}
	return ADM_EXIT_OK;
}

static bool same_folder(const char *a, const char *b)
{
	char x[PATH_MAX], y[PATH_MAX];

	if (strlen(a) >= sizeof x || strlen(b) >= sizeof y)
		return false;
	strcpy(x, a);
	strcpy(y, b);
	return strcmp(dirname(x), dirname(y)) == 0;
}

/* As root: root:postfix 0640 for the file, 0750 for its folder (see the header). */
static int fix_ownership(const struct adm_ctx *ctx, bool dir_created, bool *done)
{
	char dir[PATH_MAX];
	struct group *gr;
	int rc;

	*done = false;
	if (geteuid() != 0)
		return ADM_EXIT_OK;
	gr = getgrnam("postfix");
	if (gr == NULL) {
		adm_err(ctx, "warning: group postfix not found; %s keeps its owner "
		        "(install Postfix, then run init again)", ctx->db_path);
		return ADM_EXIT_OK;
	}
	rc = set_owner(ctx, ctx->db_path, 0, gr->gr_gid, 0640);
	if (rc != ADM_EXIT_OK)
		return rc;
	if (dir_created || same_folder(ctx->db_path, RELAY_DEFAULT_DB)) {
		if (strlen(ctx->db_path) >= sizeof dir)
			return ADM_EXIT_USAGE;
		strcpy(dir, ctx->db_path);
		rc = set_owner(ctx, dirname(dir), 0, gr->gr_gid, 0750);
		if (rc != ADM_EXIT_OK)
			return rc;
	}
	*done = true;
	return ADM_EXIT_OK;
}

/* The state database: folder, file, and (root, --milter-user) its owner. *action says
 * what happened: "created", "checked" or "skipped". */
static int init_state(const struct adm_ctx *ctx, const char *milter_user, const char **action)
{
	char err[512], dir[PATH_MAX];
	bool dir_created = false, existed;
	struct passwd *pw = NULL;
	int rc;

	*action = "skipped";
	if (milter_user != NULL) {
		pw = getpwnam(milter_user);
		if (pw == NULL)
			return adm_usage(ctx, "--milter-user: no such user: %s", milter_user);
		if (geteuid() != 0)
			return adm_usage(ctx, "--milter-user needs root");
	}
	if (strlen(ctx->state_db_path) >= sizeof dir)
		return adm_usage(ctx, "state database path too long");
	rc = make_parents(ctx, ctx->state_db_path, &dir_created);
	if (rc != ADM_EXIT_OK)
		return rc;
	existed = access(ctx->state_db_path, F_OK) == 0;
	if (rdb_state_init(ctx->state_db_path, err, sizeof err) != RDB_OK) {
		adm_err(ctx, "%s", err);
		return ADM_EXIT_DB;
	}
	*action = existed ? "checked" : "created";
	if (pw == NULL)
		return ADM_EXIT_OK;
	rc = set_owner(ctx, ctx->state_db_path, pw->pw_uid, pw->pw_gid, 0640);
	if (rc == ADM_EXIT_OK && (dir_created || same_folder(ctx->state_db_path, RELAY_DEFAULT_STATE_DB))) {
		strcpy(dir, ctx->state_db_path);
		rc = set_owner(ctx, dirname(dir), pw->pw_uid, pw->pw_gid, 0750);
	}
	return rc;
}

int adm_cmd_init(struct adm_ctx *ctx, int argc, char **argv)
{
	enum { O_MILTER_USER = 1 };
	static const struct option opts[] = {
		{ "milter-user", required_argument, NULL, O_MILTER_USER },
		{ NULL, 0, NULL, 0 },
	};
	char err[512];
	bool dir_created = false, owned = false, want_state;
	int before = 0, after = 0, rc, c;
	const char *action, *state_action = "skipped", *milter_user = NULL;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == O_MILTER_USER)
			milter_user = optarg;
		else
			return adm_usage(ctx, "unknown or incomplete option: %s", argv[optind - 1]);
	}
	if (argc - optind != 0)
		return adm_usage(ctx, "init takes no arguments");
	want_state = ctx->state_db_explicit || !ctx->db_explicit;
	if (milter_user != NULL && !want_state)
		return adm_usage(ctx, "--milter-user applies to the state database: give --state-db too");
	rc = make_parents(ctx, ctx->db_path, &dir_created);
	if (rc != ADM_EXIT_OK)
		return rc;
	if (rdb_init_versions(ctx->db_path, &before, &after, err, sizeof err) != RDB_OK) {
		adm_err(ctx, "%s", err);
		return ADM_EXIT_DB;
	}
	rc = fix_ownership(ctx, dir_created, &owned);
	if (rc != ADM_EXIT_OK)
		return rc;
	if (want_state) {
		rc = init_state(ctx, milter_user, &state_action);
		if (rc != ADM_EXIT_OK)
			return rc;
	}
	action = before == 0 ? "created" : before < after ? "migrated" : "unchanged";
	if (ctx->json) {
		struct adm_json j;

		adm_json_init(&j, ctx->out);
		adm_json_obj(&j);
		adm_json_key(&j, "db");
		adm_json_str(&j, ctx->db_path);
		adm_json_key(&j, "action");
		adm_json_str(&j, action);
		adm_json_key(&j, "from_version");
		adm_json_int(&j, before);
		adm_json_key(&j, "schema_version");
		adm_json_int(&j, after);
		adm_json_key(&j, "owner_set");
		adm_json_bool(&j, owned);
		adm_json_key(&j, "state_db");
		adm_json_str(&j, ctx->state_db_path);
		adm_json_key(&j, "state_action");
		adm_json_str(&j, state_action);
		adm_json_finish(&j);
		return ADM_EXIT_OK;
	} else if (before == 0) {
		fprintf(ctx->out, "%s: created (schema version %d)%s\n", ctx->db_path, after,
		        owned ? ", owner root:postfix, mode 0640" : "");
	} else if (before < after) {
		fprintf(ctx->out, "%s: migrated from schema version %d to %d\n", ctx->db_path,
		        before, after);
	} else {
		fprintf(ctx->out, "%s: up to date (schema version %d)\n", ctx->db_path, after);
	}
	if (want_state)
		fprintf(ctx->out, "%s: state database %s\n", ctx->state_db_path, state_action);
	else
		fprintf(ctx->out, "state database not touched (only --db was given; add --state-db "
		        "PATH to create one)\n");
	return ADM_EXIT_OK;
}
