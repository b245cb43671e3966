/*
 * cmd_setup.c — `relay-admin setup`: configures a Postfix instance as the authenticated
 * relay (the how-to's port-443 service, done safely), idempotently, through postconf.
 *
 * What it does, in order: validates every option (contradictory or insecure input is
 * refused before anything is touched); reads the instance's current settings; checks the
 * certificate (or plans a self-signed one), the relaydb plugin and the users database;
 * computes the wanted state — main.cf parameters, the master.cf submission service(s),
 * smtpd.conf, the upstream password map — and compares it with what is there. With
 * --dry-run it prints the differences and stops. Otherwise it backs up the files it is
 * about to change into <config>/relay-admin-backup/<UTC time>/, applies the changes
 * (`postconf -e`, `postconf -M`, files written beside their target and renamed), runs
 * `postfix check` and reloads a running instance. A second run changes nothing.
 *
 * Scope on the instance: main.cf gets only what every part of Postfix should share (the
 * SASL config path and plugin path, the milter macros); everything about the submission
 * service — TLS mandatory, AUTH, restrictions, the certificate, the AUTH rate limit, the
 * milter, bare-newline and VRFY hardening — goes on the service with -o. The upstream —
 * smarthost, verified TLS, login — is a master.cf transport of its own (relay-upstream)
 * that only the relay services name, in content_filter: mail from sendmail or port 25
 * keeps the routing it had and never rides the upstream login past the milter. A main.cf
 * written by an earlier setup (relayhost, smtp_tls_*, smtp_sasl_* global) is moved over:
 * the values setup wrote there are removed, an admin's own are left.
 *
 * Secrets: the upstream password comes from RELAY_UPSTREAM_PASSWORD or stdin, never argv;
 * it lives in one buffer that is wiped, and in the 0600 map file postmap reads.
 *
 * Errors: exit status 0 done (or nothing to do); 2 (ADM_EXIT_USAGE) for refused input
 * (contradictory, insecure, malformed); 1 (ADM_EXIT_FAIL) when the machine is not ready
 * (plugin missing, bad certificate) or applying failed — always with the reason on stderr,
 * and "nothing was changed" whenever that is true.
 */
#include "adm.h"
#include "cert.h"
#include "postconf.h"
#include "safefs.h"
#include "setup_args.h"

#include "relay-config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef RELAY_SASL_PLUGINDIR
#define RELAY_SASL_PLUGINDIR "/usr/lib/x86_64-linux-gnu/sasl2"
#endif
#define SYSTEM_CA_FILE "/etc/ssl/certs/ca-certificates.crt"
#define DEFAULT_MILTER ADM_DEFAULT_MILTER
#define MILTER_MACROS "i {auth_type} {auth_authen} {auth_author} {mail_addr} {mail_host} " \
	"{mail_mailer} {tls_version} {cipher} {cipher_bits} {client_addr} {client_name} " \
	"{daemon_name}"
#define DEFAULT_RATE_LIMIT 20   /* AUTH commands per client IP per minute */
#define PASSWORD_MAX 1024
#define MAX_MAIN 40
#define MAX_DEL 16
#define MAX_SVC 3      /* the upstream transport and up to two relay services */
#define MAX_WORDS 64
#define MAX_STALE 8
#define SYSLOG_MARK "syslog_name=postfix/relay"   /* how setup's services are recognised */

struct setup_opts {
	const char *config_dir;
	const char *port;
	const char *tls_port;
	const char *cert, *key, *hostname;
	const char *db;
	const char *plugin_dir;
	const char *upstream, *upstream_tls, *upstream_user, *upstream_ca;
	bool upstream_insecure;
	const char *milter;
	bool no_milter;
	bool dry_run, no_reload;
	long rate_limit;
};

/* Everything computed before touching anything. Strings are owned (malloc'd). */
struct plan {
	char *main_kv[MAX_MAIN];       /* "name=value" to set */
	char *main_old[MAX_MAIN];      /* the value before, for the report */
	size_t nmain;
	char *main_del[MAX_DEL];       /* names to remove from main.cf (an earlier layout) */
	char *main_del_old[MAX_DEL];
	size_t ndel;
	struct {
		char name[300];            /* "443/inet", "relay-upstream/unix" */
		char *words[MAX_WORDS];
		size_t nwords;
		bool change;
		bool exists;
	} svc[MAX_SVC];
	size_t nsvc;
	char *stale[MAX_STALE];         /* "name/inet" of an earlier setup's services to remove */
	size_t nstale;
	char sasl_dir[PATH_MAX], sasl_conf[PATH_MAX + 16];
	char *sasl_conf_text;
	bool sasl_change;
	char map[PATH_MAX];
	char *map_text;                 /* holds the password: wiped on free */
	bool map_change;
	char cert[PATH_MAX], key[PATH_MAX];
	bool gen_cert;
	char nexthop[300];
	char filter[400];               /* content_filter of the relay services, or "" */
	gid_t postfix_gid;
};

static void plan_free(struct plan *p)
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
	if (p->map_text) {
		explicit_bzero(p->map_text, strlen(p->map_text));
		free(p->map_text);
	}
}

static void usage(FILE *f)
{
	fputs(
"usage: relay-admin setup [options]\n"
"  --postfix-config DIR    Postfix instance to configure (default /etc/postfix)\n"
"  --port [ADDR:]PORT      submission service with mandatory STARTTLS (default 443)\n"
"  --tls-port [ADDR:]PORT  also an implicit-TLS service on this port\n"
"  --cert FILE --key FILE  server certificate (PEM, chain allowed) and its key;\n"
"                          without them a self-signed certificate is generated\n"
"  --hostname NAME         name for a generated certificate (default: $myhostname)\n"
"  --db FILE               users database for relaydb (default: relay-admin --db,\n"
"                          $RELAY_DB, else " RELAY_DEFAULT_DB ")\n"
"  --sasl-plugin-dir DIR   load librelaydb.so from DIR (sets SASL_PATH for Postfix)\n"
"  --rate-limit N          AUTH commands per client IP and minute (default 20, 0 = off)\n"
"  --upstream HOST[:PORT]  smarthost for the relay services' mail (port 587 if omitted)\n"
"  --upstream-tls starttls|implicit  (default: implicit on 465, else starttls)\n"
"  --upstream-user NAME    upstream login; password from RELAY_UPSTREAM_PASSWORD or stdin\n"
"  --upstream-ca FILE      CA file to verify the upstream with (default: system CAs)\n"
"  --upstream-insecure     do not verify the upstream certificate (warns)\n"
"  --milter SOCKET         register relay-milter on the service (default " DEFAULT_MILTER "\n"
"                          when relay-milter is installed)\n"
"  --no-milter             do not register a milter\n"
"  --no-reload             do not reload a running Postfix\n"
"  --dry-run               print the changes; change nothing\n", f);
}

/* ---- validation ---------------------------------------------------------------------- */

__attribute__((format(printf, 1, 2)))
static int refuse(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "relay-admin setup: refused: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nnothing was changed\n", stderr);
	return 1;
}

static int validate(const struct setup_opts *o, struct plan *pl)
{
	char why[300];
	long port = 0, tport = 0, uport = 0;

	if (!adm_setup_plain_value(o->config_dir) || o->config_dir[0] != '/' ||
	    strlen(o->config_dir) > PATH_MAX / 2)
		return refuse("--postfix-config must be an absolute path without spaces, commas "
		              "or '$': %s", o->config_dir);
	if (!adm_setup_listen(o->port, &port, why, sizeof why))
		return refuse("--port: %s", why);
	if (o->tls_port) {
		if (!adm_setup_listen(o->tls_port, &tport, why, sizeof why))
			return refuse("--tls-port: %s", why);
		if (strcmp(o->tls_port, o->port) == 0 || tport == port)
			return refuse("--port and --tls-port are both %ld: one port cannot speak "
			              "STARTTLS and implicit TLS", port);
	}
	if ((o->cert == NULL) != (o->key == NULL))
		return refuse("--cert and --key go together");
	if (o->cert && (!adm_setup_plain_value(o->cert) || !adm_setup_plain_value(o->key) || o->cert[0] != '/' ||
	                o->key[0] != '/'))
		return refuse("--cert/--key must be absolute paths without spaces, commas or "
		              "'$': %s %s", o->cert, o->key);
	if (o->hostname && !adm_setup_plain_value(o->hostname))
		return refuse("--hostname '%s' is not a host name", o->hostname);
	if (!adm_setup_plain_value(o->db) || o->db[0] != '/')
		return refuse("--db must be an absolute path without spaces: %s", o->db);
	if (o->plugin_dir && (!adm_setup_plain_value(o->plugin_dir) || o->plugin_dir[0] != '/' ||
	                      strchr(o->plugin_dir, ':')))
		return refuse("--sasl-plugin-dir must be an absolute path without spaces or "
		              "colons: %s", o->plugin_dir);
	if (o->rate_limit < 0)
		return refuse("--rate-limit must be 0 or more");
	if (o->milter && o->no_milter)
		return refuse("--milter and --no-milter contradict each other");
	if (o->milter && (!adm_setup_plain_value(o->milter) ||
	                  (strncmp(o->milter, "unix:", 5) != 0 &&
	                   strncmp(o->milter, "inet:", 5) != 0)))
		return refuse("--milter '%s' is not unix:/path or inet:HOST:PORT", o->milter);
	if (o->upstream == NULL) {
		if (o->upstream_user || o->upstream_ca || o->upstream_tls || o->upstream_insecure)
			return refuse("--upstream-* options need --upstream HOST[:PORT]");
		return 0;
	}
	if (!adm_setup_upstream(o->upstream, pl->nexthop, sizeof pl->nexthop, &uport, why,
	                    sizeof why))
		return refuse("%s", why);
	if (o->upstream_tls && strcmp(o->upstream_tls, "starttls") != 0 &&
	    strcmp(o->upstream_tls, "implicit") != 0)
		return refuse("--upstream-tls must be starttls or implicit, not '%s'",
		              o->upstream_tls);
	if (o->upstream_tls && uport == 465 && strcmp(o->upstream_tls, "starttls") == 0)
		return refuse("port 465 speaks implicit TLS; --upstream-tls starttls contradicts it");
	if (o->upstream_tls && uport == 587 && strcmp(o->upstream_tls, "implicit") == 0)
		return refuse("port 587 speaks STARTTLS; --upstream-tls implicit contradicts it");
	if (o->upstream_insecure && o->upstream_ca)
		return refuse("--upstream-ca and --upstream-insecure contradict each other: either "
		              "verify against a CA or do not verify");
	if (o->upstream_ca && (!adm_setup_plain_value(o->upstream_ca) || o->upstream_ca[0] != '/'))
		return refuse("--upstream-ca must be an absolute path without spaces: %s",
		              o->upstream_ca);
	if (o->upstream_user && (o->upstream_user[0] == '\0' ||
	                         strpbrk(o->upstream_user, " \t\r\n:") != NULL))
		return refuse("--upstream-user '%s' may not be empty or contain spaces or ':'",
		              o->upstream_user);
	return 0;
}

/* ---- reading what is there ------------------------------------------------------------ */

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

/* The upstream password: RELAY_UPSTREAM_PASSWORD, else stdin (one line from a pipe; a
 * prompt with echo off on a terminal). Never argv. */
static int read_password(struct adm_ctx *ctx, char *out, size_t len)
{
	char *env = getenv("RELAY_UPSTREAM_PASSWORD");
	size_t n;
	int rc;

	if (env && env[0]) {
		if (strlen(env) >= len) {
			adm_err(ctx, "refused: RELAY_UPSTREAM_PASSWORD is too long");
			return ADM_EXIT_USAGE;
		}
		strcpy(out, env);
		/* postconf and postmap run as children: they must not inherit the password. */
		explicit_bzero(env, strlen(env));
		unsetenv("RELAY_UPSTREAM_PASSWORD");
	} else {
		rc = adm_read_secret(ctx, "upstream password: ", false, out, len);
		if (rc != ADM_EXIT_OK) {
			fputs("(--upstream-user needs the password on stdin or in "
			      "RELAY_UPSTREAM_PASSWORD)\nnothing was changed\n", stderr);
			return rc;
		}
	}
	n = strlen(out);
	if (n > 0 && (out[n - 1] == ' ' || out[n - 1] == '\t')) {
		/* postmap trims the end of a map line: the upstream would see another password */
		explicit_bzero(out, len);
		adm_err(ctx, "refused: the upstream password ends with a space, which Postfix's "
		        "password map cannot keep\nnothing was changed");
		return ADM_EXIT_USAGE;
	}
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f) {
			explicit_bzero(out, len);
			adm_err(ctx, "refused: the upstream password contains control characters\n"
			        "nothing was changed");
			return ADM_EXIT_USAGE;
		}
	return ADM_EXIT_OK;
}

/* ---- the plan ------------------------------------------------------------------------- */

static int want_main(struct plan *p, const char *dir, const char *name, const char *value)
{
	char err[700];
	char *cur = NULL;
	size_t len;

	if (p->nmain >= MAX_MAIN)
		return -1;
	if (adm_pf_get(dir, name, &cur, err, sizeof err) < 0) {
		fprintf(stderr, "relay-admin setup: %s\n", err);
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

static int add_word(struct plan *p, size_t s, const char *word)
{
	if (p->svc[s].nwords >= MAX_WORDS)
		return -1;
	p->svc[s].words[p->svc[s].nwords] = strdup(word);
	return p->svc[s].words[p->svc[s].nwords++] ? 0 : -1;
}

/* "-o" "name=value": one master.cf override, two words as `postconf -M` prints them. */
static int opt_word(struct plan *p, size_t s, const char *name, const char *value)
{
	char buf[PATH_MAX + 200];

	snprintf(buf, sizeof buf, "%s=%s", name, value);
	return add_word(p, s, "-o") < 0 ? -1 : add_word(p, s, buf);
}

/* Compares the entry planned in svc[s] with master.cf's and counts it in. */
static int plan_entry_done(struct plan *p, const char *dir, size_t s)
{
	char err[700];
	char *cur = NULL;

	if (adm_pf_service_get(dir, p->svc[s].name, &cur, err, sizeof err) < 0) {
		fprintf(stderr, "relay-admin setup: %s\n", err);
		return -1;
	}
	p->svc[s].exists = cur[0] != '\0';
	p->svc[s].change = !adm_pf_entry_equal(cur, (const char *const *)p->svc[s].words,
	                                       p->svc[s].nwords);
	free(cur);
	p->nsvc = s + 1;
	return 0;
}

/* The upstream transport: an smtp client whose -o overrides carry everything about the
 * upstream (verified TLS, CA, wrapper mode, the login). Only mail the relay services
 * hand it (content_filter) uses it; main.cf's smtp_* stay as the admin had them. */
static int plan_transport(struct plan *p, const struct setup_opts *o, bool implicit,
                          const char *mapref)
{
	size_t s = p->nsvc;
	int rc = 0;

	if (s >= MAX_SVC)
		return -1;
	snprintf(p->svc[s].name, sizeof p->svc[s].name, "%s/unix", ADM_SETUP_TRANSPORT);
	/* type private unpriv chroot wakeup maxproc: chroot off, so the CA file and the map
	 * are read at their real paths on every Postfix build */
	const char *cols[] = { ADM_SETUP_TRANSPORT, "unix", "-", "-", "n", "-", "-", "smtp" };
	for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++)
		rc |= add_word(p, s, cols[i]);
	rc |= opt_word(p, s, "syslog_name", "postfix/" ADM_SETUP_TRANSPORT);
	rc |= opt_word(p, s, "smtp_tls_security_level", o->upstream_insecure ? "encrypt" : "secure");
	rc |= opt_word(p, s, "smtp_tls_CAfile", o->upstream_ca ? o->upstream_ca : SYSTEM_CA_FILE);
	rc |= opt_word(p, s, "smtp_tls_wrappermode", implicit ? "yes" : "no");
	rc |= opt_word(p, s, "smtp_tls_protocols", ">=TLSv1.2");
	rc |= opt_word(p, s, "smtp_tls_mandatory_protocols", ">=TLSv1.2");
	if (mapref) {
		rc |= opt_word(p, s, "smtp_sasl_auth_enable", "yes");
		rc |= opt_word(p, s, "smtp_sasl_password_maps", mapref);
		rc |= opt_word(p, s, "smtp_sasl_security_options", "noanonymous");
		rc |= opt_word(p, s, "smtp_sasl_tls_security_options", "noanonymous");
	} else {
		rc |= opt_word(p, s, "smtp_sasl_auth_enable", "no");
	}
	if (rc)
		return -1;
	return plan_entry_done(p, o->config_dir, s);
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
		fprintf(stderr, "relay-admin setup: %s\n", err);
		goto out;
	}
	rc = 0;
	if (!adm_setup_legacy_layout(relayhost, maps, mapref, upstream ? p->nexthop : NULL))
		goto out;
	if (!upstream) {
		fprintf(stderr, "note: main.cf still holds the upstream an earlier relay-admin setup "
		        "wrote (relayhost %s): mail from sendmail and port 25 uses it too. Rerun "
		        "setup with --upstream ... to confine it to the relay services.\n",
		        relayhost[0] ? relayhost : "(none)");
		goto out;
	}
	for (size_t i = 0; adm_setup_legacy_names[i] && rc == 0; i++) {
		const char *name = adm_setup_legacy_names[i];
		char *v = NULL;

		if (adm_pf_get_explicit(dir, name, &v, err, sizeof err) < 0) {
			fprintf(stderr, "relay-admin setup: %s\n", err);
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

/* Without --upstream a re-run keeps the upstream an earlier run set up: the relay services'
 * content_filter towards our transport, if that transport is still there. */
static int keep_filter(struct plan *p, const char *dir)
{
	static const char want[] = "content_filter=" ADM_SETUP_TRANSPORT ":";
	char err[700], tname[64];
	char *all = NULL, *transport = NULL, *save = NULL;

	snprintf(tname, sizeof tname, "%s/unix", ADM_SETUP_TRANSPORT);
	if (adm_pf_service_get(dir, tname, &transport, err, sizeof err) < 0 ||
	    adm_pf_services(dir, &all, err, sizeof err) < 0) {
		fprintf(stderr, "relay-admin setup: %s\n", err);
		free(transport);
		return -1;
	}
	for (char *line = strtok_r(all, "\n", &save); line && transport[0] && !p->filter[0];
	     line = strtok_r(NULL, "\n", &save)) {
		const char *w = strstr(line, want);
		size_t len;

		if (w == NULL || strstr(line, SYSLOG_MARK) == NULL || (w > line && w[-1] != ' '))
			continue;
		w += strlen("content_filter=");
		len = strcspn(w, " \t");
		if (len < sizeof p->filter)
			snprintf(p->filter, sizeof p->filter, "%.*s", (int)len, w);
	}
	free(all);
	free(transport);
	return 0;
}

static int plan_service(struct plan *p, const struct setup_opts *o, const char *listen,
                        bool wrapper)
{
	size_t s = p->nsvc;
	char rate[32];
	int rc = 0;

	if (s >= MAX_SVC)
		return -1;
	snprintf(p->svc[s].name, sizeof p->svc[s].name, "%s/inet", listen);
	snprintf(rate, sizeof rate, "%ld", o->rate_limit);
	rc |= add_word(p, s, listen);
	/* type private unpriv chroot wakeup maxproc: chroot off, so smtpd reads the users
	 * database at its real path (the plugin opens it lazily, after the chroot). */
	const char *cols[] = { "inet", "n", "-", "n", "-", "-", "smtpd" };
	for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++)
		rc |= add_word(p, s, cols[i]);
	/* one word after "postfix/": fail2ban's postfix filter (Debian 12) matches
	 * postfix/<word>/smtpd, so "relay-tls" would hide the TLS port's failures from it */
	rc |= opt_word(p, s, "syslog_name", wrapper ? "postfix/relaytls" : "postfix/relay");
	if (wrapper)
		rc |= opt_word(p, s, "smtpd_tls_wrappermode", "yes");
	rc |= opt_word(p, s, "smtpd_tls_security_level", "encrypt");
	rc |= opt_word(p, s, "smtpd_tls_auth_only", "yes");
	rc |= opt_word(p, s, "smtpd_tls_cert_file", p->cert);
	rc |= opt_word(p, s, "smtpd_tls_key_file", p->key);
	rc |= opt_word(p, s, "smtpd_tls_protocols", ">=TLSv1.2");
	rc |= opt_word(p, s, "smtpd_tls_mandatory_protocols", ">=TLSv1.2");
	rc |= opt_word(p, s, "smtpd_sasl_auth_enable", "yes");
	rc |= opt_word(p, s, "smtpd_sasl_security_options", "noanonymous");
	rc |= opt_word(p, s, "smtpd_client_auth_rate_limit", rate);
	rc |= opt_word(p, s, "smtpd_client_restrictions", "permit_sasl_authenticated,reject");
	rc |= opt_word(p, s, "smtpd_relay_restrictions", "permit_sasl_authenticated,reject");
	rc |= opt_word(p, s, "smtpd_recipient_restrictions", "permit_sasl_authenticated,reject");
	rc |= opt_word(p, s, "milter_macro_daemon_name", "ORIGINATING");
	/* <LF>.<CR><LF> must not end DATA (SMTP smuggling); "normalize" still accepts the bare
	 * LFs real clients send inside a message. Excluding $mynetworks (the default) would
	 * exempt exactly the loopback and LAN clients of a relay. */
	rc |= opt_word(p, s, "smtpd_forbid_bare_newline", "normalize");
	rc |= opt_word(p, s, "smtpd_forbid_bare_newline_exclusions", "");
	/* VRFY would answer for addresses after AUTH: nothing a relay client needs */
	rc |= opt_word(p, s, "disable_vrfy_command", "yes");
	if (o->milter) {
		rc |= opt_word(p, s, "smtpd_milters", o->milter);
		rc |= opt_word(p, s, "milter_default_action", "tempfail");
		rc |= opt_word(p, s, "milter_protocol", "6");
	}
	/* everything accepted here — and only that — goes to the upstream transport */
	if (p->filter[0])
		rc |= opt_word(p, s, "content_filter", p->filter);
	if (rc)
		return -1;
	return plan_entry_done(p, o->config_dir, s);
}

/* Services an earlier setup made (recognised by their syslog_name) on ports no longer
 * wanted: a changed --port must not leave the old port open. */
static int plan_stale(struct plan *p, const char *dir)
{
	char err[700];
	char *all = NULL, *save = NULL;

	if (adm_pf_services(dir, &all, err, sizeof err) < 0) {
		fprintf(stderr, "relay-admin setup: %s\n", err);
		return -1;
	}
	for (char *line = strtok_r(all, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char name[300], type[32], key[340];
		bool wanted = false, ours = false;
		const char *w = line;

		if (sscanf(line, "%299s %31s", name, type) != 2 || strcmp(type, "inet") != 0)
			continue;
		while ((w = strstr(w, SYSLOG_MARK)) != NULL) {
			const char *end = w + strlen(SYSLOG_MARK);

			/* exactly postfix/relay or postfix/relaytls, the names setup gives */
			if (strncmp(end, "tls", 3) == 0)
				end += 3;
			if (*end == '\0' || *end == ' ' || *end == '\t')
				ours = true;
			w = end;
		}
		snprintf(key, sizeof key, "%s/inet", name);
		for (size_t s = 0; s < p->nsvc; s++)
			wanted = wanted || strcmp(p->svc[s].name, key) == 0;
		if (!ours || wanted || p->nstale >= MAX_STALE)
			continue;
		p->stale[p->nstale] = strdup(key);
		if (p->stale[p->nstale] == NULL) {
			free(all);
			return -1;
		}
		p->nstale++;
	}
	free(all);
	return 0;
}

static bool relay_milter_installed(void)
{
	static const char *const paths[] = { "/usr/local/sbin/relay-milter",
	                                     "/usr/sbin/relay-milter",
	                                     "/usr/local/bin/relay-milter" };

	for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
		if (access(paths[i], X_OK) == 0)
			return true;
	return false;
}

/* Warnings about the users database that do not stop setup (it may be created later). */
static void check_db(const char *db, gid_t postfix_gid)
{
	struct stat st;

	if (stat(db, &st) < 0) {
		fprintf(stderr, "warning: users database %s does not exist yet: create it with "
		        "`relay-admin --db %s init`; until then AUTH answers 454\n", db, db);
		return;
	}
	if (!(st.st_mode & S_IROTH) && !((st.st_mode & S_IRGRP) && st.st_gid == postfix_gid))
		fprintf(stderr, "warning: users database %s is not readable by group postfix; "
		        "fix: chown root:postfix %s && chmod 0640 %s\n", db, db, db);
}

static int build_plan(const struct setup_opts *o, struct plan *p, const char *password)
{
	char err[700], warn[400], plugin[PATH_MAX + 20], mapref[PATH_MAX + 8];
	char *hostname = NULL, *env = NULL, *owner = NULL;
	struct passwd *pw;
	int rc = -1;

	if (adm_pf_get(o->config_dir, "mail_owner", &owner, err, sizeof err) < 0) {
		char maincf[PATH_MAX + 16];

		snprintf(maincf, sizeof maincf, "%s/main.cf", o->config_dir);
		fprintf(stderr, "relay-admin setup: cannot read the Postfix configuration in %s: "
		        "%s\n%snothing was changed\n", o->config_dir, err,
		        access(maincf, F_OK) != 0 ? "(Postfix is not configured yet: give it its "
		        "basics first, e.g. dpkg-reconfigure postfix)\n" : "");
		return -1;
	}
	pw = getpwnam(owner);
	if (pw == NULL) {
		fprintf(stderr, "relay-admin setup: refused: Postfix's mail_owner '%s' is not a "
		        "user here\nnothing was changed\n", owner);
		goto out;
	}
	p->postfix_gid = pw->pw_gid;

	/* the plugin must be where smtpd will look for it */
	snprintf(plugin, sizeof plugin, "%s/librelaydb.so",
	         o->plugin_dir ? o->plugin_dir : RELAY_SASL_PLUGINDIR);
	if (access(plugin, R_OK) != 0) {
		fprintf(stderr, "relay-admin setup: refused: the relaydb SASL plugin is not "
		        "installed: %s is missing (run `meson install`, or pass --sasl-plugin-dir "
		        "DIR)\nnothing was changed\n", plugin);
		goto out;
	}
	check_db(o->db, p->postfix_gid);

	/* certificate */
	if (o->cert) {
		if (snprintf(p->cert, sizeof p->cert, "%s", o->cert) >= (int)sizeof p->cert ||
		    snprintf(p->key, sizeof p->key, "%s", o->key) >= (int)sizeof p->key)
			goto out;
		if (adm_pf_get(o->config_dir, "myhostname", &hostname, err, sizeof err) < 0)
			goto out;
		if (adm_cert_check(p->cert, p->key, o->hostname ? o->hostname : hostname,
		                   p->postfix_gid, warn, sizeof warn, err, sizeof err) < 0) {
			fprintf(stderr, "relay-admin setup: refused: %s\nnothing was changed\n", err);
			goto out;
		}
		if (warn[0])
			fprintf(stderr, "warning: %s\n", warn);
	} else {
		snprintf(p->cert, sizeof p->cert, "%s/relay-cert.pem", o->config_dir);
		snprintf(p->key, sizeof p->key, "%s/relay-key.pem", o->config_dir);
		p->gen_cert = access(p->cert, F_OK) != 0 ||
		              adm_cert_check(p->cert, p->key, NULL, p->postfix_gid, NULL, 0,
		                             err, sizeof err) < 0;
		fprintf(stderr, "warning: no --cert/--key given: the relay uses a self-signed "
		        "certificate (%s); clients must be told to trust it or not to verify. "
		        "Use a real certificate (e.g. from Let's Encrypt) with --cert/--key.\n",
		        p->cert);
	}

	/* SASL: smtpd.conf in <config>/sasl — where Debian's smtpd looks — and
	 * cyrus_sasl_config_path pointing there for builds without Debian's patch. */
	snprintf(p->sasl_dir, sizeof p->sasl_dir, "%s/sasl", o->config_dir);
	snprintf(p->sasl_conf, sizeof p->sasl_conf, "%s/smtpd.conf", p->sasl_dir);
	{
		size_t len = strlen(o->db) + 400;
		char *cur = read_file(p->sasl_conf, 65536);

		p->sasl_conf_text = malloc(len);
		if (p->sasl_conf_text == NULL) {
			free(cur);
			goto out;
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
	}
	if (want_main(p, o->config_dir, "cyrus_sasl_config_path", p->sasl_dir) < 0 ||
	    want_main(p, o->config_dir, "smtpd_sasl_type", "cyrus") < 0 ||
	    want_main(p, o->config_dir, "smtpd_sasl_path", "smtpd") < 0)
		goto out;
	if (o->plugin_dir) {
		/* SASL_PATH replaces libsasl2's folder: keep the system one after ours, so the
		 * PLAIN/LOGIN/SCRAM mechanisms still load. */
		char *buf, *save = NULL;
		size_t len;

		if (adm_pf_get(o->config_dir, "import_environment", &env, err, sizeof err) < 0)
			goto out;
		len = strlen(env) + strlen(o->plugin_dir) + sizeof RELAY_SASL_PLUGINDIR + 32;
		buf = calloc(1, len);
		if (buf == NULL)
			goto out;
		for (char *w = strtok_r(env, " \t,", &save); w; w = strtok_r(NULL, " \t,", &save)) {
			if (strncmp(w, "SASL_PATH=", 10) == 0)
				continue;
			strcat(buf, w);
			strcat(buf, " ");
		}
		strcat(buf, "SASL_PATH=");
		strcat(buf, o->plugin_dir);
		strcat(buf, ":" RELAY_SASL_PLUGINDIR);
		rc = want_main(p, o->config_dir, "import_environment", buf);
		free(buf);
		if (rc < 0)
			goto out;
		rc = -1;
	}
	if (o->milter && want_main(p, o->config_dir, "milter_mail_macros", MILTER_MACROS) < 0)
		goto out;

	/* upstream: a transport of its own, named by the relay services (see the header) */
	snprintf(p->map, sizeof p->map, "%s/relay_upstream_passwd", o->config_dir);
	snprintf(mapref, sizeof mapref, "hash:%s", p->map);
	if (o->upstream) {
		bool implicit = o->upstream_tls ? strcmp(o->upstream_tls, "implicit") == 0 :
		                strstr(p->nexthop, "]:465") != NULL;

		snprintf(p->filter, sizeof p->filter, "%s:%s", ADM_SETUP_TRANSPORT, p->nexthop);
		if (o->upstream_insecure)
			fprintf(stderr, "warning: --upstream-insecure: the upstream's certificate is "
			        "NOT verified; anyone on the path can pose as %s and read the mail "
			        "and the upstream password\n", p->nexthop);
		if (o->upstream_ca && access(o->upstream_ca, R_OK) != 0) {
			fprintf(stderr, "relay-admin setup: refused: --upstream-ca %s: %s\nnothing "
			        "was changed\n", o->upstream_ca, strerror(errno));
			goto out;
		}
		if (o->upstream_user) {
			size_t len = strlen(p->nexthop) + strlen(o->upstream_user) +
			             strlen(password) + 200;
			char *cur;

			p->map_text = malloc(len);
			if (p->map_text == NULL)
				goto out;
			snprintf(p->map_text, len, "# Written by relay-admin setup; root only (0600).\n"
			         "%s %s:%s\n", p->nexthop, o->upstream_user, password);
			cur = read_file(p->map, 65536);
			{
				char dbfile[PATH_MAX + 4];

				snprintf(dbfile, sizeof dbfile, "%s.db", p->map);
				p->map_change = cur == NULL || strcmp(cur, p->map_text) != 0 ||
				                access(dbfile, F_OK) != 0;
			}
			if (cur) {
				explicit_bzero(cur, strlen(cur));
				free(cur);
			}
		} else {
			fprintf(stderr, "note: no --upstream-user: the relay does not log in to %s\n",
			        p->nexthop);
		}
		if (plan_transport(p, o, implicit, o->upstream_user ? mapref : NULL) < 0)
			goto out;
	} else if (keep_filter(p, o->config_dir) < 0) {
		goto out;
	}
	if (plan_legacy(p, o->config_dir, mapref, o->upstream != NULL) < 0)
		goto out;

	if (plan_service(p, o, o->port, false) < 0)
		goto out;
	if (o->tls_port && plan_service(p, o, o->tls_port, true) < 0)
		goto out;
	if (plan_stale(p, o->config_dir) < 0)
		goto out;
	rc = 0;
out:
	free(owner);
	free(hostname);
	free(env);
	return rc;
}

static bool plan_empty(const struct plan *p)
{
	bool svc = false;

	for (size_t s = 0; s < p->nsvc; s++)
		svc = svc || p->svc[s].change;
	return p->nmain == 0 && p->ndel == 0 && !svc && p->nstale == 0 && !p->sasl_change &&
	       !p->map_change && !p->gen_cert;
}

static void print_plan(const struct plan *p, const char *verb)
{
	for (size_t i = 0; i < p->nmain; i++) {
		const char *eq = strchr(p->main_kv[i], '=');

		printf("%s main.cf: %.*s = %s   (was: %s)\n", verb, (int)(eq - p->main_kv[i]),
		       p->main_kv[i], eq + 1, p->main_old[i][0] ? p->main_old[i] : "empty");
	}
	for (size_t i = 0; i < p->ndel; i++)
		printf("%s main.cf: remove %s   (was: %s; an earlier setup wrote it there, where "
		       "all mail used it: the upstream is now the %s transport of the relay "
		       "services)\n", verb, p->main_del[i], p->main_del_old[i], ADM_SETUP_TRANSPORT);
	for (size_t s = 0; s < p->nsvc; s++) {
		if (!p->svc[s].change)
			continue;
		printf("%s master.cf: %s service %s:\n   ", verb,
		       p->svc[s].exists ? "replace" : "add", p->svc[s].name);
		for (size_t i = 0; i < p->svc[s].nwords; i++)
			printf(" %s", p->svc[s].words[i]);
		putchar('\n');
	}
	for (size_t i = 0; i < p->nstale; i++)
		printf("%s master.cf: remove service %s (made by an earlier setup, port no longer "
		       "wanted)\n", verb, p->stale[i]);
	if (p->sasl_change)
		printf("%s %s (relaydb)\n", verb, p->sasl_conf);
	if (p->map_change)
		printf("%s %s (0600, upstream login; password not shown) and postmap it\n", verb,
		       p->map);
	if (p->gen_cert)
		printf("%s self-signed certificate %s and key %s\n", verb, p->cert, p->key);
}

/* ---- applying ------------------------------------------------------------------------- */

/* Files are written through folder descriptors (sql/safefs.h): if a folder on the way
 * (the Postfix folder, sasl/, the backup folder) is writable by another user, a link it
 * plants cannot make root write, rename or remove a file elsewhere. */

/* Copies `from` (relative to the Postfix folder cfd) into a new file `to` in the backup
 * folder wfd. Reading may follow a link (main.cf managed elsewhere is fine; the copy stays
 * in root's 0700 folder), but only a regular file is copied: a FIFO would hang us. */
static int copy_file(int cfd, const char *from, int wfd, const char *to, mode_t mode,
                     char *err, size_t errlen)
{
	char buf[8192];
	int in = openat(cfd, from, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC), out;
	struct stat st;
	ssize_t n;
	int rc = 0;

	if (in < 0) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", from, strerror(errno));
		return -1;
	}
	if (fstat(in, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", from);
		close(in);
		return -1;
	}
	if (unlinkat(wfd, to, 0) < 0 && errno != ENOENT) {
		snprintf(err, errlen, "%s: %s", to, strerror(errno));
		close(in);
		return -1;
	}
	out = openat(wfd, to, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (out < 0) {
		snprintf(err, errlen, "%s: %s", to, strerror(errno));
		close(in);
		return -1;
	}
	while ((n = read(in, buf, sizeof buf)) > 0)
		if (write(out, buf, (size_t)n) != n) {
			rc = -1;
			break;
		}
	if (n < 0)
		rc = -1;
	explicit_bzero(buf, sizeof buf);
	close(in);
	if (close(out) < 0)
		rc = -1;
	if (rc < 0)
		snprintf(err, errlen, "copying %s: %s", from, strerror(errno));
	return rc;
}

/* <dir>/relay-admin-backup/<UTC time>/: both folders must be root's and closed to others
 * (they hold a copy of the upstream password map). */
static int backup(const char *dir, char *where, size_t len, char *err, size_t errlen)
{
	char stamp[96];  /* ints of any size fit, for the compiler's sake */
	time_t now = time(NULL);
	struct tm tm;
	const char *files[] = { "main.cf", "master.cf", "sasl/smtpd.conf",
	                        "relay_upstream_passwd" };
	int cfd, bfd = -1, wfd = -1, rc = -1;

	gmtime_r(&now, &tm);
	snprintf(stamp, sizeof stamp, "%04d%02d%02dT%02d%02d%02dZ", tm.tm_year + 1900,
	         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
	snprintf(where, len, "%s/relay-admin-backup/%s", dir, stamp);
	cfd = sfs_open_dir(dir, 0, NULL, err, errlen);
	if (cfd < 0)
		return -1;
	bfd = sfs_mkdir_private_at(cfd, "relay-admin-backup", 0700, err, errlen);
	if (bfd >= 0)
		wfd = sfs_mkdir_private_at(bfd, stamp, 0700, err, errlen);
	if (wfd < 0)
		goto out;
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		const char *name = strrchr(files[i], '/') ? strrchr(files[i], '/') + 1 : files[i];

		if (copy_file(cfd, files[i], wfd, name, 0600, err, errlen) < 0)
			goto out;
	}
	rc = 0;
out:
	if (wfd >= 0)
		close(wfd);
	if (bfd >= 0)
		close(bfd);
	close(cfd);
	return rc;
}

/* Writes `text` beside `path` (owner root:root, `mode`) and renames it into place. */
static int write_atomic(const char *path, const char *text, mode_t mode, char *err,
                        size_t errlen)
{
	char name[NAME_MAX + 1];
	int dirfd = sfs_open_parent(path, 0, NULL, name, sizeof name, err, errlen), rc;

	if (dirfd < 0)
		return -1;
	rc = sfs_write_atomic_at(dirfd, name, path, text, strlen(text), mode, 0, 0, err, errlen);
	close(dirfd);
	return rc;
}

/* mkdir -p of the SASL folder, then mode 0755 through its descriptor (owner unchanged; it
 * must be root's: whoever owns it decides what smtpd.conf says): Postfix's smtpd reads
 * smtpd.conf from it after dropping privileges. */
static int make_sasl_dir(const char *dir, char *err, size_t errlen)
{
	int fd = sfs_open_dir(dir, 0755, NULL, err, errlen), rc;

	if (fd < 0)
		return -1;
	rc = sfs_set_dir_owner(fd, dir, (uid_t)-1, (gid_t)-1, 0755, err, errlen);
	close(fd);
	return rc;
}

/* postmap wrote `map`.db beside the map: root's and 0600, set through a descriptor. */
static int secure_map_db(const char *map, char *err, size_t errlen)
{
	char dbfile[PATH_MAX + 4], name[NAME_MAX + 1];
	int dirfd, rc;

	snprintf(dbfile, sizeof dbfile, "%s.db", map);
	dirfd = sfs_open_parent(dbfile, 0, NULL, name, sizeof name, err, errlen);
	if (dirfd < 0)
		return -1;
	rc = sfs_set_owner_at(dirfd, name, dbfile, 0, 0, 0600, false, err, errlen);
	close(dirfd);
	return rc;
}

static int apply(const struct setup_opts *o, struct plan *p)
{
	char err[2 * PATH_MAX + 256], where[PATH_MAX + 64];

	if (backup(o->config_dir, where, sizeof where, err, sizeof err) < 0) {
		fprintf(stderr, "relay-admin setup: cannot back up into %s: %s\nnothing was "
		        "changed\n", o->config_dir, err);
		return 1;
	}
	printf("backup of the previous configuration: %s\n", where);
	if (p->gen_cert) {
		char *host = NULL;

		if (o->hostname == NULL &&
		    adm_pf_get(o->config_dir, "myhostname", &host, err, sizeof err) < 0)
			goto fail;
		if (adm_cert_generate(o->hostname ? o->hostname : host, p->cert, p->key,
		                      p->postfix_gid, err, sizeof err) < 0) {
			free(host);
			goto fail;
		}
		free(host);
	}
	if (p->sasl_change) {
		if (make_sasl_dir(p->sasl_dir, err, sizeof err) < 0)
			goto fail;
		if (write_atomic(p->sasl_conf, p->sasl_conf_text, 0644, err, sizeof err) < 0)
			goto fail;
	}
	if (p->map_change) {
		if (write_atomic(p->map, p->map_text, 0600, err, sizeof err) < 0 ||
		    adm_pf_postmap(o->config_dir, p->map, err, sizeof err) < 0 ||
		    secure_map_db(p->map, err, sizeof err) < 0)
			goto fail;
	}
	if (adm_pf_set(o->config_dir, (const char *const *)p->main_kv, p->nmain, err,
	               sizeof err) < 0 ||
	    adm_pf_unset(o->config_dir, (const char *const *)p->main_del, p->ndel, err,
	                 sizeof err) < 0)
		goto fail;
	for (size_t s = 0; s < p->nsvc; s++) {
		size_t len = 1;
		char *entry;

		if (!p->svc[s].change)
			continue;
		for (size_t i = 0; i < p->svc[s].nwords; i++)
			len += strlen(p->svc[s].words[i]) + 1;
		entry = calloc(1, len);
		if (entry == NULL)
			goto fail;
		for (size_t i = 0; i < p->svc[s].nwords; i++) {
			if (i)
				strcat(entry, " ");
			strcat(entry, p->svc[s].words[i]);
		}
		if (adm_pf_service_set(o->config_dir, p->svc[s].name, entry, err, sizeof err) < 0) {
			free(entry);
			goto fail;
		}
		free(entry);
	}
	for (size_t i = 0; i < p->nstale; i++)
		if (adm_pf_service_delete(o->config_dir, p->stale[i], err, sizeof err) < 0)
			goto fail;
	print_plan(p, "done:");
	if (adm_pf_check(o->config_dir, err, sizeof err) < 0)
		fprintf(stderr, "warning: postfix check complains: %s\n", err);
	if (!o->no_reload && adm_pf_running(o->config_dir)) {
		bool env_changed = false;

		for (size_t i = 0; i < p->nmain; i++)
			env_changed = env_changed ||
			              strncmp(p->main_kv[i], "import_environment=", 19) == 0;
		if (adm_pf_reload(o->config_dir, err, sizeof err) < 0)
			goto fail;
		printf("reloaded the running Postfix\n");
		/* master applies import_environment only when it starts */
		if (env_changed)
			printf("note: import_environment changed (SASL_PATH): restart Postfix for it "
			       "to take effect (systemctl restart postfix, or postfix -c %s stop; "
			       "postfix -c %s start)\n", o->config_dir, o->config_dir);
	} else if (!o->no_reload) {
		printf("Postfix (%s) is not running: start it with `postfix -c %s start`\n",
		       o->config_dir, o->config_dir);
	}
	return 0;
fail:
	fprintf(stderr, "relay-admin setup: failed: %s\nthe previous files are in %s\n", err,
	        where);
	return 1;
}

/* ---- entry ---------------------------------------------------------------------------- */

enum {
	OPT_CONFIG = 256, OPT_PORT, OPT_TLS_PORT, OPT_CERT, OPT_KEY, OPT_HOSTNAME, OPT_DB,
	OPT_PLUGIN, OPT_RATE, OPT_UP, OPT_UP_TLS, OPT_UP_USER, OPT_UP_CA, OPT_UP_INSECURE,
	OPT_MILTER, OPT_NO_MILTER, OPT_NO_RELOAD, OPT_DRY_RUN,
};

int adm_cmd_setup(struct adm_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "postfix-config", required_argument, NULL, OPT_CONFIG },
		{ "port", required_argument, NULL, OPT_PORT },
		{ "tls-port", required_argument, NULL, OPT_TLS_PORT },
		{ "cert", required_argument, NULL, OPT_CERT },
		{ "key", required_argument, NULL, OPT_KEY },
		{ "hostname", required_argument, NULL, OPT_HOSTNAME },
		{ "db", required_argument, NULL, OPT_DB },
		{ "sasl-plugin-dir", required_argument, NULL, OPT_PLUGIN },
		{ "rate-limit", required_argument, NULL, OPT_RATE },
		{ "upstream", required_argument, NULL, OPT_UP },
		{ "upstream-tls", required_argument, NULL, OPT_UP_TLS },
		{ "upstream-user", required_argument, NULL, OPT_UP_USER },
		{ "upstream-ca", required_argument, NULL, OPT_UP_CA },
		{ "upstream-insecure", no_argument, NULL, OPT_UP_INSECURE },
		{ "milter", required_argument, NULL, OPT_MILTER },
		{ "no-milter", no_argument, NULL, OPT_NO_MILTER },
		{ "no-reload", no_argument, NULL, OPT_NO_RELOAD },
		{ "dry-run", no_argument, NULL, OPT_DRY_RUN },
		{ NULL, 0, NULL, 0 },
	};
	struct setup_opts o = {
		.config_dir = "/etc/postfix",
		.port = "443",
		.db = ctx->db_path,
		.rate_limit = DEFAULT_RATE_LIMIT,
	};
	struct plan p = { 0 };
	char password[PASSWORD_MAX];
	int c, rc;

	password[0] = '\0';
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_CONFIG: o.config_dir = optarg; break;
		case OPT_PORT: o.port = optarg; break;
		case OPT_TLS_PORT: o.tls_port = optarg; break;
		case OPT_CERT: o.cert = optarg; break;
		case OPT_KEY: o.key = optarg; break;
		case OPT_HOSTNAME: o.hostname = optarg; break;
		case OPT_DB: o.db = optarg; break;
		case OPT_PLUGIN: o.plugin_dir = optarg; break;
		case OPT_RATE: {
			char *end;

			o.rate_limit = strtol(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || o.rate_limit > 100000) {
				fprintf(stderr, "relay-admin setup: --rate-limit '%s' is not a "
				        "number of AUTH commands per minute\n", optarg);
				return 2;
			}
			break;
		}
		case OPT_UP: o.upstream = optarg; break;
		case OPT_UP_TLS: o.upstream_tls = optarg; break;
		case OPT_UP_USER: o.upstream_user = optarg; break;
		case OPT_UP_CA: o.upstream_ca = optarg; break;
		case OPT_UP_INSECURE: o.upstream_insecure = true; break;
		case OPT_MILTER: o.milter = optarg; break;
		case OPT_NO_MILTER: o.no_milter = true; break;
		case OPT_NO_RELOAD: o.no_reload = true; break;
		case OPT_DRY_RUN: o.dry_run = true; break;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "relay-admin setup: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (geteuid() != 0 && !o.dry_run) {
		fputs("relay-admin setup: must run as root (it writes Postfix's configuration)\n",
		      stderr);
		return 1;
	}
	if (validate(&o, &p) != 0)
		return ADM_EXIT_USAGE;
	if (!o.milter && !o.no_milter && relay_milter_installed()) {
		o.milter = DEFAULT_MILTER;
		printf("relay-milter is installed: registering it (%s); --no-milter to skip\n",
		       o.milter);
	}
	if (o.upstream_user && (rc = read_password(ctx, password, sizeof password)) != 0)
		return rc;
	rc = build_plan(&o, &p, password) < 0 ? 1 : 0;
	explicit_bzero(password, sizeof password);
	if (rc == 0) {
		if (plan_empty(&p)) {
			printf("nothing to change: %s is already set up\n", o.config_dir);
		} else if (o.dry_run) {
			print_plan(&p, "would");
			printf("dry run: nothing was changed\n");
		} else {
			rc = apply(&o, &p);
		}
	}
	plan_free(&p);
	return rc;
}
