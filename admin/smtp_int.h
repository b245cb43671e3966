/*
 * smtp_int.h — inside the SMTP client (admin/smtp_*.c only; users include smtp_client.h).
 * The connection's state, and the transport calls the protocol and TLS modules share:
 * smtp_io.c (socket, deadlines, reads and writes, plaintext or TLS), smtp_tls.c (TLS setup,
 * handshake, certificate), smtp_client.c (replies, commands, AUTH, DATA), smtp_reply.c
 * (the pure reply parser). Same thread rules as smtp_client.h.
 */
#ifndef RELAY_ADM_SMTP_INT_H
#define RELAY_ADM_SMTP_INT_H

#include <netinet/in.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "smtp_client.h"

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

/* smtp_reply.c: a byte as it may be stored or shown ('?' outside printable ASCII). */
char smtpc_sanitize_byte(unsigned char ch);

/* smtp_io.c: the transport. smtpc_fill() reads more into c->rbuf by the deadline;
 * smtpc_write_all() writes everything within the timeout; smtpc_ssl_io() runs one
 * SSL_read/SSL_write/handshake ('r', 'w', 'h') to completion or the deadline;
 * smtpc_tls_err() puts OpenSSL's reason into c->err. */
enum adm_smtp_status smtpc_fill(struct adm_smtp *c, int64_t deadline);
__attribute__((format(printf, 2, 3)))
void smtpc_set_err(struct adm_smtp *c, const char *fmt, ...);
/* CLOCK_MONOTONIC in milliseconds: deadlines are immune to wall-clock steps. */
int64_t smtpc_now_ms(void);
int smtpc_ssl_io(struct adm_smtp *c, char op, void *buf, int len, int64_t deadline,
                  enum adm_smtp_status *st);
void smtpc_tls_err(struct adm_smtp *c, const char *what);
enum adm_smtp_status smtpc_write_all(struct adm_smtp *c, const char *buf, size_t len);

#endif
