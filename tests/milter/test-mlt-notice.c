/*
 * test-mlt-notice.c — limit-hit notifications as pure code (milter/notice.c): the gate
 * (once per login, kind and period, on an injected clock; the refused-senders threshold;
 * a bounded table) and the message text (every field present, and no header injection
 * from a login, client address or sender carrying CR/LF or other control bytes).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "notice.h"
#include "tap.h"

#define H 3600

static void test_gate_once_per_period(void)
{
	struct mlt_gate *g = mlt_gate_new();
	int sent = 0;

	ok(g != NULL, "gate made");
	/* 50 refusals within the hour: one notification */
	for (int k = 0; k < 50; k++)
		sent += mlt_gate_check(g, "alice", MLT_NOTICE_LIMIT, 1000 + k * 60, H, 0, NULL) ==
		        MLT_GATE_SEND;
	is_int(sent, 1, "50 limit hits in an hour: one notification");
	is_int(mlt_gate_check(g, "alice", MLT_NOTICE_LIMIT, 1000 + H - 1, H, 0, NULL),
	       MLT_GATE_QUIET, "still quiet one second before the period ends");
	is_int(mlt_gate_check(g, "alice", MLT_NOTICE_LIMIT, 1000 + H, H, 0, NULL), MLT_GATE_SEND,
	       "a period after the last one: due again");
	is_int(mlt_gate_check(g, "alice", MLT_NOTICE_LIMIT, 1000 + H + 5, H, 0, NULL),
	       MLT_GATE_QUIET, "and quiet again after that");
	/* other kinds and other logins are counted apart */
	is_int(mlt_gate_check(g, "alice", MLT_NOTICE_HELD, 1000 + H + 6, H, 0, NULL), MLT_GATE_SEND,
	       "held is its own kind");
	is_int(mlt_gate_check(g, "bob", MLT_NOTICE_LIMIT, 1000 + H + 6, H, 0, NULL), MLT_GATE_SEND,
	       "another login is its own");
	is_int(mlt_gate_check(g, "Alice", MLT_NOTICE_LIMIT, 1000 + H + 6, H, 0, NULL),
	       MLT_GATE_SEND, "names are compared exactly (the store gives canonical ones)");
	mlt_gate_free(g);
	mlt_gate_free(NULL);
}

static void test_gate_refused_senders(void)
{
	struct mlt_gate *g = mlt_gate_new();
	uint64_t count = 0;
	int sent = 0;

	for (int k = 1; k <= 4; k++)
		is_int(mlt_gate_check(g, "eve", MLT_NOTICE_SENDERS, 100 + k, H, 5, &count),
		       MLT_GATE_QUIET, "refused sender %d of 5: quiet", k);
	is_int(count, 4, "four counted");
	is_int(mlt_gate_check(g, "eve", MLT_NOTICE_SENDERS, 110, H, 5, &count), MLT_GATE_SEND,
	       "the fifth within the period notifies");
	is_int(count, 5, "count handed to the message");
	for (int k = 0; k < 100; k++)
		sent += mlt_gate_check(g, "eve", MLT_NOTICE_SENDERS, 120 + k, H, 5, NULL) ==
		        MLT_GATE_SEND;
	is_int(sent, 0, "100 more within the period: no second notification");
	/* a slow trickle (one per period) never reaches the threshold */
	for (int k = 0; k < 10; k++)
		sent += mlt_gate_check(g, "slow", MLT_NOTICE_SENDERS, 100 + (int64_t)k * H, H, 3,
		                       &count) == MLT_GATE_SEND;
	is_int(sent, 0, "one refusal per period: never 3 within one");
	is_int(count, 1, "the count starts again each period");
	is_int(mlt_gate_check(g, "off", MLT_NOTICE_SENDERS, 1, H, 0, &count), MLT_GATE_QUIET,
	       "threshold 0: never");
	/* after a period a new run of refusals notifies again */
	for (int k = 0; k < 5; k++)
		sent += mlt_gate_check(g, "eve", MLT_NOTICE_SENDERS, 110 + 2 * H + k, H, 5, NULL) ==
		        MLT_GATE_SEND;
	is_int(sent, 1, "five more two hours later: one more");
	mlt_gate_free(g);
}

static void test_gate_bounded(void)
{
	struct mlt_gate *g = mlt_gate_new();
	char name[32];
	int full = 0;

	for (int k = 0; k < MLT_GATE_MAX; k++) {
		snprintf(name, sizeof name, "login%d", k);
		full += mlt_gate_check(g, name, MLT_NOTICE_LIMIT, 10, H, 0, NULL) != MLT_GATE_SEND;
	}
	is_int(full, 0, "%d logins tracked", MLT_GATE_MAX);
	is_int(mlt_gate_check(g, "one-more", MLT_NOTICE_LIMIT, 20, H, 0, NULL), MLT_GATE_FULL,
	       "the next one within the period: full, nothing sent");
	is_int(mlt_gate_check(g, "login7", MLT_NOTICE_LIMIT, 30, H, 0, NULL), MLT_GATE_QUIET,
	       "a tracked login is still held back");
	is_int(mlt_gate_check(g, "one-more", MLT_NOTICE_LIMIT, 10 + H, H, 0, NULL), MLT_GATE_SEND,
	       "a period later the old entries are pruned: room again");
	mlt_gate_free(g);
}

/* The header block of a message: everything before the first empty line. */
static void headers_of(const char *msg, char *out, size_t outlen)
{
	const char *end = strstr(msg, "\n\n");
	size_t n = end ? (size_t)(end - msg) + 1 : strlen(msg);

	if (n >= outlen)
		n = outlen - 1;
	memcpy(out, msg, n);
	out[n] = '\0';
}

static int count_lines_starting(const char *text, const char *prefix)
{
	int n = 0;

	for (const char *p = text; p != NULL && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		n += strncmp(p, prefix, strlen(prefix)) == 0;
	return n;
}

static void test_message(void)
{
	struct mlt_notice n = { .kind = MLT_NOTICE_LIMIT, .login = "alice", .client = "192.0.2.7",
	                        .limit = { MLT_MESSAGES, 3600, 5 }, .wall = 1790000000 };
	char msg[8192], hdr[4096];
	size_t len = mlt_notice_build(&n, "relay-milter", "admin@example.org", "relay.example",
	                              3600, msg, sizeof msg);

	ok(len > 0 && len == strlen(msg), "message built (%zu bytes)", len);
	headers_of(msg, hdr, sizeof hdr);
	ok(strstr(hdr, "From: relay-milter\n") != NULL, "From: notify_from");
	ok(strstr(hdr, "To: admin@example.org\n") != NULL, "To: notify_to");
	ok(strstr(hdr, "Subject: relay: login alice hit a rate limit\n") != NULL,
	   "Subject names login and event");
	ok(strstr(hdr, "Auto-Submitted: auto-generated\n") != NULL, "marked auto-generated");
	ok(strstr(msg, "  login:   alice\n") && strstr(msg, "  event:   limit\n") &&
	   strstr(msg, "  limit:   5 messages\n") && strstr(msg, "  window:  1h\n") &&
	   strstr(msg, "  client:  192.0.2.7\n") && strstr(msg, "2026-09-21 ") != NULL,
	   "body: login, event, limit, window, client, time");
	ok(strstr(msg, "relay-admin usage alice") && strstr(msg, "relay-admin user disable alice"),
	   "body: what the admin can do");
	ok(strstr(msg, "within 1h") != NULL, "body: the period");

	n.kind = MLT_NOTICE_HELD;
	ok(mlt_notice_build(&n, "", "a@b", "", 3600, msg, sizeof msg) > 0 &&
	   strstr(msg, "From: MAILER-DAEMON\n") && strstr(msg, "is held over a limit\n") &&
	   strstr(msg, "hold queue"), "held: null-sender style From:, hold queue named");

	n.kind = MLT_NOTICE_SENDERS;
	n.count = 5;
	snprintf(n.sender, sizeof n.sender, "ceo@bank.example");
	ok(mlt_notice_build(&n, "r", "a@b", "h", 7200, msg, sizeof msg) > 0 &&
	   strstr(msg, "keeps trying refused senders\n") &&
	   strstr(msg, "5 refused senders within 2h") && strstr(msg, "<ceo@bank.example>") &&
	   strstr(msg, "relay-admin sender list alice"), "refused senders: count, period, sender");

	ok(mlt_notice_build(&n, "r", "a@b", "h", 3600, msg, 200) == 0 && msg[0] == '\0',
	   "too small a buffer: nothing rather than a cut message");
}

/* Attacker-influenced fields with CR/LF: no new header field, no early end of headers. */
static void test_injection(void)
{
	struct mlt_notice n = { .kind = MLT_NOTICE_SENDERS, .count = 5, .wall = 0,
	                        .limit = { MLT_MESSAGES, 60, 1 } };
	char msg[8192], hdr[4096];

	snprintf(n.login, sizeof n.login, "mallory\r\nBcc: victim@example.net\r\n\r\nfake body");
	snprintf(n.client, sizeof n.client, "1.2.3.4\nX-Injected: yes");
	snprintf(n.sender, sizeof n.sender, "x@y\r\nBcc: other@example.net\x1b[2J\x7f");
	ok(mlt_notice_build(&n, "relay", "admin@example.org", "h\nX-Host: evil", 3600, msg,
	                    sizeof msg) > 0, "built");
	headers_of(msg, hdr, sizeof hdr);
	is_int(count_lines_starting(msg, "Bcc:"), 0, "no Bcc: line anywhere");
	is_int(count_lines_starting(msg, "X-Injected:"), 0, "no X-Injected: line");
	is_int(count_lines_starting(msg, "X-Host:"), 0, "no X-Host: line");
	ok(strchr(msg, '\r') == NULL && strchr(msg, '\x1b') == NULL && strchr(msg, '\x7f') == NULL,
	   "no CR, ESC or DEL in the message");
	is_int(count_lines_starting(hdr, "Subject:"), 1, "one Subject:");
	is_int(count_lines_starting(hdr, "To:"), 1, "one To:");
	ok(strstr(hdr, "Subject: relay: login mallory??Bcc: victim@example.net??") != NULL,
	   "the login shows, neutralised, in the Subject:");
	ok(strstr(hdr, "fake body") == NULL || strstr(hdr, "??fake body") != NULL,
	   "the fake body stays inside the Subject line");
	for (const char *p = msg; *p;) {
		const char *nl = strchr(p, '\n');
		size_t l = nl ? (size_t)(nl - p) : strlen(p);

		if (l > 998) {
			ok(0, "a line of %zu characters", l);
			break;
		}
		p += l + (nl ? 1 : 0);
	}
	{
		/* a login of 255 characters: the Subject: is clamped */
		memset(n.login, 'a', 255);
		n.login[255] = '\0';
		ok(mlt_notice_build(&n, "relay", "a@b", "h", 3600, msg, sizeof msg) > 0, "long login");
		headers_of(msg, hdr, sizeof hdr);
		ok(strcspn(strstr(hdr, "Subject:"), "\n") < 140, "Subject: short with a 255-byte login");
	}
}

int main(void)
{
	test_gate_once_per_period();
	test_gate_refused_senders();
	test_gate_bounded();
	test_message();
	test_injection();
	is_str(mlt_notice_kind_name(MLT_NOTICE_HELD), "held", "kind names");
	return tap_done();
}
