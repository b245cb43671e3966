/*
 * setup_services.c — `relay-admin setup`, the master.cf part of the plan: the relay
 * service(s) (submission with mandatory TLS and AUTH, everything on the service with -o),
 * the relay-upstream transport they hand their mail to, and the services an earlier run
 * made on ports no longer wanted. Each entry is planned as `postconf -M` prints it and
 * compared with what is there. See setup.h.
 */
#include "setup.h"
#include "postconf.h"
#include "setup_args.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
		adm_err(p->ctx, "%s", err);
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
int setup_plan_transport(struct plan *p, const struct setup_opts *o, bool implicit,
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
	/* privacy: the relay's own Received: line loses the client's address and HELO name on
	 * the way out (the audit log keeps the address); see plan_privacy() in setup_plan.c */
	if (p->privacy[0]) {
		char ref[PATH_MAX + 8];

		snprintf(ref, sizeof ref, "regexp:%s", p->privacy);
		rc |= opt_word(p, s, "smtp_header_checks", ref);
	}
	if (rc)
		return -1;
	return plan_entry_done(p, o->config_dir, s);
}

/* Without --upstream a re-run keeps the upstream an earlier run set up: the relay services'
 * content_filter towards our transport, if that transport is still there. */
int setup_keep_filter(struct plan *p, const char *dir)
{
	static const char want[] = "content_filter=" ADM_SETUP_TRANSPORT ":";
	char err[700], tname[64];
	char *all = NULL, *transport = NULL, *save = NULL;

	snprintf(tname, sizeof tname, "%s/unix", ADM_SETUP_TRANSPORT);
	if (adm_pf_service_get(dir, tname, &transport, err, sizeof err) < 0 ||
	    adm_pf_services(dir, &all, err, sizeof err) < 0) {
		adm_err(p->ctx, "%s", err);
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

int setup_plan_service(struct plan *p, const struct setup_opts *o, const char *listen,
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
	/* behind a TCP load balancer: smtpd reads the client's address from the PROXY header
	 * (v1 or v2) before anything else, so the AUTH rate limit, the milter's audit log and
	 * the logs see the real client. Without --proxy-protocol the word is not planned, and
	 * a re-run replaces an entry that had it: direct clients again. */
	if (o->proxy_protocol)
		rc |= opt_word(p, s, "smtpd_upstream_proxy_protocol", "haproxy");
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
	/* VRFY would answer for addresses after AUTH, ETRN would let a client flush the queue:
	 * nothing a relay client needs */
	rc |= opt_word(p, s, "disable_vrfy_command", "yes");
	rc |= opt_word(p, s, "smtpd_etrn_restrictions", "reject");
	/* Postfix adds a missing Message-ID, Date and From: (the envelope sender) only for
	 * "local" clients (default permit_inet_interfaces: 127.0.0.1, not a laptop elsewhere).
	 * smtpd evaluates this and hands cleanup the verdict, so on the service it makes every
	 * logged-in client get the same fixed-up headers, wherever it connects from. */
	rc |= opt_word(p, s, "local_header_rewrite_clients", "permit_sasl_authenticated");
	if (o->message_size > 0) {
		char size[32];

		snprintf(size, sizeof size, "%ld", o->message_size);
		rc |= opt_word(p, s, "message_size_limit", size);
	}
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
int setup_plan_stale(struct plan *p, const char *dir)
{
	char err[700];
	char *all = NULL, *save = NULL;

	if (adm_pf_services(dir, &all, err, sizeof err) < 0) {
		adm_err(p->ctx, "%s", err);
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
