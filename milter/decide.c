/*
 * decide.c — the milter's decisions and reply texts (see decide.h).
 *
 * Reply codes (RFC 3463), all in why_table below: 550 5.7.1 not permitted (TLS, AUTH,
 * login, From:), 553 5.7.1 envelope sender not owned, 553 5.1.7 unparseable sender,
 * 450 4.7.1 rate limit, 552 5.3.4 message alone over a byte limit, 451 4.3.0 internal
 * trouble (fail closed).
 */
#include "decide.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

void mlt_sanitize(char *out, size_t outlen, const char *in)
{
	size_t o = 0;

	if (outlen == 0)
		return;
	for (; in != NULL && *in != '\0' && o + 1 < outlen; in++) {
		unsigned char c = (unsigned char)*in;

		out[o++] = (c >= 0x20 && c < 0x7f && c != '%') ? (char)c : '?';
	}
	out[o] = '\0';
}

/* The one table of replies: every verdict's action and codes come from its row. */
static const struct {
	enum mlt_action action;
	const char *rcode, *xcode, *tag;
} why_table[MLT_WHY_COUNT_] = {
	[MLT_WHY_OK]                 = { MLT_CONTINUE, "",    "",      "" },
	[MLT_WHY_NO_TLS]             = { MLT_REJECT,   "550", "5.7.1", "no-tls" },
	[MLT_WHY_TLS_TOO_OLD]        = { MLT_REJECT,   "550", "5.7.1", "tls-too-old" },
	[MLT_WHY_NO_AUTH]            = { MLT_REJECT,   "550", "5.7.1", "no-auth" },
	[MLT_WHY_UNKNOWN_LOGIN]      = { MLT_REJECT,   "550", "5.7.1", "unknown-login" },
	[MLT_WHY_LOGIN_DISABLED]     = { MLT_REJECT,   "550", "5.7.1", "login-disabled" },
	[MLT_WHY_LOGIN_EXPIRED]      = { MLT_REJECT,   "550", "5.7.1", "login-expired" },
	[MLT_WHY_SENDER_INVALID]     = { MLT_REJECT,   "553", "5.1.7", "sender-invalid" },
	[MLT_WHY_SENDER_NOT_ALLOWED] = { MLT_REJECT,   "553", "5.7.1", "sender-not-allowed" },
	[MLT_WHY_FROM_MISSING]       = { MLT_REJECT,   "550", "5.7.1", "from-missing" },
	[MLT_WHY_FROM_INVALID]       = { MLT_REJECT,   "550", "5.7.1", "from-invalid" },
	[MLT_WHY_FROM_NOT_ALLOWED]   = { MLT_REJECT,   "550", "5.7.1", "from-not-allowed" },
	[MLT_WHY_TOO_BIG_ALONE]      = { MLT_REJECT,   "552", "5.3.4", "over-limit-alone" },
	[MLT_WHY_TOO_MANY_ALONE]     = { MLT_REJECT,   "550", "5.7.1", "over-limit-alone" },
	[MLT_WHY_RATE_LIMIT]         = { MLT_TEMPFAIL, "450", "4.7.1", "rate-limit" },
	[MLT_WHY_HELD]               = { MLT_HOLD,     "",    "",      "held-over-limit" },
	[MLT_WHY_WRONG_SERVICE]      = { MLT_TEMPFAIL, "451", "4.3.0", "wrong-service" },
	[MLT_WHY_USERS_DB_ERROR]     = { MLT_TEMPFAIL, "451", "4.3.0", "users-db-error" },
	[MLT_WHY_STATE_DB_ERROR]     = { MLT_TEMPFAIL, "451", "4.3.0", "state-db-error" },
	[MLT_WHY_NO_CONTEXT]         = { MLT_TEMPFAIL, "451", "4.3.0", "no-context" },
	[MLT_WHY_NO_SENDER]          = { MLT_TEMPFAIL, "451", "4.3.0", "no-sender" },
	[MLT_WHY_NO_CONFIG]          = { MLT_TEMPFAIL, "451", "4.3.0", "no-config" },
	[MLT_WHY_OUT_OF_MEMORY]      = { MLT_TEMPFAIL, "451", "4.3.0", "out-of-memory" },
	[MLT_WHY_QUARANTINE_FAILED]  = { MLT_TEMPFAIL, "451", "4.3.0", "quarantine-failed" },
	[MLT_WHY_STALE_SESSION]      = { MLT_TEMPFAIL, "451", "4.3.0", "stale-session" },
	[MLT_WHY_JOURNAL_ERROR]      = { MLT_TEMPFAIL, "451", "4.3.0", "state-journal-error" },
};

const char *mlt_why_tag(enum mlt_why why)
{
	return (unsigned)why < MLT_WHY_COUNT_ ? why_table[why].tag : "internal";
}

static void verdict_codes(struct mlt_verdict *v, enum mlt_why why)
{
	/* an out-of-range value is a bug: fail closed, as internal trouble */
	if ((unsigned)why >= MLT_WHY_COUNT_ || why_table[why].tag == NULL)
		why = MLT_WHY_NO_CONTEXT;
	v->why = why;
	v->action = why_table[why].action;
	v->rcode = why_table[why].rcode;
	v->xcode = why_table[why].xcode;
	v->reason = why_table[why].tag;
}

void mlt_verdict_set(struct mlt_verdict *v, enum mlt_why why, const char *fmt, ...)
{
	char text[sizeof v->text];
	va_list ap;

	memset(v, 0, sizeof *v);
	verdict_codes(v, why);
	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	mlt_sanitize(v->text, sizeof v->text, text);
}

void mlt_verdict_tempfail(struct mlt_verdict *v, enum mlt_why why, const char *what)
{
	if ((unsigned)why >= MLT_WHY_COUNT_ || why_table[why].action != MLT_TEMPFAIL ||
	    why == MLT_WHY_RATE_LIMIT)
		why = MLT_WHY_NO_CONTEXT;
	mlt_verdict_set(v, why, "Temporary policy failure (%s), try again later", what);
}

static void cont(struct mlt_verdict *v)
{
	memset(v, 0, sizeof *v);
	verdict_codes(v, MLT_WHY_OK);
}

bool mlt_sender_allowed(const struct mlt_login *l, const char *addr)
{
	const char *at;

	if (addr[0] == '\0') {
		for (size_t k = 0; k < l->nsenders; k++)
			if (strcmp(l->senders[k], "<>") == 0)
				return true;
		return false;
	}
	if (strchr(l->name, '@') != NULL && strcasecmp(l->name, addr) == 0)
		return true;
	at = strrchr(addr, '@');
	for (size_t k = 0; k < l->nsenders; k++) {
		const char *p = l->senders[k];

		if (p[0] == '@') {
			if (at != NULL && strcasecmp(p + 1, at + 1) == 0)
				return true;
		} else if (strcasecmp(p, addr) == 0) {
			return true;
		}
	}
	return false;
}

void mlt_decide_session(const struct mlt_config *cfg, const struct mlt_mail_facts *f,
                        struct mlt_verdict *v)
{
	char got[64];

	if (cfg->daemon_name[0] != '\0' &&
	    (f->daemon_name == NULL || strcmp(f->daemon_name, cfg->daemon_name) != 0)) {
		/* a milter wired to the wrong service is a configuration error: fail closed */
		mlt_verdict_tempfail(v, MLT_WHY_WRONG_SERVICE, "milter not configured for this service");
		return;
	}
	if (cfg->require_tls) {
		int rank = mlt_tls_rank(f->tls_version);

		if (f->tls_version == NULL || f->tls_version[0] == '\0') {
			mlt_verdict_set(v, MLT_WHY_NO_TLS,
			                "Encryption required: use TLS for this service");
			return;
		}
		if (rank < cfg->tls_min_version) {
			mlt_sanitize(got, sizeof got, f->tls_version);
			mlt_verdict_set(v, MLT_WHY_TLS_TOO_OLD,
			                "TLS version %s is too old: TLSv1.%d or newer required", got,
			                cfg->tls_min_version - 10);
			return;
		}
	}
	if (f->auth_authen == NULL || f->auth_authen[0] == '\0') {
		mlt_verdict_set(v, MLT_WHY_NO_AUTH,
		                "Authentication required: log in (SMTP AUTH) before sending");
		return;
	}
	cont(v);
}

void mlt_decide_mail(const struct mlt_mail_facts *f, enum mlt_lookup lookup,
                     const struct mlt_login *l, char sender[MLT_ADDR_MAX + 1],
                     struct mlt_verdict *v)
{
	char why[80], shown[MLT_ADDR_MAX + 1];
	enum mlt_addr_result r;

	sender[0] = '\0';
	if (lookup == MLT_LOOKUP_ERROR) {
		mlt_verdict_tempfail(v, MLT_WHY_USERS_DB_ERROR, "users database unavailable");
		return;
	}
	if (lookup == MLT_LOOKUP_NOTFOUND || l == NULL) {
		mlt_verdict_set(v, MLT_WHY_UNKNOWN_LOGIN,
		                "Login is not permitted to send through this relay");
		return;
	}
	if (l->state != MLT_LOGIN_ACTIVE) {
		mlt_verdict_set(v, l->state == MLT_LOGIN_DISABLED ? MLT_WHY_LOGIN_DISABLED
		                                                  : MLT_WHY_LOGIN_EXPIRED,
		                "Login is not permitted to send through this relay");
		return;
	}
	r = mlt_envaddr_parse(f->envelope != NULL ? f->envelope : "", sender, why, sizeof why);
	if (r == MLT_ADDR_INVALID) {
		mlt_sanitize(shown, sizeof shown, f->envelope);
		snprintf(sender, MLT_ADDR_MAX + 1, "%s", shown);
		mlt_verdict_set(v, MLT_WHY_SENDER_INVALID,
		                "Sender address %.120s is invalid: %s", shown, why);
		return;
	}
	if (!mlt_sender_allowed(l, sender)) {
		mlt_sanitize(shown, sizeof shown, sender);
		if (sender[0] == '\0')
			mlt_verdict_set(v, MLT_WHY_SENDER_NOT_ALLOWED,
			                "Null sender <> not allowed for login %.64s", l->name);
		else
			mlt_verdict_set(v, MLT_WHY_SENDER_NOT_ALLOWED,
			                "Sender address <%.120s> not allowed for login %.64s", shown,
			                l->name);
		return;
	}
	cont(v);
}

struct from_ctx {
	const struct mlt_login *l;
	char *first;
	char bad[MLT_ADDR_MAX + 1];
	bool have_first;
};

static bool from_one(void *arg, const char *addr)
{
	struct from_ctx *c = arg;

	if (!c->have_first && c->first != NULL) {
		snprintf(c->first, MLT_ADDR_MAX + 1, "%s", addr);
		c->have_first = true;
	}
	if (c->bad[0] == '\0' && !mlt_sender_allowed(c->l, addr))
		snprintf(c->bad, sizeof c->bad, "%s", addr);
	return true;
}

void mlt_decide_from(const struct mlt_config *cfg, const struct mlt_login *l,
                     const char *const *values, const size_t *lens, size_t nfrom,
                     char *first, struct mlt_verdict *v)
{
	struct from_ctx c = { .l = l, .first = first };
	char why[80], shown[MLT_ADDR_MAX + 1];
	size_t total = 0;

	if (first != NULL)
		first[0] = '\0';
	if (!cfg->check_header_from) {
		cont(v);
		return;
	}
	if (nfrom == 0) {
		mlt_verdict_set(v, MLT_WHY_FROM_MISSING,
		                "Message has no From: header; add one with your address");
		return;
	}
	for (size_t k = 0; k < nfrom; k++) {
		size_t n = 0;

		if (mlt_from_parse(values[k], lens[k], from_one, &c, &n, why, sizeof why) !=
		    MLT_ADDR_OK) {
			mlt_verdict_set(v, MLT_WHY_FROM_INVALID,
			                "Cannot parse the From: header: %s", why);
			return;
		}
		total += n;
	}
	if (total == 0) {
		mlt_verdict_set(v, MLT_WHY_FROM_MISSING,
		                "The From: header names no address; add yours");
		return;
	}
	if (c.bad[0] != '\0') {
		mlt_sanitize(shown, sizeof shown, c.bad);
		mlt_verdict_set(v, MLT_WHY_FROM_NOT_ALLOWED,
		                "Header From: <%.120s> not allowed for login %.64s", shown, l->name);
		return;
	}
	cont(v);
}

void mlt_verdict_rate(const struct mlt_login *l, const struct mlt_limit *lim, int64_t wait,
                      struct mlt_verdict *v)
{
	char period[24];
	const char *what = mlt_metric_name(lim->metric);

	mlt_format_duration(lim->window, period, sizeof period);
	if (wait == MLT_WAIT_NEVER) {
		if (lim->metric == MLT_BYTES)
			mlt_verdict_set(v, MLT_WHY_TOO_BIG_ALONE,
			                "Message is larger than the limit of %llu bytes per %s for login %.64s",
			                (unsigned long long)lim->max, period, l->name);
		else
			mlt_verdict_set(v, MLT_WHY_TOO_MANY_ALONE,
			                "Message exceeds the limit of %llu %s per %s for login %.64s",
			                (unsigned long long)lim->max, what, period, l->name);
		return;
	}
	if (l->hold_over_limit) {
		mlt_verdict_set(v, MLT_WHY_HELD,
		                "Rate limit of %llu %s per %s reached for login %.64s: held for review",
		                (unsigned long long)lim->max, what, period, l->name);
		return;
	}
	mlt_verdict_set(v, MLT_WHY_RATE_LIMIT,
	                "Rate limit of %llu %s per %s reached for login %.64s, retry in %lld seconds",
	                (unsigned long long)lim->max, what, period, l->name, (long long)wait);
}
