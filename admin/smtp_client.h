/*
 * smtp_client.h — a small, defensive SMTP client over OpenSSL, for `relay-admin selftest`.
 *
 * What it is: just enough client to probe a submission service the way an admin would with
 * `openssl s_client`: connect (IPv4, IPv6 or a host name), read replies, EHLO, STARTTLS or
 * implicit TLS, look at the server certificate, AUTH PLAIN / LOGIN, MAIL / RCPT / DATA /
 * RSET / QUIT. It never pipelines and never retries.
 *
 * The server is treated as hostile: every read and write has a deadline; reply lines are
 * clamped to ADM_SMTP_LINE_MAX bytes and a reply to ADM_SMTP_LINES_MAX lines; bytes outside
 * printable ASCII are replaced with '?' before anything is stored or printed; a reply whose
 * lines disagree on the code is a protocol error; plaintext bytes that follow the 220 to
 * STARTTLS (a command-injection attempt) abort the connection.
 *
 * Secrets: passwords are copied only into buffers this module wipes (explicit_bzero) and are
 * never passed to the trace callback: AUTH lines are traced as "<redacted>". AUTH sends
 * nothing (ADM_SMTP_EUNSAFE) unless the session is TLS whose certificate verified, chain and
 * name, against the CA file or the system CAs; only adm_smtp_set_auth_rule() relaxes that.
 *
 * Ownership: struct adm_smtp is opaque, made by adm_smtp_connect()/adm_smtp_attach_fd() and
 * released by adm_smtp_free() (NULL-safe; it closes the socket without sending QUIT).
 * Strings passed in are borrowed. Pointers handed out (last reply, certificate, error text)
 * stay valid until the next call on the same connection. Not thread safe: one connection per
 * thread. Writes use MSG_NOSIGNAL for plaintext, but OpenSSL writes with write(2): a program
 * using TLS should ignore SIGPIPE.
 *
 * Errors: calls return enum adm_smtp_status. ADM_SMTP_OK means the exchange completed and a
 * reply was read — whatever its code; look at adm_smtp_last(). Anything else means the
 * connection is no longer usable (except ADM_SMTP_EUNSAFE: nothing was sent); adm_smtp_errmsg()
 * says why.
 */
#ifndef RELAY_ADM_SMTP_CLIENT_H
#define RELAY_ADM_SMTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define ADM_SMTP_LINE_MAX 512      /* bytes kept per reply line (RFC 5321 §4.5.3.1.5) */
#define ADM_SMTP_LINES_MAX 100     /* lines accepted in one reply; more is a protocol error */
#define ADM_SMTP_TEXT_MAX 8192     /* bytes kept of one reply (lines joined by '\n') */
#define ADM_SMTP_CMD_MAX 1024      /* bytes in one command line we send, CRLF excluded */
#define ADM_SMTP_SECRET_MAX 1024   /* bytes in a password */

enum adm_smtp_status {
	ADM_SMTP_OK = 0,
	ADM_SMTP_ENET,      /* connect, read or write failed; or the peer closed */
	ADM_SMTP_ETIMEOUT,  /* a deadline passed */
	ADM_SMTP_EPROTO,    /* the server broke the protocol (malformed reply, injection …) */
	ADM_SMTP_ETLS,      /* TLS setup or handshake failed */
	ADM_SMTP_EINVAL,    /* our caller passed something we refuse to send */
	ADM_SMTP_EUNSAFE,   /* AUTH refused before sending anything: see adm_smtp_auth_rule */
};

const char *adm_smtp_status_str(enum adm_smtp_status s);

/* ---- one reply, and the pure incremental parser (unit tested) ---------------------- */

struct adm_smtp_reply {
	int code;                        /* 200..599 once complete; 0 while empty */
	unsigned nlines;                 /* lines received, kept or not */
	bool truncated;                  /* a line was clamped or lines were dropped */
	size_t textlen;
	char text[ADM_SMTP_TEXT_MAX];    /* full lines ("250-SIZE 1000"), sanitised, '\n'-joined */
};

enum adm_smtp_parse {
	ADM_SMTP_PARSE_MORE,   /* every byte consumed, the reply is not complete yet */
	ADM_SMTP_PARSE_DONE,   /* a complete reply; *used tells how far into the buffer */
	ADM_SMTP_PARSE_BAD,    /* malformed; *why says how. Reset before reuse. */
};

struct adm_smtp_parser {
	char line[ADM_SMTP_LINE_MAX + 2];   /* + a CR right at the limit, + NUL */
	size_t len;              /* bytes kept of the current line */
	bool overlong;           /* the current line was clamped: drop bytes until LF */
	struct adm_smtp_reply reply;
};

void adm_smtp_parser_reset(struct adm_smtp_parser *p);

/* Feeds n bytes. Stops right after the line that completes a reply, so bytes that follow
 * stay with the caller (*used < n). Bare LF ends a line like CRLF does. */
enum adm_smtp_parse adm_smtp_parser_feed(struct adm_smtp_parser *p, const char *buf, size_t n,
                                         size_t *used, const char **why);

/* Line i (0-based) of a reply into out (NUL-terminated, clamped); false past the end. */
bool adm_smtp_reply_line(const struct adm_smtp_reply *r, unsigned i, char *out, size_t outlen);

/* EHLO extension lookup, case-insensitive, lines after the first: "250-AUTH PLAIN LOGIN" has
 * keyword AUTH with parameters "PLAIN LOGIN"; the old "AUTH=PLAIN" form counts too. When
 * params is not NULL it receives the parameters (clamped, may be empty). */
bool adm_smtp_reply_ext(const struct adm_smtp_reply *r, const char *keyword,
                        char *params, size_t paramslen);

/* Whether a space-separated word list (an AUTH parameter string) holds word, ignoring case. */
bool adm_smtp_word_in(const char *list, const char *word);

/* ---- connections -------------------------------------------------------------------- */

struct adm_smtp;

/* Called for every line sent ('C') or received ('S'), already sanitised and redacted. */
typedef void adm_smtp_trace_fn(void *arg, char dir, const char *line);

/* Resolves host (a name, an IPv4 or an IPv6 literal, with or without [brackets]) and
 * connects to the first address that answers within timeout_ms (each try and the
 * connection's later reads and writes get that deadline). Reads nothing. */
enum adm_smtp_status adm_smtp_connect(const char *host, const char *port, int timeout_ms,
                                      struct adm_smtp **out, char *err, size_t errlen);

/* Wraps a connected stream socket (tests: a socketpair). Takes ownership of fd. NULL when
 * out of memory (fd closed then). */
struct adm_smtp *adm_smtp_attach_fd(int fd, int timeout_ms);

void adm_smtp_free(struct adm_smtp *c);
void adm_smtp_set_trace(struct adm_smtp *c, adm_smtp_trace_fn *fn, void *arg);
const char *adm_smtp_errmsg(const struct adm_smtp *c);
const struct adm_smtp_reply *adm_smtp_last(const struct adm_smtp *c);
const char *adm_smtp_peer(const struct adm_smtp *c);   /* "127.0.0.1 port 25" */

/* Reads one reply (the greeting, or after adm_smtp_send_line()). */
enum adm_smtp_status adm_smtp_read_reply(struct adm_smtp *c);

/* Sends one command line (CRLF added) and reads the reply. A line with CR, LF or NUL in
 * it, or longer than ADM_SMTP_CMD_MAX, is refused (ADM_SMTP_EINVAL) and nothing is sent. */
enum adm_smtp_status adm_smtp_cmd(struct adm_smtp *c, const char *line);
enum adm_smtp_status adm_smtp_send_line(struct adm_smtp *c, const char *line);

enum adm_smtp_status adm_smtp_ehlo(struct adm_smtp *c, const char *myname);
enum adm_smtp_status adm_smtp_mail(struct adm_smtp *c, const char *from);  /* MAIL FROM:<from> */
enum adm_smtp_status adm_smtp_rcpt(struct adm_smtp *c, const char *to);    /* RCPT TO:<to> */

/* ---- TLS ---------------------------------------------------------------------------- */

struct adm_smtp_tls_opts {
	const char *ca_file;   /* PEM bundle to verify against; NULL: the system CAs */
	const char *name;      /* name (or IP literal) the certificate must carry; NULL: no check.
	                          A DNS name is also sent as SNI. */
};

struct adm_smtp_cert {
	bool present;
	char subject[512];
	char issuer[512];
	char not_before[32];     /* "2026-11-26 09:54:28 UTC" */
	char not_after[32];
	time_t not_after_t;
	bool expired;            /* notAfter in the past (or notBefore in the future) */
	bool verified;           /* chain and name verified */
	long verify_code;        /* X509_V_OK or the error */
	char verify_error[160];  /* OpenSSL's text for verify_code */
	char protocol[16];       /* "TLSv1.3" */
	char cipher[64];
};

/* STARTTLS: sends the command; on 220 performs the handshake. ADM_SMTP_OK with a non-220
 * reply in adm_smtp_last() means the server refused (the connection stays plaintext). */
enum adm_smtp_status adm_smtp_starttls(struct adm_smtp *c, const struct adm_smtp_tls_opts *o);

/* Implicit TLS (port 465 style): the handshake right after connecting, before the greeting. */
enum adm_smtp_status adm_smtp_tls_handshake(struct adm_smtp *c, const struct adm_smtp_tls_opts *o);

bool adm_smtp_is_tls(const struct adm_smtp *c);
const struct adm_smtp_cert *adm_smtp_cert(const struct adm_smtp *c);  /* NULL before TLS */

/* ---- AUTH and DATA ------------------------------------------------------------------ */

enum adm_smtp_mech { ADM_SMTP_PLAIN, ADM_SMTP_LOGIN };

/* Where adm_smtp_auth() may send a user name and password. PLAIN and LOGIN give the
 * password to the server as it is, so an unverified server is a server that collects it. */
enum adm_smtp_auth_rule {
	ADM_SMTP_AUTH_VERIFIED = 0,  /* the default: TLS, and the certificate verified — chain
	                                against the CA file or the system CAs, and the name given
	                                in adm_smtp_tls_opts.name */
	ADM_SMTP_AUTH_ANY_TLS,       /* TLS, any certificate: an explicit admin choice
	                                (selftest --insecure), reported as such */
	ADM_SMTP_AUTH_ANYWHERE,      /* plaintext too: unit tests over a socketpair only */
};

void adm_smtp_set_auth_rule(struct adm_smtp *c, enum adm_smtp_auth_rule rule);

/* Whether adm_smtp_auth() would send credentials on this connection now. */
bool adm_smtp_auth_safe(const struct adm_smtp *c);

/* Authenticates; ADM_SMTP_OK when the exchange finished: the final code (235, 535, 454 …)
 * is in adm_smtp_last(). pass need not be NUL-terminated. ADM_SMTP_EUNSAFE, with nothing
 * sent and the connection still usable, when the auth rule forbids this connection
 * (adm_smtp_errmsg() says why). */
enum adm_smtp_status adm_smtp_auth(struct adm_smtp *c, enum adm_smtp_mech mech,
                                   const char *user, const char *pass, size_t passlen);

/* The AUTH PLAIN initial response base64("\0user\0pass") into out (NUL-terminated).
 * Exposed for the unit tests. false when it does not fit. The caller wipes out. */
bool adm_smtp_plain_response(const char *user, const char *pass, size_t passlen,
                             char *out, size_t outlen);

/* DATA: on 354 sends the message (LF or CRLF line ends; lines starting with '.' are
 * dot-stuffed) and the final dot; the final reply is in adm_smtp_last(). If the server
 * answers DATA with anything but 354, that reply is in adm_smtp_last() and nothing is sent. */
enum adm_smtp_status adm_smtp_data(struct adm_smtp *c, const char *message);

/* QUIT, best effort: errors are ignored; the connection stays allocated. */
void adm_smtp_quit(struct adm_smtp *c);

#endif
