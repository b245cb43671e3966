/*
 * test-mlt-callbacks.c — relay-milter's callbacks (milter/callbacks.c) driven by a fake MTA
 * side through the seam (milter/seam.h), on a real users database, the real limiter and
 * the real state writer in a private temporary folder. What the black-box daemon tests
 * cannot see: reservations at MAIL and RCPT, released at abort and close, committed only at
 * end of message; 450 versus hold (quarantine); a configuration pinned per message; every
 * internal error a temporary failure (451 4.3.0); and the stages negotiated from the
 * policy (no body without byte limits, no RCPT replies without recipient limits, no
 * headers when neither bytes nor the From: check need them), with a limit added while a
 * connection runs refusing at end of message rather than slipping through.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <sqlite3.h>

#include "callbacks.h"
#include "log.h"
#include "metrics.h"
#include "rdb.h"
#include "state.h"
#include "scratch.h"
#include "tap.h"

#define ALL_ACTIONS 0x1FFUL
#define ALL_STEPS 0x1FFFFFUL

/* ---- the fake MTA side ------------------------------------------------------------ */

struct fake {
	void *priv;
	const char *auth;           /* {auth_authen} */
	char rcode[8], xcode[16], text[256];
	int replies;
	char quarantined[256];
	int quarantines;
	bool fail_setpriv, fail_quarantine;
	char symlist_mail[256];
};

static void *f_getpriv(void *ctx)
{
	return ((struct fake *)ctx)->priv;
}

static int f_setpriv(void *ctx, void *priv)
{
	struct fake *f = ctx;

	if (f->fail_setpriv)
		return -1;
	f->priv = priv;
	return 0;
}

static const char *f_getsymval(void *ctx, const char *name)
{
	struct fake *f = ctx;

	if (strcmp(name, "{auth_authen}") == 0)
		return f->auth;
	if (strcmp(name, "{tls_version}") == 0)
		return "TLSv1.3";
	if (strcmp(name, "{cipher}") == 0)
		return "TLS_AES_256_GCM_SHA384";
	if (strcmp(name, "{client_addr}") == 0)
		return "192.0.2.7";
	if (strcmp(name, "i") == 0)
		return "QFAKE";
	return NULL;
}

static int f_setreply(void *ctx, const char *rcode, const char *xcode, const char *text)
{
	struct fake *f = ctx;

	snprintf(f->rcode, sizeof f->rcode, "%s", rcode);
	snprintf(f->xcode, sizeof f->xcode, "%s", xcode);
	snprintf(f->text, sizeof f->text, "%s", text);
	f->replies++;
	return 0;
}

static int f_quarantine(void *ctx, const char *reason)
{
	struct fake *f = ctx;

	if (f->fail_quarantine)
		return -1;
	snprintf(f->quarantined, sizeof f->quarantined, "%s", reason);
	f->quarantines++;
	return 0;
}

static int f_setsymlist(void *ctx, int stage, const char *macros)
{
	struct fake *f = ctx;

	if (stage == SMFIM_ENVFROM)
		snprintf(f->symlist_mail, sizeof f->symlist_mail, "%s", macros);
	return 0;
}

/* in the order of struct mlt_mta_ops */
static const struct mlt_mta_ops fake_ops = {
	f_getpriv, f_setpriv, f_getsymval, f_setreply, f_quarantine, f_setsymlist,
};

struct sess {
	struct fake f;
	struct mlt_mta mta;
	unsigned long actions, steps;
};

static void sess_init(struct sess *s, const char *login)
{
	memset(s, 0, sizeof *s);
	s->f.auth = login;
	s->mta = (struct mlt_mta){ &fake_ops, &s->f };
}

/* A new connection: negotiate with everything offered, as Postfix 3.7 does. */
static sfsistat sess_open(struct sess *s, const char *login)
{
	sess_init(s, login);
	return mlt_cb_negotiate(&s->mta, ALL_ACTIONS, ALL_STEPS, &s->actions, &s->steps);
}

static void clear_reply(struct sess *s)
{
	s->f.rcode[0] = s->f.xcode[0] = s->f.text[0] = '\0';
	s->f.replies = 0;
}

static sfsistat mail(struct sess *s, const char *sender, const char *size_arg)
{
	const char *argv[] = { sender, size_arg, NULL };

	clear_reply(s);
	return mlt_cb_envfrom(&s->mta, argv);
}

static sfsistat rcpt(struct sess *s, const char *to)
{
	const char *argv[] = { to, NULL };

	clear_reply(s);
	return mlt_cb_envrcpt(&s->mta, argv);
}

/* Headers and body as the MTA sends them (skipping what was negotiated away), then EOM. */
static sfsistat content(struct sess *s, const char *from, size_t body_len)
{
	clear_reply(s);
	if (!(s->steps & SMFIP_NOHDRS)) {
		mlt_cb_header(&s->mta, "From", from);
		mlt_cb_header(&s->mta, "Subject", "test");
	}
	if (!(s->steps & SMFIP_NOBODY))
		mlt_cb_body(&s->mta, body_len);
	return mlt_cb_eom(&s->mta);
}

static void sess_close(struct sess *s)
{
	mlt_cb_close(&s->mta);
}

/* ---- fixtures ---------------------------------------------------------------------- */

static char users[PATH_MAX + 16], state[PATH_MAX + 16];
static sqlite3 *admin_db;   /* the "relay-admin" connection that changes the policy */

static int sql(const char *text)
{
	char *msg = NULL;
	int rc = sqlite3_exec(admin_db, text, NULL, NULL, &msg);

	if (rc != SQLITE_OK)
		printf("# sql: %s\n", msg ? msg : "?");
	sqlite3_free(msg);
	return rc;
}

static uint64_t used(struct mlt_daemon *d, const char *login, enum mlt_metric m)
{
	return mlt_rate_sum(d->rate, login, m, 3600, mlt_rate_clock());
}

static void publish(bool check_from)
{
	struct mlt_config c;

	mlt_config_defaults(&c);
	c.check_header_from = check_from;
	c.state_flush_ms = 10;
	mlt_config_publish(&c);
}

struct audit_seen {
	int n;
	char verdicts[256];
	char credentials[256];
	uint64_t rcpts[8], size[8];
};

static int audit_row(const struct rdb_audit *a, void *arg)
{
	struct audit_seen *w = arg;

	if (w->n < 8) {
		w->rcpts[w->n] = a->rcpt_count;
		w->size[w->n] = a->size;
	}
	w->n++;
	strncat(w->verdicts, a->verdict, sizeof w->verdicts - strlen(w->verdicts) - 2);
	strcat(w->verdicts, " ");
	strncat(w->credentials, a->credential[0] ? a->credential : "-",
	        sizeof w->credentials - strlen(w->credentials) - 2);
	strcat(w->credentials, " ");
	return 0;
}

/* App credentials: {auth_authen} is the credential's authentication name (cid+phone);
 * the policy, senders, limits and usage are its login's (cid), the audit record names the
 * credential. */
static void credentials(struct mlt_daemon *d)
{
	struct sess s;

	is_int(sql("INSERT INTO credentials (login_id, label, authname, plain_secret, scram_sha256,"
	           " created_at) VALUES (5, 'phone', 'cid+phone', zeroblob(33), 'SCRAM-SHA-256$x', 0)"),
	       SQLITE_OK, "cid gets credential phone");
	sess_open(&s, "cid+phone");
	is_int(mail(&s, "<other@example.com>", NULL), SMFIS_REJECT,
	       "credential: a sender its login may not use is refused");
	is_str(s.f.rcode, "553", "553, as for the login (sender not allowed)");
	is_int(mail(&s, "<cid@example.com>", NULL), SMFIS_CONTINUE,
	       "credential: the login's sender passes");
	is_int(rcpt(&s, "<to@dest.example>"), SMFIS_CONTINUE, "RCPT");
	is_int(content(&s, "cid@example.com", 10), SMFIS_CONTINUE, "accepted");
	is_int(used(d, "cid", MLT_MESSAGES), 1, "counted on the login");
	is_int(used(d, "cid+phone", MLT_MESSAGES), 0, "not on the credential's name");
	sess_close(&s);
	/* the login's own name shares the login's limit (1 message/hour) */
	sess_open(&s, "cid");
	is_int(mail(&s, "<cid@example.com>", NULL), SMFIS_TEMPFAIL,
	       "the login itself: its limit was spent through the credential");
	is_str(s.f.rcode, "450", "450");
	sess_close(&s);
	/* an unknown or revoked credential is an unknown login here too (fail closed) */
	sess_open(&s, "cid+tablet");
	is_int(mail(&s, "<cid@example.com>", NULL), SMFIS_REJECT, "unknown credential: refused");
	sess_close(&s);
}

static void errors_tempfail(struct mlt_daemon *d)
{
	struct sess s;
	char moved[PATH_MAX + 32];

	/* MAIL in a session whose negotiation never ran: no context, 451 */
	sess_init(&s, "ann");
	is_int(mail(&s, "<ann@example.com>", NULL), SMFIS_TEMPFAIL, "no context: tempfail");
	is_str(s.f.rcode, "451", "no context: 451");
	is_str(s.f.xcode, "4.3.0", "no context: 4.3.0");
	/* negotiation could not keep a context: not REJECT (that skips the milter), and
	 * the MAIL that follows tempfails */
	sess_init(&s, "ann");
	s.f.fail_setpriv = true;
	is_int(mlt_cb_negotiate(&s.mta, ALL_ACTIONS, ALL_STEPS, &s.actions, &s.steps),
	       SMFIS_ALL_OPTS, "negotiate without a context: all options, never reject");
	is_int(mail(&s, "<ann@example.com>", NULL), SMFIS_TEMPFAIL, "... then MAIL tempfails");
	/* end of message without MAIL */
	sess_open(&s, "ann");
	is_int(content(&s, "ann@example.com", 10), SMFIS_TEMPFAIL, "EOM without MAIL: tempfail");
	is_str(s.f.rcode, "451", "EOM without MAIL: 451");
	/* no configuration published */
	mlt_config_unpublish();
	is_int(mail(&s, "<ann@example.com>", NULL), SMFIS_TEMPFAIL, "no configuration: tempfail");
	is_str(s.f.xcode, "4.3.0", "no configuration: 4.3.0");
	publish(true);
	/* the users database gone: a lookup error, never "no such user" */
	snprintf(moved, sizeof moved, "%s.away", users);
	ok(rename(users, moved) == 0, "users database moved away");
	sess_close(&s);
	sess_open(&s, "ann");
	ok(!(s.steps & (SMFIP_NOBODY | SMFIP_NR_RCPT)),
	   "policy unknown at negotiation: every stage asked for");
	is_int(mail(&s, "<ann@example.com>", NULL), SMFIS_TEMPFAIL, "users db gone: tempfail");
	is_str(s.f.rcode, "451", "users db gone: 451, not 550");
	ok(rename(moved, users) == 0, "users database back");
	is_int(mail(&s, "<ann@example.com>", NULL), SMFIS_CONTINUE, "users db back: MAIL passes");
	mlt_cb_abort(&s.mta);
	sess_close(&s);
	is_int(used(d, "ann", MLT_MESSAGES), 0, "nothing counted by refusals and aborts");
}

static void reserve_release_commit(struct mlt_daemon *d)
{
	struct sess s1, s2, s3, s4;

	/* two messages in flight take ann's 2 messages/hour: MAIL reserves */
	sess_open(&s1, "ann");
	sess_open(&s2, "ann");
	sess_open(&s3, "ann");
	is_int(mail(&s1, "<ann@example.com>", NULL), SMFIS_CONTINUE, "s1 MAIL");
	is_int(mail(&s2, "<ann@example.com>", NULL), SMFIS_CONTINUE, "s2 MAIL");
	is_int(mail(&s3, "<ann@example.com>", NULL), SMFIS_TEMPFAIL,
	       "s3 MAIL: the two reservations fill the limit");
	is_str(s3.f.rcode, "450", "over a limit: 450");
	is_str(s3.f.xcode, "4.7.1", "over a limit: 4.7.1");
	ok(strstr(s3.f.text, "retry in") != NULL, "the reply says when: %s", s3.f.text);
	/* abort releases */
	mlt_cb_abort(&s1.mta);
	is_int(mail(&s3, "<ann@example.com>", NULL), SMFIS_CONTINUE, "s1 aborted: s3 fits");
	/* close with a message in flight releases */
	sess_close(&s2);
	sess_open(&s4, "ann");
	is_int(mail(&s4, "<ann@example.com>", NULL), SMFIS_CONTINUE, "s2 closed: s4 fits");
	mlt_cb_abort(&s3.mta);
	mlt_cb_abort(&s4.mta);
	is_int(used(d, "ann", MLT_MESSAGES), 0, "aborted messages are not counted");

	/* RCPT reserves: 3 recipients/hour; the 4th is refused alone, the message goes on */
	is_int(mail(&s1, "<ann@example.com>", "SIZE=100"), SMFIS_CONTINUE, "MAIL");
	for (int k = 0; k < 3; k++)
		is_int(rcpt(&s1, "<to@dest.example>"), SMFIS_CONTINUE, "RCPT %d", k + 1);
	is_int(rcpt(&s1, "<to@dest.example>"), SMFIS_TEMPFAIL, "RCPT 4: over the limit");
	is_str(s1.f.rcode, "450", "RCPT 4: 450");
	is_int(used(d, "ann", MLT_MESSAGES), 0, "before end of message nothing is counted");
	is_int(content(&s1, "Ann <ann@example.com>", 100), SMFIS_CONTINUE, "EOM accepts");
	is_int(s1.f.replies, 0, "no reply set on acceptance");
	is_int(used(d, "ann", MLT_MESSAGES), 1, "end of message commits 1 message");
	is_int(used(d, "ann", MLT_RECIPIENTS), 3, "... and the 3 accepted recipients");
	is_int(used(d, "ann", MLT_BYTES), 100 + strlen("From: Ann <ann@example.com>\r\n") +
	       strlen("Subject: test\r\n"), "... and the real size");

	/* 1000 bytes/hour: a 2000-byte message can never fit, 552, and is not counted */
	is_int(mail(&s1, "<ann@example.com>", NULL), SMFIS_CONTINUE, "MAIL without SIZE=");
	is_int(content(&s1, "ann@example.com", 2000), SMFIS_REJECT, "EOM: too big");
	is_str(s1.f.rcode, "552", "too big alone: 552");
	is_str(s1.f.xcode, "5.3.4", "too big alone: 5.3.4");
	is_int(used(d, "ann", MLT_MESSAGES), 1, "a refused message is not counted");
	is_int(used(d, "ann", MLT_BYTES), 100 + strlen("From: Ann <ann@example.com>\r\n") +
	       strlen("Subject: test\r\n"), "nor its bytes");
	sess_close(&s1);
	sess_close(&s3);
	sess_close(&s4);
}

static void hold_versus_450(struct mlt_daemon *d)
{
	struct sess s;

	/* ann (no hold): second message fits, third is 450 at MAIL */
	sess_open(&s, "ann");
	is_int(mail(&s, "<ann@example.com>", NULL), SMFIS_CONTINUE, "ann: message 2");
	is_int(content(&s, "ann@example.com", 10), SMFIS_CONTINUE, "ann: message 2 accepted");
	is_int(mail(&s, "<ann@example.com>", NULL), SMFIS_TEMPFAIL, "ann: message 3 is 450");
	is_int(s.f.quarantines, 0, "no hold for ann");
	sess_close(&s);
	/* hol (hold_over_limit, 1 message/hour): the second message is held, not refused */
	sess_open(&s, "hol");
	is_int(mail(&s, "<hol@example.com>", NULL), SMFIS_CONTINUE, "hol: message 1");
	is_int(content(&s, "hol@example.com", 10), SMFIS_CONTINUE, "hol: message 1 accepted");
	is_int(s.f.quarantines, 0, "message 1 not held");
	is_int(mail(&s, "<hol@example.com>", NULL), SMFIS_CONTINUE, "hol: message 2 goes on");
	is_int(s.f.replies, 0, "... with no refusal");
	is_int(rcpt(&s, "<to@dest.example>"), SMFIS_CONTINUE, "hol: RCPT");
	is_int(content(&s, "hol@example.com", 10), SMFIS_CONTINUE, "hol: message 2 accepted");
	is_int(s.f.quarantines, 1, "... into the hold queue");
	ok(strstr(s.f.quarantined, "held for review") != NULL, "hold reason: %s",
	   s.f.quarantined);
	is_int(used(d, "hol", MLT_MESSAGES), 1, "a held message is not counted");
	/* holding impossible: tempfail, never accept */
	s.f.fail_quarantine = true;
	is_int(mail(&s, "<hol@example.com>", NULL), SMFIS_CONTINUE, "hol: message 3");
	is_int(content(&s, "hol@example.com", 10), SMFIS_TEMPFAIL, "quarantine fails: tempfail");
	is_str(s.f.rcode, "451", "quarantine fails: 451");
	is_str(s.f.xcode, "4.3.0", "quarantine fails: 4.3.0");
	sess_close(&s);
}

static void config_pinned(void)
{
	struct sess s;

	sess_open(&s, "exm");
	is_int(mail(&s, "<exm@example.com>", NULL), SMFIS_CONTINUE, "exm: MAIL");
	publish(false); /* a reload switches the From: check off mid-message */
	is_int(content(&s, "ceo@bank.example", 10), SMFIS_REJECT,
	       "the message keeps the configuration it began with");
	is_str(s.f.rcode, "550", "From: not allowed: 550");
	is_int(mail(&s, "<exm@example.com>", NULL), SMFIS_CONTINUE, "exm: next MAIL");
	is_int(content(&s, "ceo@bank.example", 10), SMFIS_CONTINUE,
	       "the next message has the new configuration");
	publish(true);
	sess_close(&s);
}

static void negotiation_from_policy(struct mlt_daemon *d)
{
	struct sess s, old, fresh;

	sess_open(&s, "ann");
	ok(!(s.steps & SMFIP_NOBODY), "byte limits exist: the body is asked for");
	ok(!(s.steps & SMFIP_NR_RCPT), "recipient limits exist: RCPT is answered");
	ok(!(s.steps & SMFIP_NOHDRS), "headers are asked for");
	ok((s.steps & (SMFIP_NOCONNECT | SMFIP_NOHELO | SMFIP_NODATA | SMFIP_NOEOH | SMFIP_NR_HDR))
	   == (SMFIP_NOCONNECT | SMFIP_NOHELO | SMFIP_NODATA | SMFIP_NOEOH | SMFIP_NR_HDR),
	   "connect, HELO, DATA and EOH are skipped; headers need no reply");
	ok(strstr(s.f.symlist_mail, "{auth_authen}") != NULL, "MAIL macros asked for");
	sess_close(&s);

	is_int(sql("DELETE FROM limits WHERE metric IN ('bytes', 'recipients')"), SQLITE_OK,
	       "relay-admin drops every byte and recipient limit");
	sess_open(&s, "kay");
	ok(s.steps & SMFIP_NOBODY, "no byte limit: no body");
	ok(s.steps & SMFIP_NR_RCPT, "no recipient limit: RCPT without reply");
	ok(!(s.steps & SMFIP_NOHDRS), "the From: check still needs the headers");
	is_int(mail(&s, "<kay@example.com>", "SIZE=5000"), SMFIS_CONTINUE, "kay: MAIL");
	for (int k = 0; k < 3; k++)
		is_int(rcpt(&s, "<to@dest.example>"), SMFIS_NOREPLY, "kay: RCPT %d, no reply", k + 1);
	is_int(content(&s, "ceo@bank.example", 10), SMFIS_REJECT,
	       "the From: check still works without the body");
	is_int(mail(&s, "<kay@example.com>", "SIZE=5000"), SMFIS_CONTINUE, "kay: MAIL");
	for (int k = 0; k < 3; k++)
		rcpt(&s, "<to@dest.example>");
	is_int(content(&s, "kay@example.com", 10), SMFIS_CONTINUE, "kay: accepted");
	is_int(used(d, "kay", MLT_RECIPIENTS), 3, "recipients still counted without replies");
	is_int(used(d, "kay", MLT_BYTES), 5000, "without the body the size is SIZE=");
	publish(false);
	sess_open(&fresh, "kay");
	ok(fresh.steps & SMFIP_NOHDRS, "no byte limit, no From: check: no headers either");
	publish(true); /* a reload switches the check on: this session has no headers */
	is_int(mail(&fresh, "<kay@example.com>", NULL), SMFIS_CONTINUE, "headerless: MAIL");
	is_int(content(&fresh, "kay@example.com", 10), SMFIS_TEMPFAIL,
	       "From: check on, headers never sent: tempfail, not \"no From:\"");
	is_str(fresh.f.rcode, "451", "stale session: 451");
	sess_close(&fresh);

	/* a recipient limit appears while `s` runs without RCPT replies: that connection
	 * cannot refuse one recipient, so the message is refused at end of message */
	is_int(sql("INSERT INTO limits VALUES (4, 'recipients', 3600, 4)"), SQLITE_OK,
	       "relay-admin adds a recipient limit for kay");
	old = s;
	old.mta.ctx = &old.f;
	is_int(mail(&old, "<kay@example.com>", NULL), SMFIS_CONTINUE, "old connection: MAIL");
	for (int k = 0; k < 2; k++)
		is_int(rcpt(&old, "<to@dest.example>"), SMFIS_NOREPLY, "old connection: RCPT %d", k);
	is_int(content(&old, "kay@example.com", 10), SMFIS_TEMPFAIL,
	       "old connection: refused at end of message, not let through");
	is_str(old.f.rcode, "450", "... with the rate limit's 450");
	is_int(used(d, "kay", MLT_RECIPIENTS), 3, "... and nothing counted");
	sess_close(&old);
	sess_open(&fresh, "kay");
	ok(!(fresh.steps & SMFIP_NR_RCPT), "a new connection answers RCPT again");
	is_int(mail(&fresh, "<kay@example.com>", NULL), SMFIS_CONTINUE, "new connection: MAIL");
	is_int(rcpt(&fresh, "<to@dest.example>"), SMFIS_CONTINUE, "RCPT 4 of 4");
	is_int(rcpt(&fresh, "<to@dest.example>"), SMFIS_TEMPFAIL, "RCPT 5 refused alone");
	is_int(content(&fresh, "kay@example.com", 10), SMFIS_CONTINUE, "the message goes");
	sess_close(&fresh);
}

/* ---- metrics: what the callbacks counted, and what the writer persisted ------------- */

#define SAMPLES_MAX 128

struct samples {
	char s[SAMPLES_MAX][128];
	size_t n;
};

static int cmp_sample(const void *a, const void *b)
{
	return strcmp(a, b);
}

static void sample_add(struct samples *x, const char *name, const char *label,
                       unsigned long long v)
{
	if (x->n < SAMPLES_MAX && v != 0)
		snprintf(x->s[x->n++], sizeof x->s[0], "%.60s{%.40s}=%llu", name, label, v);
}

static int persisted_row(const char *name, const char *label, uint64_t value, void *arg)
{
	sample_add(arg, name, label, (unsigned long long)value);
	return 0;
}

/* The non-zero counters of the milter's own exposition text, as "name{label}=value". */
static void live_samples(struct samples *x)
{
	struct rdb_prom_buf b = { 0 };
	char *line, *save = NULL;

	ok(mlt_metrics_render(&b), "metrics render");
	for (line = strtok_r(b.text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char name[128], label[64] = "", *brace, *q;
		unsigned long long v;

		if (line[0] == '#' || sscanf(line, "%127s %llu", name, &v) != 2 ||
		    strstr(name, "_total") == NULL)
			continue;   /* comments and the two gauges */
		if ((brace = strchr(name, '{')) != NULL) {
			*brace = '\0';
			q = strchr(brace + 1, '"');
			if (q != NULL)
				snprintf(label, sizeof label, "%.*s", (int)strcspn(q + 1, "\""), q + 1);
		}
		sample_add(x, name, label, v);
	}
	rdb_prom_buf_free(&b);
	qsort(x->s, x->n, sizeof x->s[0], cmp_sample);
}

static void metrics_agree(struct rdb_state *st)
{
	static struct samples live, saved;
	char joined_live[4096] = "", joined_saved[4096] = "";

	live_samples(&live);
	ok(rdb_state_counter_foreach(st, persisted_row, &saved) == RDB_OK, "persisted counters");
	qsort(saved.s, saved.n, sizeof saved.s[0], cmp_sample);
	for (size_t k = 0; k < live.n; k++)
		strncat(strncat(joined_live, live.s[k], 128), " ", 2);
	for (size_t k = 0; k < saved.n; k++)
		strncat(strncat(joined_saved, saved.s[k], 128), " ", 2);
	ok(live.n > 5, "the callbacks counted (%s)", joined_live);
	is_str(joined_saved, joined_live, "after a clean stop the state database holds every count");
	ok(strstr(joined_live, "relay_messages_held_total{}=1 ") != NULL, "one held message");
	ok(strstr(joined_live, "relay_tempfails_total{rate-limit}=") != NULL, "450s by reason");
	ok(strstr(joined_live, "relay_limit_hits_total{messages}=") != NULL, "limit hits by metric");
}

int main(void)
{
	struct mlt_daemon d = { 0 };
	struct rdb_state *st = NULL;
	struct audit_seen aw = { 0 }, hw = { 0 };
	char err[512];

	if (scratch_make("test-mlt-callbacks") != 0)
		return 1;
	snprintf(users, sizeof users, "%s", scratch_path("users.db"));
	snprintf(state, sizeof state, "%s", scratch_path("state.db"));
	mlt_log_open(MLT_LOG_STDERR, LOG_MAIL, LOG_WARNING);
	ok(rdb_init(users, err, sizeof err) == RDB_OK, "users database created (%s)", err);
	ok(sqlite3_open(users, &admin_db) == SQLITE_OK, "admin connection");
	is_int(sql("INSERT INTO logins (id, name, plain_secret, created_at, updated_at,"
	           " password_changed_at, hold_over_limit, rate_exempt) VALUES"
	           " (1, 'ann', zeroblob(33), 0, 0, 0, 0, 0), (2, 'hol', zeroblob(33), 0, 0, 0, 1, 0),"
	           " (3, 'exm', zeroblob(33), 0, 0, 0, 0, 1), (4, 'kay', zeroblob(33), 0, 0, 0, 0, 0),"
	           " (5, 'cid', zeroblob(33), 0, 0, 0, 0, 0);"
	           "INSERT INTO senders VALUES (1, 'ann@example.com'), (2, 'hol@example.com'),"
	           " (3, 'exm@example.com'), (4, 'kay@example.com'), (5, 'cid@example.com');"
	           "INSERT INTO limits VALUES (1, 'messages', 3600, 2), (1, 'recipients', 3600, 3),"
	           " (1, 'bytes', 3600, 1000), (2, 'messages', 3600, 1), (4, 'messages', 3600, 100),"
	           " (5, 'messages', 3600, 1)"),
	       SQLITE_OK, "logins ann, hol (holds), exm (exempt), kay, cid");
	ok(mlt_store_open(users, 0, &d.store, err, sizeof err) == 0, "store (%s)", err);
	d.rate = mlt_rate_new();
	ok(mlt_writer_start(state, 10, 86400, &d.writer, err, sizeof err) == 0, "writer (%s)", err);
	mlt_callbacks_init(&d);
	publish(true);

	errors_tempfail(&d);
	reserve_release_commit(&d);
	hold_versus_450(&d);
	config_pinned();
	negotiation_from_policy(&d);
	credentials(&d);

	is_int(mlt_writer_stop(d.writer, 5), 0, "writer flushed everything");
	ok(rdb_state_open(state, RDB_READONLY, &st, err, sizeof err) == RDB_OK, "state db");
	ok(rdb_state_audit_foreach(st, "kay", 0, 100, audit_row, &aw) == RDB_OK, "kay's audit");
	is_str(aw.verdicts, "rejected accepted tempfailed tempfailed accepted ", "kay's verdicts");
	is_int(aw.rcpts[1], 3, "RCPT without replies: the audit record still counts 3 recipients");
	is_int(aw.size[1], 5000, "without the body the audit size is SIZE=");
	ok(rdb_state_audit_foreach(st, "hol", 0, 100, audit_row, &hw) == RDB_OK, "hol's audit");
	is_str(hw.verdicts, "accepted held tempfailed ", "hol's verdicts");
	metrics_agree(st);
	{
		struct audit_seen cw = { 0 };
		int64_t ts = 0;
		char client[64] = "";

		ok(rdb_state_audit_foreach(st, "cid", 0, 100, audit_row, &cw) == RDB_OK, "cid's audit");
		is_str(cw.verdicts, "rejected accepted tempfailed ", "cid's verdicts, under the login");
		is_str(cw.credentials, "phone phone - ", "the records name the credential used");
		is_int(rdb_state_credential_last_use(st, "cid", "phone", &ts, client, sizeof client),
		       RDB_OK, "the credential's last use is recorded");
		is_str(client, "192.0.2.7", "with the client");
		is_int(rdb_state_last_use(st, "cid", &ts, NULL, 0), RDB_OK, "and the login's");
	}
	rdb_state_close(st);

	mlt_store_close(d.store);
	mlt_rate_free(d.rate);
	mlt_config_unpublish();
	sqlite3_close(admin_db);
	{
		static const char *const files[] = { "users.db", "users.db-journal", "state.db",
		                                      "state.db-wal", "state.db-shm",
		                                      "state.db-journal", "state.db.journal-0",
		                                      "state.db.journal-1" };
		ok(scratch_remove(files, sizeof files / sizeof files[0]) == 0,
		   "temporary folder removed");
	}
	return tap_done();
}
