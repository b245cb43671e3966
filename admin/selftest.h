/*
 * selftest.h — the modules of `relay-admin selftest` (internal to admin/): sessions —
 * connecting, TLS, judging a certificate, the rule that no credential goes to an
 * unverified server (selftest_session.c) —, the checks against the relay and the upstream
 * (selftest_relay.c), and the command: options, secrets, running, rendering
 * (cmd_selftest.c). The result is one checklist (checklist.h), rendered as text or JSON by
 * adm_checklist_print().
 *
 * Ownership: struct selftest lives in adm_cmd_selftest() and holds the passwords, wiped
 * there before it returns. Single-threaded.
 */
#ifndef RELAY_ADM_SELFTEST_H
#define RELAY_ADM_SELFTEST_H

#include <stdbool.h>
#include <stddef.h>

#include "adm.h"
#include "checklist.h"
#include "smtp_client.h"

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

/* selftest_session.c */
void st_close_session(struct selftest *t, struct adm_smtp *c, struct adm_check *ck);
int st_code(struct adm_smtp *c);
const char *st_first_line(struct adm_smtp *c);
void st_judge_cert(struct adm_check *ck, const struct adm_smtp_cert *k,
                       const struct endpoint *e, bool strict, const char *flag);
bool st_may_send_credentials(struct selftest *t, struct adm_smtp *c, struct adm_check *ck,
                                 enum adm_check_status st);
struct adm_smtp *st_open_session(struct selftest *t, const struct endpoint *e, bool tls_now,
                                     struct adm_check *ck);
bool st_pick_mech(struct adm_smtp *c, enum adm_smtp_mech *m, char *mechs, size_t len);
void st_skip_all(struct adm_check **cks, size_t n, const char *why);
struct adm_smtp *st_tls_session(struct selftest *t, const struct endpoint *e,
                                    struct adm_check *ck);

/* selftest_relay.c: each adds its checks to t->cl, in the order of the report. */
void st_relay_plaintext(struct selftest *t);
void st_relay_tls_auth(struct selftest *t, enum adm_smtp_mech mech, bool have_mech,
                           const char *why_no_mech);
void st_relay_tls_unauth(struct selftest *t, enum adm_smtp_mech *mech, bool *have_mech,
                             const char **why_no_mech);
void st_upstream(struct selftest *t);

#endif
