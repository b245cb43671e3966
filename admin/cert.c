/*
 * cert.c — certificate checks and the self-signed fallback; see cert.h.
 *
 * Why the permission rule: Postfix reads the key as root before dropping privileges, so
 * root:root 0600 works, and root:postfix 0640 is the common Debian layout; anything more
 * open hands the relay's identity to every local user.
 */
#include "cert.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "errbuf.h"
#include "safefs.h"

/* Refuses to prompt for a pass phrase: Postfix cannot use an encrypted key. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

static X509 *read_cert(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	X509 *x;

	if (f == NULL) {
		rdb_seterr(err, errlen, "certificate %s: %s", path, strerror(errno));
		return NULL;
	}
	x = PEM_read_X509(f, NULL, no_passphrase, NULL);
	fclose(f);
	if (x == NULL)
		rdb_seterr(err, errlen, "certificate %s: no PEM certificate in it", path);
	ERR_clear_error();
	return x;
}

static int check_key_file(const char *key, gid_t postfix_gid, char *err, size_t errlen)
{
	struct stat st;

	if (stat(key, &st) < 0) {
		rdb_seterr(err, errlen, "key %s: %s", key, strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		rdb_seterr(err, errlen, "key %s: not a regular file", key);
		return -1;
	}
	/* root's (setup runs as root; the comparison with our own uid is for tests) */
	if (st.st_uid != 0 && st.st_uid != geteuid()) {
		rdb_seterr(err, errlen, "key %s belongs to uid %u, not root; fix: chown root:postfix %s",
		       key, (unsigned)st.st_uid, key);
		return -1;
	}
	if (st.st_mode & (S_IROTH | S_IWOTH | S_IXOTH)) {
		rdb_seterr(err, errlen, "key %s is readable or writable by every user (mode %04o); "
		       "fix: chmod 0640 %s", key, (unsigned)(st.st_mode & 07777), key);
		return -1;
	}
	if ((st.st_mode & (S_IRGRP | S_IWGRP)) && st.st_gid != 0 && st.st_gid != postfix_gid) {
		rdb_seterr(err, errlen, "key %s is readable by group %u, which is neither root nor "
		       "postfix; fix: chown root:postfix %s", key, (unsigned)st.st_gid, key);
		return -1;
	}
	return 0;
}

int adm_cert_check(const char *cert, const char *key, const char *hostname,
                   gid_t postfix_gid, char *warn, size_t warnlen, char *err, size_t errlen)
{
	X509 *x = NULL;
	EVP_PKEY *pk = NULL;
	FILE *f = NULL;
	int rc = -1, days = 0, secs = 0;

	if (warn && warnlen)
		warn[0] = '\0';
	if (check_key_file(key, postfix_gid, err, errlen) < 0)
		return -1;
	x = read_cert(cert, err, errlen);
	if (x == NULL)
		return -1;
	f = fopen(key, "r");
	if (f == NULL) {
		rdb_seterr(err, errlen, "key %s: %s", key, strerror(errno));
		goto out;
	}
	pk = PEM_read_PrivateKey(f, NULL, no_passphrase, NULL);
	if (pk == NULL) {
		rdb_seterr(err, errlen, "key %s: no readable private key (an encrypted key cannot be "
		       "used by Postfix: openssl pkey -in KEY -out NEWKEY)", key);
		goto out;
	}
	if (X509_check_private_key(x, pk) != 1) {
		rdb_seterr(err, errlen, "key %s does not belong to certificate %s", key, cert);
		goto out;
	}
	if (X509_cmp_current_time(X509_get0_notBefore(x)) > 0) {
		rdb_seterr(err, errlen, "certificate %s is not valid yet (check the clock)", cert);
		goto out;
	}
	if (X509_cmp_current_time(X509_get0_notAfter(x)) < 0) {
		rdb_seterr(err, errlen, "certificate %s has expired; renew it", cert);
		goto out;
	}
	if (ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(x)) == 1 &&
	    days < ADM_CERT_WARN_DAYS && warn)
		snprintf(warn, warnlen, "certificate %s expires in %d days", cert, days);
	else if (hostname && hostname[0] && X509_check_host(x, hostname, 0, 0, NULL) != 1 && warn)
		snprintf(warn, warnlen, "certificate %s does not name the host %s; clients that "
		         "verify will refuse it", cert, hostname);
	rc = 0;
out:
	ERR_clear_error();
	if (f)
		fclose(f);
	EVP_PKEY_free(pk);
	X509_free(x);
	return rc;
}

static int add_ext(X509 *x, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (ext == NULL)
		return -1;
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok == 1 ? 0 : -1;
}

/* Writes the PEM into `path`.tmp with `mode`, owner root:gid, then renames it into place.
 * The folder is walked and the names handled through its descriptor (sql/safefs.h): if
 * another user can write a folder on the way, a link it plants cannot redirect the key. */
static int write_pem(const char *path, mode_t mode, gid_t gid, X509 *x, EVP_PKEY *pk,
                     char *err, size_t errlen)
{
	char name[NAME_MAX + 1], tmp[NAME_MAX + 1];
	int dirfd, fd, ok;
	FILE *f;

	dirfd = sfs_open_parent(path, 0, NULL, name, sizeof name, err, errlen);
	if (dirfd < 0)
		return -1;
	/* owner root, group postfix; a non-root caller (tests) keeps its own ownership */
	fd = sfs_tmp_create(dirfd, name, mode, geteuid() == 0 ? 0 : (uid_t)-1, gid, tmp,
	                    sizeof tmp, err, errlen);
	if (fd < 0) {
		close(dirfd);
		return -1;
	}
	f = fdopen(fd, "w");
	if (f == NULL) {
		close(fd);
		sfs_tmp_discard(dirfd, tmp);
		close(dirfd);
		rdb_seterr(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	ok = pk ? PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL) : PEM_write_X509(f, x);
	if (fclose(f) != 0 || ok != 1) {
		rdb_seterr(err, errlen, "%s: could not write it", path);
		sfs_tmp_discard(dirfd, tmp);
		close(dirfd);
		return -1;
	}
	ok = sfs_tmp_commit(dirfd, tmp, name, err, errlen);
	close(dirfd);
	return ok;
}

int adm_cert_generate(const char *hostname, const char *cert, const char *key, gid_t gid,
                      char *err, size_t errlen)
{
	EVP_PKEY *pk = NULL;
	X509 *x = NULL;
	X509_NAME *name;
	unsigned char serial[16];
	BIGNUM *bn = NULL;
	char san[300];
	int rc = -1;

	if (strlen(hostname) > 253) {
		rdb_seterr(err, errlen, "host name too long for a certificate");
		return -1;
	}
	pk = EVP_RSA_gen(2048);
	x = X509_new();
	if (pk == NULL || x == NULL || RAND_bytes(serial, sizeof serial) != 1)
		goto fail;
	serial[0] &= 0x7f;  /* a positive serial number */
	bn = BN_bin2bn(serial, sizeof serial, NULL);
	if (bn == NULL || BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL)
		goto fail;
	if (X509_set_version(x, 2) != 1 ||
	    X509_gmtime_adj(X509_getm_notBefore(x), -300) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(x), (long)ADM_CERT_SELF_DAYS * 86400) == NULL ||
	    X509_set_pubkey(x, pk) != 1)
		goto fail;
	name = X509_get_subject_name(x);
	if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	                               (const unsigned char *)hostname, -1, -1, 0) != 1 ||
	    X509_set_issuer_name(x, name) != 1)
		goto fail;
	snprintf(san, sizeof san, "DNS:%s", hostname);
	if (add_ext(x, NID_subject_alt_name, san) < 0 ||
	    add_ext(x, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
	    add_ext(x, NID_key_usage, "critical,digitalSignature,keyEncipherment") < 0 ||
	    add_ext(x, NID_ext_key_usage, "serverAuth") < 0 ||
	    X509_sign(x, pk, EVP_sha256()) == 0)
		goto fail;
	if (write_pem(key, 0640, gid, NULL, pk, err, errlen) < 0 ||
	    write_pem(cert, 0644, 0, x, NULL, err, errlen) < 0)
		goto out;
	rc = 0;
	goto out;
fail:
	rdb_seterr(err, errlen, "could not generate a certificate: %s",
	       ERR_reason_error_string(ERR_peek_last_error()) ?
	       ERR_reason_error_string(ERR_peek_last_error()) : "OpenSSL error");
out:
	ERR_clear_error();
	BN_free(bn);
	X509_free(x);
	EVP_PKEY_free(pk);
	return rc;
}

int adm_cert_info(const char *cert, char *subject, size_t sublen, char *issuer,
                  size_t isslen, time_t *not_after, char *err, size_t errlen)
{
	X509 *x = read_cert(cert, err, errlen);
	struct tm tm;

	if (x == NULL)
		return -1;
	if (subject && sublen)
		X509_NAME_oneline(X509_get_subject_name(x), subject, (int)sublen);
	if (issuer && isslen)
		X509_NAME_oneline(X509_get_issuer_name(x), issuer, (int)isslen);
	if (not_after) {
		*not_after = 0;
		if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) == 1)
			*not_after = timegm(&tm);
	}
	X509_free(x);
	return 0;
}

/* Appends `s` to the comma-separated list in `out`, truncating silently: it is a report. */
static void add_name(char *out, size_t outlen, const char *s, size_t n)
{
	size_t used = strlen(out);

	if (used + 3 >= outlen)
		return;
	snprintf(out + used, outlen - used, "%s%.*s", used ? ", " : "", (int)n, s);
}

static void list_names(X509 *x, char *names, size_t nameslen)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	int n = gens ? sk_GENERAL_NAME_num(gens) : 0;

	for (int i = 0; i < n; i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		char ip[64];

		if (g->type == GEN_DNS) {
			add_name(names, nameslen, (const char *)ASN1_STRING_get0_data(g->d.dNSName),
			         (size_t)ASN1_STRING_length(g->d.dNSName));
		} else if (g->type == GEN_IPADD) {
			int len = ASN1_STRING_length(g->d.iPAddress);
			const unsigned char *a = ASN1_STRING_get0_data(g->d.iPAddress);

			if ((len == 4 && inet_ntop(AF_INET, a, ip, sizeof ip)) ||
			    (len == 16 && inet_ntop(AF_INET6, a, ip, sizeof ip)))
				add_name(names, nameslen, ip, strlen(ip));
		}
	}
	GENERAL_NAMES_free(gens);
	if (n == 0) {   /* no subjectAltName: clients fall back to the CN */
		char cn[256];

		if (X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn,
		                              sizeof cn) > 0)
			add_name(names, nameslen, cn, strlen(cn));
	}
}

int adm_cert_identity(const char *cert, const char *name, bool *self_signed,
                      bool *names_host, char *names, size_t nameslen, char *err,
                      size_t errlen)
{
	X509 *x = read_cert(cert, err, errlen);
	unsigned char addr[16];

	if (x == NULL)
		return -1;
	if (names && nameslen) {
		names[0] = '\0';
		list_names(x, names, nameslen);
	}
	/* Self-issued is not enough (a CA's root is too, and a leaf can copy a name): the
	 * signature must verify with the certificate's own key. */
	*self_signed = X509_NAME_cmp(X509_get_subject_name(x), X509_get_issuer_name(x)) == 0 &&
	               X509_verify(x, X509_get0_pubkey(x)) == 1;
	if (inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1)
		*names_host = X509_check_ip_asc(x, name, 0) == 1;
	else
		*names_host = X509_check_host(x, name, 0, 0, NULL) == 1;
	ERR_clear_error();
	X509_free(x);
	return 0;
}
