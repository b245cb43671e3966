/*
 * fuzz-reply.c — libFuzzer target for the SMTP reply parser of admin/smtp_client.c: the
 * bytes a hostile server could send, split into reads of arbitrary sizes. Beyond "no crash,
 * no sanitizer report": every complete reply has a code 200..599, its text stays within
 * bounds, holds only printable ASCII and '\n', and every line is at most ADM_SMTP_LINE_MAX
 * bytes; the parser never claims more bytes than it was given. The EHLO helpers run on
 * every reply.
 *
 * Build and run: tests/fuzz/run [SECONDS] reply (clang, -fsanitize=fuzzer,address,undefined);
 * seeds in tests/fuzz/corpus-reply/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_client.h"

static void check_reply(const struct adm_smtp_reply *r)
{
	char line[ADM_SMTP_LINE_MAX + 1], params[64];

	if (r->code < 200 || r->code > 599 || r->textlen >= sizeof(r->text) ||
	    strlen(r->text) != r->textlen || r->nlines == 0 || r->nlines > ADM_SMTP_LINES_MAX)
		abort();
	for (size_t i = 0; i < r->textlen; i++)
		if ((r->text[i] < 0x20 && r->text[i] != '\n') || r->text[i] >= 0x7f)
			abort();
	for (unsigned i = 0; adm_smtp_reply_line(r, i, line, sizeof(line)); i++)
		if (strlen(line) > ADM_SMTP_LINE_MAX || i >= r->nlines)
			abort();
	if (adm_smtp_reply_ext(r, "AUTH", params, sizeof(params)))
		(void)adm_smtp_word_in(params, "PLAIN");
	(void)adm_smtp_reply_ext(r, "STARTTLS", NULL, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct adm_smtp_parser p;
	size_t pos = 1;

	if (size < 1)
		return 0;
	adm_smtp_parser_reset(&p);
	/* The first byte picks the read size, so one input explores many splits. */
	size_t chunk = (size_t)data[0] % 17 + 1;

	while (pos < size) {
		size_t n = size - pos < chunk ? size - pos : chunk, used = 0;
		const char *why = NULL;
		enum adm_smtp_parse r = adm_smtp_parser_feed(&p, (const char *)data + pos, n, &used,
		                                             &why);

		if (used > n || why == NULL)
			abort();
		if (r == ADM_SMTP_PARSE_BAD) {
			adm_smtp_parser_reset(&p);
			pos += used ? used : n;
			continue;
		}
		if (r == ADM_SMTP_PARSE_DONE) {
			check_reply(&p.reply);
			adm_smtp_parser_reset(&p);
		} else if (used != n) {
			abort();   /* MORE consumes everything */
		}
		pos += used;
	}
	return 0;
}
