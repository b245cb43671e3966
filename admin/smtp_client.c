/*
 * smtp_client.c — the defensive SMTP client behind `relay-admin selftest` (see
 * smtp_client.h for the contract): the protocol side. Reading replies, sending commands,
 * the verbs, AUTH and DATA; the transport is smtp_io.c, TLS smtp_tls.c, the reply parser
 * smtp_reply.c (internals shared through smtp_int.h).
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

static void trace_reply(struct adm_smtp *c, const struct adm_smtp_reply *r)
{
	char line[ADM_SMTP_LINE_MAX + 1];

	if (!c->trace)
		return;
	for (unsigned i = 0; adm_smtp_reply_line(r, i, line, sizeof(line)); i++)
		c->trace(c->trace_arg, 'S', line);
	if (r->truncated)
		c->trace(c->trace_arg, 'S', "[reply clamped]");
}

enum adm_smtp_status adm_smtp_read_reply(struct adm_smtp *c)
{
	/* One deadline for the whole reply: a server dripping a byte at a time cannot keep us. */
	int64_t deadline = smtpc_now_ms() + c->timeout_ms;

	adm_smtp_parser_reset(&c->parser);
	memset(&c->last, 0, sizeof(c->last));
	for (;;) {
		if (c->rpos == c->rlen) {
			enum adm_smtp_status st = smtpc_fill(c, deadline);

			if (st != ADM_SMTP_OK)
				return st;
		}
		size_t used = 0;
		const char *why;
		enum adm_smtp_parse r = adm_smtp_parser_feed(&c->parser, c->rbuf + c->rpos,
		                                             c->rlen - c->rpos, &used, &why);

		c->rpos += used;
		if (r == ADM_SMTP_PARSE_BAD) {
			trace_reply(c, &c->parser.reply);
			smtpc_set_err(c, "malformed reply from %s: %s", c->peer, why);
			return ADM_SMTP_EPROTO;
		}
		if (r == ADM_SMTP_PARSE_DONE) {
			c->last = c->parser.reply;
			trace_reply(c, &c->last);
			return ADM_SMTP_OK;
		}
		if (smtpc_now_ms() >= deadline) {
			smtpc_set_err(c, "incomplete reply from %s within %d ms", c->peer, c->timeout_ms);
			return ADM_SMTP_ETIMEOUT;
		}
	}
}

static bool line_ok(const char *line)
{
	size_t len = strlen(line);

	if (len == 0 || len > ADM_SMTP_CMD_MAX)
		return false;
	return strpbrk(line, "\r\n") == NULL;
}

/* Sends line + CRLF; shown is what the trace gets (the line itself, or a redacted form). */
static enum adm_smtp_status send_raw(struct adm_smtp *c, const char *line, size_t len,
                                     const char *shown)
{
	char buf[ADM_SMTP_SECRET_MAX * 2 + ADM_SMTP_CMD_MAX];
	enum adm_smtp_status st;

	if (len + 2 > sizeof(buf)) {
		smtpc_set_err(c, "command too long");
		return ADM_SMTP_EINVAL;
	}
	memcpy(buf, line, len);
	buf[len] = '\r';
	buf[len + 1] = '\n';
	if (c->trace)
		c->trace(c->trace_arg, 'C', shown);
	st = smtpc_write_all(c, buf, len + 2);
	explicit_bzero(buf, sizeof(buf));  /* may have held a credential */
	return st;
}

enum adm_smtp_status adm_smtp_send_line(struct adm_smtp *c, const char *line)
{
	char shown[ADM_SMTP_CMD_MAX + 1];

	if (!line_ok(line)) {
		smtpc_set_err(c, "refusing to send an empty, overlong or multi-line command");
		return ADM_SMTP_EINVAL;
	}
	/* Our own input, but echo it sanitised all the same. */
	size_t len = strlen(line);

	for (size_t i = 0; i <= len; i++)
		shown[i] = i == len ? '\0' : smtpc_sanitize_byte((unsigned char)line[i]);
	return send_raw(c, line, len, shown);
}

enum adm_smtp_status adm_smtp_cmd(struct adm_smtp *c, const char *line)
{
	enum adm_smtp_status st = adm_smtp_send_line(c, line);

	return st != ADM_SMTP_OK ? st : adm_smtp_read_reply(c);
}


static bool arg_ok(const char *s, size_t max)
{
	size_t len = strlen(s);

	if (len > max)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f || s[i] == '<' ||
		    s[i] == '>')
			return false;
	return true;
}

static enum adm_smtp_status cmd_arg(struct adm_smtp *c, const char *pre, const char *arg,
                                    const char *post)
{
	char line[ADM_SMTP_CMD_MAX + 1];

	/* Addresses and names we send are our caller's input: no spaces, controls or brackets
	 * may slip in and change what the server sees. */
	if (!arg_ok(arg, 512)) {
		smtpc_set_err(c, "refusing to send \"%.40s\": not a plain address or name", arg);
		return ADM_SMTP_EINVAL;
	}
	snprintf(line, sizeof(line), "%s%s%s", pre, arg, post);
	return adm_smtp_cmd(c, line);
}

enum adm_smtp_status adm_smtp_ehlo(struct adm_smtp *c, const char *myname)
{
	return cmd_arg(c, "EHLO ", myname, "");
}

enum adm_smtp_status adm_smtp_mail(struct adm_smtp *c, const char *from)
{
	return cmd_arg(c, "MAIL FROM:<", from, ">");
}

enum adm_smtp_status adm_smtp_rcpt(struct adm_smtp *c, const char *to)
{
	return cmd_arg(c, "RCPT TO:<", to, ">");
}

void adm_smtp_quit(struct adm_smtp *c)
{
	int saved = c->timeout_ms;

	/* A server that does not answer QUIT promptly is not worth waiting for. */
	if (c->timeout_ms > 2000)
		c->timeout_ms = 2000;
	if (adm_smtp_cmd(c, "QUIT") != ADM_SMTP_OK)
		c->err[0] = '\0';
	c->timeout_ms = saved;
}


static bool b64(const unsigned char *in, size_t inlen, char *out, size_t outlen)
{
	if (inlen > INT_MAX / 2 || outlen < 4 * ((inlen + 2) / 3) + 1)
		return false;
	EVP_EncodeBlock((unsigned char *)out, in, (int)inlen);
	return true;
}

bool adm_smtp_plain_response(const char *user, const char *pass, size_t passlen,
                             char *out, size_t outlen)
{
	unsigned char raw[2 + 256 + ADM_SMTP_SECRET_MAX];
	size_t ulen = strlen(user);
	bool ok;

	if (ulen > 255 || passlen > ADM_SMTP_SECRET_MAX)
		return false;
	/* authzid empty, then authcid, then password (RFC 4616) */
	raw[0] = 0;
	memcpy(raw + 1, user, ulen);
	raw[1 + ulen] = 0;
	memcpy(raw + 2 + ulen, pass, passlen);
	ok = b64(raw, 2 + ulen + passlen, out, outlen);
	explicit_bzero(raw, sizeof(raw));
	return ok;
}

static bool secret_ok(const char *user, const char *pass, size_t passlen)
{
	if (strlen(user) == 0 || strlen(user) > 255 || passlen > ADM_SMTP_SECRET_MAX)
		return false;
	if (strpbrk(user, "\r\n"))
		return false;
	return memchr(pass, '\0', passlen) == NULL;
}

void adm_smtp_set_auth_rule(struct adm_smtp *c, enum adm_smtp_auth_rule rule)
{
	c->auth_rule = rule;
}

bool adm_smtp_auth_safe(const struct adm_smtp *c)
{
	switch (c->auth_rule) {
	case ADM_SMTP_AUTH_VERIFIED:
		return adm_smtp_is_tls(c) && c->cert.present && c->cert.verified && c->name_checked;
	case ADM_SMTP_AUTH_ANY_TLS:
		return adm_smtp_is_tls(c);
	case ADM_SMTP_AUTH_ANYWHERE:
		return true;
	}
	return false;
}

/* PLAIN and LOGIN hand the password, merely base64-encoded, to whoever answers: only a
 * server that proved its name with a certificate we trust may have it (unless the caller
 * chose otherwise with adm_smtp_set_auth_rule). Checked here, in the one function that
 * sends credentials, so that no caller can forget. */
static bool auth_allowed(struct adm_smtp *c)
{
	if (adm_smtp_auth_safe(c))
		return true;
	if (!adm_smtp_is_tls(c))
		smtpc_set_err(c, "credentials not sent: the connection to %s is not encrypted", c->peer);
	else if (!c->cert.present)
		smtpc_set_err(c, "credentials not sent: %s showed no certificate", c->peer);
	else if (!c->cert.verified)
		smtpc_set_err(c, "credentials not sent: the certificate of %s did not verify (%s)",
		        c->peer, c->cert.verify_error);
	else
		smtpc_set_err(c, "credentials not sent: no host name was checked against the certificate "
		        "of %s", c->peer);
	return false;
}

enum adm_smtp_status adm_smtp_auth(struct adm_smtp *c, enum adm_smtp_mech mech,
                                   const char *user, const char *pass, size_t passlen)
{
	char line[ADM_SMTP_SECRET_MAX * 2 + 64];
	char resp[ADM_SMTP_SECRET_MAX * 2];
	enum adm_smtp_status st;

	if (!auth_allowed(c))
		return ADM_SMTP_EUNSAFE;
	if (!secret_ok(user, pass, passlen)) {
		smtpc_set_err(c, "user name or password not usable for AUTH");
		return ADM_SMTP_EINVAL;
	}
	if (mech == ADM_SMTP_PLAIN) {
		if (!adm_smtp_plain_response(user, pass, passlen, resp, sizeof(resp))) {
			smtpc_set_err(c, "credentials too long");
			return ADM_SMTP_EINVAL;
		}
		int n = snprintf(line, sizeof(line), "AUTH PLAIN %s", resp);

		st = send_raw(c, line, (size_t)n, "AUTH PLAIN <redacted>");
		explicit_bzero(line, sizeof(line));
		explicit_bzero(resp, sizeof(resp));
		return st != ADM_SMTP_OK ? st : adm_smtp_read_reply(c);
	}
	/* LOGIN: two 334 challenges (we do not trust their text), user then password. */
	st = adm_smtp_cmd(c, "AUTH LOGIN");
	if (st != ADM_SMTP_OK || c->last.code != 334)
		return st;
	b64((const unsigned char *)user, strlen(user), resp, sizeof(resp));
	st = send_raw(c, resp, strlen(resp), "<redacted user name>");
	if (st == ADM_SMTP_OK)
		st = adm_smtp_read_reply(c);
	if (st != ADM_SMTP_OK || c->last.code != 334)
		return st;
	b64((const unsigned char *)pass, passlen, resp, sizeof(resp));
	st = send_raw(c, resp, strlen(resp), "<redacted password>");
	explicit_bzero(resp, sizeof(resp));
	return st != ADM_SMTP_OK ? st : adm_smtp_read_reply(c);
}

/* ---- DATA ---------------------------------------------------------------------------- */

enum adm_smtp_status adm_smtp_data(struct adm_smtp *c, const char *message)
{
	enum adm_smtp_status st = adm_smtp_cmd(c, "DATA");
	char buf[ADM_SMTP_CMD_MAX + 8];

	if (st != ADM_SMTP_OK || c->last.code != 354)
		return st;
	if (c->trace)
		c->trace(c->trace_arg, 'C', "[message]");
	const char *s = message;

	while (*s) {
		const char *nl = strchr(s, '\n');
		size_t len = nl ? (size_t)(nl - s) : strlen(s);
		size_t o = 0;

		if (len > 0 && s[len - 1] == '\r')
			len--;
		if (len > ADM_SMTP_CMD_MAX) {
			smtpc_set_err(c, "message line too long");
			return ADM_SMTP_EINVAL;
		}
		if (s[0] == '.')
			buf[o++] = '.';
		memcpy(buf + o, s, len);
		o += len;
		buf[o++] = '\r';
		buf[o++] = '\n';
		st = smtpc_write_all(c, buf, o);
		if (st != ADM_SMTP_OK)
			return st;
		s = nl ? nl + 1 : s + strlen(s);
	}
	if (c->trace)
		c->trace(c->trace_arg, 'C', ".");
	st = smtpc_write_all(c, ".\r\n", 3);
	return st != ADM_SMTP_OK ? st : adm_smtp_read_reply(c);
}
