/*
 * selftest_session.c — `relay-admin selftest`: sessions. Opening one (plaintext, STARTTLS
 * or implicit TLS) with the trace going into the current check, judging the certificate,
 * picking an AUTH mechanism, and may_send_credentials(): no AUTH to a server whose
 * certificate did not verify unless --insecure (relay only). See selftest.h.
 */
#include "selftest.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

static void trace_to_check(void *arg, char dir, const char *line)
{
	struct selftest *t = arg;

	if (t->cur)
		adm_check_trace(t->cur, "%c: %s", dir, line);
}

const char *st_first_line(struct adm_smtp *c)
{
	static char line[ADM_SMTP_LINE_MAX + 1];

	if (!adm_smtp_reply_line(adm_smtp_last(c), 0, line, sizeof(line)))
		snprintf(line, sizeof(line), "(no reply)");
	return line;
}

int st_code(struct adm_smtp *c)
{
	return adm_smtp_last(c)->code;
}

void st_skip_all(struct adm_check **cks, size_t n, const char *why)
{
	for (size_t i = 0; i < n; i++)
		if (cks[i] && adm_check_status(cks[i]) == ADM_CHECK_SKIP)
			adm_check_set(cks[i], ADM_CHECK_SKIP, "not reached: %s", why);
}


/* TCP connect, then for implicit TLS the handshake, then the greeting; `ck` records the
 * outcome on failure (and the greeting as evidence). */
struct adm_smtp *st_open_session(struct selftest *t, const struct endpoint *e, bool tls_now,
                                     struct adm_check *ck)
{
	struct adm_smtp *c = NULL;
	char err[256];
	struct adm_smtp_tls_opts o = { .ca_file = e->ca, .name = e->tls_name };
	enum adm_smtp_status s;

	t->cur = ck;
	s = adm_smtp_connect(e->host, e->port, t->timeout_ms, &c, err, sizeof(err));
	if (s != ADM_SMTP_OK) {
		adm_check_set(ck, ADM_CHECK_FAIL, "cannot connect: %s", err);
		adm_check_fix(ck, "is the service running and listening on %s port %s? "
		              "(postfix status; postconf -M; ss -ltn)", e->host, e->port);
		return NULL;
	}
	adm_smtp_set_trace(c, trace_to_check, t);
	if (e->insecure)
		adm_smtp_set_auth_rule(c, ADM_SMTP_AUTH_ANY_TLS);
	if (tls_now && (s = adm_smtp_tls_handshake(c, &o)) != ADM_SMTP_OK) {
		adm_check_set(ck, ADM_CHECK_FAIL, "TLS handshake failed: %s", adm_smtp_errmsg(c));
		adm_check_fix(ck, "is this an implicit-TLS port? For a STARTTLS port use "
		              "--tls starttls");
		adm_smtp_free(c);
		return NULL;
	}
	if ((s = adm_smtp_read_reply(c)) != ADM_SMTP_OK || st_code(c) != 220) {
		adm_check_set(ck, ADM_CHECK_FAIL, "no 220 greeting: %s",
		              s != ADM_SMTP_OK ? adm_smtp_errmsg(c) : st_first_line(c));
		adm_check_fix(ck, "check the mail log; a port that expects implicit TLS says nothing "
		              "in plaintext (use --tls implicit)");
		adm_smtp_free(c);
		return NULL;
	}
	return c;
}

void st_close_session(struct selftest *t, struct adm_smtp *c, struct adm_check *ck)
{
	if (!c)
		return;
	t->cur = ck;
	adm_smtp_quit(c);
	adm_smtp_free(c);
	t->cur = NULL;
}

static void cert_lines(struct adm_check *ck, const struct adm_smtp_cert *k)
{
	adm_check_line(ck, "protocol: %s, cipher: %s", k->protocol, k->cipher);
	if (!k->present)
		return;
	adm_check_line(ck, "subject:  %s", k->subject);
	adm_check_line(ck, "issuer:   %s", k->issuer);
	adm_check_line(ck, "valid:    %s to %s", k->not_before, k->not_after);
	adm_check_line(ck, "verify:   %s", k->verified ? "ok" : k->verify_error);
}

/* strict: an unverified certificate is a failure (upstream, or --ca given); otherwise a
 * warning (a self-signed relay certificate is a choice setup allows, with a warning). */
void st_judge_cert(struct adm_check *ck, const struct adm_smtp_cert *k,
                       const struct endpoint *e, bool strict, const char *flag)
{
	const char *against = e->ca ? e->ca : "the system CAs";
	double days = difftime(k->not_after_t, time(NULL)) / 86400.0;

	cert_lines(ck, k);
	if (!k->present) {
		adm_check_set(ck, ADM_CHECK_FAIL, "the server sent no certificate");
		return;
	}
	if (k->expired) {
		adm_check_set(ck, ADM_CHECK_FAIL, "expired (or not yet valid): valid %s to %s",
		              k->not_before, k->not_after);
		adm_check_fix(ck, "install a current certificate (relay-admin setup --cert/--key)");
		return;
	}
	if (!k->verified) {
		adm_check_set(ck, strict ? ADM_CHECK_FAIL : ADM_CHECK_WARN,
		              "%snot verified against %s for \"%s\": %s",
		              e->insecure ? "INSECURE (--insecure, the password is sent anyway): " : "",
		              against, e->tls_name ? e->tls_name : e->host, k->verify_error);
		if (strict && flag[0] == 'u')
			adm_check_fix(ck, "the relay (smtp_tls_security_level = secure) will refuse this "
			              "upstream: trust its CA with relay-admin setup --upstream-ca FILE, "
			              "or fix the upstream host name");
		else
			adm_check_fix(ck, "clients will see an untrusted certificate: use a CA-signed "
			              "certificate for this host name, or test with %s FILE (the CA) "
			              "and --tls-name NAME", flag);
		return;
	}
	if (days < WARN_DAYS) {
		adm_check_set(ck, ADM_CHECK_WARN, "verified, but expires in %.0f days (%s)", days,
		              k->not_after);
		adm_check_fix(ck, "renew the certificate soon");
		return;
	}
	adm_check_set(ck, ADM_CHECK_OK, "verified against %s; expires %s", against, k->not_after);
}

/* Whether this session may carry the relay's credentials (smtp_client's rule: a verified
 * certificate, or --insecure). When not, `ck` says why with status `st` and the fix. */
bool st_may_send_credentials(struct selftest *t, struct adm_smtp *c, struct adm_check *ck,
                                 enum adm_check_status st)
{
	const struct adm_smtp_cert *k = adm_smtp_cert(c);

	if (adm_smtp_auth_safe(c))
		return true;
	adm_check_set(ck, st, "credentials not sent: the certificate of %s port %s did not verify "
	              "against %s for \"%s\"%s%s", t->relay.host, t->relay.port,
	              t->relay.ca ? t->relay.ca : "the system CAs", t->relay.tls_name,
	              k ? ": " : "", k ? k->verify_error : "");
	adm_check_fix(ck, "whoever answers there would get the password: give --ca FILE with the "
	              "CA (or the self-signed certificate) the relay uses, and --tls-name NAME if "
	              "the certificate names the relay differently; --insecure sends it anyway");
	return false;
}

/* Picks PLAIN or LOGIN from an EHLO reply; false when neither is offered. */
bool st_pick_mech(struct adm_smtp *c, enum adm_smtp_mech *m, char *mechs, size_t len)
{
	if (!adm_smtp_reply_ext(adm_smtp_last(c), "AUTH", mechs, len))
		return false;
	if (adm_smtp_word_in(mechs, "PLAIN"))
		*m = ADM_SMTP_PLAIN;
	else if (adm_smtp_word_in(mechs, "LOGIN"))
		*m = ADM_SMTP_LOGIN;
	else
		return false;
	return true;
}

/* EHLO, STARTTLS, handshake, EHLO again: the way into a TLS session on a STARTTLS port. */
static bool starttls_session(struct selftest *t, struct adm_smtp *c, const struct endpoint *e,
                             struct adm_check *ck)
{
	struct adm_smtp_tls_opts o = { .ca_file = e->ca, .name = e->tls_name };
	enum adm_smtp_status s;

	t->cur = ck;
	if ((s = adm_smtp_ehlo(c, t->helo)) != ADM_SMTP_OK || st_code(c) != 250) {
		adm_check_set(ck, ADM_CHECK_FAIL, "EHLO failed: %s",
		              s != ADM_SMTP_OK ? adm_smtp_errmsg(c) : st_first_line(c));
		return false;
	}
	if (!adm_smtp_reply_ext(adm_smtp_last(c), "STARTTLS", NULL, 0)) {
		adm_check_set(ck, ADM_CHECK_FAIL, "STARTTLS is not offered");
		adm_check_fix(ck, "set smtpd_tls_security_level=encrypt and a certificate on the "
		              "service (relay-admin setup)");
		return false;
	}
	s = adm_smtp_starttls(c, &o);
	if (s != ADM_SMTP_OK || st_code(c) != 220) {
		adm_check_set(ck, ADM_CHECK_FAIL, "STARTTLS failed: %s",
		              s != ADM_SMTP_OK ? adm_smtp_errmsg(c) : st_first_line(c));
		adm_check_fix(ck, "check smtpd_tls_cert_file/smtpd_tls_key_file and the mail log");
		return false;
	}
	if ((s = adm_smtp_ehlo(c, t->helo)) != ADM_SMTP_OK || st_code(c) != 250) {
		adm_check_set(ck, ADM_CHECK_FAIL, "EHLO after STARTTLS failed: %s",
		              s != ADM_SMTP_OK ? adm_smtp_errmsg(c) : st_first_line(c));
		return false;
	}
	return true;
}

/* A TLS session, whatever the mode: returns the connection after the post-TLS EHLO. */
struct adm_smtp *st_tls_session(struct selftest *t, const struct endpoint *e,
                                    struct adm_check *ck)
{
	bool implicit = e->tls == TLS_IMPLICIT;
	struct adm_smtp *c = st_open_session(t, e, implicit, ck);
	enum adm_smtp_status s;

	if (!c)
		return NULL;
	if (!implicit) {
		if (!starttls_session(t, c, e, ck)) {
			adm_smtp_free(c);
			return NULL;
		}
		return c;
	}
	if ((s = adm_smtp_ehlo(c, t->helo)) != ADM_SMTP_OK || st_code(c) != 250) {
		adm_check_set(ck, ADM_CHECK_FAIL, "EHLO failed: %s",
		              s != ADM_SMTP_OK ? adm_smtp_errmsg(c) : st_first_line(c));
		adm_smtp_free(c);
		return NULL;
	}
	return c;
}
