/*
 * callbacks.c — relay-milter's libmilter callbacks (see callbacks.h).
 *
 * Stages negotiated away (one MTA round trip each): CONNECT, HELO, DATA, UNKNOWN and EOH;
 * header and body chunks need no reply (NR_HDR, NR_BODY). What is left: MAIL (TLS, AUTH,
 * login, envelope sender, messages and SIZE= against the limits), RCPT (recipients),
 * and end of message (From:, real size, commit). The From: check runs at end of message
 * rather than end of headers: the SMTP client hears the answer after its final dot either
 * way, so the earlier stage would only add a round trip to every message.
 */
#include "callbacks.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "decide.h"
#include "log.h"
#include "rdb.h"

#define FROM_HEADERS_MAX 8

struct mlt_cfgref {
	struct mlt_config c;
	atomic_int refs;
};

static struct mlt_daemon *daemon_state;
static pthread_mutex_t cfg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct mlt_cfgref *cfg_current;

struct msg {
	struct mlt_cfgref *cfg;
	const struct mlt_login *login;      /* reference from the store; NULL before lookup */
	struct mlt_resv resv;
	bool hold;                          /* over a limit with hold_over_limit: quarantine */
	char hold_text[240];
	char refusal[64];                   /* last per-recipient refusal, for the audit log */
	char auth[MLT_LOGIN_MAX + 1];
	char sender[MLT_ADDR_MAX + 1];
	char header_from[MLT_ADDR_MAX + 1];
	char tls[32], cipher[64], client[64];
	uint64_t rcpts, bytes, size_hint;
	size_t nfrom;
	bool from_overflow;
	char *from[FROM_HEADERS_MAX];
	size_t fromlen[FROM_HEADERS_MAX];
};

struct conn {
	bool nr_hdr, nr_body;
	struct msg *msg;
};

void mlt_callbacks_init(struct mlt_daemon *d)
{
	daemon_state = d;
}

static void cfg_put(struct mlt_cfgref *c)
{
	if (c != NULL && atomic_fetch_sub(&c->refs, 1) == 1)
		free(c);
}

static struct mlt_cfgref *cfg_get(void)
{
	struct mlt_cfgref *c;

	pthread_mutex_lock(&cfg_mu);
	c = cfg_current;
	if (c != NULL)
		atomic_fetch_add(&c->refs, 1);
	pthread_mutex_unlock(&cfg_mu);
	return c;
}

int mlt_config_publish(const struct mlt_config *cfg)
{
	struct mlt_cfgref *c = malloc(sizeof *c), *old;

	if (c == NULL)
		return -1;
	c->c = *cfg;
	atomic_init(&c->refs, 1);
	pthread_mutex_lock(&cfg_mu);
	old = cfg_current;
	cfg_current = c;
	pthread_mutex_unlock(&cfg_mu);
	cfg_put(old);
	return 0;
}

void mlt_config_unpublish(void)
{
	struct mlt_cfgref *old;

	pthread_mutex_lock(&cfg_mu);
	old = cfg_current;
	cfg_current = NULL;
	pthread_mutex_unlock(&cfg_mu);
	cfg_put(old);
}

/* The wall clock: for the audit log, last use and login expiry only. Rate limits run on
 * mlt_rate_clock(), which clock steps do not move (rate.h). */
static int64_t now_s(void)
{
	return (int64_t)time(NULL);
}

static void msg_free(struct msg *m)
{
	if (m == NULL)
		return;
	if (m->login != NULL) {
		mlt_rate_release(daemon_state->rate, m->login->name, &m->resv);
		mlt_store_put(m->login);
	}
	for (size_t k = 0; k < m->nfrom; k++)
		free(m->from[k]);
	cfg_put(m->cfg);
	free(m);
}

static void copy_macro(SMFICTX *ctx, const char *name, char *out, size_t outlen)
{
	const char *v = smfi_getsymval(ctx, (char *)(uintptr_t)name);

	mlt_sanitize(out, outlen, v);
}

/* {auth_authen}, verbatim, when it can be a login name: true. Anything else (too long,
 * control or non-ASCII bytes, characters no login may have) is copied sanitized, for the
 * logs only, and false: it must match no login. mlt_sanitize() alone would turn '%' (valid
 * in a login) and control bytes into '?' and cut long values, i.e. look up another login. */
static bool copy_login(SMFICTX *ctx, char *out, size_t outlen)
{
	const char *v = smfi_getsymval(ctx, (char *)(uintptr_t)"{auth_authen}");

	if (v != NULL && strnlen(v, outlen) < outlen && rdb_name_valid(v, NULL, 0)) {
		memcpy(out, v, strlen(v) + 1);
		return true;
	}
	mlt_sanitize(out, outlen, v);
	return false;
}

/* Queues the audit record (and usage when counted) for the writer thread. A counted
 * record is in the crash journal when this returns true (writer.h); false: it is not, and
 * the message must not be accepted. */
static bool audit(SMFICTX *ctx, const struct msg *m, const char *verdict, const char *reason,
                  bool counted)
{
	struct mlt_record *r = calloc(1, sizeof *r);
	char shown_from[sizeof r->env_from], line[2048];
	bool queued;

	if (r == NULL) {
		mlt_log(LOG_ERR, "out of memory: audit record for %s lost", m->auth);
		return false;
	}
	r->ts = now_s();
	r->counted = counted;
	r->touch = counted || strcmp(verdict, "held") == 0;
	r->v[MLT_MESSAGES] = 1;
	r->v[MLT_RECIPIENTS] = m->rcpts;
	r->v[MLT_BYTES] = m->bytes;
	snprintf(r->login, sizeof r->login, "%s", m->login ? m->login->name : m->auth);
	snprintf(r->client_addr, sizeof r->client_addr, "%s", m->client);
	snprintf(r->tls_version, sizeof r->tls_version, "%s", m->tls);
	snprintf(r->cipher, sizeof r->cipher, "%s", m->cipher);
	snprintf(r->env_from, sizeof r->env_from, "%s", m->sender);
	snprintf(r->header_from, sizeof r->header_from, "%s", m->header_from);
	if (ctx != NULL)
		copy_macro(ctx, "i", r->queue_id, sizeof r->queue_id);
	snprintf(r->verdict, sizeof r->verdict, "%s", verdict);
	snprintf(r->reason, sizeof r->reason, "%s", reason);
	r->rcpt_count = m->rcpts;
	r->size = m->bytes;
	/* a canonical address keeps 8-bit bytes (UTF-8, and with it C1 controls such as
	 * U+009B CSI): the log line gets printable ASCII only */
	mlt_sanitize(shown_from, sizeof shown_from, r->env_from);
	snprintf(line, sizeof line, "%s: login=%s client=%s from=<%s> rcpts=%" PRIu64 " size=%"
	         PRIu64 " verdict=%s reason=%s", r->queue_id[0] ? r->queue_id : "NOQUEUE", r->login,
	         r->client_addr, shown_from, r->rcpt_count, r->size, verdict, reason);
	/* the log says "accepted" only once the record is in the journal (push frees r) */
	queued = mlt_writer_push(daemon_state->writer, r) == 0;
	if (queued)
		mlt_log(LOG_INFO, "%s", line);
	return queued;
}

/* Sets the reply for a refusal and maps the verdict onto a libmilter status. */
static sfsistat reply(SMFICTX *ctx, const struct mlt_verdict *v)
{
	char text[sizeof v->text];

	snprintf(text, sizeof text, "%s", v->text);
	if (v->rcode[0] != '\0' &&
	    smfi_setreply(ctx, (char *)(uintptr_t)v->rcode, (char *)(uintptr_t)v->xcode, text) !=
	    MI_SUCCESS)
		mlt_log(LOG_WARNING, "smfi_setreply failed for %s %s", v->rcode, v->xcode);
	return v->action == MLT_REJECT ? SMFIS_REJECT : SMFIS_TEMPFAIL;
}

static const char *verdict_word(const struct mlt_verdict *v)
{
	return v->action == MLT_REJECT ? "rejected" : "tempfailed";
}

/* Refuses the whole message: audit, reply, free the message context. */
static sfsistat refuse_msg(SMFICTX *ctx, struct conn *c, const struct mlt_verdict *v)
{
	sfsistat s;

	audit(ctx, c->msg, verdict_word(v), v->reason, false);
	s = reply(ctx, v);
	msg_free(c->msg);
	c->msg = NULL;
	return s;
}

static sfsistat internal(SMFICTX *ctx, struct conn *c, const char *reason, const char *what)
{
	struct mlt_verdict v;

	mlt_verdict_tempfail(&v, reason, what);
	mlt_log(LOG_ERR, "%s: tempfail (%s)", reason, what);
	if (c != NULL && c->msg != NULL)
		return refuse_msg(ctx, c, &v);
	return reply(ctx, &v);
}

static sfsistat cb_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1,
                             unsigned long f2, unsigned long f3, unsigned long *pf0,
                             unsigned long *pf1, unsigned long *pf2, unsigned long *pf3)
{
	const unsigned long steps = SMFIP_NOCONNECT | SMFIP_NOHELO | SMFIP_NOUNKNOWN |
	                            SMFIP_NODATA | SMFIP_NOEOH | SMFIP_NR_HDR | SMFIP_NR_BODY;
	struct conn *c = calloc(1, sizeof *c);

	if (c == NULL || smfi_setpriv(ctx, c) != MI_SUCCESS) {
		free(c);
		mlt_log(LOG_ERR, "out of memory at negotiate");
		/* Not REJECT: that means "skip this milter", i.e. fail open. Without a context
		 * every MAIL of this session is answered 451 (cb_envfrom). */
		return SMFIS_ALL_OPTS;
	}
	if (!(f0 & SMFIF_QUARANTINE))
		mlt_log(LOG_WARNING, "MTA does not offer quarantine: holding is unavailable");
	*pf0 = f0 & (SMFIF_QUARANTINE | SMFIF_SETSYMLIST);
	*pf1 = f1 & steps;
	*pf2 = 0;
	*pf3 = 0;
	c->nr_hdr = (*pf1 & SMFIP_NR_HDR) != 0;
	c->nr_body = (*pf1 & SMFIP_NR_BODY) != 0;
	if (f0 & SMFIF_SETSYMLIST) {
		smfi_setsymlist(ctx, SMFIM_ENVFROM,
		                (char *)(uintptr_t)"i {auth_type} {auth_authen} {tls_version} {cipher}"
		                " {client_addr} {daemon_name} {mail_addr}");
		smfi_setsymlist(ctx, SMFIM_EOM, (char *)(uintptr_t)"i");
	}
	return SMFIS_CONTINUE;
}

/* The login is over limit `which` for `wait` seconds: *v is that limit's verdict. If it
 * says hold, the message is marked held (quarantined at end of message with v's text) and
 * the result is true: the caller goes on. False: the caller refuses with *v. */
static bool hold_over_limit(struct msg *m, size_t which, int64_t wait, struct mlt_verdict *v)
{
	mlt_verdict_rate(m->login, &m->login->limits[which], wait, v);
	if (v->action != MLT_HOLD)
		return false;
	m->hold = true;
	snprintf(m->hold_text, sizeof m->hold_text, "%s", v->text);
	return true;
}

static uint64_t size_param(char **argv)
{
	for (size_t k = 1; argv[k] != NULL; k++) {
		if (strncasecmp(argv[k], "SIZE=", 5) == 0) {
			char *end;
			unsigned long long v = strtoull(argv[k] + 5, &end, 10);

			return *end == '\0' ? (uint64_t)v : 0;
		}
	}
	return 0;
}

static sfsistat cb_envfrom(SMFICTX *ctx, char **argv)
{
	struct conn *c = smfi_getpriv(ctx);
	struct mlt_mail_facts f;
	struct mlt_verdict v;
	struct msg *m;
	char daemon_name[64];
	enum mlt_lookup lk;
	int64_t now = now_s();
	bool login_ok;

	if (c == NULL) /* negotiate did not run or failed: refuse rather than pass */
		return internal(ctx, NULL, "no-context", "milter session state missing");
	if (argv == NULL || argv[0] == NULL)
		return internal(ctx, NULL, "no-sender", "MAIL without an address");
	msg_free(c->msg);
	c->msg = m = calloc(1, sizeof *m);
	if (m == NULL)
		return internal(ctx, NULL, "out-of-memory", "out of memory");
	m->cfg = cfg_get();
	if (m->cfg == NULL)
		return internal(ctx, c, "no-config", "no configuration");
	login_ok = copy_login(ctx, m->auth, sizeof m->auth);
	copy_macro(ctx, "{tls_version}", m->tls, sizeof m->tls);
	copy_macro(ctx, "{cipher}", m->cipher, sizeof m->cipher);
	copy_macro(ctx, "{client_addr}", m->client, sizeof m->client);
	copy_macro(ctx, "{daemon_name}", daemon_name, sizeof daemon_name);
	/* the audit log shows the canonical sender when it parses, else the raw text */
	if (mlt_envaddr_parse(argv[0], m->sender, NULL, 0) == MLT_ADDR_INVALID)
		mlt_sanitize(m->sender, sizeof m->sender, argv[0]);
	f = (struct mlt_mail_facts){
		.auth_authen = m->auth[0] ? m->auth : NULL,
		.tls_version = m->tls[0] ? m->tls : NULL,
		.daemon_name = daemon_name[0] ? daemon_name : NULL,
		.envelope = argv[0],
	};
	mlt_decide_session(&m->cfg->c, &f, &v);
	if (v.action != MLT_CONTINUE)
		return refuse_msg(ctx, c, &v);
	if (!mlt_writer_healthy(daemon_state->writer))
		return internal(ctx, c, "state-db-error", "state database unavailable");
	lk = login_ok ? mlt_store_get(daemon_state->store, m->auth, now, &m->login)
	              : MLT_LOOKUP_NOTFOUND;
	mlt_decide_mail(&f, lk, m->login, m->sender, &v);
	if (v.action != MLT_CONTINUE)
		return refuse_msg(ctx, c, &v);
	if (m->login->rate_exempt)
		return SMFIS_CONTINUE;
	m->size_hint = size_param(argv);
	{
		const uint64_t need[MLT_METRICS] = { 1, 0, m->size_hint };
		size_t which = 0;
		int64_t wait = mlt_rate_reserve(daemon_state->rate, m->login->name, m->login->limits,
		                                m->login->nlimits, need, mlt_rate_clock(), &m->resv,
		                                &which);

		if (wait == MLT_RATE_ERROR)
			return internal(ctx, c, "out-of-memory", "out of memory");
		if (wait != 0) {
			if (!hold_over_limit(m, which, wait, &v))
				return refuse_msg(ctx, c, &v);
			mlt_rate_release(daemon_state->rate, m->login->name, &m->resv);
		}
	}
	return SMFIS_CONTINUE;
}

static sfsistat cb_envrcpt(SMFICTX *ctx, char **argv)
{
	struct conn *c = smfi_getpriv(ctx);
	struct msg *m = c ? c->msg : NULL;
	struct mlt_verdict v;
	size_t which = 0;
	int64_t wait;
	const uint64_t need[MLT_METRICS] = { 0, 1, 0 };

	if (m == NULL || m->login == NULL)
		return internal(ctx, c, "no-context", "recipient without a sender");
	if (m->login->rate_exempt || m->hold) {
		m->rcpts++;
		return SMFIS_CONTINUE;
	}
	wait = mlt_rate_reserve(daemon_state->rate, m->login->name, m->login->limits,
	                        m->login->nlimits, need, mlt_rate_clock(), &m->resv, &which);
	if (wait == MLT_RATE_ERROR)
		return internal(ctx, NULL, "out-of-memory", "out of memory");
	if (wait != 0) {
		if (hold_over_limit(m, which, wait, &v)) {
			mlt_rate_release(daemon_state->rate, m->login->name, &m->resv);
			m->rcpts++;
			return SMFIS_CONTINUE;
		}
		/* refuse this recipient only; the message goes on with the others */
		snprintf(m->refusal, sizeof m->refusal, "%s", v.reason);
		mlt_log(LOG_INFO, "login=%s recipient refused: %s", m->login->name, v.text);
		return reply(ctx, &v);
	}
	m->rcpts++;
	return SMFIS_CONTINUE;
}

static sfsistat cb_header(SMFICTX *ctx, char *name, char *value)
{
	struct conn *c = smfi_getpriv(ctx);
	struct msg *m = c ? c->msg : NULL;
	sfsistat ok_status = (c != NULL && c->nr_hdr) ? SMFIS_NOREPLY : SMFIS_CONTINUE;
	size_t vlen = strlen(value);

	if (m == NULL)
		return ok_status; /* decided at end of message: no context means tempfail there */
	m->bytes += strlen(name) + 2 + vlen + 2;
	if (strcasecmp(name, "From") != 0)
		return ok_status;
	if (m->nfrom >= FROM_HEADERS_MAX || vlen > MLT_HEADER_MAX) {
		m->from_overflow = true;
		return ok_status;
	}
	m->from[m->nfrom] = malloc(vlen + 1);
	if (m->from[m->nfrom] == NULL) {
		m->from_overflow = true;
		return ok_status;
	}
	memcpy(m->from[m->nfrom], value, vlen + 1);
	m->fromlen[m->nfrom++] = vlen;
	return ok_status;
}

static sfsistat cb_body(SMFICTX *ctx, unsigned char *chunk, size_t len)
{
	struct conn *c = smfi_getpriv(ctx);

	if (c != NULL && c->msg != NULL)
		c->msg->bytes += len;
	return (c != NULL && c->nr_body) ? SMFIS_NOREPLY : SMFIS_CONTINUE;
}

static sfsistat cb_eom(SMFICTX *ctx)
{
	struct conn *c = smfi_getpriv(ctx);
	struct msg *m = c ? c->msg : NULL;
	struct mlt_verdict v;

	if (m == NULL || m->login == NULL)
		return internal(ctx, c, "no-context", "end of message without a sender");
	if (m->from_overflow) {
		mlt_verdict_set(&v, MLT_REJECT, "5.7.1", "from-invalid",
		                "Too many or too long From: headers");
		return refuse_msg(ctx, c, &v);
	}
	mlt_decide_from(&m->cfg->c, m->login, (const char *const *)m->from, m->fromlen, m->nfrom,
	                m->header_from, &v);
	if (v.action != MLT_CONTINUE)
		return refuse_msg(ctx, c, &v);
	if (!m->login->rate_exempt && !m->hold) {
		const uint64_t actual[MLT_METRICS] = { 1, m->rcpts, m->bytes };
		size_t which = 0;
		int64_t keep = mlt_store_horizon(daemon_state->store);
		int64_t wait = mlt_rate_commit(daemon_state->rate, m->login->name, m->login->limits,
		                               m->login->nlimits, &m->resv, actual, mlt_rate_clock(),
		                               keep, &which);

		if (wait == MLT_RATE_ERROR)
			return internal(ctx, c, "out-of-memory", "out of memory");
		if (wait != 0 && !hold_over_limit(m, which, wait, &v))
			return refuse_msg(ctx, c, &v);
		mlt_writer_set(daemon_state->writer, m->cfg->c.state_flush_ms,
		               m->cfg->c.audit_retention, keep);
	}
	if (m->hold) {
		if (smfi_quarantine(ctx, m->hold_text) != MI_SUCCESS)
			return internal(ctx, c, "quarantine-failed", "cannot hold the message");
		audit(ctx, m, "held", "held-over-limit", false);
	} else {
		/* exempt logins are counted too: not limited, but `relay-admin usage` shows them.
		 * The count and audit record must be in the journal before Postfix hears "accept". */
		if (!audit(ctx, m, "accepted", m->login->rate_exempt ? "exempt" : "ok", true))
			return internal(ctx, c, "state-journal-error", "cannot record the message");
	}
	msg_free(m);
	c->msg = NULL;
	return SMFIS_CONTINUE;
}

static sfsistat cb_abort(SMFICTX *ctx)
{
	struct conn *c = smfi_getpriv(ctx);

	if (c == NULL || c->msg == NULL)
		return SMFIS_CONTINUE;
	if (c->msg->refusal[0] != '\0')
		audit(ctx, c->msg, "tempfailed", c->msg->refusal, false);
	msg_free(c->msg);
	c->msg = NULL;
	return SMFIS_CONTINUE;
}

static sfsistat cb_close(SMFICTX *ctx)
{
	struct conn *c = smfi_getpriv(ctx);

	if (c == NULL)
		return SMFIS_CONTINUE;
	msg_free(c->msg);
	free(c);
	smfi_setpriv(ctx, NULL);
	return SMFIS_CONTINUE;
}

struct smfiDesc mlt_filter = {
	.xxfi_name = (char *)(uintptr_t)"relay-milter",
	.xxfi_version = SMFI_VERSION,
	.xxfi_flags = SMFIF_QUARANTINE | SMFIF_SETSYMLIST,
	.xxfi_connect = NULL,
	.xxfi_helo = NULL,
	.xxfi_envfrom = cb_envfrom,
	.xxfi_envrcpt = cb_envrcpt,
	.xxfi_header = cb_header,
	.xxfi_eoh = NULL,
	.xxfi_body = cb_body,
	.xxfi_eom = cb_eom,
	.xxfi_abort = cb_abort,
	.xxfi_close = cb_close,
	.xxfi_unknown = NULL,
	.xxfi_data = NULL,
	.xxfi_negotiate = cb_negotiate,
};
