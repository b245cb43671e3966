/*
 * test_smtp_client.c — unit tests for admin/smtp_client.c: the reply parser fed hostile
 * input (split anywhere, overlong, control bytes, mixed codes, endless replies), EHLO
 * extension lookup, AUTH encoding, and the client driven over a socketpair by a forked,
 * scripted fake server (timeouts, early close, STARTTLS injection, command injection,
 * redaction of secrets in the trace, dot-stuffing). No TLS here: the e2e suite covers it.
 */
#include "smtp_client.h"
#include "tap.h"

#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- parser helpers ----------------------------------------------------------------- */

static struct adm_smtp_parser P;

/* is_str() tests its argument for NULL; arrays need a pointer to keep -Waddress quiet. */
static const char *S(const char *s)
{
	return s;
}

static enum adm_smtp_parse feed_all(const char *s, size_t n, size_t *used)
{
	const char *why;

	adm_smtp_parser_reset(&P);
	return adm_smtp_parser_feed(&P, s, n, used, &why);
}

static enum adm_smtp_parse feed_str(const char *s)
{
	size_t used;

	return feed_all(s, strlen(s), &used);
}

/* Byte at a time: the parser must not care how reads split the stream. */
static enum adm_smtp_parse feed_bytewise(const char *s, size_t *used_total)
{
	enum adm_smtp_parse r = ADM_SMTP_PARSE_MORE;
	size_t n = strlen(s), i;

	adm_smtp_parser_reset(&P);
	for (i = 0; i < n; i++) {
		size_t used;
		const char *why;

		r = adm_smtp_parser_feed(&P, s + i, 1, &used, &why);
		if (r != ADM_SMTP_PARSE_MORE)
			break;
	}
	*used_total = i + 1;
	return r;
}

static void test_parser_basic(void)
{
	size_t used;

	is_int(feed_str("220 relay.test ESMTP\r\n"), ADM_SMTP_PARSE_DONE, "single line reply");
	is_int(P.reply.code, 220, "code 220");
	is_str(P.reply.text, "220 relay.test ESMTP", "text without CRLF");
	is_int(P.reply.nlines, 1, "one line");

	is_int(feed_str("250\r\n"), ADM_SMTP_PARSE_DONE, "bare code is a final line");
	is_int(P.reply.code, 250, "bare code parsed");

	is_int(feed_str("250-a\n250 b\n"), ADM_SMTP_PARSE_DONE, "bare LF line ends");
	is_str(P.reply.text, "250-a\n250 b", "lines joined by LF");

	is_int(feed_str("250-a\r\n250-b\r\n"), ADM_SMTP_PARSE_MORE, "continuation lines: more");
	is_int(feed_str("250 incomplete"), ADM_SMTP_PARSE_MORE, "no line end: more");
	is_int(feed_str(""), ADM_SMTP_PARSE_MORE, "nothing: more");

	const char *two = "250 ok\r\n354 go on\r\n";

	is_int(feed_all(two, strlen(two), &used), ADM_SMTP_PARSE_DONE, "two replies in one read");
	is_int(used, 8, "parser stops after the first reply");
	is_str(P.reply.text, "250 ok", "first reply only");

	const char *ehlo = "250-relay.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"
	                   "250-STARTTLS\r\n250-AUTH PLAIN LOGIN\r\n250-AUTH=PLAIN\r\n"
	                   "250-AUTHX nope\r\n250 8BITMIME\r\n";

	is_int(feed_bytewise(ehlo, &used), ADM_SMTP_PARSE_DONE, "EHLO fed byte by byte");
	is_int(used, strlen(ehlo), "done on the last byte");
	is_int(P.reply.nlines, 8, "eight lines");
	char params[64];

	ok(adm_smtp_reply_ext(&P.reply, "starttls", NULL, 0), "STARTTLS found, any case");
	ok(adm_smtp_reply_ext(&P.reply, "AUTH", params, sizeof(params)), "AUTH found");
	is_str(S(params), "PLAIN LOGIN", "AUTH parameters");
	ok(adm_smtp_reply_ext(&P.reply, "SIZE", params, sizeof(params)), "SIZE found");
	is_str(S(params), "10240000", "SIZE parameter");
	ok(!adm_smtp_reply_ext(&P.reply, "AUTHX2", NULL, 0), "absent keyword");
	ok(!adm_smtp_reply_ext(&P.reply, "relay.test", NULL, 0), "first line is not an extension");
	ok(!adm_smtp_reply_ext(&P.reply, "PIPE", NULL, 0), "prefix does not match");
	ok(adm_smtp_word_in("PLAIN LOGIN", "login"), "word_in LOGIN");
	ok(adm_smtp_word_in(" PLAIN  ", "PLAIN"), "word_in with spaces");
	ok(!adm_smtp_word_in("PLAINX LOGINS", "PLAIN"), "word_in no prefix match");
	ok(!adm_smtp_word_in("", "PLAIN"), "word_in empty list");

	feed_str("250-AUTH=PLAIN\r\n250 AUTH=LOGIN CRAM-MD5\r\n");
	ok(adm_smtp_reply_ext(&P.reply, "AUTH", params, sizeof(params)), "old AUTH= form");
	is_str(S(params), "LOGIN CRAM-MD5", "old AUTH= parameters");

	char line[16];

	feed_str("250-first line\r\n250 second\r\n");
	ok(adm_smtp_reply_line(&P.reply, 1, line, sizeof(line)), "line 1 exists");
	is_str(S(line), "250 second", "line 1");
	ok(adm_smtp_reply_line(&P.reply, 0, line, 8), "line clamped to buffer");
	is_str(S(line), "250-fir", "clamped copy");
	ok(!adm_smtp_reply_line(&P.reply, 2, line, sizeof(line)), "no line 2");
}

static void test_parser_hostile(void)
{
	static const char *bad[] = {
		"abc hello\r\n", "2x0 hello\r\n", "600 too high\r\n", "199 too low\r\n",
		"\r\n", "25\r\n", "250xhello\r\n", "250-a\r\n251 b\r\n", "-250 x\r\n",
		" 250 x\r\n", "250\t tab\r\n", "\x00" "50 nul\r\n", "2\x80" "0 high\r\n",
	};
	char buf[64];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t len = strlen(bad[i]) ? strlen(bad[i]) : 0, used;

		if (i == 11)
			len = 9;   /* starts with a NUL byte */
		snprintf(buf, sizeof(buf), "malformed reply %zu rejected", i);
		is_int(feed_all(bad[i], len, &used), ADM_SMTP_PARSE_BAD, "%s", buf);
	}

	/* Control bytes, escape sequences, NUL, DEL and 8-bit never reach the text. */
	const char evil[] = "250 a\x1b[31mred\x07\x00z\x7f\xff\rq\r\n";
	size_t used;

	is_int(feed_all(evil, sizeof(evil) - 1, &used), ADM_SMTP_PARSE_DONE, "control bytes parsed");
	is_str(P.reply.text, "250 a?[31mred??z???q", "control bytes replaced by '?'");
	for (size_t i = 0; i < P.reply.textlen; i++)
		if (P.reply.text[i] < 0x20 || P.reply.text[i] >= 0x7f) {
			ok(0, "printable only");
			break;
		}

	/* A 100 KB line: clamped, flagged, code kept, next reply still parses. */
	size_t big = 100000;
	char *s = malloc(big + 16);

	memcpy(s, "250 ", 4);
	memset(s + 4, 'x', big);
	memcpy(s + 4 + big, "\r\n", 3);
	is_int(feed_str(s), ADM_SMTP_PARSE_DONE, "overlong line parsed");
	is_int(P.reply.code, 250, "overlong line keeps its code");
	ok(P.reply.truncated, "overlong line flagged");
	is_int(P.reply.textlen, ADM_SMTP_LINE_MAX, "overlong line clamped to the limit");

	/* Exactly at the limit with CRLF is not truncated. */
	memset(s + 4, 'y', ADM_SMTP_LINE_MAX - 4);
	memcpy(s + ADM_SMTP_LINE_MAX, "\r\n", 3);
	is_int(feed_str(s), ADM_SMTP_PARSE_DONE, "line at the limit parsed");
	ok(!P.reply.truncated, "line at the limit not flagged");
	is_int(P.reply.textlen, ADM_SMTP_LINE_MAX, "line at the limit kept whole");
	free(s);

	/* Endless multi-line replies stop at the line limit. */
	size_t n = (ADM_SMTP_LINES_MAX + 5) * 8;
	char *m = malloc(n + 1), *p = m;

	for (int i = 0; i < ADM_SMTP_LINES_MAX + 5; i++, p += 8)
		memcpy(p, "250-abc\n", 8);
	*p = '\0';
	is_int(feed_str(m), ADM_SMTP_PARSE_BAD, "too many lines rejected");
	free(m);

	/* Long lines within the line limit: the text buffer keeps whole lines only. */
	size_t per = 400, lines = 60;
	char *t = malloc(lines * (per + 6) + 1), *q = t;

	for (size_t i = 0; i < lines; i++) {
		memcpy(q, i + 1 == lines ? "250 " : "250-", 4);
		memset(q + 4, 'k', per);
		memcpy(q + 4 + per, "\r\n", 2);
		q += per + 6;
	}
	*q = '\0';
	is_int(feed_str(t), ADM_SMTP_PARSE_DONE, "large reply parsed");
	ok(P.reply.truncated, "large reply flagged");
	ok(P.reply.textlen < ADM_SMTP_TEXT_MAX, "large reply within the buffer");
	is_int(P.reply.textlen % (per + 5), per + 4, "large reply keeps whole lines");
	is_int(P.reply.nlines, lines, "all lines counted");
	free(t);
}

static void test_plain(void)
{
	char out[64];

	ok(adm_smtp_plain_response("alice", "secret", 6, out, sizeof(out)), "PLAIN encodes");
	is_str(S(out), "AGFsaWNlAHNlY3JldA==", "PLAIN is base64(NUL user NUL pass)");
	ok(!adm_smtp_plain_response("alice", "secret", 6, out, 8), "PLAIN refuses a short buffer");
}

/* ---- fake server over a socketpair -------------------------------------------------- */

struct step {
	const char *expect;   /* prefix the client's next line must have; NULL: read nothing */
	const char *send;     /* bytes to send afterwards; NULL: none */
};

static bool read_line(int fd, char *buf, size_t len)
{
	size_t o = 0;

	while (o + 1 < len) {
		char ch;

		if (read(fd, &ch, 1) != 1)
			return false;
		if (ch == '\n') {
			buf[o] = '\0';
			if (o && buf[o - 1] == '\r')
				buf[o - 1] = '\0';
			return true;
		}
		buf[o++] = ch;
	}
	return false;
}

/* Runs in the child: plays the script, exits 0 when every expectation held. special:
 * 'h' hang (sleep until killed), 'f' flood endless continuation lines, 'd' read a DATA body
 * and check it. */
static void serve(int fd, const struct step *steps, char special)
{
	char line[2048];

	signal(SIGPIPE, SIG_IGN);
	for (const struct step *s = steps; s->expect || s->send; s++) {
		if (s->expect) {
			if (!read_line(fd, line, sizeof(line)))
				_exit(2);
			if (strncmp(line, s->expect, strlen(s->expect)) != 0) {
				fprintf(stderr, "fake server: got \"%s\", want \"%s\"\n", line, s->expect);
				_exit(3);
			}
		}
		if (s->send && write(fd, s->send, strlen(s->send)) < 0)
			_exit(4);
	}
	if (special == 'h') {
		for (;;)
			pause();
	}
	if (special == 'f') {
		for (;;)
			if (write(fd, "250-flood\r\n", 11) < 0)
				_exit(0);
	}
	if (special == 'd') {
		static const char *want[] = { "Subject: t", "", "..leading dot", "plain", "." };

		for (size_t i = 0; i < 5; i++) {
			if (!read_line(fd, line, sizeof(line)) || strcmp(line, want[i]) != 0) {
				fprintf(stderr, "fake server: body line %zu \"%s\"\n", i, line);
				_exit(5);
			}
		}
		if (write(fd, "250 2.0.0 queued as ABC\r\n", 25) < 0)
			_exit(4);
	}
	_exit(0);
}

static pid_t child;

static struct adm_smtp *start(const struct step *steps, char special, int timeout_ms)
{
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		return NULL;
	child = fork();
	if (child == 0) {
		close(sv[0]);
		serve(sv[1], steps, special);
	}
	close(sv[1]);
	return adm_smtp_attach_fd(sv[0], timeout_ms);
}

static int finish(struct adm_smtp *c, bool kill_child)
{
	int status = 0;

	adm_smtp_free(c);
	if (kill_child)
		kill(child, SIGKILL);
	waitpid(child, &status, 0);
	return kill_child ? 0 : (WIFEXITED(status) ? WEXITSTATUS(status) : 99);
}

/* The trace collects everything the client would show a user. */
static char trace_buf[8192];

static void collect(void *arg, char dir, const char *line)
{
	size_t o = strlen(trace_buf);

	(void)arg;
	snprintf(trace_buf + o, sizeof(trace_buf) - o, "%c: %s\n", dir, line);
}

static void test_session(void)
{
	static const struct step s[] = {
		{ NULL, "220 fake ESMTP\r\n" },
		{ "EHLO selftest.invalid", "250-fake\r\n250-AUTH PLAIN LOGIN\r\n250 SIZE 1000\r\n" },
		{ "AUTH PLAIN AGFsaWNlAHNlY3JldA==", "535 5.7.8 no\r\n" },
		{ "AUTH LOGIN", "334 VXNlcm5hbWU6\r\n" },
		{ "YWxpY2U=", "334 UGFzc3dvcmQ6\r\n" },
		{ "c2VjcmV0", "235 2.7.0 ok\r\n" },
		{ "MAIL FROM:<a@b.test>", "250 2.1.0 Ok\r\n" },
		{ "RCPT TO:<c@d.test>", "250 2.1.5 Ok\r\n" },
		{ "DATA", "354 go\r\n" },
		{ NULL, NULL },
	};
	struct adm_smtp *c = start(s, 'd', 5000);

	trace_buf[0] = '\0';
	adm_smtp_set_trace(c, collect, NULL);
	is_int(adm_smtp_read_reply(c), ADM_SMTP_OK, "greeting read");
	is_int(adm_smtp_last(c)->code, 220, "greeting 220");
	is_int(adm_smtp_ehlo(c, "selftest.invalid"), ADM_SMTP_OK, "EHLO");
	ok(adm_smtp_reply_ext(adm_smtp_last(c), "SIZE", NULL, 0), "EHLO lists SIZE");
	/* no TLS: credentials stay here unless the caller relaxes the rule (the script above
	 * holds no step for a refused AUTH, so a byte sent would fail the server) */
	ok(!adm_smtp_auth_safe(c), "plaintext is not safe for AUTH");
	is_int(adm_smtp_auth(c, ADM_SMTP_PLAIN, "alice", "secret", 6), ADM_SMTP_EUNSAFE,
	       "AUTH in plaintext withheld by default");
	ok(strstr(adm_smtp_errmsg(c), "not encrypted") != NULL, "says why: %s", adm_smtp_errmsg(c));
	adm_smtp_set_auth_rule(c, ADM_SMTP_AUTH_ANY_TLS);
	is_int(adm_smtp_auth(c, ADM_SMTP_LOGIN, "alice", "secret", 6), ADM_SMTP_EUNSAFE,
	       "ADM_SMTP_AUTH_ANY_TLS still wants TLS");
	adm_smtp_set_auth_rule(c, ADM_SMTP_AUTH_ANYWHERE);
	is_int(adm_smtp_auth(c, ADM_SMTP_PLAIN, "alice", "secret", 6), ADM_SMTP_OK, "AUTH PLAIN");
	is_int(adm_smtp_last(c)->code, 535, "AUTH PLAIN refused");
	is_int(adm_smtp_auth(c, ADM_SMTP_LOGIN, "alice", "secret", 6), ADM_SMTP_OK, "AUTH LOGIN");
	is_int(adm_smtp_last(c)->code, 235, "AUTH LOGIN accepted");
	is_int(adm_smtp_mail(c, "a@b.test"), ADM_SMTP_OK, "MAIL");
	is_int(adm_smtp_rcpt(c, "c@d.test"), ADM_SMTP_OK, "RCPT");
	is_int(adm_smtp_data(c, "Subject: t\n\n.leading dot\r\nplain\n"), ADM_SMTP_OK, "DATA");
	is_int(adm_smtp_last(c)->code, 250, "message accepted");
	ok(strstr(trace_buf, "secret") == NULL && strstr(trace_buf, "c2VjcmV0") == NULL &&
	   strstr(trace_buf, "AGFsaWNlAHNlY3JldA") == NULL, "no secret in the trace");
	ok(strstr(trace_buf, "C: AUTH PLAIN <redacted>") != NULL, "AUTH PLAIN traced redacted");
	ok(strstr(trace_buf, "S: 250 2.1.5 Ok") != NULL, "replies traced");
	is_int(finish(c, false), 0, "fake server saw exactly the expected commands");
}

static void test_free(void);

static void test_failures(void)
{
	static const struct step greet[] = { { NULL, "220 fake\r\n" }, { NULL, NULL } };
	static const struct step silent[] = { { NULL, NULL } };
	static const struct step half[] = { { NULL, "250-partial\r\n250" }, { NULL, NULL } };
	static const struct step inject[] = {
		{ NULL, "220 fake\r\n" },
		{ "STARTTLS", "220 go ahead\r\n250 injected\r\n" },
		{ NULL, NULL },
	};
	static const struct step drip[] = { { NULL, "2" }, { NULL, NULL } };
	struct adm_smtp *c;

	c = start(silent, 'h', 200);
	is_int(adm_smtp_read_reply(c), ADM_SMTP_ETIMEOUT, "silent server times out");
	finish(c, true);

	c = start(drip, 'h', 200);
	is_int(adm_smtp_read_reply(c), ADM_SMTP_ETIMEOUT, "incomplete reply times out");
	finish(c, true);

	c = start(half, 0, 2000);
	is_int(adm_smtp_read_reply(c), ADM_SMTP_ENET, "close mid-reply is a network error");
	finish(c, false);

	c = start(greet, 'f', 5000);
	is_int(adm_smtp_read_reply(c), ADM_SMTP_OK, "greeting before the flood");
	is_int(adm_smtp_cmd(c, "NOOP"), ADM_SMTP_EPROTO, "endless reply is a protocol error");
	ok(strstr(adm_smtp_errmsg(c), "too many lines") != NULL, "error names the cause");
	finish(c, false);

	c = start(inject, 'h', 2000);
	is_int(adm_smtp_read_reply(c), ADM_SMTP_OK, "greeting");
	is_int(adm_smtp_starttls(c, NULL), ADM_SMTP_EPROTO, "STARTTLS injection refused");
	ok(strstr(adm_smtp_errmsg(c), "injection") != NULL, "error names the injection");
	finish(c, true);

	c = start(greet, 'h', 2000);
	is_int(adm_smtp_read_reply(c), ADM_SMTP_OK, "greeting");
	is_int(adm_smtp_mail(c, "a@b>\r\nRCPT TO:<x@y"), ADM_SMTP_EINVAL, "CRLF in address refused");
	is_int(adm_smtp_mail(c, "a b@c"), ADM_SMTP_EINVAL, "space in address refused");
	is_int(adm_smtp_cmd(c, "NOOP\r\nQUIT"), ADM_SMTP_EINVAL, "CRLF in command refused");
	is_int(adm_smtp_cmd(c, ""), ADM_SMTP_EINVAL, "empty command refused");
	adm_smtp_set_auth_rule(c, ADM_SMTP_AUTH_ANYWHERE);
	is_int(adm_smtp_auth(c, ADM_SMTP_PLAIN, "u", "a\0b", 3), ADM_SMTP_EINVAL,
	       "NUL in password refused");
	finish(c, true);

	is_int(adm_smtp_connect("", "25", 100, &c, trace_buf, sizeof(trace_buf)), ADM_SMTP_EINVAL,
	       "empty host refused");
	ok(c == NULL, "no connection on error");
	test_free();
}

/* adm_smtp_free(NULL) returns normally (run in a child, so a crash fails the test rather
 * than the run), and freeing a connection closes its socket: the peer reads end of file.
 * A deadline bounds the wait; nothing is timed. */
static void test_free(void)
{
	struct pollfd p;
	int sv[2], status = -1;
	char b;
	pid_t pid = fork();

	if (pid == 0) {
		adm_smtp_free(NULL);
		_exit(0);
	}
	ok(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
	   WEXITSTATUS(status) == 0, "adm_smtp_free(NULL) returns normally");

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
		ok(0, "socketpair");
		return;
	}
	adm_smtp_free(adm_smtp_attach_fd(sv[0], 1000));
	p = (struct pollfd){ .fd = sv[1], .events = POLLIN };
	ok(poll(&p, 1, 10000) == 1 && read(sv[1], &b, 1) == 0,
	   "adm_smtp_free closes the connection's socket (the peer reads end of file)");
	close(sv[1]);
}

int main(void)
{
	test_parser_basic();
	test_parser_hostile();
	test_plain();
	test_session();
	test_failures();
	return tap_done();
}
