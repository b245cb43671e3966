/*
 * smtp_reply.c — the SMTP client's pure reply parser: incremental, clamped,
 * sanitised (see smtp_client.h), and the helpers that read a parsed reply. No I/O.
 */
#include "smtp_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

const char *adm_smtp_status_str(enum adm_smtp_status s)
{
	switch (s) {
	case ADM_SMTP_OK: return "ok";
	case ADM_SMTP_ENET: return "network error";
	case ADM_SMTP_ETIMEOUT: return "timed out";
	case ADM_SMTP_EPROTO: return "protocol error";
	case ADM_SMTP_ETLS: return "TLS error";
	case ADM_SMTP_EINVAL: return "invalid argument";
	case ADM_SMTP_EUNSAFE: return "credentials withheld";
	}
	return "unknown";
}

/* ---- the reply parser ---------------------------------------------------------------- */

void adm_smtp_parser_reset(struct adm_smtp_parser *p)
{
	memset(p, 0, sizeof(*p));
}

/* Printable ASCII stays; everything else (controls, ESC, DEL, 8-bit) becomes '?', so a
 * reply can never drive the admin's terminal or break the JSON we print. */
char smtpc_sanitize_byte(unsigned char ch)
{
	return (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
}

static void reply_append_line(struct adm_smtp_reply *r, const char *line, size_t len)
{
	size_t need = len + (r->textlen ? 1 : 0);

	if (r->textlen + need + 1 > sizeof(r->text)) {
		r->truncated = true;  /* keep whole lines only */
		return;
	}
	if (r->textlen)
		r->text[r->textlen++] = '\n';
	memcpy(r->text + r->textlen, line, len);
	r->textlen += len;
	r->text[r->textlen] = '\0';
}

/* One complete line (without its line end). Returns MORE, DONE or BAD. */
static enum adm_smtp_parse parse_line(struct adm_smtp_parser *p, const char **why)
{
	const char *l = p->line;
	size_t len = p->len;
	int code;
	bool last;

	if (len > 0 && l[len - 1] == '\r')
		len--;   /* CRLF: the LF ended the line, drop the CR */
	if (len < 3 || l[0] < '2' || l[0] > '5' || l[1] < '0' || l[1] > '9' ||
	    l[2] < '0' || l[2] > '9') {
		*why = "reply line does not start with a 3-digit code 200-599";
		return ADM_SMTP_PARSE_BAD;
	}
	if (len == 3 || l[3] == ' ')
		last = true;
	else if (l[3] == '-')
		last = false;
	else {
		*why = "reply code not followed by space or hyphen";
		return ADM_SMTP_PARSE_BAD;
	}
	code = (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
	if (p->reply.nlines > 0 && code != p->reply.code) {
		*why = "lines of one reply carry different codes";
		return ADM_SMTP_PARSE_BAD;
	}
	if (p->reply.nlines >= ADM_SMTP_LINES_MAX) {
		*why = "reply has too many lines";
		return ADM_SMTP_PARSE_BAD;
	}
	p->reply.code = code;
	p->reply.nlines++;
	/* The bytes were sanitised on the way in except CR, which we only strip at the end. */
	for (size_t i = 0; i < len; i++)
		if (p->line[i] == '\r')
			p->line[i] = '?';
	reply_append_line(&p->reply, p->line, len);
	p->len = 0;
	p->overlong = false;
	return last ? ADM_SMTP_PARSE_DONE : ADM_SMTP_PARSE_MORE;
}

enum adm_smtp_parse adm_smtp_parser_feed(struct adm_smtp_parser *p, const char *buf, size_t n,
                                         size_t *used, const char **why)
{
	static const char *none = "";

	*why = none;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)buf[i];

		if (ch == '\n') {
			enum adm_smtp_parse r = parse_line(p, why);

			if (r != ADM_SMTP_PARSE_MORE) {
				*used = i + 1;
				return r;
			}
			continue;
		}
		if (p->len < ADM_SMTP_LINE_MAX || (ch == '\r' && p->len == ADM_SMTP_LINE_MAX)) {
			p->line[p->len++] = ch == '\r' ? '\r' : smtpc_sanitize_byte(ch);
			p->line[p->len] = '\0';
		} else if (!p->overlong) {
			p->overlong = true;
			p->reply.truncated = true;
		}
	}
	*used = n;
	return ADM_SMTP_PARSE_MORE;
}

bool adm_smtp_reply_line(const struct adm_smtp_reply *r, unsigned i, char *out, size_t outlen)
{
	const char *s = r->text, *end = r->text + r->textlen;

	if (outlen == 0 || r->textlen == 0)
		return false;
	for (; i > 0; i--) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));

		if (!nl)
			return false;
		s = nl + 1;
	}
	const char *nl = memchr(s, '\n', (size_t)(end - s));
	size_t len = nl ? (size_t)(nl - s) : (size_t)(end - s);

	if (len >= outlen)
		len = outlen - 1;
	memcpy(out, s, len);
	out[len] = '\0';
	return true;
}

bool adm_smtp_reply_ext(const struct adm_smtp_reply *r, const char *keyword,
                        char *params, size_t paramslen)
{
	char line[ADM_SMTP_LINE_MAX + 1];
	size_t kwlen = strlen(keyword);

	for (unsigned i = 1; adm_smtp_reply_line(r, i, line, sizeof(line)); i++) {
		const char *kw = line + (strlen(line) > 4 ? 4 : strlen(line));

		if (strncasecmp(kw, keyword, kwlen) != 0)
			continue;
		const char *rest = kw + kwlen;

		if (*rest != '\0' && *rest != ' ' && *rest != '=')
			continue;
		if (params && paramslen) {
			if (*rest)
				rest++;
			snprintf(params, paramslen, "%s", rest);
		}
		return true;
	}
	return false;
}

bool adm_smtp_word_in(const char *list, const char *word)
{
	size_t wlen = strlen(word);
	const char *s = list;

	while (*s) {
		while (*s == ' ')
			s++;
		const char *e = s;

		while (*e && *e != ' ')
			e++;
		if ((size_t)(e - s) == wlen && wlen && strncasecmp(s, word, wlen) == 0)
			return true;
		s = e;
	}
	return false;
}
