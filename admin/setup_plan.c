/*
 * setup_plan.c — `relay-admin setup`, step 2: the plan. Reads the instance's current
 * settings (postconf), checks the certificate (or plans a self-signed one), the relaydb
 * plugin and the users database, and computes the wanted state — main.cf parameters, the
 * master.cf relay service(s) and the relay-upstream transport, smtpd.conf, the upstream
 * password map — keeping only what differs from what is there. Nothing is written here.
 * setup_plan_print() is the one renderer of a plan (dry run and report). See setup.h.
 */
#include "setup.h"
#include "cert.h"
#include "postconf.h"
#include "setup_args.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void setup_plan_free(struct plan *p)
{
	for (size_t i = 0; i < p->nmain; i++) {
		free(p->main_kv[i]);
		free(p->main_old[i]);
	}
	for (size_t i = 0; i < p->ndel; i++) {
		free(p->main_del[i]);
		free(p->main_del_old[i]);
	}
	for (size_t s = 0; s < MAX_SVC; s++)   /* also an entry whose planning failed midway */
		for (size_t i = 0; i < p->svc[s].nwords; i++)
			free(p->svc[s].words[i]);
	for (size_t i = 0; i < p->nstale; i++)
		free(p->stale[i]);
	free(p->sasl_conf_text);
	free(p->privacy_text);
	if (p->map_text) {
		explicit_bzero(p->map_text, strlen(p->map_text));
		free(p->map_text);
	}
}

static char *read_file(const char *path, size_t max)
{
	FILE *f = fopen(path, "r");
	char *buf;
	size_t n;

	if (f == NULL)
		return NULL;
	buf = malloc(max + 1);
	if (buf == NULL) {
		fclose(f);
		return NULL;
	}
	n = fread(buf, 1, max, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static int want_main(struct plan *p, const char *dir, const char *name, const char *value)
{
	char err[700];
	char *cur = NULL;
	size_t len;

	if (p->nmain >= MAX_MAIN)
		return -1;
	if (adm_pf_get(dir, name, &cur, err, sizeof err) < 0) {
		adm_err(p->ctx, "%s", err);
		return -1;
	}
	if (strcmp(cur, value) == 0) {
		free(cur);
		return 0;
	}
	len = strlen(name) + strlen(value) + 2;
	p->main_kv[p->nmain] = malloc(len);
	if (p->main_kv[p->nmain] == NULL) {
		free(cur);
		return -1;
	}
	snprintf(p->main_kv[p->nmain], len, "%s=%s", name, value);
	p->main_old[p->nmain++] = cur;
	return 0;
}

/* "name" removed from main.cf, with its value for the report. */
static int unset_main(struct plan *p, const char *name, const char *old)
{
	if (p->ndel >= MAX_DEL)
		return -1;
	p->main_del[p->ndel] = strdup(name);
	p->main_del_old[p->ndel] = strdup(old);
	if (p->main_del[p->ndel] == NULL || p->main_del_old[p->ndel] == NULL) {
		free(p->main_del[p->ndel]);
		free(p->main_del_old[p->ndel]);
		return -1;
	}
	p->ndel++;
	return 0;
}

/* An earlier setup put the upstream into main.cf, where sendmail and port-25 mail used it
 * too. Found by its own password map or relayhost = this upstream; then exactly the values
 * setup wrote are undone (setup_args.c decides which). `upstream`: an upstream is being
 * set up now (its transport replaces the old layout); without one only a note is printed. */
static int plan_legacy(struct plan *p, const char *dir, const char *mapref, bool upstream)
{
	char err[700];
	char *relayhost = NULL, *maps = NULL;
	int rc = -1;

	if (adm_pf_get_explicit(dir, "relayhost", &relayhost, err, sizeof err) < 0 ||
	    adm_pf_get_explicit(dir, "smtp_sasl_password_maps", &maps, err, sizeof err) < 0) {
		adm_err(p->ctx, "%s", err);
		goto out;
	}
	rc = 0;
	if (!adm_setup_legacy_layout(relayhost, maps, mapref, upstream ? p->nexthop : NULL))
		goto out;
	if (!upstream) {
		adm_note(p->ctx, "main.cf still holds the upstream an earlier relay-admin setup "
		         "wrote (relayhost %s): mail from sendmail and port 25 uses it too. Rerun "
		         "setup with --upstream ... to confine it to the relay services.",
		         relayhost[0] ? relayhost : "(none)");
		goto out;
	}
	for (size_t i = 0; adm_setup_legacy_names[i] && rc == 0; i++) {
		const char *name = adm_setup_legacy_names[i];
		char *v = NULL;

		if (adm_pf_get_explicit(dir, name, &v, err, sizeof err) < 0) {
			adm_err(p->ctx, "%s", err);
			rc = -1;
			break;
		}
		switch (adm_setup_legacy(name, v, mapref)) {
		case ADM_LEGACY_REMOVE:
			rc = unset_main(p, name, v);
			break;
		case ADM_LEGACY_MAY:
			rc = want_main(p, dir, name, "may");
			break;
		case ADM_LEGACY_KEEP:
			break;
		}
		free(v);
	}
out:
	free(relayhost);
	free(maps);
	return rc;
}

bool setup_milter_installed(void)
{
	static const char *const paths[] = { "/usr/local/sbin/relay-milter",
	                                     "/usr/sbin/relay-milter",
	                                     "/usr/local/bin/relay-milter" };

	for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
		if (access(paths[i], X_OK) == 0)
			return true;
	return false;
}

/* PostgreSQL: smtpd (user postfix) reads a pg: conninfo file itself, and sql/ refuses one
 * that group or others can read; a URI needs nothing here (the password, if any, comes
 * from ~postfix/.pgpass, which libpq reads). Warnings only, like the SQLite file's. */
static void check_pg_db(const struct adm_ctx *ctx, const char *db, uid_t postfix_uid)
{
	const char *file = db + 3;
	struct stat st;

	if (strncmp(db, "pg:", 3) != 0)
		return;
	if (stat(file, &st) < 0) {
		adm_warn(ctx, "conninfo file %s: %s; until it exists AUTH answers 454", file,
		         strerror(errno));
		return;
	}
	if (st.st_mode & 077)
		adm_warn(ctx, "conninfo file %s is %04o: it may hold the database password, and "
		         "the plugin refuses a file that group or others can read; fix: chmod 0600 %s",
		         file, (unsigned)(st.st_mode & 07777), file);
	if (st.st_uid != postfix_uid)
		adm_warn(ctx, "conninfo file %s does not belong to the postfix user: smtpd cannot "
		         "read it; fix: chown postfix %s", file, file);
}

/* Warnings about the users database that do not stop setup (it may be created later). */
static void check_db(const struct adm_ctx *ctx, const char *db, uid_t postfix_uid,
                     gid_t postfix_gid)
{
	struct stat st;
	char why[300];
	bool pg = false;

	if (adm_setup_db_name(db, &pg, why, sizeof why) && pg) {
		check_pg_db(ctx, db, postfix_uid);
		return;
	}
	if (stat(db, &st) < 0) {
		adm_warn(ctx, "users database %s does not exist yet: create it with "
		         "`relay-admin --db %s init`; until then AUTH answers 454", db, db);
		return;
	}
	if (!(st.st_mode & S_IROTH) && !((st.st_mode & S_IRGRP) && st.st_gid == postfix_gid))
		adm_warn(ctx, "users database %s is not readable by group postfix; "
		         "fix: chown root:postfix %s && chmod 0640 %s", db, db, db);
}

/* The instance must be configured and the plugin installed where smtpd looks; sets the
 * postfix group. Only warns about the users database (it may be created later). */
static int plan_preflight(const struct setup_opts *o, struct plan *p)
{
	char err[700], plugin[PATH_MAX + 20];
	char *owner = NULL;
	struct passwd *pw;
	uid_t uid;

	if (adm_pf_get(o->config_dir, "mail_owner", &owner, err, sizeof err) < 0) {
		char maincf[PATH_MAX + 16];

		snprintf(maincf, sizeof maincf, "%s/main.cf", o->config_dir);
		adm_err(p->ctx, "cannot read the Postfix configuration in %s: %s\n%snothing was "
		        "changed", o->config_dir, err,
		        access(maincf, F_OK) != 0 ? "(Postfix is not configured yet: give it its "
		        "basics first, e.g. dpkg-reconfigure postfix)\n" : "");
		return -1;
	}
	pw = getpwnam(owner);
	if (pw == NULL) {
		adm_err(p->ctx, "refused: Postfix's mail_owner '%s' is not a user here\n"
		        "nothing was changed", owner);
		free(owner);
		return -1;
	}
	free(owner);
	p->postfix_gid = pw->pw_gid;
	uid = pw->pw_uid;
	snprintf(plugin, sizeof plugin, "%s/librelaydb.so",
	         o->plugin_dir ? o->plugin_dir : RELAY_SASL_PLUGINDIR);
	if (access(plugin, R_OK) != 0) {
		adm_err(p->ctx, "refused: the relaydb SASL plugin is not installed: %s is missing "
		        "(run `meson install`, or pass --sasl-plugin-dir DIR)\nnothing was changed",
		        plugin);
		return -1;
	}
	check_db(p->ctx, o->db, uid, p->postfix_gid);
	return 0;
}

/* The given certificate must suit the host name; without one, a self-signed one is planned
 * (unless a valid one from an earlier run is there). */
static int plan_cert(const struct setup_opts *o, struct plan *p)
{
	char err[700], warn[400];
	char *hostname = NULL;

	if (o->cert == NULL) {
		snprintf(p->cert, sizeof p->cert, "%s/relay-cert.pem", o->config_dir);
		snprintf(p->key, sizeof p->key, "%s/relay-key.pem", o->config_dir);
		p->gen_cert = access(p->cert, F_OK) != 0 ||
		              adm_cert_check(p->cert, p->key, NULL, p->postfix_gid, NULL, 0,
		                             err, sizeof err) < 0;
		adm_warn(p->ctx, "no --cert/--key given: the relay uses a self-signed "
		         "certificate (%s); clients must be told to trust it or not to verify. "
		         "Use a real certificate (e.g. from Let's Encrypt) with --cert/--key.",
		         p->cert);
		return 0;
	}
	if (snprintf(p->cert, sizeof p->cert, "%s", o->cert) >= (int)sizeof p->cert ||
	    snprintf(p->key, sizeof p->key, "%s", o->key) >= (int)sizeof p->key)
		return -1;
	if (adm_pf_get(o->config_dir, "myhostname", &hostname, err, sizeof err) < 0)
		return -1;
	if (adm_cert_check(p->cert, p->key, o->hostname ? o->hostname : hostname,
	                   p->postfix_gid, warn, sizeof warn, err, sizeof err) < 0) {
		adm_err(p->ctx, "refused: %s\nnothing was changed", err);
		free(hostname);
		return -1;
	}
	free(hostname);
	if (warn[0])
		adm_warn(p->ctx, "%s", warn);
	return 0;
}

/* import_environment with SASL_PATH=<dir>:<libsasl2's folder> in place of any SASL_PATH:
 * SASL_PATH replaces libsasl2's folder, and the system one must stay after ours so the
 * PLAIN/LOGIN/SCRAM mechanisms still load. */
static int plan_sasl_path(const struct setup_opts *o, struct plan *p)
{
	char err[700];
	char *env = NULL, *want = NULL, *save = NULL;
	size_t len = 0;
	FILE *f;
	int rc = -1;

	if (adm_pf_get(o->config_dir, "import_environment", &env, err, sizeof err) < 0) {
		adm_err(p->ctx, "%s", err);
		return -1;
	}
	f = open_memstream(&want, &len);
	if (f != NULL) {
		for (char *w = strtok_r(env, " \t,", &save); w; w = strtok_r(NULL, " \t,", &save))
			if (strncmp(w, "SASL_PATH=", 10) != 0)
				fprintf(f, "%s ", w);
		fprintf(f, "SASL_PATH=%s:%s", o->plugin_dir, RELAY_SASL_PLUGINDIR);
		if (fclose(f) == 0)
			rc = want_main(p, o->config_dir, "import_environment", want);
	}
	free(want);
	free(env);
	return rc;
}

/* SASL: smtpd.conf in <config>/sasl — where Debian's smtpd looks — and
 * cyrus_sasl_config_path pointing there for builds without Debian's patch. */
static int plan_sasl(const struct setup_opts *o, struct plan *p)
{
	size_t len = strlen(o->db) + 400;
	char *cur;

	snprintf(p->sasl_dir, sizeof p->sasl_dir, "%s/sasl", o->config_dir);
	snprintf(p->sasl_conf, sizeof p->sasl_conf, "%s/smtpd.conf", p->sasl_dir);
	cur = read_file(p->sasl_conf, 65536);
	p->sasl_conf_text = malloc(len);
	if (p->sasl_conf_text == NULL) {
		free(cur);
		return -1;
	}
	snprintf(p->sasl_conf_text, len,
	         "# Written by relay-admin setup: Postfix's smtpd authenticates logins\n"
	         "# against the relaydb users database (manage them with relay-admin user).\n"
	         "pwcheck_method: auxprop\n"
	         "auxprop_plugin: relaydb\n"
	         "relaydb_path: %s\n"
	         "mech_list: plain login scram-sha-256\n", o->db);
	p->sasl_change = cur == NULL || strcmp(cur, p->sasl_conf_text) != 0;
	free(cur);
	if (want_main(p, o->config_dir, "cyrus_sasl_config_path", p->sasl_dir) < 0 ||
	    want_main(p, o->config_dir, "smtpd_sasl_type", "cyrus") < 0 ||
	    want_main(p, o->config_dir, "smtpd_sasl_path", "smtpd") < 0)
		return -1;
	if (o->plugin_dir && plan_sasl_path(o, p) < 0)
		return -1;
	if (o->milter && want_main(p, o->config_dir, "milter_mail_macros", MILTER_MACROS) < 0)
		return -1;
	return 0;
}

/* Privacy: the relay-upstream transport's smtp_header_checks rewrite the relay's own
 * Received: line for a logged-in client ("with ESMTPSA", UTF8SMTPSA ...) to
 * "Received: by HOST (Postfix) with ESMTPSA id ...": the client's HELO name, address and
 * TLS details are gone, the queue id and date stay. Only mail of the relay services takes
 * that transport, so port 25 and sendmail mail keep the standard header. regexp: is built
 * into Postfix (pcre: would need postfix-pcre). --keep-client-received: no check (the
 * table file is left, unused). Without --upstream the transport an earlier run made is
 * kept as it is, and so is its header check. */
static int plan_privacy(const struct setup_opts *o, struct plan *p)
{
	static const char text[] =
		"# Written by relay-admin setup: smtp_header_checks of the relay-upstream transport.\n"
		"# Privacy: the relay's Received: line for a logged-in client keeps neither the\n"
		"# client's HELO name nor its address (relay-admin log keeps the address).\n"
		"# relay-admin setup --keep-client-received turns this off.\n"
		"/^Received:[[:space:]]+from[[:space:]].*[[:space:]]by[[:space:]]+([^[:space:]]+)"
		"[[:space:]]+\\(Postfix\\)[[:space:]]+with[[:space:]]+([A-Z0-9]*SMTPS?A)"
		"[[:space:]]+(id[[:space:]].*)$/ REPLACE Received: by $1 (Postfix) with $2 $3\n";
	char *cur;

	if (o->keep_received || !o->upstream)   /* the transport is planned with --upstream */
		return 0;
	snprintf(p->privacy, sizeof p->privacy, "%s/%s", o->config_dir, PRIVACY_TABLE);
	p->privacy_text = strdup(text);
	if (p->privacy_text == NULL)
		return -1;
	cur = read_file(p->privacy, 65536);
	p->privacy_change = cur == NULL || strcmp(cur, p->privacy_text) != 0;
	free(cur);
	return 0;
}

/* --message-size: on the relay services (setup_services.c), and main.cf's
 * message_size_limit raised to it if lower — cleanup enforces main.cf's value on every
 * message, whatever smtpd announced. Local delivery refuses to start with a mailbox limit
 * below message_size_limit, so a nonzero one that is lower is refused, not changed. */
static int plan_message_size(const struct setup_opts *o, struct plan *p)
{
	static const char *const mailbox[] = { "mailbox_size_limit", "virtual_mailbox_limit" };
	char err[700], size[32];
	char *cur = NULL;
	long main_limit;

	if (o->message_size <= 0)
		return 0;
	for (size_t i = 0; i < sizeof mailbox / sizeof mailbox[0]; i++) {
		long v;

		if (adm_pf_get(o->config_dir, mailbox[i], &cur, err, sizeof err) < 0) {
			adm_err(p->ctx, "%s", err);
			return -1;
		}
		v = strtol(cur, NULL, 10);
		free(cur);
		if (v > 0 && v < o->message_size) {
			adm_err(p->ctx, "refused: --message-size %ld is above %s = %ld, and Postfix's "
			        "local delivery stops working when a message may be larger than a "
			        "mailbox; raise %s first (postconf -c %s -e %s=%ld) or choose a "
			        "smaller size\nnothing was changed", o->message_size, mailbox[i], v,
			        mailbox[i], o->config_dir, mailbox[i], o->message_size);
			return -1;
		}
	}
	if (adm_pf_get(o->config_dir, "message_size_limit", &cur, err, sizeof err) < 0) {
		adm_err(p->ctx, "%s", err);
		return -1;
	}
	main_limit = strtol(cur, NULL, 10);
	free(cur);
	if (main_limit == 0 || main_limit >= o->message_size)
		return 0;
	snprintf(size, sizeof size, "%ld", o->message_size);
	return want_main(p, o->config_dir, "message_size_limit", size);
}

/* The upstream password map's text ("nexthop user:password", 0600) and whether it or its
 * .db differ from what is there. */
static int plan_map(const struct setup_opts *o, struct plan *p, const char *password)
{
	size_t len = strlen(p->nexthop) + strlen(o->upstream_user) + strlen(password) + 200;
	char dbfile[PATH_MAX + 4];
	char *cur;

	p->map_text = malloc(len);
	if (p->map_text == NULL)
		return -1;
	snprintf(p->map_text, len, "# Written by relay-admin setup; root only (0600).\n"
	         "%s %s:%s\n", p->nexthop, o->upstream_user, password);
	cur = read_file(p->map, 65536);
	snprintf(dbfile, sizeof dbfile, "%s.db", p->map);
	p->map_change = cur == NULL || strcmp(cur, p->map_text) != 0 || access(dbfile, F_OK) != 0;
	if (cur) {
		explicit_bzero(cur, strlen(cur));
		free(cur);
	}
	return 0;
}

/* The upstream: a transport of its own, named by the relay services (see cmd_setup.c);
 * without --upstream, the one an earlier run set up is kept. Then main.cf's leftovers of
 * an older layout. */
static int plan_upstream(const struct setup_opts *o, struct plan *p, const char *password)
{
	char mapref[PATH_MAX + 8];

	snprintf(p->map, sizeof p->map, "%s/relay_upstream_passwd", o->config_dir);
	snprintf(mapref, sizeof mapref, "hash:%s", p->map);
	if (o->upstream) {
		bool implicit = o->upstream_tls ? strcmp(o->upstream_tls, "implicit") == 0 :
		                strstr(p->nexthop, "]:465") != NULL;

		snprintf(p->filter, sizeof p->filter, "%s:%s", ADM_SETUP_TRANSPORT, p->nexthop);
		if (o->upstream_insecure)
			adm_warn(p->ctx, "--upstream-insecure: the upstream's certificate is NOT "
			         "verified; anyone on the path can pose as %s and read the mail and "
			         "the upstream password", p->nexthop);
		if (o->upstream_ca && access(o->upstream_ca, R_OK) != 0) {
			adm_err(p->ctx, "refused: --upstream-ca %s: %s\nnothing was changed",
			        o->upstream_ca, strerror(errno));
			return -1;
		}
		if (o->upstream_user && plan_map(o, p, password) < 0)
			return -1;
		if (!o->upstream_user)
			adm_note(p->ctx, "no --upstream-user: the relay does not log in to %s",
			         p->nexthop);
		if (setup_plan_transport(p, o, implicit, o->upstream_user ? mapref : NULL) < 0)
			return -1;
	} else if (setup_keep_filter(p, o->config_dir) < 0) {
		return -1;
	}
	return plan_legacy(p, o->config_dir, mapref, o->upstream != NULL);
}

int setup_build_plan(const struct setup_opts *o, struct plan *p, const char *password)
{
	if (plan_preflight(o, p) < 0 || plan_cert(o, p) < 0 || plan_sasl(o, p) < 0 ||
	    plan_message_size(o, p) < 0)
		return -1;
	if (plan_privacy(o, p) < 0 || plan_upstream(o, p, password) < 0)
		return -1;
	if (setup_plan_service(p, o, o->port, false) < 0)
		return -1;
	if (o->tls_port && setup_plan_service(p, o, o->tls_port, true) < 0)
		return -1;
	return setup_plan_stale(p, o->config_dir);
}

bool setup_plan_empty(const struct plan *p)
{
	bool svc = false;

	for (size_t s = 0; s < p->nsvc; s++)
		svc = svc || p->svc[s].change;
	return p->nmain == 0 && p->ndel == 0 && !svc && p->nstale == 0 && !p->sasl_change &&
	       !p->map_change && !p->gen_cert && !p->privacy_change;
}

void setup_plan_print(FILE *f, const struct plan *p, const char *verb)
{
	for (size_t i = 0; i < p->nmain; i++) {
		const char *eq = strchr(p->main_kv[i], '=');

		fprintf(f, "%s main.cf: %.*s = %s   (was: %s)\n", verb, (int)(eq - p->main_kv[i]),
		       p->main_kv[i], eq + 1, p->main_old[i][0] ? p->main_old[i] : "empty");
	}
	for (size_t i = 0; i < p->ndel; i++)
		fprintf(f, "%s main.cf: remove %s   (was: %s; an earlier setup wrote it there, where "
		       "all mail used it: the upstream is now the %s transport of the relay "
		       "services)\n", verb, p->main_del[i], p->main_del_old[i], ADM_SETUP_TRANSPORT);
	for (size_t s = 0; s < p->nsvc; s++) {
		if (!p->svc[s].change)
			continue;
		fprintf(f, "%s master.cf: %s service %s:\n   ", verb,
		       p->svc[s].exists ? "replace" : "add", p->svc[s].name);
		for (size_t i = 0; i < p->svc[s].nwords; i++)
			fprintf(f, " %s", p->svc[s].words[i]);
		fputc('\n', f);
	}
	for (size_t i = 0; i < p->nstale; i++)
		fprintf(f, "%s master.cf: remove service %s (made by an earlier setup, port no longer "
		       "wanted)\n", verb, p->stale[i]);
	if (p->sasl_change)
		fprintf(f, "%s %s (relaydb)\n", verb, p->sasl_conf);
	if (p->privacy_change)
		fprintf(f, "%s %s (privacy: the relay's Received: line without the client's "
		        "address and HELO name)\n", verb, p->privacy);
	if (p->map_change)
		fprintf(f, "%s %s (0600, upstream login; password not shown) and postmap it\n", verb,
		       p->map);
	if (p->gen_cert)
		fprintf(f, "%s self-signed certificate %s and key %s\n", verb, p->cert, p->key);
}
