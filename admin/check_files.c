/*
 * check_files.c — `relay-admin check`: the files. The users database (schema, owner,
 * mode, folder), logins with more limits than relay-milter reads, the state database
 * and its folder, the relaydb SASL plugin, and smtpd.conf.
 * See check.h.
 */
#include "check.h"
#include "cert.h"
#include "policy.h"
#include "postconf.h"
#include "state.h"

#include "relay-config.h"

#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static const char *owner_name(uid_t uid, char *buf, size_t len)
{
	struct passwd *pw = getpwuid(uid);

	if (pw)
		snprintf(buf, len, "%s", pw->pw_name);
	else
		snprintf(buf, len, "%u", (unsigned)uid);
	return buf;
}

static const char *group_name(gid_t gid, char *buf, size_t len)
{
	struct group *gr = getgrgid(gid);

	if (gr)
		snprintf(buf, len, "%s", gr->gr_name);
	else
		snprintf(buf, len, "%u", (unsigned)gid);
	return buf;
}

/* Judges owner root, group postfix and an exact mode; a mode giving "other" any access
 * (or group write) is a failure, any other difference a warning. Leaves an OK check alone
 * when the file is right; never lowers a FAIL. */
static void judge_perms(struct check *c, struct adm_check *ck, const char *path,
                        mode_t want)
{
	struct stat st;
	char u[64], g[64];

	if (stat(path, &st) != 0) {
		adm_check_set(ck, ADM_CHECK_FAIL, "%s: %s", path, strerror(errno));
		return;
	}
	mode_t mode = st.st_mode & 07777;

	adm_check_line(ck, "%s: %s:%s %04o", path, owner_name(st.st_uid, u, sizeof(u)),
	               group_name(st.st_gid, g, sizeof(g)), (unsigned)mode);
	if (adm_check_status(ck) == ADM_CHECK_FAIL)
		return;
	if ((mode & 0007) || (mode & 0020)) {
		adm_check_set(ck, ADM_CHECK_FAIL, "%s is %04o: %s", path, (unsigned)mode,
		              (mode & 0007) ? "others can get at it" : "its group can write it");
	} else if (st.st_uid != 0 || (c->have_postfix && st.st_gid != c->postfix_gid)) {
		adm_check_set(ck, ADM_CHECK_FAIL, "%s belongs to %s:%s, not root:postfix", path, u, g);
	} else if (mode != want) {
		adm_check_set(ck, ADM_CHECK_WARN, "%s is %04o, expected %04o", path, (unsigned)mode,
		              (unsigned)want);
	} else {
		return;   /* this one is right; the caller started the check at OK */
	}
	adm_check_fix(ck, "chown root:postfix %s && chmod %04o %s", path, (unsigned)want, path);
}

static void parent_dir(const char *path, char *out, size_t len)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		snprintf(out, len, ".");
	else if (slash == path)
		snprintf(out, len, "/");
	else
		snprintf(out, len, "%.*s", (int)(slash - path), path);
}

void chk_users_db(struct check *c)
{
	struct adm_check *ck = adm_checklist_add(c->cl, "users-db", "users database");
	struct adm_check *perm = adm_checklist_add(c->cl, "users-db-permissions",
	                                           "users database permissions");
	const char *path = c->ctx->db_path;
	struct rdb *db = NULL;
	char err[512], dir[PATH_MAX], shown[PATH_MAX];

	rdb_name_display(path, shown, sizeof shown);  /* a URI without its password */
	if (rdb_open(path, RDB_READONLY, &db, err, sizeof(err)) != RDB_OK) {
		adm_check_set(ck, ADM_CHECK_FAIL, "%s", err);
		adm_check_fix(ck, "create or migrate it: relay-admin --db %s init", shown);
	} else {
		adm_check_set(ck, ADM_CHECK_OK, "%s opens with schema version %d", shown,
		              RDB_SCHEMA_VERSION);
	}
	rdb_close(db);
	if (rdb_is_postgresql(path)) {
		adm_check_set(perm, ADM_CHECK_SKIP, "on PostgreSQL: each part's role and its "
		              "grants decide (relay-admin grants)");
		return;
	}
	if (access(path, F_OK) != 0) {
		adm_check_set(perm, ADM_CHECK_SKIP, "no database file");
		return;
	}
	parent_dir(path, dir, sizeof(dir));
	adm_check_set(perm, ADM_CHECK_OK, "root:postfix, modes as expected");
	judge_perms(c, perm, path, 0640);
	judge_perms(c, perm, dir, 0750);
}

#define OVER_SHOWN 10   /* logins named in the report; the count covers all */

struct over {
	struct adm_check *ck;
	unsigned n;          /* entries, the defaults included */
	bool defaults;
};

static int note_over(const char *name, int64_t n, void *arg)
{
	struct over *o = arg;

	o->defaults |= name == NULL;
	if (o->n++ < OVER_SHOWN)
		adm_check_line(o->ck, "%s%s: %lld limits in effect", name ? "" : "the defaults",
		               name ? name : "", (long long)n);
	return 0;
}

/* relay-admin refuses to write more than RDB_LIMITS_MAX limits for a login; a database
 * written around it (sqlite3, an old relay-admin) may still have more, and then the milter
 * tempfails every message of those logins (or of all logins, for the defaults). */
void chk_limits(struct check *c)
{
	struct adm_check *ck = adm_checklist_add(c->cl, "users-db-limits",
	                                         "rate limits readable by relay-milter");
	struct over o = { .ck = ck, .n = 0, .defaults = false };
	struct rdb *db = NULL;
	struct rdb_policy *pol = NULL;
	enum rdb_result r;
	char err[512];

	if (rdb_open(c->ctx->db_path, RDB_READONLY, &db, err, sizeof(err)) != RDB_OK) {
		adm_check_set(ck, ADM_CHECK_SKIP, "the users database does not open");
		return;
	}
	if (rdb_policy_new(db, &pol) != RDB_OK) {
		adm_check_set(ck, ADM_CHECK_FAIL, "cannot prepare the limit queries: %s",
		              rdb_errmsg(db));
	} else if ((r = rdb_limits_over(pol, note_over, &o)) != RDB_OK) {
		adm_check_set(ck, ADM_CHECK_FAIL, "cannot count the limits: %s",
		              rdb_policy_errmsg(pol));
	} else if (o.n > 0) {
		if (o.n > OVER_SHOWN)
			adm_check_line(ck, "... and %u more", o.n - OVER_SHOWN);
		unsigned logins = o.n - o.defaults;

		if (logins == 0)
			adm_check_set(ck, ADM_CHECK_FAIL, "the defaults have more than %d limits: "
			              "relay-milter tempfails (451 4.3.0) the mail of every login that "
			              "inherits them", RDB_LIMITS_MAX);
		else
			adm_check_set(ck, ADM_CHECK_FAIL, "%s%u login%s with more than %d limits in "
			              "effect: relay-milter tempfails all their mail (451 4.3.0)",
			              o.defaults ? "the defaults alone are too many; " : "", logins,
			              logins == 1 ? "" : "s", RDB_LIMITS_MAX);
		adm_check_fix(ck, "give each fewer windows: relay-admin limit set NAME|--default "
		              "--messages N/PERIOD ... (replaces that metric's rows), or relay-admin "
		              "limit clear NAME|--default");
	} else {
		adm_check_set(ck, ADM_CHECK_OK, "every login has at most %d limits in effect",
		              RDB_LIMITS_MAX);
	}
	rdb_policy_free(pol);
	rdb_close(db);
}

/* A shared state database on PostgreSQL: no file or folder to judge, only the schema. */
static void chk_state_db_pg(struct adm_check *ck, const char *name)
{
	char err[512];
	int64_t version = 0;

	switch (rdb_state_probe(name, &version, err, sizeof err)) {
	case RDB_OK:
		adm_check_set(ck, ADM_CHECK_OK, "PostgreSQL: schema version %lld", (long long)version);
		return;
	case RDB_NOTFOUND:
		adm_check_set(ck, ADM_CHECK_WARN, "%s", err);
		adm_check_fix(ck, "relay-admin --state-db URI init, or start relay-milter");
		return;
	default:
		adm_check_set(ck, ADM_CHECK_FAIL, "%s", err);
		return;
	}
}

void chk_state_db(struct check *c, bool milter)
{
	struct adm_check *ck = adm_checklist_add(c->cl, "state-db", "state database (milter)");
	const char *path = c->ctx->state_db_path;
	struct stat st, dst;
	char dir[PATH_MAX], u[64], du[64];
	char err[512];
	int64_t version = 0;

	if (rdb_is_postgresql(path)) {
		chk_state_db_pg(ck, path);
		return;
	}
	if (stat(path, &st) != 0) {
		if (milter) {
			adm_check_set(ck, ADM_CHECK_WARN, "%s: %s", path, strerror(errno));
			adm_check_fix(ck, "relay-milter creates it on start: is it running? "
			              "(systemctl status relay-milter)");
		} else {
			adm_check_set(ck, ADM_CHECK_SKIP, "%s does not exist and no milter is "
			              "registered", path);
		}
		return;
	}
	parent_dir(path, dir, sizeof(dir));
	if (stat(dir, &dst) != 0) {
		adm_check_set(ck, ADM_CHECK_FAIL, "%s: %s", dir, strerror(errno));
		return;
	}
	adm_check_line(ck, "%s: owner %s, %04o", path, owner_name(st.st_uid, u, sizeof(u)),
	               (unsigned)(st.st_mode & 07777));
	adm_check_line(ck, "%s: owner %s, %04o", dir, owner_name(dst.st_uid, du, sizeof(du)),
	               (unsigned)(dst.st_mode & 07777));
	switch (rdb_state_probe(path, &version, err, sizeof err)) {
	case RDB_OK:
		break;
	case RDB_NOTFOUND:
		version = 0;
		break;
	case RDB_INVALID:  /* a users database, or any other SQLite file */
		adm_check_set(ck, ADM_CHECK_FAIL, "%s", err);
		adm_check_fix(ck, "state_db in milter.conf and --state-db must name the state "
		              "database: move this file away and let relay-milter create it");
		return;
	default:
		adm_check_set(ck, ADM_CHECK_FAIL, "cannot be read as a state database: %s", err);
		return;
	}

	if (version <= 0) {
		adm_check_set(ck, ADM_CHECK_FAIL, "%s has no schema (user_version 0)", path);
		adm_check_fix(ck, "let relay-milter create it: move the file away and restart it");
	} else if ((st.st_mode & 0002) || (dst.st_mode & 0002)) {
		adm_check_set(ck, ADM_CHECK_FAIL, "the state database or its folder is "
		              "world-writable");
		adm_check_fix(ck, "chmod o-w %s %s", path, dir);
	} else if (st.st_uid != dst.st_uid) {
		/* WAL creates -wal/-shm files beside the database: the writer must own the folder */
		adm_check_set(ck, ADM_CHECK_WARN, "the folder %s belongs to %s, the database to %s: "
		              "WAL needs the milter's user to own both", dir, du, u);
		adm_check_fix(ck, "chown %s %s", u, dir);
	} else {
		adm_check_set(ck, ADM_CHECK_OK, "%s: schema version %lld, owner %s", path,
		              (long long)version, u);
	}
}

/* SASL_PATH=a:b from import_environment, else libsasl2's own folder. */
void chk_plugin(struct check *c)
{
	struct adm_check *ck = adm_checklist_add(c->cl, "sasl-plugin",
	                                         "relaydb plugin installed");
	char err[256], dirs[PATH_MAX * 2] = RELAY_SASL_PLUGINDIR;
	char *env = chk_pf_main(c, "import_environment", err, sizeof(err)), *save = NULL;

	if (env) {
		for (char *w = strtok_r(env, " \t,", &save); w; w = strtok_r(NULL, " \t,", &save))
			if (strncmp(w, "SASL_PATH=", 10) == 0)
				snprintf(dirs, sizeof(dirs), "%s", w + 10);
		free(env);
	}
	adm_check_line(ck, "plugin folders: %s", dirs);
	save = NULL;
	for (char *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		char path[PATH_MAX + 32];
		struct stat st;

		snprintf(path, sizeof(path), "%s/librelaydb.so", d);
		if (stat(path, &st) != 0)
			continue;
		if ((st.st_mode & 0022) || st.st_uid != 0) {
			adm_check_set(ck, ADM_CHECK_FAIL, "%s can be replaced by someone other than root "
			              "(%04o, uid %u): it runs inside smtpd", path,
			              (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid);
			adm_check_fix(ck, "chown root:root %s && chmod 0644 %s", path, path);
		} else {
			adm_check_set(ck, ADM_CHECK_OK, "%s", path);
		}
		return;
	}
	adm_check_set(ck, ADM_CHECK_FAIL, "librelaydb.so is in none of the plugin folders");
	adm_check_fix(ck, "install it (meson install), or point Postfix at its folder with "
	              "relay-admin setup --sasl-plugin-dir DIR");
}

/* smtpd.conf holds the absolute path setup wrote; --db may name the same file relatively
 * or through a symlink, which is not a mismatch. */
static bool same_file_path(const char *a, const char *b)
{
	char ra[PATH_MAX], rb[PATH_MAX];

	if (strcmp(a, b) == 0)
		return true;
	return realpath(a, ra) && realpath(b, rb) && strcmp(ra, rb) == 0;
}

/* What smtpd.conf says, as libsasl2 reads it ("key: value" lines, # comments). */
struct sasl_conf {
	bool auxprop, relaydb, mechs, empty;
	char dbpath[PATH_MAX];
};

static void read_sasl_conf(FILE *f, struct adm_check *ck, struct sasl_conf *sc)
{
	char line[1024];

	while (fgets(line, sizeof(line), f)) {
		char *k = line, *v, *e;

		while (*k == ' ' || *k == '\t')
			k++;
		if (*k == '#' || *k == '\n' || *k == '\0')
			continue;
		v = strchr(k, ':');
		if (!v)
			continue;
		*v++ = '\0';
		while (*v == ' ' || *v == '\t')
			v++;
		e = v + strlen(v);
		while (e > v && (e[-1] == '\n' || e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
			*--e = '\0';
		if (*v == '\0') {
			sc->empty = true;   /* libsasl2 fails init on an empty value: AUTH dies */
			adm_check_line(ck, "empty value for %s", k);
		}
		if (strcmp(k, "pwcheck_method") == 0)
			sc->auxprop = strcmp(v, "auxprop") == 0;
		else if (strcmp(k, "auxprop_plugin") == 0)
			sc->relaydb = strcmp(v, "relaydb") == 0;
		else if (strcmp(k, "relaydb_path") == 0)
			snprintf(sc->dbpath, sizeof(sc->dbpath), "%s", v);
		else if (strcmp(k, "mech_list") == 0) {
			char low[1024];
			size_t i;

			for (i = 0; v[i] && i + 1 < sizeof(low); i++)
				low[i] = (char)((v[i] >= 'A' && v[i] <= 'Z') ? v[i] + 32 : v[i]);
			low[i] = '\0';
			sc->mechs = strstr(low, "plain") != NULL || strstr(low, "login") != NULL;
		}
	}
}

void chk_smtpd_conf(struct check *c)
{
	struct adm_check *ck = adm_checklist_add(c->cl, "smtpd-conf",
	                                         "SASL configuration for relaydb");
	char err[256], path[PATH_MAX + 64], shown_conf[PATH_MAX], shown_db[PATH_MAX];
	char *cfg = chk_pf_main(c, "cyrus_sasl_config_path", err, sizeof(err));
	char *app = chk_pf_main(c, "smtpd_sasl_path", err, sizeof(err));
	struct sasl_conf sc = { .auxprop = false };
	const char *dbpath = sc.dbpath;
	bool path_ok;
	FILE *f;

	/* Debian's smtpd reads <config_directory>/sasl/<smtpd_sasl_path>.conf; other builds
	 * honour cyrus_sasl_config_path. setup makes both the same folder. */
	if (cfg && cfg[0])
		snprintf(path, sizeof(path), "%s/%s.conf", cfg, app && app[0] ? app : "smtpd");
	else
		snprintf(path, sizeof(path), "%s/sasl/%s.conf", c->dir, app && app[0] ? app : "smtpd");
	free(cfg);
	free(app);
	f = fopen(path, "re");
	if (!f) {
		adm_check_set(ck, ADM_CHECK_FAIL, "%s: %s", path, strerror(errno));
		adm_check_fix(ck, "relay-admin setup --postfix-config %s writes it", c->dir);
		return;
	}
	read_sasl_conf(f, ck, &sc);
	fclose(f);
	/* On PostgreSQL the plugin connects with its own role (another URI or pg: file) to
	 * the same database: two PostgreSQL names are not compared. */
	path_ok = dbpath[0] && (same_file_path(dbpath, c->ctx->db_path) ||
	                        (rdb_is_postgresql(dbpath) && rdb_is_postgresql(c->ctx->db_path)));
	rdb_name_display(dbpath, shown_conf, sizeof shown_conf);
	rdb_name_display(c->ctx->db_path, shown_db, sizeof shown_db);
	adm_check_line(ck, "%s: relaydb_path %s", path, dbpath[0] ? shown_conf : "(not set)");
	if (sc.empty) {
		adm_check_set(ck, ADM_CHECK_FAIL, "%s has an empty value: libsasl2 refuses to start "
		              "and every AUTH fails", path);
	} else if (!sc.auxprop || !sc.relaydb) {
		adm_check_set(ck, ADM_CHECK_FAIL, "%s does not use pwcheck_method: auxprop with "
		              "auxprop_plugin: relaydb", path);
	} else if (!path_ok) {
		adm_check_set(ck, ADM_CHECK_FAIL, "relaydb_path is %s, but this check uses the users "
		              "database %s", dbpath[0] ? shown_conf : "not set", shown_db);
	} else if (!sc.mechs) {
		adm_check_set(ck, ADM_CHECK_WARN, "mech_list has neither PLAIN nor LOGIN: most "
		              "clients cannot log in");
	} else {
		adm_check_set(ck, ADM_CHECK_OK, "%s: auxprop relaydb on %s", path, dbpath);
	}
	if (adm_check_status(ck) != ADM_CHECK_OK)
		adm_check_fix(ck, "rerun relay-admin --db %s setup --postfix-config %s, or use "
		              "relay-admin --db PATH check with the database Postfix uses",
		              c->ctx->db_path, c->dir);
}
