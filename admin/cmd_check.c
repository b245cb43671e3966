/*
 * cmd_check.c — `relay-admin check`: static health of an installed relay, without sending a
 * byte of SMTP. Each finding is OK, WARN or FAIL with a fix hint; the exit status is the
 * number of failures (capped at 100).
 *
 * What it looks at, and what it expects — exactly what `relay-admin setup` leaves (read
 * with `postconf -c DIR -x` / `postconf -M -x`, values expanded as Postfix uses them,
 * never by parsing main.cf ourselves):
 *   users database   opens read-only with the current schema; root:postfix 0640, folder 0750;
 *                    no login with more rate limits in effect than relay-milter reads
 *   state database   a SQLite file the milter owns, in a folder of the same owner (WAL)
 *   SASL plugin      librelaydb.so in SASL_PATH (import_environment) or libsasl2's folder,
 *                    not writable by anyone but root
 *   smtpd.conf       <cyrus_sasl_config_path or DIR/sasl>/<smtpd_sasl_path>.conf:
 *                    auxprop + relaydb, relaydb_path = --db, no empty values, PLAIN/LOGIN
 *   each relay service (master.cf inet smtpd with syslog_name postfix/relay*, or SASL on):
 *                    smtpd_tls_security_level=encrypt, smtpd_tls_auth_only=yes,
 *                    smtpd_sasl_auth_enable=yes, smtpd_sasl_security_options=noanonymous,
 *                    client/relay/recipient restrictions
 *                    permit_sasl_authenticated,reject, TLS >= 1.2, an AUTH rate limit,
 *                    smtpd_forbid_bare_newline on and not excused for any client,
 *                    disable_vrfy_command=yes,
 *                    certificate readable and not expired (warn < 30 days)
 *   milter           if registered: milter_default_action=tempfail, milter_mail_macros with
 *                    {auth_authen} and {tls_version}, socket reachable
 *   upstream         the relay services' content_filter names a master.cf smtp transport
 *                    (setup's relay-upstream) that carries smtp_tls_security_level=secure,
 *                    a readable CA file and a 0600 root password map; the upstream login
 *                    is not in main.cf, where sendmail and port-25 mail would use it too
 *                    (the layout of earlier setups: judged, and flagged)
 *   Postfix          `postfix check` clean; instance running
 *
 * Errors: a check that cannot read something fails with the reason; the command itself
 * only fails early on usage errors (ADM_EXIT_USAGE).
 */
#include "adm.h"
#include "cert.h"
#include "checklist.h"
#include "policy.h"
#include "postconf.h"

#include "relay-config.h"

#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <pwd.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#ifndef RELAY_SASL_PLUGINDIR
#define RELAY_SASL_PLUGINDIR "/usr/lib/x86_64-linux-gnu/sasl2"
#endif
#define RESTRICTIONS_WANT "permit_sasl_authenticated,reject"
#define MAX_SERVICES 16
#define MAX_WORDS 128

struct service {
	char name[256];          /* "127.0.0.1:10587/inet" */
	char *words[MAX_WORDS];  /* the -o name=value overrides, as "name=value" */
	size_t nwords;
};

struct check {
	const struct adm_ctx *ctx;
	const char *dir;          /* Postfix config directory */
	struct adm_checklist *cl;
	gid_t postfix_gid;
	uid_t postfix_uid;
	bool have_postfix;
	struct service svc[MAX_SERVICES];
	size_t nsvc;
	struct service transports[MAX_SERVICES];   /* unix smtp services (upstream candidates) */
	size_t ntransports;
	char certs[MAX_SERVICES][PATH_MAX];   /* certificate files already judged */
	char *main_cf;                        /* `postconf -x` output: every parameter */
	size_t ncerts;
};

/* ---- reading Postfix ------------------------------------------------------------------ */

/* Loads every main.cf parameter once (`postconf -c DIR -x`: defaults included, $names and
 * compatibility-level expressions expanded as Postfix uses them): one program run instead
 * of one per parameter. */
static bool load_main(struct check *c, char *err, size_t errlen)
{
	const char *argv[] = { "postconf", "-c", c->dir, "-x", NULL };
	int status = 0;

	if (adm_run(argv, NULL, &c->main_cf, &status, err, errlen) < 0)
		return false;
	if (status != 0) {
		snprintf(err, errlen, "postconf -c %s -x exited with %d", c->dir, status);
		free(c->main_cf);
		c->main_cf = NULL;
		return false;
	}
	return true;
}

/* main.cf's effective value; NULL with *err set when main.cf could not be read or the
 * parameter is unknown. Caller frees. */
static char *pf_main(const struct check *c, const char *name, char *err, size_t errlen)
{
	size_t nl = strlen(name);

	if (!c->main_cf) {
		snprintf(err, errlen, "the Postfix configuration could not be read");
		return NULL;
	}
	for (const char *l = c->main_cf; *l;) {
		const char *end = strchr(l, '\n');
		size_t len = end ? (size_t)(end - l) : strlen(l);

		/* "name = value", or "name =" for an empty value */
		if (len >= nl + 2 && strncmp(l, name, nl) == 0 && l[nl] == ' ' && l[nl + 1] == '=') {
			const char *v = l + nl + 2;

			if (*v == ' ')
				v++;
			return strndup(v, len - (size_t)(v - l));
		}
		l = end ? end + 1 : l + len;
	}
	snprintf(err, errlen, "no parameter %s", name);
	return NULL;
}

/* A service's effective value: its -o override, else main.cf's. Caller frees. */
static char *pf_service(const struct check *c, const struct service *s, const char *name)
{
	size_t nl = strlen(name);
	char err[256];

	for (size_t i = s->nwords; i-- > 0;)   /* the last -o wins, as in Postfix */
		if (strncmp(s->words[i], name, nl) == 0 && s->words[i][nl] == '=')
			return strdup(s->words[i] + nl + 1);
	char *v = pf_main(c, name, err, sizeof(err));

	return v ? v : strdup("");
}

/* "a, b  c" -> "a,b,c": restriction lists compared by their words. */
static void normalize_list(const char *in, char *out, size_t outlen)
{
	size_t o = 0;
	bool sep = false;

	for (const char *p = in; *p && o + 2 < outlen; p++) {
		if (*p == ',' || *p == ' ' || *p == '\t' || *p == '\n') {
			sep = o > 0;
			continue;
		}
		if (sep) {
			out[o++] = ',';
			sep = false;
		}
		out[o++] = *p;
	}
	out[o] = '\0';
}

/* Strips "{ name = value }" braces (Postfix 3.0+ syntax) to "name=value". */
static void unbrace(char *s)
{
	char *r = s, *w = s;
	size_t n;

	while (*r == '{' || *r == ' ')
		r++;
	for (; *r; r++)
		if (!(*r == ' ' && (r[1] == '=' || (r > s && r[-1] == '='))))
			*w++ = *r;
	*w = '\0';
	n = strlen(s);
	while (n > 0 && (s[n - 1] == '}' || s[n - 1] == ' '))
		s[--n] = '\0';
}

static void service_free(struct service *s)
{
	for (size_t i = 0; i < s->nwords; i++)
		free(s->words[i]);
	s->nwords = 0;
}

/* Parses one `postconf -M` line; keeps it if it is an inet smtpd service that is ours
 * (syslog_name postfix/relay*) or has SASL switched on, or a unix smtp client (a transport
 * the relay services may hand their mail to). */
static void consider_service(struct check *c, char *line)
{
	char *save = NULL, *w[MAX_WORDS + 8];
	size_t n = 0;

	for (char *t = strtok_r(line, " \t", &save); t && n < sizeof(w) / sizeof(w[0]);
	     t = strtok_r(NULL, " \t", &save))
		w[n++] = t;
	if (n < 8)
		return;
	bool transport = strcmp(w[1], "unix") == 0 && strcmp(w[7], "smtp") == 0;

	if (transport ? c->ntransports >= MAX_SERVICES :
	    (strcmp(w[1], "inet") != 0 || strcmp(w[7], "smtpd") != 0 || c->nsvc >= MAX_SERVICES))
		return;
	struct service *s = transport ? &c->transports[c->ntransports] : &c->svc[c->nsvc];
	bool ours = false, sasl = false;

	snprintf(s->name, sizeof(s->name), "%s/%s", w[0], w[1]);
	for (size_t i = 8; i < n && s->nwords < MAX_WORDS; i++) {
		char buf[1024];

		if (strcmp(w[i], "-o") == 0 && i + 1 < n) {
			i++;
			if (w[i][0] == '{') {   /* -o { name = value with spaces } */
				size_t o = 0;

				buf[0] = '\0';
				for (; i < n; i++) {
					o += (size_t)snprintf(buf + o, o < sizeof(buf) ? sizeof(buf) - o : 0,
					                      "%s%s", o ? " " : "", w[i]);
					if (o >= sizeof(buf) || strchr(w[i], '}'))
						break;
				}
			} else {
				snprintf(buf, sizeof(buf), "%s", w[i]);
			}
		} else if (strncmp(w[i], "-o", 2) == 0 && w[i][2]) {
			snprintf(buf, sizeof(buf), "%s", w[i] + 2);
		} else {
			continue;
		}
		unbrace(buf);
		if (strncmp(buf, "syslog_name=postfix/relay", 25) == 0)
			ours = true;
		if (strcmp(buf, "smtpd_sasl_auth_enable=yes") == 0)
			sasl = true;
		s->words[s->nwords] = strdup(buf);
		if (s->words[s->nwords])
			s->nwords++;
	}
	if (transport)
		c->ntransports++;
	else if (ours || sasl)
		c->nsvc++;
	else
		service_free(s);
}

static bool load_services(struct check *c, char *err, size_t errlen)
{
	const char *argv[] = { "postconf", "-c", c->dir, "-M", "-x", NULL };
	char *out = NULL, *save = NULL;
	int status = 0;

	if (adm_run(argv, NULL, &out, &status, err, errlen) < 0)
		return false;
	if (status != 0) {
		snprintf(err, errlen, "postconf -M exited with %d", status);
		free(out);
		return false;
	}
	for (char *l = strtok_r(out, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
		consider_service(c, l);
	free(out);
	return true;
}

/* ---- files ---------------------------------------------------------------------------- */

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

/* ---- the checks ----------------------------------------------------------------------- */

static void check_users_db(struct check *c)
{
	struct adm_check *ck = adm_checklist_add(c->cl, "users-db", "users database");
	struct adm_check *perm = adm_checklist_add(c->cl, "users-db-permissions",
	                                           "users database permissions");
	const char *path = c->ctx->db_path;
	struct rdb *db = NULL;
	char err[512], dir[PATH_MAX];

	if (rdb_open(path, RDB_READONLY, &db, err, sizeof(err)) != RDB_OK) {
		adm_check_set(ck, ADM_CHECK_FAIL, "%s", err);
		adm_check_fix(ck, "create or migrate it: relay-admin --db %s init", path);
	} else {
		adm_check_set(ck, ADM_CHECK_OK, "%s opens with schema version %d", path,
		              RDB_SCHEMA_VERSION);
	}
	rdb_close(db);
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
static void check_limits(struct check *c)
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

static void check_state_db(struct check *c, bool milter)
{
	struct adm_check *ck = adm_checklist_add(c->cl, "state-db", "state database (milter)");
	const char *path = c->ctx->state_db_path;
	struct stat st, dst;
	char dir[PATH_MAX], u[64], du[64];
	sqlite3 *db = NULL;
	sqlite3_stmt *stmt = NULL;

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
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &stmt, NULL) != SQLITE_OK ||
	    sqlite3_step(stmt) != SQLITE_ROW ||
	    sqlite3_column_type(stmt, 0) != SQLITE_INTEGER) {
		adm_check_set(ck, ADM_CHECK_FAIL, "%s cannot be read as a database: %s", path,
		              db ? sqlite3_errmsg(db) : "out of memory");
		goto out;
	}
	int version = sqlite3_column_int(stmt, 0);

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
		adm_check_set(ck, ADM_CHECK_OK, "%s: schema version %d, owner %s", path, version, u);
	}
out:
	sqlite3_finalize(stmt);
	sqlite3_close(db);
}

/* SASL_PATH=a:b from import_environment, else libsasl2's own folder. */
static void check_plugin(struct check *c)
{
	struct adm_check *ck = adm_checklist_add(c->cl, "sasl-plugin",
	                                         "relaydb plugin installed");
	char err[256], dirs[PATH_MAX * 2] = RELAY_SASL_PLUGINDIR;
	char *env = pf_main(c, "import_environment", err, sizeof(err)), *save = NULL;

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

static void check_smtpd_conf(struct check *c)
{
	struct adm_check *ck = adm_checklist_add(c->cl, "smtpd-conf",
	                                         "SASL configuration for relaydb");
	char err[256], path[PATH_MAX + 64], line[1024];
	char *cfg = pf_main(c, "cyrus_sasl_config_path", err, sizeof(err));
	char *app = pf_main(c, "smtpd_sasl_path", err, sizeof(err));
	bool auxprop = false, relaydb = false, mechs = false, path_ok = false, empty = false;
	char dbpath[PATH_MAX] = "";
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
			empty = true;   /* libsasl2 fails init on an empty value: AUTH dies */
			adm_check_line(ck, "empty value for %s", k);
		}
		if (strcmp(k, "pwcheck_method") == 0)
			auxprop = strcmp(v, "auxprop") == 0;
		else if (strcmp(k, "auxprop_plugin") == 0)
			relaydb = strcmp(v, "relaydb") == 0;
		else if (strcmp(k, "relaydb_path") == 0)
			snprintf(dbpath, sizeof(dbpath), "%s", v);
		else if (strcmp(k, "mech_list") == 0) {
			char low[1024];
			size_t i;

			for (i = 0; v[i] && i + 1 < sizeof(low); i++)
				low[i] = (char)((v[i] >= 'A' && v[i] <= 'Z') ? v[i] + 32 : v[i]);
			low[i] = '\0';
			mechs = strstr(low, "plain") != NULL || strstr(low, "login") != NULL;
		}
	}
	fclose(f);
	path_ok = dbpath[0] && same_file_path(dbpath, c->ctx->db_path);
	adm_check_line(ck, "%s: relaydb_path %s", path, dbpath[0] ? dbpath : "(not set)");
	if (empty) {
		adm_check_set(ck, ADM_CHECK_FAIL, "%s has an empty value: libsasl2 refuses to start "
		              "and every AUTH fails", path);
	} else if (!auxprop || !relaydb) {
		adm_check_set(ck, ADM_CHECK_FAIL, "%s does not use pwcheck_method: auxprop with "
		              "auxprop_plugin: relaydb", path);
	} else if (!path_ok) {
		adm_check_set(ck, ADM_CHECK_FAIL, "relaydb_path is %s, but this check uses the users "
		              "database %s", dbpath[0] ? dbpath : "not set", c->ctx->db_path);
	} else if (!mechs) {
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

/* One service parameter against what setup writes. fail: a difference is a failure. */
static void expect_param(struct check *c, const struct service *s, const char *id,
                         const char *title, const char *name, const char *want, bool list,
                         bool fail, const char *why)
{
	char cid[320], ctitle[400], got[1024], wanted[1024];
	struct adm_check *ck;
	char *v = pf_service(c, s, name);

	snprintf(cid, sizeof(cid), "%s@%s", id, s->name);
	snprintf(ctitle, sizeof(ctitle), "%s (%s)", title, s->name);
	ck = adm_checklist_add(c->cl, cid, ctitle);
	if (list) {
		normalize_list(v ? v : "", got, sizeof(got));
		normalize_list(want, wanted, sizeof(wanted));
	} else {
		snprintf(got, sizeof(got), "%s", v ? v : "");
		snprintf(wanted, sizeof(wanted), "%s", want);
	}
	free(v);
	if (strcmp(got, wanted) == 0) {
		adm_check_set(ck, ADM_CHECK_OK, "%s = %s", name, got);
		return;
	}
	adm_check_set(ck, fail ? ADM_CHECK_FAIL : ADM_CHECK_WARN, "%s = %s, expected %s: %s", name,
	              got[0] ? got : "(empty)", wanted, why);
	adm_check_fix(ck, "postconf -c %s -P '%s/%s=%s' && postfix -c %s reload (or rerun "
	              "relay-admin setup)", c->dir, s->name, name, want, c->dir);
}

/* SMTP smuggling: with smtpd_forbid_bare_newline off, <LF>.<CR><LF> ends DATA and what
 * follows is read as commands; the exclusions (default $mynetworks) switch it off per
 * client, and for a relay on loopback or a LAN that is every client. */
static void check_bare_newline(struct check *c, const struct service *s)
{
	char cid[320], ctitle[400];
	char *v = pf_service(c, s, "smtpd_forbid_bare_newline");
	char *ex = pf_service(c, s, "smtpd_forbid_bare_newline_exclusions");
	bool on = v && (strcasecmp(v, "normalize") == 0 || strcasecmp(v, "yes") == 0 ||
	                strcasecmp(v, "reject") == 0);

	snprintf(cid, sizeof(cid), "bare-newline@%s", s->name);
	snprintf(ctitle, sizeof(ctitle), "<LF>.<CR><LF> does not end DATA (%s)", s->name);
	struct adm_check *ck = adm_checklist_add(c->cl, cid, ctitle);

	if (!on) {
		adm_check_set(ck, ADM_CHECK_FAIL, "smtpd_forbid_bare_newline = %s: a bare <LF> "
		              "before the final dot ends the message and the rest is read as SMTP "
		              "commands (SMTP smuggling)", v && v[0] ? v : "(empty)");
		adm_check_fix(ck, "postconf -c %s -P '%s/smtpd_forbid_bare_newline=normalize' "
		              "'%s/smtpd_forbid_bare_newline_exclusions=' (or rerun relay-admin "
		              "setup)", c->dir, s->name, s->name);
	} else if (ex && ex[0]) {
		adm_check_set(ck, ADM_CHECK_WARN, "smtpd_forbid_bare_newline = %s, but "
		              "smtpd_forbid_bare_newline_exclusions = %s exempts those clients", v,
		              ex);
		adm_check_fix(ck, "postconf -c %s -P '%s/smtpd_forbid_bare_newline_exclusions=' "
		              "(or rerun relay-admin setup)", c->dir, s->name);
	} else {
		adm_check_set(ck, ADM_CHECK_OK, "smtpd_forbid_bare_newline = %s, no exclusions", v);
	}
	free(v);
	free(ex);
}

static void check_rate_limit(struct check *c, const struct service *s)
{
	char cid[320], ctitle[400];
	char *v = pf_service(c, s, "smtpd_client_auth_rate_limit");
	long n = v ? strtol(v, NULL, 10) : 0;

	snprintf(cid, sizeof(cid), "auth-rate-limit@%s", s->name);
	snprintf(ctitle, sizeof(ctitle), "AUTH rate limit (%s)", s->name);
	struct adm_check *ck = adm_checklist_add(c->cl, cid, ctitle);

	if (n > 0) {
		adm_check_set(ck, ADM_CHECK_OK, "smtpd_client_auth_rate_limit = %ld", n);
	} else {
		adm_check_set(ck, ADM_CHECK_WARN, "smtpd_client_auth_rate_limit = %s: unlimited "
		              "password guessing per client", v && v[0] ? v : "0");
		adm_check_fix(ck, "postconf -c %s -P '%s/smtpd_client_auth_rate_limit=20'", c->dir,
		              s->name);
	}
	free(v);
}

static void judge_certificate(struct check *c, const struct service *s)
{
	char cid[320], ctitle[PATH_MAX + 64], subject[512], issuer[512], err[512];
	char *file = pf_service(c, s, "smtpd_tls_cert_file");
	char *key = pf_service(c, s, "smtpd_tls_key_file");
	time_t not_after = 0;

	if (!file || !file[0]) {
		snprintf(cid, sizeof(cid), "certificate@%s", s->name);
		snprintf(ctitle, sizeof(ctitle), "TLS certificate (%s)", s->name);
		adm_check_set(adm_checklist_add(c->cl, cid, ctitle), ADM_CHECK_FAIL,
		              "no smtpd_tls_cert_file: STARTTLS cannot work");
		goto out;
	}
	for (size_t i = 0; i < c->ncerts; i++)
		if (strcmp(c->certs[i], file) == 0)
			goto out;   /* one verdict per certificate file */
	if (c->ncerts < MAX_SERVICES)
		snprintf(c->certs[c->ncerts++], PATH_MAX, "%s", file);
	snprintf(cid, sizeof(cid), "certificate:%s", file);
	snprintf(ctitle, sizeof(ctitle), "TLS certificate %s", file);
	struct adm_check *ck = adm_checklist_add(c->cl, cid, ctitle);

	if (adm_cert_info(file, subject, sizeof(subject), issuer, sizeof(issuer), &not_after,
	                  err, sizeof(err)) < 0) {
		adm_check_set(ck, ADM_CHECK_FAIL, "%s", err);
		adm_check_fix(ck, "install a readable PEM certificate (relay-admin setup "
		              "--cert FILE --key FILE)");
		goto out;
	}
	double days = difftime(not_after, time(NULL)) / 86400.0;
	char when[ADM_TIME_LEN];

	adm_format_time((int64_t)not_after, when);
	adm_check_line(ck, "subject: %s", subject);
	adm_check_line(ck, "issuer:  %s", issuer);
	adm_check_line(ck, "expires: %s", when);
	if (days < 0) {
		adm_check_set(ck, ADM_CHECK_FAIL, "expired on %s: clients refuse the relay", when);
		adm_check_fix(ck, "renew it and rerun relay-admin setup --cert/--key (or reload "
		              "Postfix after replacing the file)");
	} else if (days < ADM_CERT_WARN_DAYS) {
		adm_check_set(ck, ADM_CHECK_WARN, "expires in %.0f days (%s)", days, when);
		adm_check_fix(ck, "renew the certificate before %s", when);
	} else {
		adm_check_set(ck, ADM_CHECK_OK, "valid until %s (%.0f days)", when, days);
	}
	if (key && key[0] && adm_check_status(ck) != ADM_CHECK_FAIL) {
		char warn[256];

		if (c->have_postfix &&
		    adm_cert_check(file, key, NULL, c->postfix_gid, warn, sizeof(warn), err,
		                   sizeof(err)) < 0) {
			adm_check_set(ck, ADM_CHECK_FAIL, "%s", err);
			adm_check_fix(ck, "see the message; relay-admin setup checks the same");
		}
	}
out:
	free(file);
	free(key);
}

/* Connects to a milter socket spec ("unix:/path", "inet:host:port", "local:/path"). */
static bool milter_reachable(const char *spec, char *why, size_t whylen)
{
	int fd = -1;
	bool ok = false;

	if (strncmp(spec, "unix:", 5) == 0 || strncmp(spec, "local:", 6) == 0) {
		struct sockaddr_un sun = { .sun_family = AF_UNIX };
		const char *p = strchr(spec, ':') + 1;

		if (strlen(p) >= sizeof(sun.sun_path)) {
			snprintf(why, whylen, "socket path too long");
			return false;
		}
		memcpy(sun.sun_path, p, strlen(p) + 1);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		ok = fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0;
		if (!ok)
			snprintf(why, whylen, "%.200s: %s", p, strerror(errno));
	} else if (strncmp(spec, "inet:", 5) == 0) {
		char host[256], *colon;
		struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;

		snprintf(host, sizeof(host), "%.255s", spec + 5);
		colon = strrchr(host, ':');
		if (!colon) {
			snprintf(why, whylen, "no port in %.200s", spec);
			return false;
		}
		*colon = '\0';
		/* Postfix writes inet:host:port; libmilter's own form is inet:port@host. */
		int gr = getaddrinfo(host[0] == '[' ? host + 1 : host, colon + 1, &hints, &res);

		if (gr != 0) {
			snprintf(why, whylen, "%.200s: %s", spec, gai_strerror(gr));
			return false;
		}
		fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd >= 0 && (connect(fd, res->ai_addr, res->ai_addrlen) == 0 || errno == EINPROGRESS)) {
			struct pollfd pfd = { .fd = fd, .events = POLLOUT };
			int soerr = 0;
			socklen_t sl = sizeof(soerr);

			if (poll(&pfd, 1, 3000) == 1 &&
			    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0)
				ok = true;
			else
				snprintf(why, whylen, "%.200s: %s", spec, soerr ? strerror(soerr) : "no answer");
		} else {
			snprintf(why, whylen, "%.200s: %s", spec, strerror(errno));
		}
		freeaddrinfo(res);
	} else {
		snprintf(why, whylen, "unknown socket type in %.200s", spec);
	}
	if (fd >= 0)
		close(fd);
	return ok;
}

/* The macros relay-milter needs at MAIL (DESIGN: TLS and AUTH are re-checked there). */
static bool macros_ok(const struct check *c, char *missing, size_t len)
{
	static const char *const need[] = { "{auth_authen}", "{tls_version}" };
	char err[256];
	char *m = pf_main(c, "milter_mail_macros", err, sizeof(err));
	bool ok = true;

	missing[0] = '\0';
	for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++)
		if (!m || !strstr(m, need[i])) {
			size_t o = strlen(missing);

			snprintf(missing + o, len - o, "%s%s", o ? " " : "", need[i]);
			ok = false;
		}
	free(m);
	return ok;
}

static bool check_milter(struct check *c, const struct service *s)
{
	char cid[320], ctitle[400], why[512];
	char *spec = pf_service(c, s, "smtpd_milters");
	char *action = pf_service(c, s, "milter_default_action");
	bool have = spec && spec[0];

	snprintf(cid, sizeof(cid), "milter@%s", s->name);
	snprintf(ctitle, sizeof(ctitle), "relay-milter (%s)", s->name);
	struct adm_check *ck = adm_checklist_add(c->cl, cid, ctitle);

	if (!have) {
		adm_check_set(ck, ADM_CHECK_SKIP, "no milter registered on this service");
		goto out;
	}
	char first[512];

	normalize_list(spec, first, sizeof(first));
	char *comma = strchr(first, ',');

	if (comma)
		*comma = '\0';
	adm_check_line(ck, "smtpd_milters = %s", spec);
	adm_check_line(ck, "milter_default_action = %s", action ? action : "");
	if (!action || strcmp(action, "tempfail") != 0) {
		adm_check_set(ck, ADM_CHECK_FAIL, "milter_default_action = %s: with the milter down, "
		              "mail would %s", action && action[0] ? action : "(empty)",
		              action && strcmp(action, "accept") == 0 ? "pass unchecked" :
		              "not wait for it");
		adm_check_fix(ck, "postconf -c %s -P '%s/milter_default_action=tempfail'", c->dir,
		              s->name);
	} else if (!macros_ok(c, why, sizeof(why))) {
		adm_check_set(ck, ADM_CHECK_FAIL, "milter_mail_macros lacks %s: relay-milter cannot "
		              "see the login or the TLS version at MAIL and refuses the mail", why);
		adm_check_fix(ck, "rerun relay-admin setup --milter ... (it sets milter_mail_macros)");
	} else if (!milter_reachable(first, why, sizeof(why))) {
		adm_check_set(ck, ADM_CHECK_FAIL, "milter socket not reachable: %s (mail is "
		              "tempfailed until it is)", why);
		adm_check_fix(ck, "start relay-milter (systemctl start relay-milter) and check its "
		              "socket setting");
	} else {
		adm_check_set(ck, ADM_CHECK_OK, "%s reachable; milter_default_action = tempfail", first);
	}
out:
	free(spec);
	free(action);
	return have;
}

static void check_service(struct check *c, const struct service *s, bool *milter)
{
	expect_param(c, s, "tls-required", "TLS required", "smtpd_tls_security_level", "encrypt",
	             false, true, "clients may send passwords and mail in plaintext");
	expect_param(c, s, "auth-only-after-tls", "AUTH only after TLS", "smtpd_tls_auth_only",
	             "yes", false, true, "AUTH is offered before TLS");
	expect_param(c, s, "sasl-enabled", "SASL enabled", "smtpd_sasl_auth_enable", "yes", false,
	             true, "nobody can log in");
	expect_param(c, s, "sasl-noanonymous", "no anonymous AUTH", "smtpd_sasl_security_options",
	             "noanonymous", true, true, "an anonymous login would count as authenticated");
	expect_param(c, s, "client-restrictions", "only logins may send",
	             "smtpd_client_restrictions", RESTRICTIONS_WANT, true, true,
	             "clients that did not log in may be able to relay");
	expect_param(c, s, "relay-restrictions", "relay restricted to logins",
	             "smtpd_relay_restrictions", RESTRICTIONS_WANT, true, true,
	             "clients that did not log in may be able to relay");
	expect_param(c, s, "recipient-restrictions", "recipients restricted to logins",
	             "smtpd_recipient_restrictions", RESTRICTIONS_WANT, true, false,
	             "differs from what setup writes");
	expect_param(c, s, "tls-protocols", "TLS 1.2 or newer", "smtpd_tls_mandatory_protocols",
	             ">=TLSv1.2", false, false, "old TLS versions are accepted");
	check_bare_newline(c, s);
	expect_param(c, s, "vrfy-disabled", "VRFY refused", "disable_vrfy_command", "yes", false,
	             false, "VRFY tells a client which addresses exist");
	check_rate_limit(c, s);
	judge_certificate(c, s);
	if (check_milter(c, s))
		*milter = true;
}

/* An upstream setting: the transport's -o override (else main.cf's), or main.cf's when the
 * upstream is main.cf's relayhost (t == NULL). Never NULL; caller frees. */
static char *up_value(const struct check *c, const struct service *t, const char *name)
{
	char err[256];
	char *v;

	if (t)
		return pf_service(c, t, name);
	v = pf_main(c, name, err, sizeof(err));
	return v ? v : strdup("");
}

static bool is_yes(const char *v)
{
	return v && strcasecmp(v, "yes") == 0;
}

/* The master.cf smtp transport called `name` (the part of content_filter before ':'). */
static const struct service *find_transport(const struct check *c, const char *filter)
{
	size_t len = strcspn(filter, ":");

	for (size_t i = 0; i < c->ntransports; i++) {
		const char *n = c->transports[i].name;   /* "relay-upstream/unix" */

		if (strncmp(n, filter, len) == 0 && strcmp(n + len, "/unix") == 0)
			return &c->transports[i];
	}
	return NULL;
}

/* Where relay mail goes: the services' content_filter -> *filter (caller frees, NULL if
 * none has one); *without: how many services have none. */
static char *relay_filter(const struct check *c, size_t *without, const char **first_without)
{
	char *filter = NULL;

	*without = 0;
	*first_without = NULL;
	for (size_t i = 0; i < c->nsvc; i++) {
		char *v = pf_service(c, &c->svc[i], "content_filter");

		if (v && v[0] && !filter) {
			filter = v;
			continue;
		}
		if (!v || !v[0]) {
			if ((*without)++ == 0)
				*first_without = c->svc[i].name;
		}
		free(v);
	}
	return filter;
}

/* The upstream login must serve only the relay services: in main.cf every delivery —
 * sendmail, a port-25 client in mynetworks — would log in with it, past relay-milter. */
static void check_upstream_scope(struct check *c, const char *filter, const char *relayhost)
{
	struct adm_check *ck = adm_checklist_add(c->cl, "upstream-scope",
	                                         "upstream login only for the relay services");
	char err[256];
	char *auth = pf_main(c, "smtp_sasl_auth_enable", err, sizeof(err));
	char *maps = pf_main(c, "smtp_sasl_password_maps", err, sizeof(err));
	const char *nexthop = filter ? strchr(filter, ':') : NULL;

	nexthop = nexthop ? nexthop + 1 : "";
	if (is_yes(auth) && maps && maps[0]) {
		adm_check_set(ck, ADM_CHECK_FAIL, "main.cf has smtp_sasl_auth_enable = yes and "
		              "smtp_sasl_password_maps = %s: mail from sendmail and from port-25 "
		              "clients logs in upstream with it too, with any sender and no limit "
		              "or audit (the layout of earlier relay-admin setups)", maps);
		adm_check_fix(ck, "rerun relay-admin setup --upstream ... --upstream-user ...: it "
		              "moves the upstream onto the %s transport of the relay services and "
		              "removes these main.cf settings", "relay-upstream");
	} else if (relayhost[0] && (!filter || strcmp(relayhost, nexthop) == 0)) {
		adm_check_set(ck, ADM_CHECK_WARN, "main.cf's relayhost %s is the upstream: mail "
		              "from sendmail and port 25 goes there as well, past relay-milter",
		              relayhost);
		adm_check_fix(ck, "rerun relay-admin setup --upstream ...: the relay services get "
		              "their own transport and main.cf keeps the machine's own routing");
	} else if (!filter) {
		adm_check_set(ck, ADM_CHECK_SKIP, "no upstream: Postfix delivers directly");
	} else {
		adm_check_set(ck, ADM_CHECK_OK, "only the relay services' content_filter leads to "
		              "the upstream; main.cf has no upstream login");
	}
	free(auth);
	free(maps);
}

static void check_upstream(struct check *c)
{
	struct adm_check *route = adm_checklist_add(c->cl, "upstream-route",
	                                            "relay mail goes to the upstream transport");
	struct adm_check *ck = adm_checklist_add(c->cl, "upstream-tls",
	                                         "upstream TLS verified (smtp_tls_security_level)");
	struct adm_check *ca = adm_checklist_add(c->cl, "upstream-ca", "upstream CA file");
	struct adm_check *map = adm_checklist_add(c->cl, "upstream-password-map",
	                                          "upstream password map");
	char err[256], where[300];
	char *relayhost = pf_main(c, "relayhost", err, sizeof(err));
	char *level = NULL, *cafile = NULL, *maps = NULL, *auth = NULL;
	const char *bare = NULL;
	size_t without = 0;
	char *filter = relay_filter(c, &without, &bare);
	const struct service *t = NULL;

	if (!relayhost)
		relayhost = strdup("");
	if (!relayhost)
		goto out;
	check_upstream_scope(c, filter, relayhost);
	if (filter) {
		adm_checklist_info(c->cl, "upstream", filter);
		t = find_transport(c, filter);
		if (!t) {
			adm_check_set(route, ADM_CHECK_FAIL, "content_filter = %s names a transport "
			              "master.cf does not define (unix, smtp): relay mail waits in the "
			              "queue", filter);
			adm_check_fix(route, "rerun relay-admin setup --upstream ... (it defines the "
			              "relay-upstream transport)");
			adm_check_set(ck, ADM_CHECK_SKIP, "no upstream transport");
			adm_check_set(ca, ADM_CHECK_SKIP, "no upstream transport");
			adm_check_set(map, ADM_CHECK_SKIP, "no upstream transport");
			goto out;
		}
		if (without) {
			adm_check_set(route, ADM_CHECK_WARN, "%s has no content_filter: its mail does "
			              "not go to the upstream (%s does)", bare, filter);
			adm_check_fix(route, "rerun relay-admin setup with the same --port/--tls-port");
		} else {
			adm_check_set(route, ADM_CHECK_OK, "content_filter = %s (transport %s)", filter,
			              t->name);
		}
		snprintf(where, sizeof(where), "postconf -c %s -P '%s/", c->dir, t->name);
	} else if (relayhost[0]) {
		/* an earlier setup's layout: the upstream is main.cf's, judged there */
		adm_checklist_info(c->cl, "relayhost", relayhost);
		adm_check_set(route, ADM_CHECK_WARN, "no content_filter on the relay services: "
		              "their mail follows main.cf's relayhost %s, like all other mail",
		              relayhost);
		adm_check_fix(route, "rerun relay-admin setup --upstream ...");
		snprintf(where, sizeof(where), "postconf -c %s -e '", c->dir);
	} else {
		adm_check_set(route, ADM_CHECK_SKIP, "no upstream: Postfix delivers directly");
		adm_check_set(ck, ADM_CHECK_SKIP, "no upstream");
		adm_check_set(ca, ADM_CHECK_SKIP, "no upstream");
		adm_check_set(map, ADM_CHECK_SKIP, "no upstream");
		goto out;
	}
	level = up_value(c, t, "smtp_tls_security_level");
	if (level && (strcmp(level, "secure") == 0 || strcmp(level, "verify") == 0 ||
	              strcmp(level, "dane-only") == 0)) {
		adm_check_set(ck, ADM_CHECK_OK, "smtp_tls_security_level = %s", level);
	} else if (level && strcmp(level, "encrypt") == 0) {
		adm_check_set(ck, ADM_CHECK_WARN, "smtp_tls_security_level = encrypt: encrypted but "
		              "the upstream's certificate is not verified (--upstream-insecure)");
		adm_check_fix(ck, "rerun relay-admin setup without --upstream-insecure (with "
		              "--upstream-ca FILE if the upstream uses a private CA)");
	} else {
		adm_check_set(ck, ADM_CHECK_FAIL, "smtp_tls_security_level = %s: mail and the "
		              "upstream password may cross the network in plaintext",
		              level && level[0] ? level : "(empty)");
		adm_check_fix(ck, "%ssmtp_tls_security_level=secure' (relay-admin setup does)", where);
	}

	cafile = up_value(c, t, "smtp_tls_CAfile");
	if (!cafile || !cafile[0])
		adm_check_set(ca, ADM_CHECK_OK, "not set: OpenSSL's default CAs "
		              "(smtp_tls_CApath / system)");
	else if (access(cafile, R_OK) != 0) {
		adm_check_set(ca, ADM_CHECK_FAIL, "smtp_tls_CAfile %s: %s", cafile, strerror(errno));
		adm_check_fix(ca, "install the CA file or rerun relay-admin setup --upstream-ca FILE");
	} else {
		adm_check_set(ca, ADM_CHECK_OK, "smtp_tls_CAfile = %s", cafile);
	}

	/* the map is judged even with smtp_sasl_auth_enable off: it still holds the password */
	maps = up_value(c, t, "smtp_sasl_password_maps");
	auth = up_value(c, t, "smtp_sasl_auth_enable");
	if (!maps || !maps[0]) {
		adm_check_set(map, ADM_CHECK_SKIP, "no smtp_sasl_password_maps: the relay does not "
		              "log in upstream");
		goto out;
	}
	if (!is_yes(auth))
		adm_check_line(map, "smtp_sasl_auth_enable = %s: the login is not used",
		               auth && auth[0] ? auth : "(empty)");
	const char *colon = strchr(maps, ':');
	const char *file = colon ? colon + 1 : maps;
	char dbfile[PATH_MAX + 8];
	struct stat st;

	adm_check_line(map, "smtp_sasl_password_maps = %s", maps);
	snprintf(dbfile, sizeof(dbfile), "%s.db", file);
	if (strncmp(maps, "hash:", 5) == 0 && stat(dbfile, &st) != 0) {
		adm_check_set(map, ADM_CHECK_FAIL, "%s: %s", dbfile, strerror(errno));
		adm_check_fix(map, "postmap -c %s %s", c->dir, maps);
	} else {
		/* the source and postmap's file hold the same password: both must be root's */
		const char *const both[] = { file, dbfile };
		bool judged = false;

		for (size_t i = 0; i < 2 && !judged; i++) {
			if (stat(both[i], &st) != 0)
				continue;
			judged = true;
			if (st.st_uid != 0) {
				adm_check_set(map, ADM_CHECK_FAIL, "%s belongs to uid %u, not root",
				              both[i], (unsigned)st.st_uid);
				adm_check_fix(map, "chown root %s %s && chmod 0600 %s %s", file, dbfile,
				              file, dbfile);
			} else if (st.st_mode & 0077) {
				adm_check_set(map, ADM_CHECK_WARN, "%s is %04o: the upstream password is "
				              "readable by more than root", both[i],
				              (unsigned)(st.st_mode & 07777));
				adm_check_fix(map, "chmod 0600 %s %s", file, dbfile);
			} else {
				judged = false;
			}
		}
		if (!judged)
			adm_check_set(map, ADM_CHECK_OK, "%s (root only)", file);
	}
out:
	free(relayhost);
	free(filter);
	free(level);
	free(cafile);
	free(maps);
	free(auth);
}

static void check_postfix(struct check *c)
{
	struct adm_check *ck = adm_checklist_add(c->cl, "postfix-check", "postfix check");
	struct adm_check *run = adm_checklist_add(c->cl, "postfix-running", "Postfix running");
	char err[700];

	if (adm_pf_check(c->dir, err, sizeof(err)) < 0) {
		adm_check_set(ck, ADM_CHECK_FAIL, "%s", err);
		adm_check_fix(ck, "postfix -c %s check, and fix what it reports", c->dir);
	} else {
		adm_check_set(ck, ADM_CHECK_OK, "no complaints");
	}
	if (adm_pf_running(c->dir)) {
		adm_check_set(run, ADM_CHECK_OK, "the master process is running");
	} else {
		adm_check_set(run, ADM_CHECK_WARN, "Postfix is not running");
		adm_check_fix(run, "postfix -c %s start (or systemctl start postfix)", c->dir);
	}
}

/* ---- the command ---------------------------------------------------------------------- */

int adm_cmd_check(struct adm_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "postfix-config", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "verbose", no_argument, NULL, 'v' },
		{ NULL, 0, NULL, 0 },
	};
	struct check c = { .ctx = ctx, .dir = "/etc/postfix" };
	bool json = ctx->json, verbose = false, milter = false;
	char title[PATH_MAX + 64], err[700], dir[PATH_MAX];
	unsigned failed;
	int ch;

	while ((ch = getopt_long(argc, argv, "v", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c': c.dir = optarg; break;
		case 'j': json = true; break;
		case 'v': verbose = true; break;
		default:
			return adm_usage(ctx, "unknown option or missing value: %s", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return adm_usage(ctx, "unexpected argument: %s", argv[optind]);
	/* `postfix -c` wants an absolute path: a relative one would fail postfix-check and
	 * report a running instance as stopped */
	if (c.dir[0] != '/' && realpath(c.dir, dir))
		c.dir = dir;

	snprintf(title, sizeof(title), "relay-admin check: Postfix configuration %s", c.dir);
	c.cl = adm_checklist_new("check", title);
	if (!c.cl) {
		adm_err(ctx, "out of memory");
		return ADM_EXIT_IO;
	}
	adm_checklist_info(c.cl, "users db", ctx->db_path);
	adm_checklist_info(c.cl, "state db", ctx->state_db_path);

	char *owner = load_main(&c, err, sizeof(err)) ? pf_main(&c, "mail_owner", err, sizeof(err))
	                                              : NULL;
	struct passwd *pw = owner ? getpwnam(owner) : NULL;

	if (pw) {
		c.postfix_uid = pw->pw_uid;
		c.postfix_gid = pw->pw_gid;
		c.have_postfix = true;
	}
	struct adm_check *pf = adm_checklist_add(c.cl, "postfix-config", "Postfix configuration");

	if (!owner) {
		adm_check_set(pf, ADM_CHECK_FAIL, "cannot read %s: %s", c.dir, err);
		adm_check_fix(pf, "is Postfix installed, and is --postfix-config the folder with "
		              "main.cf?");
	} else if (!load_services(&c, err, sizeof(err))) {
		adm_check_set(pf, ADM_CHECK_FAIL, "cannot list master.cf services: %s", err);
	} else if (c.nsvc == 0) {
		adm_check_set(pf, ADM_CHECK_FAIL, "no relay submission service in %s/master.cf", c.dir);
		adm_check_fix(pf, "relay-admin setup --postfix-config %s", c.dir);
	} else {
		adm_check_set(pf, ADM_CHECK_OK, "%zu relay service%s", c.nsvc, c.nsvc == 1 ? "" : "s");
		for (size_t i = 0; i < c.nsvc; i++)
			adm_check_line(pf, "service %s", c.svc[i].name);
	}
	if (!pw && owner)
		adm_check_set(pf, ADM_CHECK_FAIL, "mail_owner %s is not a user here", owner);
	free(owner);

	check_users_db(&c);
	check_limits(&c);
	check_plugin(&c);
	check_smtpd_conf(&c);
	for (size_t i = 0; i < c.nsvc; i++)
		check_service(&c, &c.svc[i], &milter);
	check_state_db(&c, milter);
	if (pw) {
		check_upstream(&c);
		check_postfix(&c);
	}

	failed = adm_checklist_count(c.cl, ADM_CHECK_FAIL);
	if (!adm_checklist_print(c.cl, ctx->out, json, verbose) && failed == 0)
		failed = 1;
	adm_checklist_free(c.cl);
	for (size_t i = 0; i < c.nsvc; i++)
		service_free(&c.svc[i]);
	for (size_t i = 0; i < c.ntransports; i++)
		service_free(&c.transports[i]);
	free(c.main_cf);
	return failed > 100 ? 100 : (int)failed;
}
