/*
 * smtp_io.c — the SMTP client's transport: a non-blocking socket, poll(2) deadlines,
 * reads and writes in plaintext or through OpenSSL, connecting, freeing. No SMTP here.
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

void smtpc_set_err(struct adm_smtp *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
}

int64_t smtpc_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until fd is ready for events or the deadline passes. */
static enum adm_smtp_status wait_fd(struct adm_smtp *c, short events, int64_t deadline)
{
	for (;;) {
		int64_t left = deadline - smtpc_now_ms();
		struct pollfd pfd = { .fd = c->fd, .events = events };

		if (left <= 0) {
			smtpc_set_err(c, "no answer from %s within %d ms", c->peer, c->timeout_ms);
			return ADM_SMTP_ETIMEOUT;
		}
		int r = poll(&pfd, 1, left > INT_MAX ? INT_MAX : (int)left);

		if (r > 0)
			return ADM_SMTP_OK;
		if (r < 0 && errno != EINTR) {
			smtpc_set_err(c, "poll: %s", strerror(errno));
			return ADM_SMTP_ENET;
		}
	}
}

void smtpc_tls_err(struct adm_smtp *c, const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[200];

	if (e) {
		ERR_error_string_n(e, buf, sizeof(buf));
		smtpc_set_err(c, "%s: %s", what, buf);
	} else {
		smtpc_set_err(c, "%s failed", what);
	}
	ERR_clear_error();
}

/* Drives one SSL call to completion against the deadline. op: 'r' read, 'w' write, 'h'
 * handshake. Returns bytes moved (or 1 for the handshake), 0 on clean EOF, -1 on error. */
int smtpc_ssl_io(struct adm_smtp *c, char op, void *buf, int len, int64_t deadline,
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
			smtpc_set_err(c, "%s closed the connection", c->peer);
			*st = ADM_SMTP_ENET;
			return -1;
		}
		smtpc_tls_err(c, op == 'h' ? "TLS handshake" : op == 'r' ? "TLS read" : "TLS write");
		*st = op == 'h' ? ADM_SMTP_ETLS : ADM_SMTP_ENET;
		return -1;
	}
}

enum adm_smtp_status smtpc_write_all(struct adm_smtp *c, const char *buf, size_t len)
{
	int64_t deadline = smtpc_now_ms() + c->timeout_ms;
	enum adm_smtp_status st = ADM_SMTP_OK;

	while (len > 0) {
		size_t chunk = len > 16384 ? 16384 : len;

		if (c->ssl) {
			int r = smtpc_ssl_io(c, 'w', (void *)(uintptr_t)buf, (int)chunk, deadline, &st);

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
			smtpc_set_err(c, "write to %s: %s", c->peer, r < 0 ? strerror(errno) : "closed");
			return ADM_SMTP_ENET;
		}
	}
	return ADM_SMTP_OK;
}

/* Refills rbuf (which must be empty). */
enum adm_smtp_status smtpc_fill(struct adm_smtp *c, int64_t deadline)
{
	enum adm_smtp_status st = ADM_SMTP_OK;

	c->rpos = c->rlen = 0;
	for (;;) {
		if (c->ssl) {
			int r = smtpc_ssl_io(c, 'r', c->rbuf, (int)sizeof(c->rbuf), deadline, &st);

			if (r < 0)
				return st;
			if (r == 0) {
				smtpc_set_err(c, "%s closed the connection", c->peer);
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
			smtpc_set_err(c, "%s closed the connection", c->peer);
			return ADM_SMTP_ENET;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			smtpc_set_err(c, "read from %s: %s", c->peer, strerror(errno));
			return ADM_SMTP_ENET;
		}
		st = wait_fd(c, POLLIN, deadline);
		if (st != ADM_SMTP_OK)
			return st;
	}
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
		smtpc_set_err(c, "socket: %s", strerror(errno));
		return ADM_SMTP_ENET;
	}
	c->fd = fd;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
		return ADM_SMTP_OK;
	if (errno != EINPROGRESS) {
		smtpc_set_err(c, "connect to %s: %s", c->peer, strerror(errno));
		goto fail;
	}
	enum adm_smtp_status st = wait_fd(c, POLLOUT, smtpc_now_ms() + c->timeout_ms);

	if (st != ADM_SMTP_OK) {
		smtpc_set_err(c, "connect to %s: no answer within %d ms", c->peer, c->timeout_ms);
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
	smtpc_set_err(c, "connect to %s: %s", c->peer, strerror(soerr));
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
