/*
 * test-mlt-addr.c — table-driven tests of milter/addr.c: envelope addresses and the
 * RFC 5322 From: parser (display names, comments, quoted strings, groups, obsolete
 * forms, hostile input).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "tap.h"

/* Hides an array's address from -Waddress inside is_str(). */
static const char *S(const char *s)
{
	return s;
}

struct joined {
	char buf[4096];
};

static bool join(void *arg, const char *addr)
{
	struct joined *j = arg;
	size_t n = strlen(j->buf);

	snprintf(j->buf + n, sizeof j->buf - n, "%s%s", n ? "," : "", addr);
	return true;
}

static const struct {
	const char *in;
	enum mlt_addr_result r;
	const char *out;
} env[] = {
	{ "<alice@example.com>", MLT_ADDR_OK, "alice@example.com" },
	{ "alice@example.com", MLT_ADDR_OK, "alice@example.com" },
	{ "<Alice@Example.COM>", MLT_ADDR_OK, "alice@example.com" },
	{ "<>", MLT_ADDR_NULL, "" },
	{ "", MLT_ADDR_NULL, "" },
	{ " <a@b> ", MLT_ADDR_OK, "a@b" },
	{ "<@relay.example,@other.example:bob@example.org>", MLT_ADDR_OK, "bob@example.org" },
	{ "<\"alice\"@example.com>", MLT_ADDR_OK, "alice@example.com" },
	{ "<\"a b\"@example.com>", MLT_ADDR_OK, "\"a b\"@example.com" },
	{ "<\"a\\\"b\"@example.com>", MLT_ADDR_OK, "\"a\\\"b\"@example.com" },
	{ "<first.last@sub.example.com>", MLT_ADDR_OK, "first.last@sub.example.com" },
	{ "<a@[192.0.2.1]>", MLT_ADDR_OK, "a@[192.0.2.1]" },
	{ "<alice>", MLT_ADDR_INVALID, NULL },
	{ "<@example.com>", MLT_ADDR_INVALID, NULL },
	{ "<alice@>", MLT_ADDR_INVALID, NULL },
	{ "<a@b", MLT_ADDR_INVALID, NULL },
	{ "<a@b> trailing", MLT_ADDR_INVALID, NULL },
	{ "Alice <a@b>", MLT_ADDR_INVALID, NULL },
	{ "<a@b,c@d>", MLT_ADDR_INVALID, NULL },
	{ "<a\001@b>", MLT_ADDR_INVALID, NULL },
	{ "<a..b@c>", MLT_ADDR_INVALID, NULL },
	{ "<a@b..c>", MLT_ADDR_INVALID, NULL },
	{ "<\"unterminated@b>", MLT_ADDR_INVALID, NULL },
};

static const struct {
	const char *in;
	enum mlt_addr_result r;
	const char *out;  /* addresses joined by ',' */
} from[] = {
	{ "alice@example.com", MLT_ADDR_OK, "alice@example.com" },
	{ "Alice <alice@example.com>", MLT_ADDR_OK, "alice@example.com" },
	{ "\"Smith, Alice\" <alice@example.com>", MLT_ADDR_OK, "alice@example.com" },
	{ "\"Evil <evil@x.com>\" <alice@example.com>", MLT_ADDR_OK, "alice@example.com" },
	{ "alice@example.com (Alice Smith)", MLT_ADDR_OK, "alice@example.com" },
	{ "(comment (nested) here) alice@example.com", MLT_ADDR_OK, "alice@example.com" },
	{ "Alice (x) <alice(in)@(here)example.com>", MLT_ADDR_OK, "alice@example.com" },
	{ " Alice\r\n <alice@example.com>", MLT_ADDR_OK, "alice@example.com" },
	{ "a@x.com, b@y.com", MLT_ADDR_OK, "a@x.com,b@y.com" },
	{ "A <a@x.com>, \"B\" <b@y.com>,c@z.com", MLT_ADDR_OK, "a@x.com,b@y.com,c@z.com" },
	{ "Team: a@x.com, B <b@y.com>;", MLT_ADDR_OK, "a@x.com,b@y.com" },
	{ "undisclosed-recipients:;", MLT_ADDR_OK, "" },
	{ "Team: a@x.com;, c@z.com", MLT_ADDR_OK, "a@x.com,c@z.com" },
	{ "a@x.com,,b@y.com", MLT_ADDR_OK, "a@x.com,b@y.com" },
	{ "J. Smith <j@x.com>", MLT_ADDR_OK, "j@x.com" },
	{ "a . b @ x . com", MLT_ADDR_OK, "a.b@x.com" },
	{ "<@route.example:a@x.com>", MLT_ADDR_OK, "a@x.com" },
	{ "=?utf-8?q?J=C3=B6rg?= <jorg@x.com>", MLT_ADDR_OK, "jorg@x.com" },
	{ "\"quoted\"@x.com", MLT_ADDR_OK, "quoted@x.com" },
	{ "Alice <ALICE@EXAMPLE.COM>", MLT_ADDR_OK, "alice@example.com" },
	{ "", MLT_ADDR_OK, "" },
	/* found by the fuzzer: folding inside a domain literal or quoted string */
	{ "\"a\\\"b\"@[192.0.2.\n\n1]", MLT_ADDR_OK, "\"a\\\"b\"@[192.0.2.1]" },
	{ "\"a\tb\r\n c\"@x.example", MLT_ADDR_OK, "\"a b c\"@x.example" },
	{ "\"A\\\bb\"@x.example", MLT_ADDR_INVALID, NULL }, /* fuzzer: escaped control byte */
	{ "Alice", MLT_ADDR_INVALID, NULL },
	{ "Alice Smith alice@example.com", MLT_ADDR_INVALID, NULL },
	{ "Alice <alice@example.com", MLT_ADDR_INVALID, NULL },
	{ "Alice <>", MLT_ADDR_INVALID, NULL },
	{ "<alice@example.com> extra", MLT_ADDR_INVALID, NULL },
	{ "(unterminated alice@example.com", MLT_ADDR_INVALID, NULL },
	{ "alice@example.com)", MLT_ADDR_INVALID, NULL },
	{ "A: B: c@d;;", MLT_ADDR_INVALID, NULL },
	{ "Team: a@x.com", MLT_ADDR_INVALID, NULL },
	{ "a@x.com; b@y.com", MLT_ADDR_INVALID, NULL },
	{ "a@b\001c", MLT_ADDR_INVALID, NULL },
};

int main(void)
{
	char out[MLT_ADDR_MAX + 1], why[80];

	for (size_t k = 0; k < sizeof env / sizeof env[0]; k++) {
		enum mlt_addr_result r = mlt_envaddr_parse(env[k].in, out, why, sizeof why);

		if (is_int(r, env[k].r, "envelope %zu: result for %s", k, env[k].in) && env[k].out)
			is_str(S(out), env[k].out, "envelope %zu: canonical form", k);
	}
	for (size_t k = 0; k < sizeof from / sizeof from[0]; k++) {
		struct joined j = { .buf = "" };
		size_t n = 9;
		enum mlt_addr_result r = mlt_from_parse(from[k].in, strlen(from[k].in), join, &j, &n,
		                                        why, sizeof why);

		if (is_int(r, from[k].r, "from %zu: result", k) && from[k].out)
			is_str(S(j.buf), from[k].out, "from %zu: addresses", k);
	}

	{
		size_t n;

		is_int(mlt_from_parse("\"a\0b\" <x@y>", 11, join, &(struct joined){ .buf = "" }, &n,
		                      why, sizeof why), MLT_ADDR_INVALID, "embedded NUL refused");
	}
	/* hostile input is clamped */
	{
		size_t len = MLT_HEADER_MAX + 1;
		char *big = malloc(len + 1);
		size_t n;

		memset(big, 'a', len);
		big[len] = '\0';
		is_int(mlt_from_parse(big, len, join, &(struct joined){ .buf = "" }, &n, why, sizeof why),
		       MLT_ADDR_INVALID, "header longer than MLT_HEADER_MAX refused");
		memset(big, '(', 2000);
		is_int(mlt_from_parse(big, 2000, join, &(struct joined){ .buf = "" }, &n, why, sizeof why),
		       MLT_ADDR_INVALID, "deeply nested comments refused");
		/* too many addresses */
		big[0] = '\0';
		for (int i = 0; i < MLT_FROM_ADDRS_MAX + 1; i++)
			strcat(big, "a@b.c,");
		is_int(mlt_from_parse(big, strlen(big), join, &(struct joined){ .buf = "" }, &n, why,
		                      sizeof why), MLT_ADDR_INVALID, "more than %d addresses refused",
		       MLT_FROM_ADDRS_MAX);
		/* a local part longer than MLT_ADDR_MAX */
		memset(big, 'x', 300);
		strcpy(big + 300, "@example.com");
		is_int(mlt_from_parse(big, strlen(big), join, &(struct joined){ .buf = "" }, &n, why,
		                      sizeof why), MLT_ADDR_INVALID, "over-long address refused");
		snprintf(out, sizeof out, "<%.*s>", 200, big);
		free(big);
	}
	return tap_done();
}
