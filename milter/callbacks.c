/*
 * callbacks.c — relay-milter's libmilter callbacks (see callbacks.h).
 *
 * Stages negotiated away (one MTA round trip each): CONNECT, HELO, DATA, UNKNOWN and EOH;
 * header and body chunks need no reply (NR_HDR, NR_BODY). What is left: MAIL (TLS, AUTH,
 * login, envelope sender, messages and SIZE= against the limits), RCPT (recipients),
 * and end of message (From:, real size, commit). The From: check runs at end of message
 * rather than end of headers: the SMTP client hears the answer after its final dot either
 * way, so the earlier stage would only add a round trip to every message.
 *
 * The rest follows the policy at negotiation (every packet costs the MTA and us CPU, and
 * every reply a round trip the smtpd process waits for):
 *   - no limit in the users database counts bytes: no body (NOBODY). The size in the
 *     audit log is then the larger of the headers' bytes and the client's SIZE=;
 *   - no limit counts recipients: RCPT needs no reply (NR_RCPT). Postfix 3.7 has no
 *     recipient-count macro at end of message ({nrcpts} is Sendmail's), so the RCPT
 *     packets still come and are counted for the audit record, without a round trip;
 *   - neither bytes nor the From: check (check_header_from = no): no headers (NOHDRS).
 * A limit added later applies from the next connection. Within a connection negotiated
 * without RCPT replies, a recipient over a limit added meanwhile cannot be refused alone:
 * the message is refused (or held) at end of message instead; without the body, the
 * byte check uses SIZE=. If the users database cannot answer, every stage is asked for.
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
#include "metrics.h"
#include "notify.h"
#include "rdb.h"

#define FROM_HEADERS_MAX 8

struct mlt_cfgref {
	struct mlt_config c;
	atomic_int refs;
};

static struct mlt_daemon *daemon_state;
static pthread_mutex_t cfg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct mlt_cfgref *cfg_current;
/* the usage horizon last handed to the writer: pushed again only when it changes */
static atomic_int_fast64_t keep_pushed;

struct msg {
	struct mlt_cfgref *cfg;
	const struct mlt_login *login;      /* reference from the store; NULL before lookup */
	struct mlt_resv resv;
	int64_t resv_id;                    /* PostgreSQL state_db: the reservation row */
	bool counted_in_db;                 /* the admission commit counted it (admission.h) */
	bool hold;                          /* over a limit with hold_over_limit: quarantine */
	char hold_text[240];
	const char *refusal;                /* last per-recipient refusal, for the audit log */
	struct mlt_verdict refusal_v;       /* (and its verdict, for the metrics) */
	bool late;                          /* refuse at end of message with `late_v` */
	struct mlt_verdict late_v;          /* (a RCPT that could not be answered) */
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
	bool nr_hdr, nr_body, nr_rcpt;      /* stages that send no reply */
	bool no_body, no_hdrs;              /* stages the MTA does not send at all */
	struct msg *msg;
};

void mlt_callbacks_init(struct mlt_daemon *d)
{
	daemon_state = d;
	atomic_store(&keep_pushed, -1);
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

/* The limiter: the shared database's exact admission when state_db is PostgreSQL
 * (admission.h), else the in-memory windows (rate.h). One protocol, the same answers;
 * only the database's can be MLT_ADMIT_ERROR. */
static int64_t limiter_reserve(struct msg *m, const uint64_t need[MLT_METRICS], size_t *which)
{
	if (daemon_state->admit != NULL)
		return mlt_admit_reserve(daemon_state->admit, m->login->name, m->login->limits,
		                         m->login->nlimits, need, m->cfg->c.reservation_ttl, &m->resv,
		                         &m->resv_id, which);
	return mlt_rate_reserve(daemon_state->rate, m->login->name, m->login->limits,
	                        m->login->nlimits, need, mlt_rate_clock(), &m->resv, which);
}

static void limiter_release(struct msg *m)
{
	if (daemon_state->admit != NULL)
		mlt_admit_release(daemon_state->admit, m->login->name, &m->resv, &m->resv_id);
	else
		mlt_rate_release(daemon_state->rate, m->login->name, &m->resv);
}

static bool limiter_failed(int64_t wait)
{
	return wait == MLT_RATE_ERROR || wait == MLT_ADMIT_ERROR;
}

/* Why a limiter call failed, as the verdict's reason (both tempfail, 451 4.3.0). */
static enum mlt_why limiter_why(int64_t wait, const char **what)
{
	*what = wait == MLT_ADMIT_ERROR ? "state database unavailable" : "out of memory";
	return wait == MLT_ADMIT_ERROR ? MLT_WHY_STATE_DB_ERROR : MLT_WHY_OUT_OF_MEMORY;
}

static void msg_free(struct msg *m)
{
	if (m == NULL)
		return;
	if (m->login != NULL) {
		limiter_release(m);
		mlt_store_put(m->login);
	}
	for (size_t k = 0; k < m->nfrom; k++)
		free(m->from[k]);
	cfg_put(m->cfg);
	free(m);
}

static void copy_macro(const struct mlt_mta *mta, const char *name, char *out, size_t outlen)
{
	const char *v = mta->ops->getsymval(mta->ctx, name);

	mlt_sanitize(out, outlen, v);
}

/* {auth_authen}, verbatim, when it can be a login name: true. Anything else (too long,
 * control or non-ASCII bytes, characters no login may have) is copied sanitized, for the
 * logs only, and false: it must match no login. mlt_sanitize() alone would turn '%' (valid
 * in a login) and control bytes into '?' and cut long values, i.e. look up another login. */
static bool copy_login(const struct mlt_mta *mta, char *out, size_t outlen)
{
	const char *v = mta->ops->getsymval(mta->ctx, "{auth_authen}");

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
static bool audit(const struct mlt_mta *mta, const struct msg *m, const char *verdict,
                  const char *reason, bool counted)
{
	struct mlt_record *r = calloc(1, sizeof *r);
	char shown_from[sizeof r->env_from], line[2048];
	bool queued;

	if (r == NULL) {
		mlt_log(LOG_ERR, "out of memory: audit record for %s lost", m->auth);
		return false;
	}
	r->ts = now_s();
	/* counted in the database already (the admission commit): last use and audit only */
	r->counted = counted && !m->counted_in_db;
	r->touch = counted || strcmp(verdict, "held") == 0;
	r->v[MLT_MESSAGES] = 1;
	r->v[MLT_RECIPIENTS] = m->rcpts;
	r->v[MLT_BYTES] = m->bytes;
	/* through an app credential: the login's name (its usage, its last use) and the
	 * credential's label */
	snprintf(r->login, sizeof r->login, "%s", m->login ? m->login->name : m->auth);
	snprintf(r->credential, sizeof r->credential, "%s", m->login ? m->login->credential : "");
	snprintf(r->client_addr, sizeof r->client_addr, "%s", m->client);
	snprintf(r->tls_version, sizeof r->tls_version, "%s", m->tls);
	snprintf(r->cipher, sizeof r->cipher, "%s", m->cipher);
	snprintf(r->env_from, sizeof r->env_from, "%s", m->sender);
	snprintf(r->header_from, sizeof r->header_from, "%s", m->header_from);
	copy_macro(mta, "i", r->queue_id, sizeof r->queue_id);
	snprintf(r->verdict, sizeof r->verdict, "%s", verdict);
	snprintf(r->reason, sizeof r->reason, "%s", reason);
	r->rcpt_count = m->rcpts;
	r->size = m->bytes;
	/* a canonical address keeps 8-bit bytes (UTF-8, and with it C1 controls such as
	 * U+009B CSI): the log line gets printable ASCII only */
	mlt_sanitize(shown_from, sizeof shown_from, r->env_from);
	snprintf(line, sizeof line, "%s: login=%s%s%s client=%s from=<%s> rcpts=%" PRIu64 " size=%"
	         PRIu64 " verdict=%s reason=%s", r->queue_id[0] ? r->queue_id : "NOQUEUE", r->login,
	         r->credential[0] ? " credential=" : "", r->credential,
	         r->client_addr, shown_from, r->rcpt_count, r->size, verdict, reason);
	/* the log says "accepted" only once the record is in the journal (push frees r) */
	queued = mlt_writer_push(daemon_state->writer, r) == 0;
	if (queued)
		mlt_log(LOG_INFO, "%s", line);
	return queued;
}

/* Sets the reply for a refusal and maps the verdict onto a libmilter status. */
static sfsistat reply(const struct mlt_mta *mta, const struct mlt_verdict *v)
{
	if (v->rcode[0] != '\0' && mta->ops->setreply(mta->ctx, v->rcode, v->xcode, v->text) != 0)
		mlt_log(LOG_WARNING, "setting the reply failed for %s %s", v->rcode, v->xcode);
	return v->action == MLT_REJECT ? SMFIS_REJECT : SMFIS_TEMPFAIL;
}

static const char *verdict_word(const struct mlt_verdict *v)
{
	return v->action == MLT_REJECT ? "rejected" : "tempfailed";
}

/* Refuses the whole message: audit, reply, free the message context. */
static sfsistat refuse_msg(const struct mlt_mta *mta, struct conn *c,
                           const struct mlt_verdict *v)
{
	sfsistat s;

	mlt_metrics_verdict(v);
	audit(mta, c->msg, verdict_word(v), v->reason, false);
	s = reply(mta, v);
	msg_free(c->msg);
	c->msg = NULL;
	return s;
}

static sfsistat internal(const struct mlt_mta *mta, struct conn *c, enum mlt_why why,
                         const char *what)
{
	struct mlt_verdict v;

	mlt_verdict_tempfail(&v, why, what);
	mlt_log(LOG_ERR, "%s: tempfail (%s)", v.reason, what);
	if (c != NULL && c->msg != NULL)
		return refuse_msg(mta, c, &v);
	mlt_metrics_verdict(&v);   /* no message to audit; still a 451 someone got */
	return reply(mta, &v);
}

static struct conn *conn_of(const struct mlt_mta *mta)
{
	return mta->ops->getpriv(mta->ctx);
}

/* The stages this connection asks for, from the policy now (see the top of this file). */
static unsigned long wanted_steps(void)
{
	unsigned long steps = SMFIP_NOCONNECT | SMFIP_NOHELO | SMFIP_NOUNKNOWN | SMFIP_NODATA |
	                      SMFIP_NOEOH | SMFIP_NR_HDR | SMFIP_NR_BODY;
	int metrics = mlt_store_metrics(daemon_state->store);
	struct mlt_cfgref *cfg;

	if (metrics < 0)
		return steps; /* the database cannot say: ask for everything, MAIL will tempfail */
	if (!(metrics & (1 << MLT_RECIPIENTS)))
		steps |= SMFIP_NR_RCPT;
	if (!(metrics & (1 << MLT_BYTES))) {
		steps |= SMFIP_NOBODY;
		cfg = cfg_get();
		if (cfg != NULL && !cfg->c.check_header_from)
			steps |= SMFIP_NOHDRS;
		cfg_put(cfg);
	}
	return steps;
}

sfsistat mlt_cb_negotiate(const struct mlt_mta *mta, unsigned long f0, unsigned long f1,
                          unsigned long *pf0, unsigned long *pf1)
{
	struct conn *c = calloc(1, sizeof *c);

	if (c == NULL || mta->ops->setpriv(mta->ctx, c) != 0) {
		free(c);
		mlt_log(LOG_ERR, "out of memory at negotiate");
		/* Not REJECT: that means "skip this milter", i.e. fail open. Without a context
		 * every MAIL of this session is answered 451 (mlt_cb_envfrom). */
		return SMFIS_ALL_OPTS;
	}
	if (!(f0 & SMFIF_QUARANTINE))
		mlt_log(LOG_WARNING, "MTA does not offer quarantine: holding is unavailable");
	*pf0 = f0 & (SMFIF_QUARANTINE | SMFIF_SETSYMLIST);
	*pf1 = f1 & wanted_steps();
	c->nr_hdr = (*pf1 & SMFIP_NR_HDR) != 0;
	c->nr_body = (*pf1 & SMFIP_NR_BODY) != 0;
	c->nr_rcpt = (*pf1 & SMFIP_NR_RCPT) != 0;
	c->no_body = (*pf1 & SMFIP_NOBODY) != 0;
	c->no_hdrs = (*pf1 & SMFIP_NOHDRS) != 0;
	mlt_log(LOG_DEBUG, "session negotiated: body %s, RCPT %s, headers %s",
	        c->no_body ? "skipped" : "sent", c->nr_rcpt ? "without replies" : "answered",
	        c->no_hdrs ? "skipped" : "sent");
	if (f0 & SMFIF_SETSYMLIST) {
		mta->ops->setsymlist(mta->ctx, SMFIM_ENVFROM,
		                     "i {auth_type} {auth_authen} {tls_version} {cipher}"
		                     " {client_addr} {daemon_name} {mail_addr}");
		mta->ops->setsymlist(mta->ctx, SMFIM_EOM, "i");
	}
	return SMFIS_CONTINUE;
}

/* Tells the notifier (notify.h: it only queues, and only when one is due). */
static void notify(const struct msg *m, enum mlt_notice_kind kind, const struct mlt_limit *lim,
                   const char *sender)
{
	struct mlt_notice ev = { .kind = kind, .wall = now_s() };

	if (daemon_state->notifier == NULL || m->cfg->c.notify_to[0] == '\0')
		return;
	snprintf(ev.login, sizeof ev.login, "%s", m->login ? m->login->name : m->auth);
	snprintf(ev.client, sizeof ev.client, "%s", m->client);
	if (sender != NULL)
		snprintf(ev.sender, sizeof ev.sender, "%s", sender);
	if (lim != NULL)
		ev.limit = *lim;
	mlt_notify(daemon_state->notifier, &m->cfg->c, &ev);
}

/* The login is over limit `which` for `wait` seconds: *v is that limit's verdict. If it
 * says hold, the message is marked held (quarantined at end of message with v's text) and
 * the result is true: the caller goes on. False: the caller refuses with *v. Either way the
 * admin may hear of it, unless this message alone can never fit (that is the message's
 * size, not the login's pace). */
static bool hold_over_limit(struct msg *m, size_t which, int64_t wait, struct mlt_verdict *v)
{
	mlt_verdict_rate(m->login, &m->login->limits[which], wait, v);
	mlt_metrics_limit_hit(m->login->limits[which].metric);
	if (wait != MLT_WAIT_NEVER)
		notify(m, v->action == MLT_HOLD ? MLT_NOTICE_HELD : MLT_NOTICE_LIMIT,
		       &m->login->limits[which], NULL);
	if (v->action != MLT_HOLD)
		return false;
	m->hold = true;
	snprintf(m->hold_text, sizeof m->hold_text, "%s", v->text);
	return true;
}

static uint64_t size_param(const char *const *argv)
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

/* MAIL's reservation: 1 message and the declared size. */
static sfsistat reserve_mail(const struct mlt_mta *mta, struct conn *c, struct msg *m)
{
	const uint64_t need[MLT_METRICS] = { 1, 0, m->size_hint };
	struct mlt_verdict v;
	size_t which = 0;
	int64_t wait = limiter_reserve(m, need, &which);
	const char *what;

	if (limiter_failed(wait)) {
		enum mlt_why why = limiter_why(wait, &what);

		return internal(mta, c, why, what);
	}
	if (wait != 0) {
		if (!hold_over_limit(m, which, wait, &v))
			return refuse_msg(mta, c, &v);
		limiter_release(m);
	}
	return SMFIS_CONTINUE;
}

sfsistat mlt_cb_envfrom(const struct mlt_mta *mta, const char *const *argv)
{
	struct conn *c = conn_of(mta);
	struct mlt_mail_facts f;
	struct mlt_verdict v;
	struct msg *m;
	char daemon_name[64];
	enum mlt_lookup lk;
	int64_t now = now_s();
	bool login_ok;

	if (c == NULL) /* negotiate did not run or failed: refuse rather than pass */
		return internal(mta, NULL, MLT_WHY_NO_CONTEXT, "milter session state missing");
	if (argv == NULL || argv[0] == NULL)
		return internal(mta, NULL, MLT_WHY_NO_SENDER, "MAIL without an address");
	msg_free(c->msg);
	c->msg = m = calloc(1, sizeof *m);
	if (m == NULL)
		return internal(mta, NULL, MLT_WHY_OUT_OF_MEMORY, "out of memory");
	m->cfg = cfg_get();
	if (m->cfg == NULL)
		return internal(mta, c, MLT_WHY_NO_CONFIG, "no configuration");
	login_ok = copy_login(mta, m->auth, sizeof m->auth);
	copy_macro(mta, "{tls_version}", m->tls, sizeof m->tls);
	copy_macro(mta, "{cipher}", m->cipher, sizeof m->cipher);
	copy_macro(mta, "{client_addr}", m->client, sizeof m->client);
	copy_macro(mta, "{daemon_name}", daemon_name, sizeof daemon_name);
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
		return refuse_msg(mta, c, &v);
	if (!mlt_writer_healthy(daemon_state->writer))
		return internal(mta, c, MLT_WHY_STATE_DB_ERROR, "state database unavailable");
	lk = login_ok ? mlt_store_get(daemon_state->store, m->auth, now, &m->login)
	              : MLT_LOOKUP_NOTFOUND;
	mlt_decide_mail(&f, lk, m->login, m->sender, &v);
	if (v.why == MLT_WHY_SENDER_NOT_ALLOWED && m->login != NULL)
		notify(m, MLT_NOTICE_SENDERS, NULL, m->sender);
	if (v.action != MLT_CONTINUE)
		return refuse_msg(mta, c, &v);
	m->size_hint = size_param(argv);
	if (m->login->rate_exempt)
		return SMFIS_CONTINUE;
	return reserve_mail(mta, c, m);
}

/* A recipient over a limit in a connection that negotiated RCPT without replies: the
 * MTA will not hear an answer now, so the whole message is refused at end of message
 * (the first such verdict wins). */
static sfsistat refuse_later(struct msg *m, const struct mlt_verdict *v)
{
	if (!m->late) {
		m->late = true;
		m->late_v = *v;
	}
	return SMFIS_NOREPLY;
}

sfsistat mlt_cb_envrcpt(const struct mlt_mta *mta, const char *const *argv)
{
	struct conn *c = conn_of(mta);
	struct msg *m = c ? c->msg : NULL;
	sfsistat ok_status = (c != NULL && c->nr_rcpt) ? SMFIS_NOREPLY : SMFIS_CONTINUE;
	struct mlt_verdict v;
	size_t which = 0;
	int64_t wait;
	const uint64_t need[MLT_METRICS] = { 0, 1, 0 };
	const char *what;

	(void)argv;
	if (m == NULL || m->login == NULL) {
		if (m != NULL && c->nr_rcpt) {
			mlt_verdict_tempfail(&v, MLT_WHY_NO_CONTEXT, "recipient without a sender");
			return refuse_later(m, &v);
		}
		/* without a message nothing reaches end of message: that stage tempfails too */
		if (c != NULL && c->nr_rcpt)
			return SMFIS_NOREPLY;
		return internal(mta, c, MLT_WHY_NO_CONTEXT, "recipient without a sender");
	}
	if (m->login->rate_exempt || m->hold) {
		m->rcpts++;
		return ok_status;
	}
	wait = limiter_reserve(m, need, &which);
	if (limiter_failed(wait)) {
		enum mlt_why why = limiter_why(wait, &what);

		if (!c->nr_rcpt)
			return internal(mta, NULL, why, what);
		mlt_log(LOG_ERR, "%s: tempfail at end of message", what);
		mlt_verdict_tempfail(&v, why, what);
		return refuse_later(m, &v);
	}
	if (wait != 0) {
		if (hold_over_limit(m, which, wait, &v)) {
			limiter_release(m);
			m->rcpts++;
			return ok_status;
		}
		mlt_log(LOG_INFO, "login=%s recipient refused: %s", m->login->name, v.text);
		if (c->nr_rcpt)
			return refuse_later(m, &v);
		/* refuse this recipient only; the message goes on with the others */
		m->refusal = v.reason;
		m->refusal_v = v;
		return reply(mta, &v);
	}
	m->rcpts++;
	return ok_status;
}

sfsistat mlt_cb_header(const struct mlt_mta *mta, const char *name, const char *value)
{
	struct conn *c = conn_of(mta);
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

sfsistat mlt_cb_body(const struct mlt_mta *mta, size_t len)
{
	struct conn *c = conn_of(mta);

	if (c != NULL && c->msg != NULL)
		c->msg->bytes += len;
	return (c != NULL && c->nr_body) ? SMFIS_NOREPLY : SMFIS_CONTINUE;
}

/* The message's size: counted from headers and body, or, when the body was negotiated
 * away, at least what the client declared with SIZE=. */
static uint64_t msg_size(const struct conn *c, const struct msg *m)
{
	if (c->no_body && m->size_hint > m->bytes)
		return m->size_hint;
	return m->bytes;
}

/* End of message for a limited login: the real size against the byte limits, then the
 * reservation turns into usage. SMFIS_CONTINUE to go on (maybe held now). */
static sfsistat commit_usage(const struct mlt_mta *mta, struct conn *c, struct msg *m)
{
	const uint64_t actual[MLT_METRICS] = { 1, m->rcpts, m->bytes };
	struct mlt_verdict v;
	size_t which = 0;
	int64_t keep = mlt_store_horizon(daemon_state->store);
	int64_t wait;
	const char *what;

	if (daemon_state->admit != NULL)
		wait = mlt_admit_commit(daemon_state->admit, m->login->name, m->login->limits,
		                        m->login->nlimits, &m->resv, &m->resv_id, actual, &which);
	else
		wait = mlt_rate_commit(daemon_state->rate, m->login->name, m->login->limits,
		                       m->login->nlimits, &m->resv, actual, mlt_rate_clock(), keep,
		                       &which);
	if (limiter_failed(wait)) {
		enum mlt_why why = limiter_why(wait, &what);

		return internal(mta, c, why, what);
	}
	m->counted_in_db = wait == 0 && daemon_state->admit != NULL;
	if (wait != 0 && !hold_over_limit(m, which, wait, &v))
		return refuse_msg(mta, c, &v);
	/* the horizon changes only when the users database does: tell the writer then */
	if (atomic_exchange(&keep_pushed, keep) != keep)
		mlt_writer_set(daemon_state->writer, m->cfg->c.state_flush_ms,
		               m->cfg->c.audit_retention, keep);
	return SMFIS_CONTINUE;
}

sfsistat mlt_cb_eom(const struct mlt_mta *mta)
{
	struct conn *c = conn_of(mta);
	struct msg *m = c ? c->msg : NULL;
	struct mlt_verdict v;
	sfsistat st;

	if (m == NULL || m->login == NULL)
		return internal(mta, c, MLT_WHY_NO_CONTEXT, "end of message without a sender");
	m->bytes = msg_size(c, m);
	if (m->late)
		return refuse_msg(mta, c, &m->late_v);
	/* negotiated without headers (no From: check then), and a reload switched the check
	 * on: the headers never came, so "no From:" would be a lie; a new session has them */
	if (c->no_hdrs && m->cfg->c.check_header_from)
		return internal(mta, c, MLT_WHY_STALE_SESSION,
		                "the From: check was switched on during this session");
	if (m->from_overflow) {
		mlt_verdict_set(&v, MLT_WHY_FROM_INVALID, "Too many or too long From: headers");
		return refuse_msg(mta, c, &v);
	}
	mlt_decide_from(&m->cfg->c, m->login, (const char *const *)m->from, m->fromlen, m->nfrom,
	                m->header_from, &v);
	if (v.why == MLT_WHY_FROM_NOT_ALLOWED)
		notify(m, MLT_NOTICE_SENDERS, NULL, m->header_from);
	if (v.action != MLT_CONTINUE)
		return refuse_msg(mta, c, &v);
	if (!m->login->rate_exempt && !m->hold &&
	    (st = commit_usage(mta, c, m)) != SMFIS_CONTINUE)
		return st;
	if (m->hold) {
		if (mta->ops->quarantine(mta->ctx, m->hold_text) != 0)
			return internal(mta, c, MLT_WHY_QUARANTINE_FAILED, "cannot hold the message");
		audit(mta, m, "held", mlt_why_tag(MLT_WHY_HELD), false);
		mlt_metrics_held();
	} else {
		/* exempt logins are counted too: not limited, but `relay-admin usage` shows them.
		 * The count and audit record must be in the journal before Postfix hears "accept". */
		if (!audit(mta, m, "accepted", m->login->rate_exempt ? "exempt" : "ok", true))
			return internal(mta, c, MLT_WHY_JOURNAL_ERROR, "cannot record the message");
		mlt_metrics_accepted(m->rcpts, m->bytes);
	}
	msg_free(m);
	c->msg = NULL;
	return SMFIS_CONTINUE;
}

sfsistat mlt_cb_abort(const struct mlt_mta *mta)
{
	struct conn *c = conn_of(mta);

	if (c == NULL || c->msg == NULL)
		return SMFIS_CONTINUE;
	if (c->msg->refusal != NULL) {
		mlt_metrics_verdict(&c->msg->refusal_v);
		audit(mta, c->msg, "tempfailed", c->msg->refusal, false);
	}
	msg_free(c->msg);
	c->msg = NULL;
	return SMFIS_CONTINUE;
}

sfsistat mlt_cb_close(const struct mlt_mta *mta)
{
	struct conn *c = conn_of(mta);

	if (c == NULL)
		return SMFIS_CONTINUE;
	msg_free(c->msg);
	free(c);
	mta->ops->setpriv(mta->ctx, NULL);
	return SMFIS_CONTINUE;
}
