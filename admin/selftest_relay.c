/*
 * selftest_relay.c — `relay-admin selftest`: the checks. The relay in plaintext (STARTTLS
 * offered, no AUTH, MAIL refused), over TLS without AUTH (no open relay, a wrong password
 * refused), over TLS with AUTH (MAIL/RCPT, RSET or a real message with --send), and the
 * upstream (TLS verified, AUTH accepted, no MAIL). See selftest.h.
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

void st_relay_plaintext(struct selftest *t)
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
	c = st_open_session(t, &t->relay, false, conn);
	if (!c) {
		st_skip_all(rest, 3, "no connection");
		return;
	}
	adm_check_set(conn, ADM_CHECK_OK, "connected to %s", adm_smtp_peer(c));

	t->cur = offer;
	if ((s = adm_smtp_ehlo(c, t->helo)) != ADM_SMTP_OK || st_code(c) != 250) {
		adm_check_set(offer, ADM_CHECK_FAIL, "EHLO failed: %s",
		              s != ADM_SMTP_OK ? adm_smtp_errmsg(c) : st_first_line(c));
		st_skip_all(rest, 3, "EHLO failed");
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
	if (st_code(c) == 530) {
		adm_check_set(mail, ADM_CHECK_OK, "refused: %s", st_first_line(c));
	} else if (st_code(c) >= 200 && st_code(c) < 400) {
		adm_check_set(mail, ADM_CHECK_FAIL, "MAIL accepted without TLS: %s", st_first_line(c));
		adm_check_fix(mail, "TLS is not required: set smtpd_tls_security_level=encrypt on "
		              "the service (relay-admin setup does)");
		adm_smtp_cmd(c, "RSET");
	} else {
		adm_check_set(mail, ADM_CHECK_WARN, "refused, but not with 530: %s", st_first_line(c));
		adm_check_fix(mail, "expected \"530 5.7.0 Must issue a STARTTLS command first\" "
		              "(smtpd_tls_security_level=encrypt)");
	}
out:
	st_close_session(t, c, conn);
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
/* MAIL and RCPT without AUTH must be refused, permanently; then RSET. Returns false when
 * the connection was lost ("open" says why when it was lost before the answer). */
static bool unauth_rcpt(struct selftest *t, struct adm_smtp *c, struct adm_check *open)
{
	enum adm_smtp_status s = adm_smtp_mail(c, t->from);

	if (s == ADM_SMTP_OK && st_code(c) >= 200 && st_code(c) < 300)
		s = adm_smtp_rcpt(c, t->rcpt);
	if (s != ADM_SMTP_OK) {
		adm_check_set(open, ADM_CHECK_FAIL, "%s", adm_smtp_errmsg(c));
		return false;
	}
	if (st_code(c) >= 500) {
		adm_check_set(open, ADM_CHECK_OK, "refused: %s", st_first_line(c));
	} else if (st_code(c) >= 400) {
		adm_check_set(open, ADM_CHECK_WARN, "temporarily refused: %s", st_first_line(c));
		adm_check_fix(open, "expected a permanent refusal (554) from "
		              "smtpd_client_restrictions=permit_sasl_authenticated,reject");
	} else {
		adm_check_set(open, ADM_CHECK_FAIL, "OPEN RELAY: RCPT accepted without AUTH: %s",
		              st_first_line(c));
		adm_check_fix(open, "set smtpd_client_restrictions=permit_sasl_authenticated,reject "
		              "and smtpd_recipient_restrictions likewise on the service "
		              "(relay-admin setup); stop the service until fixed");
	}
	return adm_smtp_cmd(c, "RSET") == ADM_SMTP_OK;
}

/* A random password for the real login name must get 535 — and, like the right one, is
 * never sent to an unverified server. */
static void wrong_password(struct selftest *t, struct adm_smtp *c, enum adm_smtp_mech mech,
                           struct adm_check *wrong)
{
	enum adm_smtp_status s;
	char bad[64];

	if (!st_may_send_credentials(t, c, wrong, ADM_CHECK_SKIP))
		return;
	random_wrong_password(bad, sizeof(bad), &t->relay);
	s = adm_smtp_auth(c, mech, t->relay.user, bad, strlen(bad));
	explicit_bzero(bad, sizeof(bad));
	if (s != ADM_SMTP_OK)
		adm_check_set(wrong, ADM_CHECK_FAIL, "AUTH: %s", adm_smtp_errmsg(c));
	else if (st_code(c) == 535)
		adm_check_set(wrong, ADM_CHECK_OK, "refused: %s", st_first_line(c));
	else if (st_code(c) == 235) {
		adm_check_set(wrong, ADM_CHECK_FAIL, "a random wrong password was ACCEPTED: %s",
		              st_first_line(c));
		adm_check_fix(wrong, "check smtpd.conf (pwcheck_method: auxprop, auxprop_plugin: "
		              "relaydb) and that no other auxprop plugin answers");
	} else {
		adm_check_set(wrong, ADM_CHECK_FAIL, "expected 535, got: %s", st_first_line(c));
		adm_check_fix(wrong, "a 454 means SASL could not check the password: see the mail "
		              "log and relay-admin check");
	}
}

void st_relay_tls_unauth(struct selftest *t, enum adm_smtp_mech *mech, bool *have_mech,
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
	char mechs[256];
	struct adm_smtp *c = st_tls_session(t, &t->relay, tls);

	*have_mech = false;
	*why_no_mech = "no TLS session";
	if (!c) {
		st_skip_all(rest, 4, "no TLS session");
		return;
	}
	*why_no_mech = "no usable AUTH mechanism";
	const struct adm_smtp_cert *k = adm_smtp_cert(c);

	adm_check_set(tls, ADM_CHECK_OK, "%s with %s (%s)", k->protocol, k->cipher,
	              t->relay.tls == TLS_IMPLICIT ? "implicit TLS" : "STARTTLS");
	st_judge_cert(cert, k, &t->relay, t->relay.ca != NULL, "--ca");

	t->cur = auth;
	if (st_pick_mech(c, mech, mechs, sizeof(mechs))) {
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
	if (!unauth_rcpt(t, c, open)) {
		st_skip_all(rest, 4, "connection lost");
		goto out;
	}

	t->cur = wrong;
	if (!*have_mech) {
		adm_check_set(wrong, ADM_CHECK_SKIP, "not reached: no usable AUTH mechanism");
		goto out;
	}
	wrong_password(t, c, *mech, wrong);
out:
	st_close_session(t, c, tls);
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

/* AUTH with the right password: 235 expected. Returns NULL when authenticated, else why
 * the checks after it are not reached. */
static const char *authenticate(struct selftest *t, struct adm_smtp *c,
                                enum adm_smtp_mech mech, struct adm_check *auth)
{
	const char *name = mech == ADM_SMTP_PLAIN ? "PLAIN" : "LOGIN";
	enum adm_smtp_status s;

	if (!st_may_send_credentials(t, c, auth, ADM_CHECK_FAIL))
		return "not authenticated";
	s = adm_smtp_auth(c, mech, t->relay.user, t->relay.pass, t->relay.passlen);
	if (s != ADM_SMTP_OK) {
		adm_check_set(auth, ADM_CHECK_FAIL, "AUTH: %s", adm_smtp_errmsg(c));
		return s == ADM_SMTP_EUNSAFE ? "not authenticated" : "connection lost";
	}
	if (st_code(c) != 235) {
		adm_check_set(auth, ADM_CHECK_FAIL, "login %s refused: %s", t->relay.user,
		              st_first_line(c));
		adm_check_fix(auth, st_code(c) == 535
		              ? "wrong login or password, or the login is disabled/expired "
		                "(relay-admin user list; the mail log says why)"
		              : "SASL could not answer: run relay-admin check and see the mail log");
		return "not authenticated";
	}
	if (!adm_smtp_cert(c)->verified)
		adm_check_set(auth, ADM_CHECK_WARN, "INSECURE: %s (AUTH %s); the password went to a "
		              "server whose certificate did not verify (--insecure)", st_first_line(c),
		              name);
	else
		adm_check_set(auth, ADM_CHECK_OK, "%s (AUTH %s)", st_first_line(c), name);
	return NULL;
}

/* After AUTH: MAIL and RCPT accepted, then RSET — or, with --send, the test message. */
static void relay_and_send(struct selftest *t, struct adm_smtp *c, struct adm_check *relay,
                           struct adm_check *send, struct adm_check *rest[2])
{
	enum adm_smtp_status s = adm_smtp_mail(c, t->from);
	char msg[2048];

	if (s == ADM_SMTP_OK && st_code(c) == 250)
		s = adm_smtp_rcpt(c, t->rcpt);
	if (s != ADM_SMTP_OK) {
		adm_check_set(relay, ADM_CHECK_FAIL, "%s", adm_smtp_errmsg(c));
		st_skip_all(rest, 2, "connection lost");
		return;
	}
	if (st_code(c) != 250) {
		adm_check_set(relay, ADM_CHECK_FAIL, "refused: %s", st_first_line(c));
		adm_check_fix(relay, "is %s an allowed sender of %s (relay-admin sender list)? "
		              "Try --from ADDR; check the rate limits and the mail log", t->from,
		              t->relay.user);
		st_skip_all(rest, 2, "MAIL or RCPT refused");
		adm_smtp_cmd(c, "RSET");
		return;
	}
	if (!t->send_to) {
		adm_smtp_cmd(c, "RSET");
		adm_check_set(relay, ADM_CHECK_OK, "MAIL FROM:<%s> and RCPT TO:<%s> accepted; "
		              "RSET, nothing sent (use --send TO to send a message)", t->from,
		              t->rcpt);
		return;
	}
	adm_check_set(relay, ADM_CHECK_OK, "MAIL FROM:<%s> and RCPT TO:<%s> accepted", t->from,
	              t->rcpt);
	t->cur = send;
	s = adm_smtp_data(c, test_message(t, msg, sizeof(msg)));
	if (s != ADM_SMTP_OK)
		adm_check_set(send, ADM_CHECK_FAIL, "DATA: %s", adm_smtp_errmsg(c));
	else if (st_code(c) == 250)
		adm_check_set(send, ADM_CHECK_OK, "%s", st_first_line(c));
	else
		adm_check_set(send, ADM_CHECK_FAIL, "refused: %s", st_first_line(c));
}

void st_relay_tls_auth(struct selftest *t, enum adm_smtp_mech mech, bool have_mech,
                           const char *why_no_mech)
{
	struct adm_checklist *cl = t->cl;
	struct adm_check *auth = adm_checklist_add(cl, "auth", "the right password accepted (235)");
	struct adm_check *relay = adm_checklist_add(cl, "authenticated-relay",
	                                            "MAIL and RCPT accepted after AUTH");
	struct adm_check *send = t->send_to ? adm_checklist_add(cl, "send", "test message "
	                                                        "accepted for delivery") : NULL;
	struct adm_check *rest[] = { relay, send };
	const char *why;
	struct adm_smtp *c;

	if (!have_mech) {
		st_skip_all(&auth, 1, why_no_mech);
		st_skip_all(rest, 2, why_no_mech);
		return;
	}
	c = st_tls_session(t, &t->relay, auth);
	if (!c) {
		st_skip_all(rest, 2, "no TLS session");
		return;
	}
	t->cur = auth;
	if ((why = authenticate(t, c, mech, auth)) != NULL) {
		st_skip_all(rest, 2, why);
	} else {
		t->cur = relay;
		relay_and_send(t, c, relay, send, rest);
	}
	st_close_session(t, c, auth);
}

/* ---- the upstream -------------------------------------------------------------------- */

void st_upstream(struct selftest *t)
{
	struct adm_checklist *cl = t->cl;
	struct adm_check *tls = adm_checklist_add(cl, "upstream-tls", "upstream TLS session");
	struct adm_check *cert = adm_checklist_add(cl, "upstream-certificate",
	                                           "upstream certificate verified");
	struct adm_check *auth = adm_checklist_add(cl, "upstream-auth",
	                                           "upstream login accepted (nothing sent)");
	struct adm_check *rest[] = { cert, auth };
	struct adm_smtp *c = st_tls_session(t, &t->up, tls);
	enum adm_smtp_mech mech;
	char mechs[256];
	enum adm_smtp_status s;

	if (!c) {
		st_skip_all(rest, 2, "no TLS session with the upstream");
		return;
	}
	const struct adm_smtp_cert *k = adm_smtp_cert(c);

	adm_check_set(tls, ADM_CHECK_OK, "%s port %s: %s with %s (%s)", t->up.host, t->up.port,
	              k->protocol, k->cipher, t->up.tls == TLS_IMPLICIT ? "implicit TLS" :
	              "STARTTLS");
	st_judge_cert(cert, k, &t->up, true, "upstream");

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
	if (!st_pick_mech(c, &mech, mechs, sizeof(mechs))) {
		adm_check_set(auth, ADM_CHECK_FAIL, "the upstream offers no AUTH PLAIN or LOGIN "
		              "after TLS");
		goto out;
	}
	s = adm_smtp_auth(c, mech, t->up.user, t->up.pass, t->up.passlen);
	if (s != ADM_SMTP_OK)
		adm_check_set(auth, ADM_CHECK_FAIL, "AUTH: %s", adm_smtp_errmsg(c));
	else if (st_code(c) == 235)
		adm_check_set(auth, ADM_CHECK_OK, "%s (AUTH %s)", st_first_line(c),
		              mech == ADM_SMTP_PLAIN ? "PLAIN" : "LOGIN");
	else {
		adm_check_set(auth, ADM_CHECK_FAIL, "upstream login %s refused: %s", t->up.user,
		              st_first_line(c));
		adm_check_fix(auth, "wrong upstream user or password: rerun relay-admin setup "
		              "--upstream ... with the right credentials (stdin or "
		              "RELAY_UPSTREAM_PASSWORD)");
	}
out:
	st_close_session(t, c, tls);
}
