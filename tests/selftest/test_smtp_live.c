/*
 * test_smtp_live.c — admin/smtp_client.c over real sockets: TCP connect to loopback
 * listeners (127.0.0.1, [::1], "localhost") on ports picked by the kernel, and TLS (STARTTLS
 * and implicit) against a forked OpenSSL server with a certificate made here: certificate
 * details, verification against a CA file, host-name and IP checks, an untrusted chain, a
 * handshake with something that is not TLS. Only loopback; every child is reaped.
 */
#include "smtp_client.h"
#include "tap.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

static EVP_PKEY *key;
static X509 *cert;
static char dir[] = "/tmp/test-smtp-live-XXXXXX";
static char ca_path[64];

/* ---- a self-signed certificate for localhost / 127.0.0.1 ---------------------------- */

static bool add_ext(X509 *x, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;

	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (!ext)
		return false;
	bool ok = X509_add_ext(x, ext, -1) == 1;

	X509_EXTENSION_free(ext);
	return ok;
}

static bool make_cert(void)
{
	X509_NAME *name;
	FILE *f;

	key = EVP_EC_gen("P-256");
	cert = X509_new();
	if (!key || !cert)
		return false;
	X509_set_version(cert, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
	X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
	X509_gmtime_adj(X509_getm_notAfter(cert), 86400);
	X509_set_pubkey(cert, key);
	name = X509_get_subject_name(cert);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost",
	                           -1, -1, 0);
	X509_set_issuer_name(cert, name);
	if (!add_ext(cert, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1,IP:::1") ||
	    !add_ext(cert, NID_basic_constraints, "critical,CA:TRUE") ||
	    !add_ext(cert, NID_key_usage, "critical,digitalSignature,keyCertSign") ||
	    X509_sign(cert, key, EVP_sha256()) == 0)
		return false;
	if (!mkdtemp(dir))
		return false;
	snprintf(ca_path, sizeof(ca_path), "%s/ca.pem", dir);
	f = fopen(ca_path, "w");
	if (!f)
		return false;
	bool ok = PEM_write_X509(f, cert) == 1;

	return fclose(f) == 0 && ok;
}

/* ---- the forked server --------------------------------------------------------------- */

static bool read_line(SSL *ssl, int fd, char *buf, size_t len)
{
	size_t o = 0;

	while (o + 1 < len) {
		char ch;
		int r = ssl ? SSL_read(ssl, &ch, 1) : (int)read(fd, &ch, 1);

		if (r != 1)
			return false;
		if (ch == '\n') {
			buf[o - (o && buf[o - 1] == '\r')] = '\0';
			return true;
		}
		buf[o++] = ch;
	}
	return false;
}

static void put(SSL *ssl, int fd, const char *s)
{
	if (ssl)
		SSL_write(ssl, s, (int)strlen(s));
	else if (write(fd, s, strlen(s)) < 0)
		_exit(4);
}

/* mode 's': plaintext greeting, STARTTLS, TLS; 'i': TLS at once; 'x': not TLS at all;
 * 'a': as 's', then answers an AUTH with 235 and exits 10 — the credential reached it. */
static void serve(int fd, char mode)
{
	char line[512];
	SSL_CTX *ctx = NULL;
	SSL *ssl = NULL;
	int rc = 0;

	signal(SIGPIPE, SIG_IGN);
	if (mode == 'x') {
		put(NULL, fd, "220 plaintext only\r\n");
		(void)read_line(NULL, fd, line, sizeof(line));
		close(fd);
		_exit(0);
	}
	if (mode == 's' || mode == 'a') {
		put(NULL, fd, "220 plain ESMTP\r\n");
		if (!read_line(NULL, fd, line, sizeof(line)) || strcmp(line, "STARTTLS") != 0)
			_exit(2);
		put(NULL, fd, "220 2.0.0 go ahead\r\n");
	}
	ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx || SSL_CTX_use_certificate(ctx, cert) != 1 || SSL_CTX_use_PrivateKey(ctx, key) != 1)
		_exit(3);
	ssl = SSL_new(ctx);
	SSL_set_fd(ssl, fd);
	if (SSL_accept(ssl) != 1) {
		rc = 5;   /* expected when the client gives up on the certificate: it does not */
		goto out;
	}
	if (mode == 'i')
		put(ssl, fd, "220 tls ESMTP\r\n");
	if (!read_line(ssl, fd, line, sizeof(line)) || strncmp(line, "EHLO ", 5) != 0) {
		rc = 6;
		goto out;
	}
	put(ssl, fd, "250-tls\r\n250 AUTH PLAIN LOGIN\r\n");
	if (!read_line(ssl, fd, line, sizeof(line))) {
		rc = 7;
		goto out;
	}
	if (mode == 'a' && strncmp(line, "AUTH ", 5) == 0) {
		put(ssl, fd, "235 2.7.0 thank you\r\n");
		rc = 10;
		if (!read_line(ssl, fd, line, sizeof(line)))
			goto out;
	}
	if (strcmp(line, "QUIT") != 0) {
		rc = 7;
		goto out;
	}
	put(ssl, fd, "221 bye\r\n");
out:
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	EVP_PKEY_free(key);
	X509_free(cert);
	close(fd);
	_exit(rc);
}

static pid_t child;

static struct adm_smtp *start(char mode)
{
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		return NULL;
	fflush(stdout);
	child = fork();
	if (child == 0) {
		close(sv[0]);
		serve(sv[1], mode);
	}
	close(sv[1]);
	return adm_smtp_attach_fd(sv[0], 10000);
}

static int finish(struct adm_smtp *c)
{
	int status = 0;

	adm_smtp_free(c);
	waitpid(child, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 99;
}

/* One STARTTLS session; returns a copy of the certificate report. */
static struct adm_smtp_cert tls_session(char mode, const char *ca, const char *name,
                                        enum adm_smtp_status *st, int *server_rc)
{
	struct adm_smtp_tls_opts o = { .ca_file = ca, .name = name };
	struct adm_smtp_cert k;
	struct adm_smtp *c = start(mode);

	memset(&k, 0, sizeof(k));
	if (mode == 'i') {
		*st = adm_smtp_tls_handshake(c, &o);
		if (*st == ADM_SMTP_OK)
			*st = adm_smtp_read_reply(c);
	} else {
		*st = adm_smtp_read_reply(c);
		if (*st == ADM_SMTP_OK)
			*st = adm_smtp_starttls(c, &o);
	}
	if (*st == ADM_SMTP_OK && adm_smtp_cert(c)) {
		k = *adm_smtp_cert(c);
		*st = adm_smtp_ehlo(c, "client.test");
		if (*st == ADM_SMTP_OK && !adm_smtp_reply_ext(adm_smtp_last(c), "AUTH", NULL, 0))
			*st = ADM_SMTP_EPROTO;
		adm_smtp_quit(c);
	}
	*server_rc = finish(c);
	return k;
}

static void test_tls(void)
{
	struct adm_smtp_cert k;
	enum adm_smtp_status st;
	int src;

	k = tls_session('s', ca_path, "localhost", &st, &src);
	is_int(st, ADM_SMTP_OK, "STARTTLS session");
	is_int(src, 0, "server saw EHLO and QUIT inside TLS");
	ok(k.present, "certificate present");
	ok(k.verified, "verified against the CA file for localhost");
	ok(!k.expired, "not expired");
	is_str((const char *)k.subject, "CN=localhost", "subject");
	is_str((const char *)k.issuer, "CN=localhost", "issuer");
	ok(strncmp(k.protocol, "TLSv1.", 6) == 0, "protocol %s", k.protocol);
	ok(k.cipher[0] != '\0', "cipher %s", k.cipher);
	ok(strstr(k.not_after, "UTC") != NULL, "notAfter %s", k.not_after);
	ok(k.not_after_t > time(NULL), "notAfter in the future");

	k = tls_session('i', ca_path, "127.0.0.1", &st, &src);
	is_int(st, ADM_SMTP_OK, "implicit TLS session");
	is_int(src, 0, "implicit: server saw EHLO and QUIT");
	ok(k.verified, "verified for the IP address 127.0.0.1");

	k = tls_session('s', ca_path, "mail.example.org", &st, &src);
	is_int(st, ADM_SMTP_OK, "a name mismatch still completes (selftest reports it)");
	ok(!k.verified, "not verified for another name");
	is_int(k.verify_code, X509_V_ERR_HOSTNAME_MISMATCH, "hostname mismatch reported");

	k = tls_session('s', ca_path, "127.0.0.2", &st, &src);
	ok(!k.verified && k.verify_code == X509_V_ERR_IP_ADDRESS_MISMATCH,
	   "IP mismatch reported (%ld)", k.verify_code);

	k = tls_session('s', NULL, "localhost", &st, &src);
	is_int(st, ADM_SMTP_OK, "session against the system CAs");
	ok(!k.verified, "self-signed certificate not verified by the system CAs");
	ok(k.verify_error[0] != '\0', "reason given: %s", k.verify_error);

	struct adm_smtp_tls_opts bad = { .ca_file = "/nonexistent/ca.pem", .name = "localhost" };
	struct adm_smtp *c = start('s');

	is_int(adm_smtp_read_reply(c), ADM_SMTP_OK, "greeting");
	is_int(adm_smtp_starttls(c, &bad), ADM_SMTP_ETLS, "missing CA file is a TLS error");
	ok(!adm_smtp_is_tls(c), "connection not marked TLS");
	ok(adm_smtp_cert(c) == NULL, "no certificate report");
	adm_smtp_free(c);
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);

	c = start('x');
	is_int(adm_smtp_tls_handshake(c, NULL), ADM_SMTP_ETLS, "TLS to a plaintext server fails");
	ok(strstr(adm_smtp_errmsg(c), "TLS handshake") != NULL, "error names the handshake");
	finish(c);
}

/* One STARTTLS session to an 'a' server, then AUTH PLAIN under `rule`: what AUTH returned;
 * *server_rc is 10 when the server received it, 0 when it saw QUIT only. */
static enum adm_smtp_status auth_session(const char *ca, const char *name,
                                         enum adm_smtp_auth_rule rule, int *server_rc,
                                         char *err, size_t errlen)
{
	struct adm_smtp_tls_opts o = { .ca_file = ca, .name = name };
	struct adm_smtp *c = start('a');
	enum adm_smtp_status st;

	err[0] = '\0';
	adm_smtp_set_auth_rule(c, rule);
	if ((st = adm_smtp_read_reply(c)) != ADM_SMTP_OK ||
	    (st = adm_smtp_starttls(c, &o)) != ADM_SMTP_OK ||
	    (st = adm_smtp_ehlo(c, "client.test")) != ADM_SMTP_OK) {
		*server_rc = finish(c);
		return ADM_SMTP_EPROTO;
	}
	st = adm_smtp_auth(c, ADM_SMTP_PLAIN, "alice", "the-password", 12);
	snprintf(err, errlen, "%s", adm_smtp_errmsg(c));
	adm_smtp_quit(c);
	*server_rc = finish(c);
	return st;
}

/* Issue 8: a credential goes only to a server whose certificate verified, chain and name,
 * unless the caller explicitly chose otherwise. */
static void test_auth_needs_verified_tls(void)
{
	char err[256];
	int src;

	is_int(auth_session(ca_path, "localhost", ADM_SMTP_AUTH_VERIFIED, &src, err, sizeof(err)),
	       ADM_SMTP_OK, "verified certificate: AUTH sent");
	is_int(src, 10, "the verified server received AUTH");

	is_int(auth_session(NULL, "localhost", ADM_SMTP_AUTH_VERIFIED, &src, err, sizeof(err)),
	       ADM_SMTP_EUNSAFE, "self-signed certificate: AUTH withheld");
	is_int(src, 0, "the unverified server saw no AUTH, only QUIT");
	ok(strstr(err, "did not verify") != NULL, "says why: %s", err);

	is_int(auth_session(ca_path, "mail.example.org", ADM_SMTP_AUTH_VERIFIED, &src, err,
	                    sizeof(err)), ADM_SMTP_EUNSAFE, "name mismatch: AUTH withheld");
	is_int(src, 0, "no AUTH for a certificate of another name");

	is_int(auth_session(ca_path, NULL, ADM_SMTP_AUTH_VERIFIED, &src, err, sizeof(err)),
	       ADM_SMTP_EUNSAFE, "chain verified but no name checked: AUTH withheld");
	is_int(src, 0, "no AUTH without a name check");
	ok(strstr(err, "no host name") != NULL, "says why: %s", err);

	is_int(auth_session(NULL, "localhost", ADM_SMTP_AUTH_ANY_TLS, &src, err, sizeof(err)),
	       ADM_SMTP_OK, "ADM_SMTP_AUTH_ANY_TLS: sent to the unverified server");
	is_int(src, 10, "only when the caller said so");
}

/* ---- TCP connect on loopback ---------------------------------------------------------- */

static int listener(int family, char *port, size_t portlen)
{
	int fd = socket(family, SOCK_STREAM, 0);
	struct sockaddr_storage ss;
	socklen_t sl;

	memset(&ss, 0, sizeof(ss));
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sl = sizeof(*sin);
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_addr = in6addr_loopback;
		sl = sizeof(*s6);
	}
	if (fd < 0 || bind(fd, (struct sockaddr *)&ss, sl) != 0 || listen(fd, 4) != 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	sl = sizeof(ss);
	getsockname(fd, (struct sockaddr *)&ss, &sl);
	snprintf(port, portlen, "%u", family == AF_INET ?
	         ntohs(((struct sockaddr_in *)&ss)->sin_port) :
	         ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
	return fd;
}

static void connect_one(int family, const char *host)
{
	char port[16], err[256];
	struct adm_smtp *c = NULL;
	int lfd = listener(family, port, sizeof(port));

	if (lfd < 0) {
		ok(1, "# SKIP no %s loopback here", family == AF_INET ? "IPv4" : "IPv6");
		return;
	}
	fflush(stdout);
	pid_t pid = fork();

	if (pid == 0) {
		int fd = accept(lfd, NULL, NULL);

		if (fd < 0 || write(fd, "220 loopback\r\n", 14) != 14)
			_exit(1);
		char ch;

		while (read(fd, &ch, 1) == 1)   /* until the client closes */
			;
		_exit(0);
	}
	close(lfd);
	is_int(adm_smtp_connect(host, port, 5000, &c, err, sizeof(err)), ADM_SMTP_OK,
	       "connect to %s", host);
	if (c) {
		is_int(adm_smtp_read_reply(c), ADM_SMTP_OK, "greeting from %s", host);
		ok(strstr(adm_smtp_peer(c), "port") != NULL, "peer named: %s", adm_smtp_peer(c));
	}
	adm_smtp_free(c);
	int status = 0;

	waitpid(pid, &status, 0);
	is_int(WIFEXITED(status) ? WEXITSTATUS(status) : 99, 0, "listener on %s served", host);
}

static void test_connect(void)
{
	char port[16], err[256];
	struct adm_smtp *c = NULL;

	connect_one(AF_INET, "127.0.0.1");
	connect_one(AF_INET6, "[::1]");
	connect_one(AF_INET6, "::1");

	/* A port that was free a moment ago: nobody listens, connect is refused. */
	int lfd = listener(AF_INET, port, sizeof(port));

	close(lfd);
	is_int(adm_smtp_connect("127.0.0.1", port, 2000, &c, err, sizeof(err)), ADM_SMTP_ENET,
	       "connection refused is a network error");
	ok(strstr(err, "connect") != NULL, "error says so: %s", err);
	ok(c == NULL, "no connection handed out");
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	if (!make_cert()) {
		ok(0, "made a test certificate");
		return tap_done();
	}
	test_tls();
	test_auth_needs_verified_tls();
	test_connect();
	unlink(ca_path);
	rmdir(dir);
	EVP_PKEY_free(key);
	X509_free(cert);
	return tap_done();
}
