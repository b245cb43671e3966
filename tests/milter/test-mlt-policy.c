/*
 * test-mlt-policy.c — the milter's decision table (milter/policy.c): TLS, AUTH, daemon
 * name, login state, envelope sender matching (exact, @domain, the login itself, <>),
 * header From:, and the rate-limit replies. No libmilter, no database.
 */
#include <string.h>

#include "decide.h"
#include "tap.h"

static const char *S(const char *s)
{
	return s;
}

static const char *alice_senders[] = { "alice@example.com", "@corp.example", "<>" };
static const char *app_senders[] = { "noreply@shop.example" };

static struct mlt_login alice = {
	.name = "alice", .state = MLT_LOGIN_ACTIVE, .nsenders = 3, .senders = alice_senders,
};
static struct mlt_login app = {
	.name = "app@shop.example", .state = MLT_LOGIN_ACTIVE, .nsenders = 1,
	.senders = app_senders, .hold_over_limit = true,
};
static struct mlt_login off = { .name = "off", .state = MLT_LOGIN_DISABLED };
static struct mlt_login old = { .name = "old", .state = MLT_LOGIN_EXPIRED };

static const struct {
	const char *tls, *auth, *daemon, *env;
	enum mlt_lookup lookup;
	const struct mlt_login *login;
	enum mlt_action want;
	const char *rcode, *xcode, *reason;
} mail[] = {
	{ "TLSv1.3", "alice", "ORIGINATING", "<alice@example.com>", MLT_LOOKUP_FOUND, &alice,
	  MLT_CONTINUE, "", "", "" },
	{ "TLSv1.2", "alice", "ORIGINATING", "<Bob@Corp.Example>", MLT_LOOKUP_FOUND, &alice,
	  MLT_CONTINUE, "", "", "" },
	{ "TLSv1.2", "alice", "ORIGINATING", "<>", MLT_LOOKUP_FOUND, &alice, MLT_CONTINUE, "", "", "" },
	{ "TLSv1.2", "alice", "ORIGINATING", "<x@sub.corp.example>", MLT_LOOKUP_FOUND, &alice,
	  MLT_REJECT, "553", "5.7.1", "sender-not-allowed" },
	{ "TLSv1.2", "alice", "ORIGINATING", "<ceo@example.com>", MLT_LOOKUP_FOUND, &alice,
	  MLT_REJECT, "553", "5.7.1", "sender-not-allowed" },
	{ "TLSv1.2", "app@shop.example", "ORIGINATING", "<APP@shop.example>", MLT_LOOKUP_FOUND, &app,
	  MLT_CONTINUE, "", "", "" },
	{ "TLSv1.2", "app@shop.example", "ORIGINATING", "<>", MLT_LOOKUP_FOUND, &app,
	  MLT_REJECT, "553", "5.7.1", "sender-not-allowed" },
	{ "TLSv1.2", "alice", "ORIGINATING", "<alice@", MLT_LOOKUP_FOUND, &alice,
	  MLT_REJECT, "553", "5.1.7", "sender-invalid" },
	{ NULL, "alice", "ORIGINATING", "<alice@example.com>", MLT_LOOKUP_FOUND, &alice,
	  MLT_REJECT, "550", "5.7.1", "no-tls" },
	{ "TLSv1.1", "alice", "ORIGINATING", "<alice@example.com>", MLT_LOOKUP_FOUND, &alice,
	  MLT_REJECT, "550", "5.7.1", "tls-too-old" },
	{ "SSLv3", "alice", "ORIGINATING", "<alice@example.com>", MLT_LOOKUP_FOUND, &alice,
	  MLT_REJECT, "550", "5.7.1", "tls-too-old" },
	{ "garbage", "alice", "ORIGINATING", "<alice@example.com>", MLT_LOOKUP_FOUND, &alice,
	  MLT_REJECT, "550", "5.7.1", "tls-too-old" },
	{ "TLSv1.3", NULL, "ORIGINATING", "<alice@example.com>", MLT_LOOKUP_FOUND, &alice,
	  MLT_REJECT, "550", "5.7.1", "no-auth" },
	{ "TLSv1.3", "", "ORIGINATING", "<alice@example.com>", MLT_LOOKUP_FOUND, &alice,
	  MLT_REJECT, "550", "5.7.1", "no-auth" },
	{ "TLSv1.3", "alice", "OTHER", "<alice@example.com>", MLT_LOOKUP_FOUND, &alice,
	  MLT_TEMPFAIL, "451", "4.3.0", "wrong-service" },
	{ "TLSv1.3", "alice", NULL, "<alice@example.com>", MLT_LOOKUP_FOUND, &alice,
	  MLT_TEMPFAIL, "451", "4.3.0", "wrong-service" },
	{ "TLSv1.3", "ghost", "ORIGINATING", "<alice@example.com>", MLT_LOOKUP_NOTFOUND, NULL,
	  MLT_REJECT, "550", "5.7.1", "unknown-login" },
	{ "TLSv1.3", "alice", "ORIGINATING", "<alice@example.com>", MLT_LOOKUP_ERROR, NULL,
	  MLT_TEMPFAIL, "451", "4.3.0", "users-db-error" },
	{ "TLSv1.3", "off", "ORIGINATING", "<off@example.com>", MLT_LOOKUP_FOUND, &off,
	  MLT_REJECT, "550", "5.7.1", "login-disabled" },
	{ "TLSv1.3", "old", "ORIGINATING", "<old@example.com>", MLT_LOOKUP_FOUND, &old,
	  MLT_REJECT, "550", "5.7.1", "login-expired" },
};

static const struct {
	const char *values[2];
	size_t n;
	enum mlt_action want;
	const char *reason, *first;
} from[] = {
	{ { "Alice <alice@example.com>" }, 1, MLT_CONTINUE, "", "alice@example.com" },
	{ { "\"Boss\" <boss@corp.example>, alice@example.com" }, 1, MLT_CONTINUE, "", "boss@corp.example" },
	{ { "\"alice@example.com\" <ceo@example.com>" }, 1, MLT_REJECT, "from-not-allowed", "ceo@example.com" },
	{ { "alice@example.com, ceo@bank.example" }, 1, MLT_REJECT, "from-not-allowed", "alice@example.com" },
	{ { "alice@example.com", "ceo@bank.example" }, 2, MLT_REJECT, "from-not-allowed", "alice@example.com" },
	{ { NULL }, 0, MLT_REJECT, "from-missing", "" },
	{ { "undisclosed:;" }, 1, MLT_REJECT, "from-missing", "" },
	{ { "Alice <alice@example.com" }, 1, MLT_REJECT, "from-invalid", "" },
};

int main(void)
{
	struct mlt_config cfg;
	struct mlt_verdict v;
	char sender[MLT_ADDR_MAX + 1], first[MLT_ADDR_MAX + 1];

	mlt_config_defaults(&cfg);
	strcpy(cfg.daemon_name, "ORIGINATING");
	for (size_t k = 0; k < sizeof mail / sizeof mail[0]; k++) {
		struct mlt_mail_facts f = { .auth_authen = mail[k].auth, .tls_version = mail[k].tls,
		                            .daemon_name = mail[k].daemon, .envelope = mail[k].env };

		mlt_decide_session(&cfg, &f, &v);
		if (v.action == MLT_CONTINUE)
			mlt_decide_mail(&f, mail[k].lookup, mail[k].login, sender, &v);
		is_int(v.action, mail[k].want, "mail %zu: action", k);
		is_str(S(v.rcode), mail[k].rcode, "mail %zu: reply code", k);
		is_str(S(v.xcode), mail[k].xcode, "mail %zu: enhanced code", k);
		is_str(S(v.reason), mail[k].reason, "mail %zu: reason", k);
		ok(v.action == MLT_CONTINUE || strlen(v.text) > 10, "mail %zu: a clear text", k);
		ok(strchr(v.text, '%') == NULL, "mail %zu: no %% in text", k);
	}
	/* the client's words are sanitized before they reach a reply */
	{
		struct mlt_mail_facts f = { .auth_authen = "alice", .tls_version = "TLSv1.3",
		                            .envelope = "<evil%n\x7f@x.com>" };

		mlt_decide_mail(&f, MLT_LOOKUP_FOUND, &alice, sender, &v);
		ok(v.action == MLT_REJECT && strchr(v.text, '%') == NULL && strchr(v.text, 0x7f) == NULL,
		   "hostile sender sanitized in the reply: %s", v.text);
	}
	/* TLS not required */
	{
		struct mlt_mail_facts f = { .auth_authen = "alice", .envelope = "<alice@example.com>" };

		cfg.require_tls = false;
		cfg.daemon_name[0] = '\0';
		mlt_decide_session(&cfg, &f, &v);
		is_int(v.action, MLT_CONTINUE, "require_tls = no lets plaintext through");
		cfg.require_tls = true;
	}
	for (size_t k = 0; k < sizeof from / sizeof from[0]; k++) {
		size_t lens[2] = { 0, 0 };

		for (size_t i = 0; i < from[k].n; i++)
			lens[i] = strlen(from[k].values[i]);
		mlt_decide_from(&cfg, &alice, from[k].values, lens, from[k].n, first, &v);
		is_int(v.action, from[k].want, "from %zu: action", k);
		is_str(S(v.reason), from[k].reason, "from %zu: reason", k);
		is_str(S(first), from[k].first, "from %zu: first address for the log", k);
	}
	cfg.check_header_from = false;
	mlt_decide_from(&cfg, &alice, NULL, NULL, 0, first, &v);
	is_int(v.action, MLT_CONTINUE, "check_header_from = no skips the check");

	/* rate verdicts */
	{
		struct mlt_limit m = { MLT_MESSAGES, 60, 5 }, b = { MLT_BYTES, 86400, 1000 };

		mlt_verdict_rate(&alice, &m, 42, &v);
		is_int(v.action, MLT_TEMPFAIL, "over a limit: tempfail");
		is_str(S(v.rcode), "450", "450");
		is_str(S(v.xcode), "4.7.1", "4.7.1");
		ok(strstr(v.text, "retry in 42 seconds") != NULL, "text gives the wait: %s", v.text);
		ok(strstr(v.text, "5 messages per 1m") != NULL, "text names the limit");
		mlt_verdict_rate(&app, &m, 42, &v);
		is_int(v.action, MLT_HOLD, "hold_over_limit: hold");
		mlt_verdict_rate(&app, &b, MLT_WAIT_NEVER, &v);
		is_int(v.action, MLT_REJECT, "too big alone: reject even when holding");
		is_str(S(v.rcode), "552", "552");
		is_str(S(v.xcode), "5.3.4", "5.3.4");
		m.max = 2;
		mlt_verdict_rate(&alice, &m, MLT_WAIT_NEVER, &v);
		is_str(S(v.rcode), "550", "count alone over the limit: 550");
		mlt_verdict_tempfail(&v, MLT_WHY_STATE_DB_ERROR, "state database unavailable");
		is_str(S(v.rcode), "451", "internal error: 451");
		is_str(S(v.xcode), "4.3.0", "internal error: 4.3.0");
	}
	/* the reply table: every reason's codes agree with its action, and no code is picked
	 * by anything but the reason */
	for (int w = 0; w < MLT_WHY_COUNT_; w++) {
		mlt_verdict_set(&v, (enum mlt_why)w, "text %d", w);
		is_int(v.why, w, "why %d kept", w);
		if (v.action == MLT_REJECT)
			ok(v.rcode[0] == '5' && v.xcode[0] == '5', "why %d (%s): 5xx reject", w, v.reason);
		else if (v.action == MLT_TEMPFAIL)
			ok(v.rcode[0] == '4' && v.xcode[0] == '4', "why %d (%s): 4xx tempfail", w, v.reason);
		else
			ok(v.rcode[0] == '\0' && v.xcode[0] == '\0', "why %d (%s): no reply code", w,
			   v.reason);
		ok(w == MLT_WHY_OK || v.reason[0] != '\0', "why %d has an audit tag", w);
		is_str(mlt_why_tag((enum mlt_why)w), v.reason, "why %d: mlt_why_tag agrees", w);
	}
	mlt_verdict_tempfail(&v, MLT_WHY_SENDER_NOT_ALLOWED, "not internal");
	is_str(v.rcode, "451", "tempfail with a non-internal reason stays a 451");
	mlt_verdict_set(&v, (enum mlt_why)9999, "out of range");
	is_int(v.action, MLT_TEMPFAIL, "an unknown reason fails closed");
	return tap_done();
}
