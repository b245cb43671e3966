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
 *
 * The state folder belongs to the milter's user, who could swap state.db for a symbolic
 * link between any check and a chown by path and so take any file of root's. So folders are
 * walked and every owner/mode change made through descriptors (sql/safefs.h): a link, a
 * FIFO, a hard link or a file of a third user is refused with the reason, and nothing of
 * it changes.
 */
#include <errno.h>
#include <fcntl.h>
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
#include "render.h"
#include "relay-config.h"
#include "safefs.h"
#include "state.h"

/* mkdir -p for the parent folders of path (mode 0750), walked with openat (safefs.h).
 * Returns the descriptor of the immediate parent, its last component in name, and whether
 * that folder was made now in *created; -1 after saying why. */
static int make_parents(const struct adm_ctx *ctx, const char *path, char *name,
                        size_t namelen, bool *created)
{
	char err[PATH_MAX + 256];
	int fd = sfs_open_parent(path, 0750, created, name, namelen, err, sizeof err);

	if (fd < 0)
		adm_err(ctx, "%s", err);
	return fd;
}

/* Owner and mode of `name` in dirfd, through a descriptor: the folder may belong to the
 * milter's user, who could swap the name for a link to any file between our check and a
 * chown by path. missing_ok for the files SQLite may leave beside the database. */
static int set_owner(const struct adm_ctx *ctx, int dirfd, const char *name, const char *shown,
                     uid_t uid, gid_t gid, mode_t mode, bool missing_ok)
{
	char err[PATH_MAX + 256];

	if (sfs_set_owner_at(dirfd, name, shown, uid, gid, mode, missing_ok, err, sizeof err) < 0) {
		adm_err(ctx, "cannot set owner and mode: %s", err);
		return ADM_EXIT_IO;
	}
	return ADM_EXIT_OK;
}

static int set_dir_owner(const struct adm_ctx *ctx, int dirfd, const char *path, uid_t uid,
                         gid_t gid, mode_t mode)
{
	char err[PATH_MAX + 256], dir[PATH_MAX];

	snprintf(dir, sizeof dir, "%s", path);
	if (sfs_set_dir_owner(dirfd, dirname(dir), uid, gid, mode, err, sizeof err) < 0) {
		adm_err(ctx, "cannot set owner and mode: %s", err);
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

/* As root: root:postfix 0640 for the file, 0750 for its folder (see the header). dirfd is
 * the folder make_parents walked to, name the file in it. */
static int fix_ownership(const struct adm_ctx *ctx, int dirfd, const char *name,
                         bool dir_created, bool *done)
{
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
	rc = set_owner(ctx, dirfd, name, ctx->db_path, 0, gr->gr_gid, 0640, false);
	if (rc != ADM_EXIT_OK)
		return rc;
	if (dir_created || same_folder(ctx->db_path, RELAY_DEFAULT_DB)) {
		rc = set_dir_owner(ctx, dirfd, ctx->db_path, 0, gr->gr_gid, 0750);
		if (rc != ADM_EXIT_OK)
			return rc;
	}
	*done = true;
	return ADM_EXIT_OK;
}

/* The files SQLite keeps beside a database while it is open (WAL) or in a transaction,
 * and relay-milter's crash journal (milter/journal.c): if the milter has run, they exist
 * and must be the milter's too, or it refuses to start. */
static const char *const state_sidecars[] = { "-wal", "-shm", "-journal", ".journal-0",
	                                      ".journal-1" };

/* Gives the state database, the files beside it and (if we made it, or it is the default
 * one) its folder to the milter's user. The folder is the milter's: every change goes
 * through a descriptor (see set_owner). */
static int give_state(const struct adm_ctx *ctx, int dirfd, const char *name,
                      const struct passwd *pw, bool dir_created)
{
	char side[NAME_MAX + 1], shown[PATH_MAX + 16];
	int rc = set_owner(ctx, dirfd, name, ctx->state_db_path, pw->pw_uid, pw->pw_gid, 0640,
	                   false);

	for (size_t i = 0; rc == ADM_EXIT_OK && i < sizeof state_sidecars / sizeof *state_sidecars;
	     i++) {
		if (snprintf(side, sizeof side, "%s%s", name, state_sidecars[i]) >= (int)sizeof side)
			continue;  /* a name that long cannot exist either */
		snprintf(shown, sizeof shown, "%s%s", ctx->state_db_path, state_sidecars[i]);
		rc = set_owner(ctx, dirfd, side, shown, pw->pw_uid, pw->pw_gid, 0640, true);
	}
	if (rc == ADM_EXIT_OK &&
	    (dir_created || same_folder(ctx->state_db_path, RELAY_DEFAULT_STATE_DB)))
		rc = set_dir_owner(ctx, dirfd, ctx->state_db_path, pw->pw_uid, pw->pw_gid, 0750);
	return rc;
}

/* The state database: folder, file, and (root, --milter-user) its owner. *action says
 * what happened: "created", "checked" or "skipped". */
/* A shared state database on PostgreSQL: no file or folder to make or give away (the
 * database's roles decide: relay-admin grants); the schema is created or checked. */
static int init_state_pg(const struct adm_ctx *ctx, const char *milter_user,
                         const char **action)
{
	char err[512];
	int64_t version;
	enum rdb_result had;

	if (milter_user != NULL)
		return adm_usage(ctx, "--milter-user applies to a state database file; on PostgreSQL"
		                 " grant the milter's role its rights instead");
	had = rdb_state_probe(ctx->state_db_path, &version, err, sizeof err);
	if (had == RDB_ERROR || had == RDB_INVALID ||
	    rdb_state_init(ctx->state_db_path, err, sizeof err) != RDB_OK) {
		adm_err(ctx, "%s", err);
		return ADM_EXIT_DB;
	}
	*action = had == RDB_OK ? "checked" : "created";
	return ADM_EXIT_OK;
}

static int init_state(const struct adm_ctx *ctx, const char *milter_user, const char **action)
{
	char err[512], name[NAME_MAX + 1];
	bool dir_created = false, existed;
	struct passwd *pw = NULL;
	struct stat st;
	int rc, dirfd;

	*action = "skipped";
	if (rdb_is_postgresql(ctx->state_db_path))
		return init_state_pg(ctx, milter_user, action);
	if (milter_user != NULL) {
		pw = getpwnam(milter_user);
		if (pw == NULL)
			return adm_usage(ctx, "--milter-user: no such user: %s", milter_user);
		if (geteuid() != 0)
			return adm_usage(ctx, "--milter-user needs root");
	}
	if (strlen(ctx->state_db_path) >= PATH_MAX)
		return adm_usage(ctx, "state database path too long");
	dirfd = make_parents(ctx, ctx->state_db_path, name, sizeof name, &dir_created);
	if (dirfd < 0)
		return ADM_EXIT_IO;
	existed = fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
	if (rdb_state_init(ctx->state_db_path, err, sizeof err) != RDB_OK) {
		adm_err(ctx, "%s", err);
		close(dirfd);
		return ADM_EXIT_DB;
	}
	*action = existed ? "checked" : "created";
	rc = pw == NULL ? ADM_EXIT_OK : give_state(ctx, dirfd, name, pw, dir_created);
	close(dirfd);
	return rc;
}

/* The result: which database was created, migrated or left, and the state database's fate
 * ("skipped" unless want_state). */
static void report(const struct adm_ctx *ctx, const char *action, int before, int after,
                   bool owned, const char *state_action, bool want_state)
{
	struct adm_out o;

	adm_out_begin(&o, ctx);
	adm_out_obj(&o, NULL);
	adm_out_str(&o, "db", ctx->db_path, NULL);
	adm_out_str(&o, "action", action, NULL);
	adm_out_int(&o, "from_version", before, NULL);
	adm_out_int(&o, "schema_version", after, NULL);
	adm_out_bool(&o, "owner_set", owned, NULL);
	adm_out_str(&o, "state_db", ctx->state_db_path, NULL);
	adm_out_str(&o, "state_action", state_action, NULL);
	if (before == 0)
		adm_out_text(&o, "%s: created (schema version %d)%s\n", ctx->db_path, after,
		             owned ? ", owner root:postfix, mode 0640" : "");
	else if (before < after)
		adm_out_text(&o, "%s: migrated from schema version %d to %d\n", ctx->db_path,
		             before, after);
	else
		adm_out_text(&o, "%s: up to date (schema version %d)\n", ctx->db_path, after);
	if (want_state)
		adm_out_text(&o, "%s: state database %s\n", ctx->state_db_path, state_action);
	else
		adm_out_text(&o, "state database not touched (only --db was given; add --state-db "
		             "PATH to create one)\n");
	adm_out_finish(&o);
}

/* A users database on PostgreSQL: no file, folder or owner to look after; the schema,
 * and which role needs which grants (relay-admin grants prints the SQL). */
static int init_pg(struct adm_ctx *ctx, bool want_state, const char *milter_user)
{
	char err[512], shown[512];
	int before = 0, after = 0, rc;
	const char *state_action = "skipped";
	struct adm_out o;

	if (rdb_init_versions(ctx->db_path, &before, &after, err, sizeof err) != RDB_OK) {
		adm_err(ctx, "%s", err);
		return ADM_EXIT_DB;
	}
	if (want_state) {
		rc = init_state(ctx, milter_user, &state_action);
		if (rc != ADM_EXIT_OK)
			return rc;
	}
	rdb_name_display(ctx->db_path, shown, sizeof shown);
	adm_out_begin(&o, ctx);
	adm_out_obj(&o, NULL);
	adm_out_str(&o, "db", shown, NULL);
	adm_out_str(&o, "engine", "postgresql", NULL);
	adm_out_str(&o, "action", before == 0 ? "created" : before < after ? "migrated"
	                                                   : "unchanged", NULL);
	adm_out_int(&o, "from_version", before, NULL);
	adm_out_int(&o, "schema_version", after, NULL);
	adm_out_str(&o, "state_action", state_action, NULL);
	if (before == 0)
		adm_out_text(&o, "%s: users schema created (version %d)\n", shown, after);
	else if (before < after)
		adm_out_text(&o, "%s: migrated from schema version %d to %d\n", shown, before, after);
	else
		adm_out_text(&o, "%s: up to date (schema version %d)\n", shown, after);
	if (want_state)
		adm_out_text(&o, "%s: state database %s\n", ctx->state_db_path, state_action);
	adm_out_text(&o, "The tables belong to the role that ran this. Each part connects with "
	             "its own role:\n"
	             "  relaydb plugin (smtpd): SELECT on relay_schema, site_secret and the login "
	             "columns it authenticates with\n"
	             "  relay-milter:          SELECT on the users tables (no secret column); "
	             "writes its state database\n"
	             "  relay-admin:           SELECT, INSERT, UPDATE, DELETE on the users "
	             "tables\n"
	             "Print the GRANT statements with: relay-admin grants --plugin ROLE "
	             "--milter ROLE --admin ROLE\n");
	adm_out_finish(&o);
	return ADM_EXIT_OK;
}

int adm_cmd_init(struct adm_ctx *ctx, int argc, char **argv)
{
	enum { O_MILTER_USER = 1 };
	static const struct option opts[] = {
		{ "milter-user", required_argument, NULL, O_MILTER_USER },
		{ NULL, 0, NULL, 0 },
	};
	char err[512], name[NAME_MAX + 1];
	bool dir_created = false, owned = false, want_state;
	int before = 0, after = 0, rc, c, dirfd;
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
	if (rdb_is_postgresql(ctx->db_path))
		return init_pg(ctx, want_state, milter_user);
	if (strlen(ctx->db_path) >= PATH_MAX)
		return adm_usage(ctx, "path too long: %s", ctx->db_path);
	dirfd = make_parents(ctx, ctx->db_path, name, sizeof name, &dir_created);
	if (dirfd < 0)
		return ADM_EXIT_IO;
	if (rdb_init_versions(ctx->db_path, &before, &after, err, sizeof err) != RDB_OK) {
		adm_err(ctx, "%s", err);
		close(dirfd);
		return ADM_EXIT_DB;
	}
	rc = fix_ownership(ctx, dirfd, name, dir_created, &owned);
	close(dirfd);
	if (rc != ADM_EXIT_OK)
		return rc;
	if (want_state) {
		rc = init_state(ctx, milter_user, &state_action);
		if (rc != ADM_EXIT_OK)
			return rc;
	}
	action = before == 0 ? "created" : before < after ? "migrated" : "unchanged";
	report(ctx, action, before, after, owned, state_action, want_state);
	return ADM_EXIT_OK;
}
