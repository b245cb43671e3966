/*
 * notice.c — the notification gate and the message text (see notice.h).
 */
#include "notice.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct gate_entry {
	char login[256];
	enum mlt_notice_kind kind;
	bool sent;            /* a notification went out at last_sent */
	int64_t last_sent;
	int64_t count_start;  /* SENDERS: the period the count belongs to began here */
	uint64_t count;
	int64_t last_seen;
};

struct mlt_gate {
	size_t n;
	struct gate_entry *e;  /* MLT_GATE_MAX entries, allocated once */
};

const char *mlt_notice_kind_name(enum mlt_notice_kind k)
{
	switch (k) {
	case MLT_NOTICE_LIMIT: return "limit";
	case MLT_NOTICE_HELD: return "held";
	case MLT_NOTICE_SENDERS: return "refused-senders";
	case MLT_NOTICE_KINDS: break;
	}
	return "unknown";
}

struct mlt_gate *mlt_gate_new(void)
{
	struct mlt_gate *g = calloc(1, sizeof *g);

	if (g == NULL)
		return NULL;
	g->e = calloc(MLT_GATE_MAX, sizeof *g->e);
	if (g->e == NULL) {
		free(g);
		return NULL;
	}
	return g;
}

void mlt_gate_free(struct mlt_gate *g)
{
	if (g == NULL)
		return;
	free(g->e);
	free(g);
}

/* Drops entries that can no longer hold anything back: nothing seen and nothing sent for
 * a whole period. */
static void prune(struct mlt_gate *g, int64_t now, int64_t period)
{
	size_t k = 0;

	while (k < g->n) {
		const struct gate_entry *x = &g->e[k];

		if (now - x->last_seen >= period && (!x->sent || now - x->last_sent >= period))
			g->e[k] = g->e[--g->n];
		else
			k++;
	}
}

static struct gate_entry *find(struct mlt_gate *g, const char *login, enum mlt_notice_kind kind,
                               int64_t now, int64_t period, enum mlt_gate_result *why)
{
	struct gate_entry *x;

	for (size_t k = 0; k < g->n; k++)
		if (g->e[k].kind == kind && strcmp(g->e[k].login, login) == 0)
			return &g->e[k];
	if (g->n == MLT_GATE_MAX)
		prune(g, now, period);
	if (g->n == MLT_GATE_MAX) {
		*why = MLT_GATE_FULL;
		return NULL;
	}
	x = &g->e[g->n++];
	memset(x, 0, sizeof *x);
	snprintf(x->login, sizeof x->login, "%s", login);
	x->kind = kind;
	x->count_start = now;
	return x;
}

enum mlt_gate_result mlt_gate_check(struct mlt_gate *g, const char *login,
                                    enum mlt_notice_kind kind, int64_t now, int64_t period,
                                    uint64_t threshold, uint64_t *count)
{
	enum mlt_gate_result why = MLT_GATE_NOMEM;
	struct gate_entry *x;

	if (count != NULL)
		*count = 0;
	if (g == NULL || login == NULL || (unsigned)kind >= MLT_NOTICE_KINDS)
		return MLT_GATE_NOMEM;
	x = find(g, login, kind, now, period, &why);
	if (x == NULL)
		return why;
	x->last_seen = now;
	if (kind == MLT_NOTICE_SENDERS) {
		if (threshold == 0)
			return MLT_GATE_QUIET;
		if (now - x->count_start >= period) {
			x->count_start = now;
			x->count = 0;
		}
		x->count++;
		if (count != NULL)
			*count = x->count;
		if (x->count < threshold)
			return MLT_GATE_QUIET;
	}
	if (x->sent && now - x->last_sent < period)
		return MLT_GATE_QUIET;
	x->sent = true;
	x->last_sent = now;
	return MLT_GATE_SEND;
}

/* ---- the message ----------------------------------------------------------------------- */

/* Client-influenced text for a header or body line: printable ASCII, clamped; CR, LF and
 * every other control byte become '?'. */
static void clean(char *out, size_t outlen, const char *in)
{
	size_t o = 0;

	for (; in != NULL && *in != '\0' && o + 1 < outlen; in++) {
		unsigned char c = (unsigned char)*in;

		out[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	if (outlen > 0)
		out[o] = '\0';
}

struct buf {
	char *p;
	size_t len, cap;
	bool overflow;
};

__attribute__((format(printf, 2, 3)))
static void put(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->overflow)
		return;
	va_start(ap, fmt);
	n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= b->cap - b->len)
		b->overflow = true;
	else
		b->len += (size_t)n;
}

static void limit_text(const struct mlt_limit *l, char *out, size_t outlen)
{
	char win[32];

	mlt_format_duration(l->window, win, sizeof win);
	snprintf(out, outlen, "%" PRIu64 " %s per %s", l->max, mlt_metric_name(l->metric), win);
}

size_t mlt_notice_build(const struct mlt_notice *n, const char *from, const char *to,
                        const char *host, int64_t period, char *out, size_t outlen)
{
	/* the login is clamped in the Subject: (the whole name is in the body) */
	char login[256], subj_login[65], client[64], sender[256], hostc[128];
	char what[160], limit[96], per[32], when[40];
	struct buf b = { out, 0, outlen, outlen == 0 };
	time_t t = (time_t)n->wall;
	struct tm tm;

	clean(login, sizeof login, n->login);
	clean(subj_login, sizeof subj_login, n->login);
	clean(client, sizeof client, n->client[0] ? n->client : "unknown");
	clean(sender, sizeof sender, n->sender);
	clean(hostc, sizeof hostc, host && host[0] ? host : "the relay");
	mlt_format_duration(period, per, sizeof per);
	if (gmtime_r(&t, &tm) == NULL || strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(when, sizeof when, "%" PRId64 " (unix time)", n->wall);
	limit_text(&n->limit, limit, sizeof limit);
	switch (n->kind) {
	case MLT_NOTICE_LIMIT:
		snprintf(what, sizeof what, "hit its limit of %s", limit);
		break;
	case MLT_NOTICE_HELD:
		snprintf(what, sizeof what, "is held: over its limit of %s", limit);
		break;
	default:
		snprintf(what, sizeof what, "keeps trying senders it may not use (%" PRIu64
		         " refused within %s)", n->count, per);
		break;
	}

	put(&b, "From: %s\n", from[0] ? from : "MAILER-DAEMON");
	put(&b, "To: %s\n", to);
	put(&b, "Subject: relay: login %s %s\n", subj_login,
	    n->kind == MLT_NOTICE_LIMIT ? "hit a rate limit" :
	    n->kind == MLT_NOTICE_HELD ? "is held over a limit" : "keeps trying refused senders");
	put(&b, "Auto-Submitted: auto-generated\n");
	put(&b, "MIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n");
	put(&b, "Content-Transfer-Encoding: 7bit\n\n");

	put(&b, "relay-milter on %s reports that login %s %s.\n\n", hostc, login, what);
	put(&b, "  login:   %s\n", login);
	put(&b, "  event:   %s\n", mlt_notice_kind_name(n->kind));
	if (n->kind == MLT_NOTICE_SENDERS) {
		put(&b, "  limit:   %" PRIu64 " refused senders within %s\n", n->count, per);
		put(&b, "  last refused sender: <%s>\n", sender);
	} else {
		put(&b, "  limit:   %" PRIu64 " %s\n", n->limit.max, mlt_metric_name(n->limit.metric));
		mlt_format_duration(n->limit.window, limit, sizeof limit);
		put(&b, "  window:  %s\n", limit);
	}
	put(&b, "  client:  %s\n", client);
	put(&b, "  time:    %s\n\n", when);
	if (n->kind == MLT_NOTICE_HELD)
		put(&b, "Its mail waits in Postfix's hold queue (postqueue -p; release with\n"
		    "postsuper -H QUEUE_ID, delete with postsuper -d QUEUE_ID).\n\n");
	else if (n->kind == MLT_NOTICE_LIMIT)
		put(&b, "Its mail is refused with a temporary error (450 4.7.1) until the window\n"
		    "has room again; clients retry.\n\n");
	else
		put(&b, "Each such message was refused (550/553 5.7.1).\n\n");
	put(&b, "What you can do:\n");
	put(&b, "  relay-admin usage %s               counters and when room frees up\n", login);
	put(&b, "  relay-admin log --user %s          the audit log of the login\n", login);
	put(&b, "  relay-admin limit show %s          its limits\n", login);
	if (n->kind == MLT_NOTICE_SENDERS)
		put(&b, "  relay-admin sender list %s         the senders it may use\n", login);
	else
		put(&b, "  relay-admin limit set %s ...       raise a limit if it is too low\n", login);
	put(&b, "  relay-admin user disable %s        if the login may be compromised\n", login);
	put(&b, "  relay-admin user passwd %s         new password (then update its clients)\n\n",
	    login);
	put(&b, "You will get no other notification of this kind for this login within %s\n"
	    "(notify_period in relay-milter's milter.conf).\n", per);
	if (b.overflow) {
		if (outlen > 0)
			out[0] = '\0';
		return 0;
	}
	return b.len;
}
