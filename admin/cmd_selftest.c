/*
 * cmd_selftest.c — `relay-admin selftest`: the how-to's "Local Relay Testing", automated and
 * run live against a relay (and optionally its upstream).
 *
 * Checks, in order (each prints the server's actual replies):
 *   plaintext session  connect · STARTTLS offered · AUTH not offered before TLS ·
 *                      MAIL refused with 530 before TLS
 *   TLS session 1      TLS handshake · certificate (subject, issuer, expiry, verified) ·
 *                      AUTH offered after TLS · RCPT refused without AUTH (else: open relay) ·
 *                      a random wrong password refused (535)
 *   TLS session 2      the right password accepted (235) · MAIL and RCPT accepted · RSET, or
 *                      with --send TO a real test message (DATA)
 *   upstream           connect · TLS · certificate verified (strict) · AUTH (235), no MAIL;
 *                      no AUTH (the password is not sent) unless the certificate verified
 * With --tls implicit the plaintext checks are skipped (the port has no plaintext phase).
 *
 * No AUTH — the right password, the deliberately wrong one, the upstream's — goes over a
 * session whose certificate did not verify, chain and name, against --ca (--upstream-ca) or
 * the system CAs: whoever answers on that address would receive the password (AUTH PLAIN
 * and LOGIN send it as it is). smtp_client enforces it for every AUTH; the relay's checks
 * then fail with the reason. Only --insecure lifts it, for the relay alone, and every
 * report made so says INSECURE.
 *
 * Secrets: the relay password comes from RELAY_PASSWORD or the first line of stdin, the
 * upstream password from RELAY_UPSTREAM_PASSWORD or the next stdin line; both live in buffers
 * wiped before exit and never reach argv, the report or the trace (smtp_client redacts AUTH).
 *
 * Exit status: the number of failed checks (capped at 100); usage errors exit ADM_EXIT_USAGE.
 */
#include "adm.h"
#include "checklist.h"
#include "smtp_client.h"

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

#define DEFAULT_RCPT "selftest@example.com"   /* RFC 2606: never a real mailbox */
#define WARN_DAYS 30

enum tls_mode { TLS_STARTTLS, TLS_IMPLICIT };

struct endpoint {
	char host[256];
	char port[16];
	enum tls_mode tls;
	const char *ca;         /* NULL: system CAs */
	const char *tls_name;   /* name the certificate must carry */
	const char *user;
	bool insecure;          /* --insecure: AUTH over TLS even if unverified (relay only) */
	char pass[ADM_SMTP_SECRET_MAX + 1];
	size_t passlen;
	bool have_pass;
};

struct selftest {
	struct endpoint relay, up;
	bool have_up;
	const char *send_to;
	char from[300];
	const char *rcpt;
	char helo[256];
	int timeout_ms;
	bool json, verbose;
	struct adm_checklist *cl;
	struct adm_check *cur;   /* where the SMTP trace goes */
};

/* ---- small helpers ------------------------------------------------------------------- */

static void trace_to_check(void *arg, char dir, const char *line)
{
	struct selftest *t = arg;

	if (t->cur)
		adm_check_trace(t->cur, "%c: %s", dir, line);
}

static const char *first_line(struct adm_smtp *c)
{
	static char line[ADM_SMTP_LINE_MAX + 1];

	if (!adm_smtp_reply_line(adm_smtp_last(c), 0, line, sizeof(line)))
		snprintf(line, sizeof(line), "(no reply)");
	return line;
}

static int code(struct adm_smtp *c)
{
	return adm_smtp_last(c)->code;
}

static void skip_all(struct adm_check **cks, size_t n, const char *why)
{
	for (size_t i = 0; i < n; i++)
		if (cks[i] && adm_check_status(cks[i]) == ADM_CHECK_SKIP)
			adm_check_set(cks[i], ADM_CHECK_SKIP, "not reached: %s", why);
}

static bool take_secret(const struct adm_ctx *ctx, struct endpoint *e, const char *env,
                        const char *prompt, const char *what)
{
	const char *v = getenv(env);

	if (v) {
		size_t len = strlen(v);

		if (len == 0 || len >= sizeof(e->pass)) {
			adm_err(ctx, "the %s in %s is empty or too long", what, env);
			return false;
		}
		memcpy(e->pass, v, len + 1);
	} else if (adm_read_secret(ctx, prompt, false, e->pass, sizeof(e->pass)) != ADM_EXIT_OK) {
		adm_err(ctx, "no %s: set %s or give it on stdin", what, env);
		return false;
	}
	e->passlen = strlen(e->pass);
	e->have_pass = true;
	return true;
}

/* "host:port", "[v6]:port" or "[name]:port" (Postfix's relayhost spelling). */
static bool split_hostport(const char *s, struct endpoint *e)
{
	const char *colon = strrchr(s, ':');
	size_t hl;

	if (!colon || colon == s || colon[1] == '\0' || strlen(colon + 1) >= sizeof(e->port))
		return false;
	hl = (size_t)(colon - s);
	if (s[0] == '[') {
		if (hl < 3 || s[hl - 1] != ']')
			return false;
		s++;
		hl -= 2;
	} else if (memchr(s, ':', hl)) {
		return false;   /* a bare IPv6 address needs brackets */
	}
	if (hl >= sizeof(e->host))
		return false;
	memcpy(e->host, s, hl);
	e->host[hl] = '\0';
	snprintf(e->port, sizeof(e->port), "%s", colon + 1);
	for (const char *p = e->port; *p; p++)
		if (*p < '0' || *p > '9')
			return false;
	return atoi(e->port) > 0 && atoi(e->port) < 65536;
}

static bool parse_tls(const char *s, enum tls_mode *m)
{
	if (strcmp(s, "starttls") == 0)
		*m = TLS_STARTTLS;
	else if (strcmp(s, "implicit") == 0)
		*m = TLS_IMPLICIT;
	else
		return false;
	return true;
}

/* ---- connecting ---------------------------------------------------------------------- */

/* TCP connect, then for implicit TLS the handshake, then the greeting; `ck` records the
 * outcome on failure (and the greeting as evidence). */
static struct adm_smtp *open_session(struct selftest *t, const struct endpoint *e, bool tls_now,
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
	if ((s = adm_smtp_read_reply(c)) != ADM_SMTP_OK || code(c) != 220) {
		adm_check_set(ck, ADM_CHECK_FAIL, "no 220 greeting: %s",
		              s != ADM_SMTP_OK ? adm_smtp_errmsg(c) : first_line(c));
		adm_check_fix(ck, "check the mail log; a port that expects implicit TLS says nothing "
		              "in plaintext (use --tls implicit)");
		adm_smtp_free(c);
		return NULL;
	}
	return c;
}

static void close_session(struct selftest *t, struct adm_smtp *c, struct adm_check *ck)
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
static void judge_cert(struct adm_check *ck, const struct adm_smtp_cert *k,
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
static bool may_send_credentials(struct selftest *t, struct adm_smtp *c, struct adm_check *ck,
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
static bool pick_mech(struct adm_smtp *c, enum adm_smtp_mech *m, char *mechs, size_t len)
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
	if ((s = adm_smtp_ehlo(c, t->helo)) != ADM_SMTP_OK || code(c) != 250) {
		adm_check_set(ck, ADM_CHECK_FAIL, "EHLO failed: %s",
		              s != ADM_SMTP_OK ? adm_smtp_errmsg(c) : first_line(c));
		return false;
	}
	if (!adm_smtp_reply_ext(adm_smtp_last(c), "STARTTLS", NULL, 0)) {
		adm_check_set(ck, ADM_CHECK_FAIL, "STARTTLS is not offered");
		adm_check_fix(ck, "set smtpd_tls_security_level=encrypt and a certificate on the "
		              "service (relay-admin setup)");
		return false;
	}
	s = adm_smtp_starttls(c, &o);
	if (s != ADM_SMTP_OK || code(c) != 220) {
		adm_check_set(ck, ADM_CHECK_FAIL, "STARTTLS failed: %s",
		              s != ADM_SMTP_OK ? adm_smtp_errmsg(c) : first_line(c));
		adm_check_fix(ck, "check smtpd_tls_cert_file/smtpd_tls_key_file and the mail log");
		return false;
	}
	if ((s = adm_smtp_ehlo(c, t->helo)) != ADM_SMTP_OK || code(c) != 250) {
		adm_check_set(ck, ADM_CHECK_FAIL, "EHLO after STARTTLS failed: %s",
		              s != ADM_SMTP_OK ? adm_smtp_errmsg(c) : first_line(c));
		return false;
	}
	return true;
}

/* A TLS session, whatever the mode: returns the connection after the post-TLS EHLO. */
static struct adm_smtp *tls_session(struct selftest *t, const struct endpoint *e,
                                    struct adm_check *ck)
{
	bool implicit = e->tls == TLS_IMPLICIT;
	struct adm_smtp *c = open_session(t, e, implicit, ck);
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
	if ((s = adm_smtp_ehlo(c, t->helo)) != ADM_SMTP_OK || code(c) != 250) {
		adm_check_set(ck, ADM_CHECK_FAIL, "EHLO failed: %s",
		              s != ADM_SMTP_OK ? adm_smtp_errmsg(c) : first_line(c));
		adm_smtp_free(c);
		return NULL;
	}
	return c;
}

/* ---- the relay ----------------------------------------------------------------------- */

static void relay_plaintext(struct selftest *t)
{
	struct adm_checklist *cl = t->cl;
	struct adm_check *conn = adm_checklist_add(cl, "connect", "connect and greeting");
	struct adm_check *offer = adm_checklist_add(cl, "starttls-offered",
	                                            "STARTTLS offered in plaintext");
	struct adm_check *noauth = adm_checklist_add(cl, "no-auth-before-tls",
	                                             "AUTH not offered before TLS");
	struct adm_check *mail = adm_checklist_add(cl, "plaintext-mail-refused",
	                                           "MAIL refused before TLS (530)");
	struct adm_check *rest[] = { offer, noauth, mail };
	struct adm_smtp *c;
	enum adm_smtp_status s;
	char mechs[256];

	if (t->relay.tls == TLS_IMPLICIT) {
		adm_check_set(conn, ADM_CHECK_SKIP, "implicit TLS: see the TLS checks");
		for (size_t i = 0; i < 3; i++)
			adm_check_set(rest[i], ADM_CHECK_SKIP, "implicit TLS port: no plaintext phase");
		return;
	}
	c = open_session(t, &t->relay, false, conn);
	if (!c) {
		skip_all(rest, 3, "no connection");
		return;
	}
	adm_check_set(conn, ADM_CHECK_OK, "connected to %s", adm_smtp_peer(c));

	t->cur = offer;
	if ((s = adm_smtp_ehlo(c, t->helo)) != ADM_SMTP_OK || code(c) != 250) {
		adm_check_set(offer, ADM_CHECK_FAIL, "EHLO failed: %s",
		              s != ADM_SMTP_OK ? adm_smtp_errmsg(c) : first_line(c));
		skip_all(rest, 3, "EHLO failed");
		goto out;
	}
	if (adm_smtp_reply_ext(adm_smtp_last(c), "STARTTLS", NULL, 0)) {
		adm_check_set(offer, ADM_CHECK_OK, "the server offers STARTTLS");
	} else {
		adm_check_set(offer, ADM_CHECK_FAIL, "STARTTLS is not offered");
		adm_check_fix(offer, "give the service a certificate and smtpd_tls_security_level="
		              "encrypt (relay-admin setup); if this port is implicit TLS, use "
		              "--tls implicit");
	}

	if (adm_smtp_reply_ext(adm_smtp_last(c), "AUTH", mechs, sizeof(mechs))) {
		adm_check_set(noauth, ADM_CHECK_FAIL, "AUTH %s is offered in plaintext: passwords "
		              "can cross the network unencrypted", mechs);
		adm_check_line(noauth, "S: 250-AUTH %s (in the EHLO reply before STARTTLS)", mechs);
		adm_check_fix(noauth, "set smtpd_tls_auth_only=yes on the service "
		              "(postconf -P '<service>/inet/smtpd_tls_auth_only=yes')");
	} else {
		adm_check_set(noauth, ADM_CHECK_OK, "no AUTH in the plaintext EHLO reply");
	}

	t->cur = mail;
	s = adm_smtp_mail(c, t->from);
	if (s != ADM_SMTP_OK) {
		adm_check_set(mail, ADM_CHECK_FAIL, "MAIL: %s", adm_smtp_errmsg(c));
		goto out;
	}
	if (code(c) == 530) {
		adm_check_set(mail, ADM_CHECK_OK, "refused: %s", first_line(c));
	} else if (code(c) >= 200 && code(c) < 400) {
		adm_check_set(mail, ADM_CHECK_FAIL, "MAIL accepted without TLS: %s", first_line(c));
		adm_check_fix(mail, "TLS is not required: set smtpd_tls_security_level=encrypt on "
		              "the service (relay-admin setup does)");
		adm_smtp_cmd(c, "RSET");
	} else {
		adm_check_set(mail, ADM_CHECK_WARN, "refused, but not with 530: %s", first_line(c));
		adm_check_fix(mail, "expected \"530 5.7.0 Must issue a STARTTLS command first\" "
		              "(smtpd_tls_security_level=encrypt)");
	}
out:
	close_session(t, c, conn);
}

static void random_wrong_password(char *out, size_t outlen, const struct endpoint *e)
{
	unsigned char r[18];
	size_t o = 0;

	do {
		if (RAND_bytes(r, sizeof(r)) != 1)
			memset(r, 0x5a, sizeof(r));   /* still wrong; randomness only avoids lockstep */
		o = (size_t)snprintf(out, outlen, "wrong-");
		for (size_t i = 0; i < sizeof(r) && o + 3 <= outlen; i++)
			o += (size_t)snprintf(out + o, outlen - o, "%02x", r[i]);
	} while (e->passlen == o && memcmp(out, e->pass, o) == 0);
	explicit_bzero(r, sizeof(r));
}

/* why_no_mech: set when *have_mech ends false, for the checks that then cannot run. */
static void relay_tls_unauth(struct selftest *t, enum adm_smtp_mech *mech, bool *have_mech,
                             const char **why_no_mech)
{
	struct adm_checklist *cl = t->cl;
	struct adm_check *tls = adm_checklist_add(cl, "tls", "TLS session");
	struct adm_check *cert = adm_checklist_add(cl, "certificate", "server certificate");
	struct adm_check *auth = adm_checklist_add(cl, "auth-offered", "AUTH offered after TLS");
	struct adm_check *open = adm_checklist_add(cl, "unauthenticated-rcpt-refused",
	                                           "RCPT refused without AUTH (no open relay)");
	struct adm_check *wrong = adm_checklist_add(cl, "wrong-password-refused",
	                                            "a wrong password refused (535)");
	struct adm_check *rest[] = { cert, auth, open, wrong };
	char mechs[256], bad[64];
	enum adm_smtp_status s;
	struct adm_smtp *c = tls_session(t, &t->relay, tls);

	*have_mech = false;
	*why_no_mech = "no TLS session";
	if (!c) {
		skip_all(rest, 4, "no TLS session");
		return;
	}
	*why_no_mech = "no usable AUTH mechanism";
	const struct adm_smtp_cert *k = adm_smtp_cert(c);

	adm_check_set(tls, ADM_CHECK_OK, "%s with %s (%s)", k->protocol, k->cipher,
	              t->relay.tls == TLS_IMPLICIT ? "implicit TLS" : "STARTTLS");
	judge_cert(cert, k, &t->relay, t->relay.ca != NULL, "--ca");

	t->cur = auth;
	if (pick_mech(c, mech, mechs, sizeof(mechs))) {
		*have_mech = true;
		adm_check_set(auth, ADM_CHECK_OK, "AUTH %s", mechs);
	} else {
		adm_check_set(auth, ADM_CHECK_FAIL, "%s",
		              adm_smtp_reply_ext(adm_smtp_last(c), "AUTH", NULL, 0)
		              ? "AUTH offered, but neither PLAIN nor LOGIN"
		              : "AUTH is not offered after TLS");
		adm_check_fix(auth, "enable SASL on the service: smtpd_sasl_auth_enable=yes and an "
		              "smtpd.conf with mech_list: plain login (relay-admin setup)");
	}

	t->cur = open;
	s = adm_smtp_mail(c, t->from);
	if (s == ADM_SMTP_OK && code(c) >= 200 && code(c) < 300)
		s = adm_smtp_rcpt(c, t->rcpt);
	if (s != ADM_SMTP_OK) {
		adm_check_set(open, ADM_CHECK_FAIL, "%s", adm_smtp_errmsg(c));
		skip_all(rest, 4, "connection lost");
		goto out;
	}
	if (code(c) >= 500) {
		adm_check_set(open, ADM_CHECK_OK, "refused: %s", first_line(c));
	} else if (code(c) >= 400) {
		adm_check_set(open, ADM_CHECK_WARN, "temporarily refused: %s", first_line(c));
		adm_check_fix(open, "expected a permanent refusal (554) from "
		              "smtpd_client_restrictions=permit_sasl_authenticated,reject");
	} else {
		adm_check_set(open, ADM_CHECK_FAIL, "OPEN RELAY: RCPT accepted without AUTH: %s",
		              first_line(c));
		adm_check_fix(open, "set smtpd_client_restrictions=permit_sasl_authenticated,reject "
		              "and smtpd_recipient_restrictions likewise on the service "
		              "(relay-admin setup); stop the service until fixed");
	}
	if ((s = adm_smtp_cmd(c, "RSET")) != ADM_SMTP_OK) {
		skip_all(rest, 4, "connection lost");
		goto out;
	}

	t->cur = wrong;
	if (!*have_mech) {
		adm_check_set(wrong, ADM_CHECK_SKIP, "not reached: no usable AUTH mechanism");
		goto out;
	}
	/* a random password, but the real login name: not for an unverified server either */
	if (!may_send_credentials(t, c, wrong, ADM_CHECK_SKIP))
		goto out;
	random_wrong_password(bad, sizeof(bad), &t->relay);
	s = adm_smtp_auth(c, *mech, t->relay.user, bad, strlen(bad));
	explicit_bzero(bad, sizeof(bad));
	if (s != ADM_SMTP_OK)
		adm_check_set(wrong, ADM_CHECK_FAIL, "AUTH: %s", adm_smtp_errmsg(c));
	else if (code(c) == 535)
		adm_check_set(wrong, ADM_CHECK_OK, "refused: %s", first_line(c));
	else if (code(c) == 235) {
		adm_check_set(wrong, ADM_CHECK_FAIL, "a random wrong password was ACCEPTED: %s",
		              first_line(c));
		adm_check_fix(wrong, "check smtpd.conf (pwcheck_method: auxprop, auxprop_plugin: "
		              "relaydb) and that no other auxprop plugin answers");
	} else {
		adm_check_set(wrong, ADM_CHECK_FAIL, "expected 535, got: %s", first_line(c));
		adm_check_fix(wrong, "a 454 means SASL could not check the password: see the mail "
		              "log and relay-admin check");
	}
out:
	close_session(t, c, tls);
}

static const char *test_message(struct selftest *t, char *buf, size_t len)
{
	char date[64], id[40];
	unsigned char r[12];
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	if (RAND_bytes(r, sizeof(r)) != 1)
		memset(r, 0, sizeof(r));
	for (size_t i = 0; i < sizeof(r); i++)
		snprintf(id + 2 * i, sizeof(id) - 2 * i, "%02x", r[i]);
	snprintf(buf, len,
	         "From: <%s>\nTo: <%s>\nSubject: relay-admin selftest\nDate: %s\n"
	         "Message-ID: <%s@selftest.invalid>\nMIME-Version: 1.0\n"
	         "Content-Type: text/plain; charset=us-ascii\n\n"
	         "This test message was sent by relay-admin selftest through %s port %s\n"
	         "as login %s.\n", t->from, t->send_to, date, id, t->relay.host, t->relay.port,
	         t->relay.user);
	return buf;
}

static void relay_tls_auth(struct selftest *t, enum adm_smtp_mech mech, bool have_mech,
                           const char *why_no_mech)
{
	struct adm_checklist *cl = t->cl;
	struct adm_check *auth = adm_checklist_add(cl, "auth", "the right password accepted (235)");
	struct adm_check *relay = adm_checklist_add(cl, "authenticated-relay",
	                                            "MAIL and RCPT accepted after AUTH");
	struct adm_check *send = t->send_to ? adm_checklist_add(cl, "send", "test message "
	                                                        "accepted for delivery") : NULL;
	struct adm_check *rest[] = { relay, send };
	enum adm_smtp_status s;
	struct adm_smtp *c;
	char msg[2048];

	if (!have_mech) {
		skip_all(&auth, 1, why_no_mech);
		skip_all(rest, 2, why_no_mech);
		return;
	}
	c = tls_session(t, &t->relay, auth);
	if (!c) {
		skip_all(rest, 2, "no TLS session");
		return;
	}
	t->cur = auth;
	if (!may_send_credentials(t, c, auth, ADM_CHECK_FAIL)) {
		skip_all(rest, 2, "not authenticated");
		goto out;
	}
	s = adm_smtp_auth(c, mech, t->relay.user, t->relay.pass, t->relay.passlen);
	if (s != ADM_SMTP_OK) {
		adm_check_set(auth, ADM_CHECK_FAIL, "AUTH: %s", adm_smtp_errmsg(c));
		skip_all(rest, 2, s == ADM_SMTP_EUNSAFE ? "not authenticated" : "connection lost");
		goto out;
	}
	if (code(c) != 235) {
		adm_check_set(auth, ADM_CHECK_FAIL, "login %s refused: %s", t->relay.user,
		              first_line(c));
		adm_check_fix(auth, code(c) == 535
		              ? "wrong login or password, or the login is disabled/expired "
		                "(relay-admin user list; the mail log says why)"
		              : "SASL could not answer: run relay-admin check and see the mail log");
		skip_all(rest, 2, "not authenticated");
		goto out;
	}
	if (!adm_smtp_cert(c)->verified)
		adm_check_set(auth, ADM_CHECK_WARN, "INSECURE: %s (AUTH %s); the password went to a "
		              "server whose certificate did not verify (--insecure)", first_line(c),
		              mech == ADM_SMTP_PLAIN ? "PLAIN" : "LOGIN");
	else
		adm_check_set(auth, ADM_CHECK_OK, "%s (AUTH %s)", first_line(c),
		              mech == ADM_SMTP_PLAIN ? "PLAIN" : "LOGIN");

	t->cur = relay;
	s = adm_smtp_mail(c, t->from);
	if (s == ADM_SMTP_OK && code(c) == 250)
		s = adm_smtp_rcpt(c, t->rcpt);
	if (s != ADM_SMTP_OK) {
		adm_check_set(relay, ADM_CHECK_FAIL, "%s", adm_smtp_errmsg(c));
		skip_all(rest, 2, "connection lost");
		goto out;
	}
	if (code(c) != 250) {
		adm_check_set(relay, ADM_CHECK_FAIL, "refused: %s", first_line(c));
		adm_check_fix(relay, "is %s an allowed sender of %s (relay-admin sender list)? "
		              "Try --from ADDR; check the rate limits and the mail log", t->from,
		              t->relay.user);
		skip_all(rest, 2, "MAIL or RCPT refused");
		adm_smtp_cmd(c, "RSET");
		goto out;
	}
	if (!t->send_to) {
		adm_smtp_cmd(c, "RSET");
		adm_check_set(relay, ADM_CHECK_OK, "MAIL FROM:<%s> and RCPT TO:<%s> accepted; "
		              "RSET, nothing sent (use --send TO to send a message)", t->from,
		              t->rcpt);
		goto out;
	}
	adm_check_set(relay, ADM_CHECK_OK, "MAIL FROM:<%s> and RCPT TO:<%s> accepted", t->from,
	              t->rcpt);
	t->cur = send;
	s = adm_smtp_data(c, test_message(t, msg, sizeof(msg)));
	if (s != ADM_SMTP_OK)
		adm_check_set(send, ADM_CHECK_FAIL, "DATA: %s", adm_smtp_errmsg(c));
	else if (code(c) == 250)
		adm_check_set(send, ADM_CHECK_OK, "%s", first_line(c));
	else
		adm_check_set(send, ADM_CHECK_FAIL, "refused: %s", first_line(c));
out:
	close_session(t, c, auth);
}

/* ---- the upstream -------------------------------------------------------------------- */

static void upstream(struct selftest *t)
{
	struct adm_checklist *cl = t->cl;
	struct adm_check *tls = adm_checklist_add(cl, "upstream-tls", "upstream TLS session");
	struct adm_check *cert = adm_checklist_add(cl, "upstream-certificate",
	                                           "upstream certificate verified");
	struct adm_check *auth = adm_checklist_add(cl, "upstream-auth",
	                                           "upstream login accepted (nothing sent)");
	struct adm_check *rest[] = { cert, auth };
	struct adm_smtp *c = tls_session(t, &t->up, tls);
	enum adm_smtp_mech mech;
	char mechs[256];
	enum adm_smtp_status s;

	if (!c) {
		skip_all(rest, 2, "no TLS session with the upstream");
		return;
	}
	const struct adm_smtp_cert *k = adm_smtp_cert(c);

	adm_check_set(tls, ADM_CHECK_OK, "%s port %s: %s with %s (%s)", t->up.host, t->up.port,
	              k->protocol, k->cipher, t->up.tls == TLS_IMPLICIT ? "implicit TLS" :
	              "STARTTLS");
	judge_cert(cert, k, &t->up, true, "upstream");

	t->cur = auth;
	if (!t->up.user) {
		adm_check_set(auth, ADM_CHECK_SKIP, "no --upstream-user given");
		goto out;
	}
	if (!k->present || k->expired || !k->verified) {
		/* whoever answers without a valid certificate for the name must not get the
		 * upstream password (AUTH PLAIN/LOGIN send it readable to the server) */
		adm_check_set(auth, ADM_CHECK_SKIP, "credentials not sent: the upstream certificate "
		              "did not verify (nor would the relay send them there)");
		goto out;
	}
	if (!pick_mech(c, &mech, mechs, sizeof(mechs))) {
		adm_check_set(auth, ADM_CHECK_FAIL, "the upstream offers no AUTH PLAIN or LOGIN "
		              "after TLS");
		goto out;
	}
	s = adm_smtp_auth(c, mech, t->up.user, t->up.pass, t->up.passlen);
	if (s != ADM_SMTP_OK)
		adm_check_set(auth, ADM_CHECK_FAIL, "AUTH: %s", adm_smtp_errmsg(c));
	else if (code(c) == 235)
		adm_check_set(auth, ADM_CHECK_OK, "%s (AUTH %s)", first_line(c),
		              mech == ADM_SMTP_PLAIN ? "PLAIN" : "LOGIN");
	else {
		adm_check_set(auth, ADM_CHECK_FAIL, "upstream login %s refused: %s", t->up.user,
		              first_line(c));
		adm_check_fix(auth, "wrong upstream user or password: rerun relay-admin setup "
		              "--upstream ... with the right credentials (stdin or "
		              "RELAY_UPSTREAM_PASSWORD)");
	}
out:
	close_session(t, c, tls);
}

/* ---- the command --------------------------------------------------------------------- */

static void default_names(struct selftest *t)
{
	char h[256];

	if (gethostname(h, sizeof(h)) != 0 || h[0] == '\0' || strchr(h, '.') == NULL)
		snprintf(h, sizeof(h), "selftest.invalid");
	h[sizeof(h) - 1] = '\0';
	for (char *p = h; *p; p++)   /* EHLO wants a plain domain */
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '.'))
			*p = '-';
	snprintf(t->helo, sizeof(t->helo), "%s", h);
	if (t->from[0] == '\0') {
		if (strchr(t->relay.user, '@'))
			snprintf(t->from, sizeof(t->from), "%s", t->relay.user);
		else
			snprintf(t->from, sizeof(t->from), "%s@%s", t->relay.user, h);
	}
	t->rcpt = t->send_to ? t->send_to : DEFAULT_RCPT;
}

static bool address_ok(const char *a)
{
	const char *at = strchr(a, '@');

	if (!at || at == a || at[1] == '\0' || strlen(a) > 254)
		return false;
	for (const char *p = a; *p; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || strchr("<>()[]\\,;:\"", *p))
			return false;
	return true;
}

enum { OPT_CA = 256, OPT_TLS_NAME, OPT_SEND, OPT_FROM, OPT_UP, OPT_UP_TLS, OPT_UP_USER,
       OPT_UP_CA, OPT_TIMEOUT, OPT_JSON, OPT_INSECURE };

static const struct option longopts[] = {
	{ "host", required_argument, NULL, 'H' },
	{ "port", required_argument, NULL, 'p' },
	{ "tls", required_argument, NULL, 't' },
	{ "user", required_argument, NULL, 'u' },
	{ "ca", required_argument, NULL, OPT_CA },
	{ "tls-name", required_argument, NULL, OPT_TLS_NAME },
	{ "send", required_argument, NULL, OPT_SEND },
	{ "from", required_argument, NULL, OPT_FROM },
	{ "upstream", required_argument, NULL, OPT_UP },
	{ "upstream-tls", required_argument, NULL, OPT_UP_TLS },
	{ "upstream-user", required_argument, NULL, OPT_UP_USER },
	{ "upstream-ca", required_argument, NULL, OPT_UP_CA },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "insecure", no_argument, NULL, OPT_INSECURE },
	{ "verbose", no_argument, NULL, 'v' },
	{ NULL, 0, NULL, 0 },
};

/* Parses argv into t; returns -1 when fine, else the exit status to return. */
static int parse_args(const struct adm_ctx *ctx, struct selftest *t, int argc, char **argv)
{
	const char *host = NULL, *port = NULL, *up = NULL, *up_tls = NULL, *tls = NULL;
	int ch;

	while ((ch = getopt_long(argc, argv, "v", longopts, NULL)) != -1) {
		switch (ch) {
		case 'H': host = optarg; break;
		case 'p': port = optarg; break;
		case 't': tls = optarg; break;
		case 'u': t->relay.user = optarg; break;
		case OPT_CA: t->relay.ca = optarg; break;
		case OPT_TLS_NAME: t->relay.tls_name = optarg; break;
		case OPT_SEND: t->send_to = optarg; break;
		case OPT_FROM: snprintf(t->from, sizeof(t->from), "%s", optarg); break;
		case OPT_UP: up = optarg; break;
		case OPT_UP_TLS: up_tls = optarg; break;
		case OPT_UP_USER: t->up.user = optarg; break;
		case OPT_UP_CA: t->up.ca = optarg; break;
		case OPT_TIMEOUT: {
			char *end;
			long v = strtol(optarg, &end, 10);

			if (*end || v < 1 || v > 600)
				return adm_usage(ctx, "--timeout wants 1..600 seconds");
			t->timeout_ms = (int)v * 1000;
			break;
		}
		case OPT_JSON: t->json = true; break;
		case OPT_INSECURE: t->relay.insecure = true; break;
		case 'v': t->verbose = true; break;
		default:
			return adm_usage(ctx, "unknown option or missing value: %s", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return adm_usage(ctx, "unexpected argument: %s", argv[optind]);
	if (!host || !port || !t->relay.user)
		return adm_usage(ctx, "--host, --port and --user are required");
	if (strlen(host) == 0 || strlen(host) >= sizeof(t->relay.host) ||
	    strlen(port) >= sizeof(t->relay.port) || strspn(port, "0123456789") != strlen(port) ||
	    atoi(port) < 1 || atoi(port) > 65535)
		return adm_usage(ctx, "bad --host or --port");
	snprintf(t->relay.host, sizeof(t->relay.host), "%s", host);
	snprintf(t->relay.port, sizeof(t->relay.port), "%s", port);
	t->relay.tls = TLS_STARTTLS;
	if (tls && !parse_tls(tls, &t->relay.tls))
		return adm_usage(ctx, "--tls is starttls or implicit");
	if (!t->relay.tls_name)
		t->relay.tls_name = t->relay.host;
	if (strlen(t->relay.user) == 0 || strlen(t->relay.user) > 255 ||
	    strpbrk(t->relay.user, "\r\n"))
		return adm_usage(ctx, "bad --user");
	if (t->send_to && !address_ok(t->send_to))
		return adm_usage(ctx, "--send wants a plain address user@domain");
	if (t->from[0] && !address_ok(t->from))
		return adm_usage(ctx, "--from wants a plain address user@domain");
	if (!up && (up_tls || t->up.user || t->up.ca))
		return adm_usage(ctx, "--upstream-tls, --upstream-ca and --upstream-user need --upstream");
	if (up) {
		if (!split_hostport(up, &t->up))
			return adm_usage(ctx, "--upstream wants HOST:PORT (IPv6: [ADDR]:PORT)");
		t->have_up = true;
		/* Same defaults as setup: 465 is implicit TLS, anything else STARTTLS. */
		t->up.tls = strcmp(t->up.port, "465") == 0 ? TLS_IMPLICIT : TLS_STARTTLS;
		if (up_tls && !parse_tls(up_tls, &t->up.tls))
			return adm_usage(ctx, "--upstream-tls is starttls or implicit");
		t->up.tls_name = t->up.host;
		if (t->up.user && (strlen(t->up.user) == 0 || strlen(t->up.user) > 255 ||
		                   strpbrk(t->up.user, "\r\n")))
			return adm_usage(ctx, "bad --upstream-user");
	}
	return -1;
}

static int run(const struct adm_ctx *ctx, struct selftest *t)
{
	enum adm_smtp_mech mech = ADM_SMTP_PLAIN;
	bool have_mech = false;
	const char *why = "";
	char title[600];
	unsigned failed;

	snprintf(title, sizeof(title), "relay-admin selftest: %s port %s (%s), login %s",
	         t->relay.host, t->relay.port,
	         t->relay.tls == TLS_IMPLICIT ? "implicit TLS" : "STARTTLS", t->relay.user);
	t->cl = adm_checklist_new("selftest", title);
	if (!t->cl) {
		adm_err(ctx, "out of memory");
		return ADM_EXIT_IO;
	}
	adm_checklist_info(t->cl, "from", t->from);
	adm_checklist_info(t->cl, "rcpt", t->rcpt);
	adm_checklist_info(t->cl, "sending", t->send_to ? "yes" : "no (RSET)");
	if (t->relay.insecure)
		adm_checklist_info(t->cl, "INSECURE", "--insecure: the password is sent to the relay "
		                   "even if its certificate does not verify");
	if (t->have_up) {
		char up[300];

		snprintf(up, sizeof(up), "%s port %s (%s)", t->up.host, t->up.port,
		         t->up.tls == TLS_IMPLICIT ? "implicit TLS" : "STARTTLS");
		adm_checklist_info(t->cl, "upstream", up);
	}
	relay_plaintext(t);
	relay_tls_unauth(t, &mech, &have_mech, &why);
	relay_tls_auth(t, mech, have_mech, why);
	if (t->have_up)
		upstream(t);
	failed = adm_checklist_count(t->cl, ADM_CHECK_FAIL);
	if (!adm_checklist_print(t->cl, ctx->out, t->json, t->verbose) && failed == 0)
		failed = 1;   /* an incomplete report must not look like success */
	adm_checklist_free(t->cl);
	return failed > 100 ? 100 : (int)failed;
}

int adm_cmd_selftest(struct adm_ctx *ctx, int argc, char **argv)
{
	struct selftest *t = calloc(1, sizeof(*t));
	int rc;

	if (!t) {
		adm_err(ctx, "out of memory");
		return ADM_EXIT_IO;
	}
	t->timeout_ms = 30000;
	t->json = ctx->json;
	rc = parse_args(ctx, t, argc, argv);
	if (rc >= 0)
		goto out;
	/* Stdin lines are taken in order: the relay password (unless RELAY_PASSWORD is set),
	 * then the upstream password (unless RELAY_UPSTREAM_PASSWORD is set). */
	if (!take_secret(ctx, &t->relay, "RELAY_PASSWORD", "Password: ", "password") ||
	    (t->have_up && t->up.user &&
	     !take_secret(ctx, &t->up, "RELAY_UPSTREAM_PASSWORD", "Upstream password: ",
	                  "upstream password"))) {
		rc = ADM_EXIT_USAGE;
		goto out;
	}
	default_names(t);
	/* OpenSSL writes with write(2): a server that hangs up must not kill us with SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	rc = run(ctx, t);
out:
	explicit_bzero(t, sizeof(*t));
	free(t);
	return rc;
}
