/*
 * smtp_client.c — the defensive SMTP client behind `relay-admin selftest` (see smtp_client.h
 * for the contract). Layout: the pure reply parser first, then the transport (non-blocking
 * socket, poll(2) deadlines, OpenSSL on top), then the SMTP verbs.
 */
#include "smtp_client.h"

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
static char sanitize_byte(unsigned char ch)
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
			p->line[p->len++] = ch == '\r' ? '\r' : sanitize_byte(ch);
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

/* ---- transport ----------------------------------------------------------------------- */

struct adm_smtp {
	int fd;
	int timeout_ms;
	SSL_CTX *ctx;
	SSL *ssl;
	struct adm_smtp_cert cert;
	bool name_checked;                /* the handshake verified a name, not just a chain */
	enum adm_smtp_auth_rule auth_rule;
	char peer[INET6_ADDRSTRLEN + 16];
	char err[256];
	adm_smtp_trace_fn *trace;
	void *trace_arg;
	struct adm_smtp_parser parser;
	struct adm_smtp_reply last;
	char rbuf[4096];
	size_t rpos, rlen;
};

__attribute__((format(printf, 2, 3)))
static void set_err(struct adm_smtp *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until fd is ready for events or the deadline passes. */
static enum adm_smtp_status wait_fd(struct adm_smtp *c, short events, int64_t deadline)
{
	for (;;) {
		int64_t left = deadline - now_ms();
		struct pollfd pfd = { .fd = c->fd, .events = events };

		if (left <= 0) {
			set_err(c, "no answer from %s within %d ms", c->peer, c->timeout_ms);
			return ADM_SMTP_ETIMEOUT;
		}
		int r = poll(&pfd, 1, left > INT_MAX ? INT_MAX : (int)left);

		if (r > 0)
			return ADM_SMTP_OK;
		if (r < 0 && errno != EINTR) {
			set_err(c, "poll: %s", strerror(errno));
			return ADM_SMTP_ENET;
		}
	}
}

static void tls_err(struct adm_smtp *c, const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[200];

	if (e) {
		ERR_error_string_n(e, buf, sizeof(buf));
		set_err(c, "%s: %s", what, buf);
	} else {
		set_err(c, "%s failed", what);
	}
	ERR_clear_error();
}

/* Drives one SSL call to completion against the deadline. op: 'r' read, 'w' write, 'h'
 * handshake. Returns bytes moved (or 1 for the handshake), 0 on clean EOF, -1 on error. */
static int ssl_io(struct adm_smtp *c, char op, void *buf, int len, int64_t deadline,
                  enum adm_smtp_status *st)
{
	for (;;) {
		int r;

		ERR_clear_error();
		if (op == 'r')
			r = SSL_read(c->ssl, buf, len);
		else if (op == 'w')
			r = SSL_write(c->ssl, buf, len);
		else
			r = SSL_connect(c->ssl);
		if (r > 0)
			return r;
		int e = SSL_get_error(c->ssl, r);

		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			*st = wait_fd(c, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline);
			if (*st != ADM_SMTP_OK)
				return -1;
			continue;
		}
		if (e == SSL_ERROR_ZERO_RETURN && op == 'r')
			return 0;
		if (e == SSL_ERROR_SYSCALL && op == 'r' && ERR_peek_error() == 0) {
			set_err(c, "%s closed the connection", c->peer);
			*st = ADM_SMTP_ENET;
			return -1;
		}
		tls_err(c, op == 'h' ? "TLS handshake" : op == 'r' ? "TLS read" : "TLS write");
		*st = op == 'h' ? ADM_SMTP_ETLS : ADM_SMTP_ENET;
		return -1;
	}
}

static enum adm_smtp_status write_all(struct adm_smtp *c, const char *buf, size_t len)
{
	int64_t deadline = now_ms() + c->timeout_ms;
	enum adm_smtp_status st = ADM_SMTP_OK;

	while (len > 0) {
		size_t chunk = len > 16384 ? 16384 : len;

		if (c->ssl) {
			int r = ssl_io(c, 'w', (void *)(uintptr_t)buf, (int)chunk, deadline, &st);

			if (r < 0)
				return st;
			buf += r;
			len -= (size_t)r;
			continue;
		}
		ssize_t r = send(c->fd, buf, chunk, MSG_NOSIGNAL);

		if (r > 0) {
			buf += r;
			len -= (size_t)r;
		} else if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			st = wait_fd(c, POLLOUT, deadline);
			if (st != ADM_SMTP_OK)
				return st;
		} else if (r < 0 && errno == EINTR) {
			continue;
		} else {
			set_err(c, "write to %s: %s", c->peer, r < 0 ? strerror(errno) : "closed");
			return ADM_SMTP_ENET;
		}
	}
	return ADM_SMTP_OK;
}

/* Refills rbuf (which must be empty). */
static enum adm_smtp_status fill(struct adm_smtp *c, int64_t deadline)
{
	enum adm_smtp_status st = ADM_SMTP_OK;

	c->rpos = c->rlen = 0;
	for (;;) {
		if (c->ssl) {
			int r = ssl_io(c, 'r', c->rbuf, (int)sizeof(c->rbuf), deadline, &st);

			if (r < 0)
				return st;
			if (r == 0) {
				set_err(c, "%s closed the connection", c->peer);
				return ADM_SMTP_ENET;
			}
			c->rlen = (size_t)r;
			return ADM_SMTP_OK;
		}
		ssize_t r = recv(c->fd, c->rbuf, sizeof(c->rbuf), 0);

		if (r > 0) {
			c->rlen = (size_t)r;
			return ADM_SMTP_OK;
		}
		if (r == 0) {
			set_err(c, "%s closed the connection", c->peer);
			return ADM_SMTP_ENET;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			set_err(c, "read from %s: %s", c->peer, strerror(errno));
			return ADM_SMTP_ENET;
		}
		st = wait_fd(c, POLLIN, deadline);
		if (st != ADM_SMTP_OK)
			return st;
	}
}

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
	int64_t deadline = now_ms() + c->timeout_ms;

	adm_smtp_parser_reset(&c->parser);
	memset(&c->last, 0, sizeof(c->last));
	for (;;) {
		if (c->rpos == c->rlen) {
			enum adm_smtp_status st = fill(c, deadline);

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
			set_err(c, "malformed reply from %s: %s", c->peer, why);
			return ADM_SMTP_EPROTO;
		}
		if (r == ADM_SMTP_PARSE_DONE) {
			c->last = c->parser.reply;
			trace_reply(c, &c->last);
			return ADM_SMTP_OK;
		}
		if (now_ms() >= deadline) {
			set_err(c, "incomplete reply from %s within %d ms", c->peer, c->timeout_ms);
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
		set_err(c, "command too long");
		return ADM_SMTP_EINVAL;
	}
	memcpy(buf, line, len);
	buf[len] = '\r';
	buf[len + 1] = '\n';
	if (c->trace)
		c->trace(c->trace_arg, 'C', shown);
	st = write_all(c, buf, len + 2);
	explicit_bzero(buf, sizeof(buf));  /* may have held a credential */
	return st;
}

enum adm_smtp_status adm_smtp_send_line(struct adm_smtp *c, const char *line)
{
	char shown[ADM_SMTP_CMD_MAX + 1];

	if (!line_ok(line)) {
		set_err(c, "refusing to send an empty, overlong or multi-line command");
		return ADM_SMTP_EINVAL;
	}
	/* Our own input, but echo it sanitised all the same. */
	size_t len = strlen(line);

	for (size_t i = 0; i <= len; i++)
		shown[i] = i == len ? '\0' : sanitize_byte((unsigned char)line[i]);
	return send_raw(c, line, len, shown);
}

enum adm_smtp_status adm_smtp_cmd(struct adm_smtp *c, const char *line)
{
	enum adm_smtp_status st = adm_smtp_send_line(c, line);

	return st != ADM_SMTP_OK ? st : adm_smtp_read_reply(c);
}

static void fd_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl >= 0)
		(void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static struct adm_smtp *smtp_alloc(int fd, int timeout_ms)
{
	struct adm_smtp *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->fd = fd;
	c->timeout_ms = timeout_ms > 0 ? timeout_ms : 30000;
	snprintf(c->peer, sizeof(c->peer), "server");
	return c;
}

struct adm_smtp *adm_smtp_attach_fd(int fd, int timeout_ms)
{
	struct adm_smtp *c = smtp_alloc(fd, timeout_ms);

	if (!c) {
		close(fd);
		return NULL;
	}
	fd_nonblock(fd);
	return c;
}

/* Non-blocking connect to one address; on success leaves c->fd set. */
static enum adm_smtp_status try_connect(struct adm_smtp *c, const struct addrinfo *ai)
{
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
	                ai->ai_protocol);

	if (fd < 0) {
		set_err(c, "socket: %s", strerror(errno));
		return ADM_SMTP_ENET;
	}
	c->fd = fd;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
		return ADM_SMTP_OK;
	if (errno != EINPROGRESS) {
		set_err(c, "connect to %s: %s", c->peer, strerror(errno));
		goto fail;
	}
	enum adm_smtp_status st = wait_fd(c, POLLOUT, now_ms() + c->timeout_ms);

	if (st != ADM_SMTP_OK) {
		set_err(c, "connect to %s: no answer within %d ms", c->peer, c->timeout_ms);
		close(fd);
		c->fd = -1;
		return st;
	}
	int soerr = 0;
	socklen_t sl = sizeof(soerr);

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
		soerr = errno;
	if (soerr == 0)
		return ADM_SMTP_OK;
	set_err(c, "connect to %s: %s", c->peer, strerror(soerr));
fail:
	close(fd);
	c->fd = -1;
	return ADM_SMTP_ENET;
}

static void describe_addr(const struct addrinfo *ai, char *out, size_t outlen)
{
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (ai->ai_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)ai->ai_addr;

		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		port = ntohs(sin->sin_port);
	} else if (ai->ai_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)ai->ai_addr;

		inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
		port = ntohs(s6->sin6_port);
	}
	snprintf(out, outlen, "%s port %u", host, port);
}

enum adm_smtp_status adm_smtp_connect(const char *host, const char *port, int timeout_ms,
                                      struct adm_smtp **out, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	struct addrinfo *res = NULL;
	char name[256];
	size_t hl = strlen(host);
	enum adm_smtp_status st = ADM_SMTP_ENET;

	*out = NULL;
	/* Accept "[::1]" as well as "::1". */
	if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']')
		snprintf(name, sizeof(name), "%.*s", (int)(hl - 2), host + 1);
	else
		snprintf(name, sizeof(name), "%s", host);
	if (name[0] == '\0' || hl >= sizeof(name)) {
		snprintf(err, errlen, "bad host name");
		return ADM_SMTP_EINVAL;
	}
	int gr = getaddrinfo(name, port, &hints, &res);

	if (gr != 0) {
		snprintf(err, errlen, "cannot resolve %s port %s: %s", name, port, gai_strerror(gr));
		return ADM_SMTP_ENET;
	}
	struct adm_smtp *c = smtp_alloc(-1, timeout_ms);

	if (!c) {
		freeaddrinfo(res);
		snprintf(err, errlen, "out of memory");
		return ADM_SMTP_ENET;
	}
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		describe_addr(ai, c->peer, sizeof(c->peer));
		st = try_connect(c, ai);
		if (st == ADM_SMTP_OK)
			break;
	}
	freeaddrinfo(res);
	if (st != ADM_SMTP_OK) {
		snprintf(err, errlen, "%s", c->err);
		adm_smtp_free(c);
		return st;
	}
	*out = c;
	return ADM_SMTP_OK;
}

void adm_smtp_free(struct adm_smtp *c)
{
	if (!c)
		return;
	if (c->ssl)
		SSL_free(c->ssl);   /* no close_notify: the peer may be gone, and we are done */
	if (c->ctx)
		SSL_CTX_free(c->ctx);
	if (c->fd >= 0)
		close(c->fd);
	explicit_bzero(c->rbuf, sizeof(c->rbuf));
	free(c);
}

void adm_smtp_set_trace(struct adm_smtp *c, adm_smtp_trace_fn *fn, void *arg)
{
	c->trace = fn;
	c->trace_arg = arg;
}

const char *adm_smtp_errmsg(const struct adm_smtp *c)
{
	return c->err[0] ? c->err : "no error";
}

const struct adm_smtp_reply *adm_smtp_last(const struct adm_smtp *c)
{
	return &c->last;
}

const char *adm_smtp_peer(const struct adm_smtp *c)
{
	return c->peer;
}

/* ---- SMTP verbs ---------------------------------------------------------------------- */

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
		set_err(c, "refusing to send \"%.40s\": not a plain address or name", arg);
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

/* ---- TLS ----------------------------------------------------------------------------- */

static void print_time(const ASN1_TIME *t, char *out, size_t outlen, time_t *tt)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	if (!t || ASN1_TIME_to_tm(t, &tm) != 1) {
		snprintf(out, outlen, "?");
		if (tt)
			*tt = 0;
		return;
	}
	strftime(out, outlen, "%Y-%m-%d %H:%M:%S UTC", &tm);
	if (tt)
		*tt = timegm(&tm);
}

static void print_name(const X509_NAME *n, char *out, size_t outlen)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data = NULL;
	long len;

	snprintf(out, outlen, "?");
	if (!b)
		return;
	if (X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253) >= 0) {
		len = BIO_get_mem_data(b, &data);
		if (len > 0) {
			size_t n2 = (size_t)len < outlen - 1 ? (size_t)len : outlen - 1;

			for (size_t i = 0; i < n2; i++)
				out[i] = sanitize_byte((unsigned char)data[i]);
			out[n2] = '\0';
		}
	}
	BIO_free(b);
}

static void collect_cert(struct adm_smtp *c)
{
	struct adm_smtp_cert *k = &c->cert;
	X509 *x = SSL_get1_peer_certificate(c->ssl);
	const char *cipher = SSL_get_cipher_name(c->ssl);

	memset(k, 0, sizeof(*k));
	snprintf(k->protocol, sizeof(k->protocol), "%s", SSL_get_version(c->ssl));
	snprintf(k->cipher, sizeof(k->cipher), "%s", cipher ? cipher : "?");
	if (!x) {
		k->verify_code = X509_V_ERR_UNSPECIFIED;
		snprintf(k->verify_error, sizeof(k->verify_error), "the server sent no certificate");
		return;
	}
	k->present = true;
	print_name(X509_get_subject_name(x), k->subject, sizeof(k->subject));
	print_name(X509_get_issuer_name(x), k->issuer, sizeof(k->issuer));
	print_time(X509_get0_notBefore(x), k->not_before, sizeof(k->not_before), NULL);
	print_time(X509_get0_notAfter(x), k->not_after, sizeof(k->not_after), &k->not_after_t);
	k->expired = X509_cmp_current_time(X509_get0_notAfter(x)) <= 0 ||
	             X509_cmp_current_time(X509_get0_notBefore(x)) >= 0;
	k->verify_code = SSL_get_verify_result(c->ssl);
	k->verified = k->verify_code == X509_V_OK;
	snprintf(k->verify_error, sizeof(k->verify_error), "%s",
	         X509_verify_cert_error_string(k->verify_code));
	X509_free(x);
}

static bool is_ip_literal(const char *name)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1;
}

static enum adm_smtp_status tls_setup(struct adm_smtp *c, const struct adm_smtp_tls_opts *o)
{
	enum adm_smtp_status st = ADM_SMTP_OK;

	if (c->ssl) {
		set_err(c, "TLS is already active");
		return ADM_SMTP_EINVAL;
	}
	c->ctx = SSL_CTX_new(TLS_client_method());
	if (!c->ctx) {
		tls_err(c, "SSL_CTX_new");
		return ADM_SMTP_ETLS;
	}
	/* The relay and a sane upstream speak TLS 1.2 or newer; older is a finding in itself. */
	SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
	if (o && o->ca_file) {
		if (SSL_CTX_load_verify_locations(c->ctx, o->ca_file, NULL) != 1) {
			tls_err(c, "cannot load CA file");
			return ADM_SMTP_ETLS;
		}
	} else if (SSL_CTX_set_default_verify_paths(c->ctx) != 1) {
		tls_err(c, "cannot load the system CAs");
		return ADM_SMTP_ETLS;
	}
	/* Verify, but do not abort the handshake on failure: selftest reports the result. */
	SSL_CTX_set_verify(c->ctx, SSL_VERIFY_NONE, NULL);
	c->ssl = SSL_new(c->ctx);
	if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1) {
		tls_err(c, "SSL_new");
		return ADM_SMTP_ETLS;
	}
	if (o && o->name && o->name[0]) {
		X509_VERIFY_PARAM *vp = SSL_get0_param(c->ssl);
		int ok;

		if (is_ip_literal(o->name)) {
			ok = X509_VERIFY_PARAM_set1_ip_asc(vp, o->name);
		} else {
			X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
			char sni[256];   /* the SNI macro casts away const: hand it our own copy */

			snprintf(sni, sizeof(sni), "%s", o->name);
			ok = strlen(o->name) < sizeof(sni) &&
			     X509_VERIFY_PARAM_set1_host(vp, o->name, 0) &&
			     SSL_set_tlsext_host_name(c->ssl, sni);
		}
		if (!ok) {
			tls_err(c, "bad TLS name");
			return ADM_SMTP_EINVAL;
		}
		c->name_checked = true;
	}
	if (ssl_io(c, 'h', NULL, 0, now_ms() + c->timeout_ms, &st) < 0) {
		/* Keep the objects for adm_smtp_free(), but the connection is unusable. */
		return st == ADM_SMTP_ENET ? ADM_SMTP_ETLS : st;
	}
	collect_cert(c);
	return ADM_SMTP_OK;
}

enum adm_smtp_status adm_smtp_starttls(struct adm_smtp *c, const struct adm_smtp_tls_opts *o)
{
	enum adm_smtp_status st = adm_smtp_cmd(c, "STARTTLS");

	if (st != ADM_SMTP_OK || c->last.code != 220)
		return st;
	/* Anything already buffered was sent in plaintext after the 220 and would be read as
	 * if it came through TLS (CVE-2011-0411-style injection): refuse. */
	if (c->rpos != c->rlen) {
		set_err(c, "%s sent plaintext data after its 220 to STARTTLS (injection)", c->peer);
		return ADM_SMTP_EPROTO;
	}
	return tls_setup(c, o);
}

enum adm_smtp_status adm_smtp_tls_handshake(struct adm_smtp *c, const struct adm_smtp_tls_opts *o)
{
	return tls_setup(c, o);
}

bool adm_smtp_is_tls(const struct adm_smtp *c)
{
	return c->ssl != NULL && c->cert.protocol[0] != '\0';
}

const struct adm_smtp_cert *adm_smtp_cert(const struct adm_smtp *c)
{
	return adm_smtp_is_tls(c) ? &c->cert : NULL;
}

/* ---- AUTH ---------------------------------------------------------------------------- */

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
		set_err(c, "credentials not sent: the connection to %s is not encrypted", c->peer);
	else if (!c->cert.present)
		set_err(c, "credentials not sent: %s showed no certificate", c->peer);
	else if (!c->cert.verified)
		set_err(c, "credentials not sent: the certificate of %s did not verify (%s)",
		        c->peer, c->cert.verify_error);
	else
		set_err(c, "credentials not sent: no host name was checked against the certificate "
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
		set_err(c, "user name or password not usable for AUTH");
		return ADM_SMTP_EINVAL;
	}
	if (mech == ADM_SMTP_PLAIN) {
		if (!adm_smtp_plain_response(user, pass, passlen, resp, sizeof(resp))) {
			set_err(c, "credentials too long");
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
			set_err(c, "message line too long");
			return ADM_SMTP_EINVAL;
		}
		if (s[0] == '.')
			buf[o++] = '.';
		memcpy(buf + o, s, len);
		o += len;
		buf[o++] = '\r';
		buf[o++] = '\n';
		st = write_all(c, buf, o);
		if (st != ADM_SMTP_OK)
			return st;
		s = nl ? nl + 1 : s + strlen(s);
	}
	if (c->trace)
		c->trace(c->trace_arg, 'C', ".");
	st = write_all(c, ".\r\n", 3);
	return st != ADM_SMTP_OK ? st : adm_smtp_read_reply(c);
}
