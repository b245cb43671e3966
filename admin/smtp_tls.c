/*
 * smtp_tls.c — the SMTP client's TLS: context and verification setup (chain and
 * name against the CA file or the system CAs), STARTTLS and implicit TLS handshakes, and
 * the server certificate's facts for the report.
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
				out[i] = smtpc_sanitize_byte((unsigned char)data[i]);
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
		smtpc_set_err(c, "TLS is already active");
		return ADM_SMTP_EINVAL;
	}
	c->ctx = SSL_CTX_new(TLS_client_method());
	if (!c->ctx) {
		smtpc_tls_err(c, "SSL_CTX_new");
		return ADM_SMTP_ETLS;
	}
	/* The relay and a sane upstream speak TLS 1.2 or newer; older is a finding in itself. */
	SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
	if (o && o->ca_file) {
		if (SSL_CTX_load_verify_locations(c->ctx, o->ca_file, NULL) != 1) {
			smtpc_tls_err(c, "cannot load CA file");
			return ADM_SMTP_ETLS;
		}
	} else if (SSL_CTX_set_default_verify_paths(c->ctx) != 1) {
		smtpc_tls_err(c, "cannot load the system CAs");
		return ADM_SMTP_ETLS;
	}
	/* Verify, but do not abort the handshake on failure: selftest reports the result. */
	SSL_CTX_set_verify(c->ctx, SSL_VERIFY_NONE, NULL);
	c->ssl = SSL_new(c->ctx);
	if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1) {
		smtpc_tls_err(c, "SSL_new");
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
			smtpc_tls_err(c, "bad TLS name");
			return ADM_SMTP_EINVAL;
		}
		c->name_checked = true;
	}
	if (smtpc_ssl_io(c, 'h', NULL, 0, smtpc_now_ms() + c->timeout_ms, &st) < 0) {
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
		smtpc_set_err(c, "%s sent plaintext data after its 220 to STARTTLS (injection)", c->peer);
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
