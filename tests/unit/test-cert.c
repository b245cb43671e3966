/*
 * test-cert.c — admin/cert.c: the certificate checks relay-admin setup makes before pointing
 * Postfix at a certificate (key matches, validity, key file permissions, encrypted keys),
 * host-name and expiry warnings, and the self-signed fallback. Certificates are made here
 * with OpenSSL in a temporary folder.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cert.h"
#include "tap.h"

static char dir[] = "/tmp/test-cert-XXXXXX";

static EVP_PKEY *newkey(void)
{
	return EVP_EC_gen("P-256");
}

/* A certificate for `host` with key `pk`, valid from now+from_days to now+to_days, issued
 * by `issuer_cn` (NULL: its own subject) and signed with `signer` (NULL: `pk`). */
static void write_cert_by(const char *name, EVP_PKEY *pk, const char *host, long from_days,
                          long to_days, EVP_PKEY *signer, const char *issuer_cn)
{
	char path[256], san[128];
	X509 *x = X509_new();
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	FILE *f;

	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_set_version(x, 2);
	X509_gmtime_adj(X509_getm_notBefore(x), from_days * 86400 - 60);
	X509_gmtime_adj(X509_getm_notAfter(x), to_days * 86400);
	X509_set_pubkey(x, pk);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
	                           (const unsigned char *)host, -1, -1, 0);
	if (issuer_cn) {
		X509_NAME *in = X509_NAME_new();

		X509_NAME_add_entry_by_txt(in, "CN", MBSTRING_ASC, (const unsigned char *)issuer_cn,
		                           -1, -1, 0);
		X509_set_issuer_name(x, in);
		X509_NAME_free(in);
	} else {
		X509_set_issuer_name(x, X509_get_subject_name(x));
	}
	snprintf(san, sizeof san, "DNS:%s", host);
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, san);
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	X509_sign(x, signer ? signer : pk, EVP_sha256());
	snprintf(path, sizeof path, "%s/%s", dir, name);
	f = fopen(path, "w");
	PEM_write_X509(f, x);
	fclose(f);
	X509_free(x);
}

/* A self-signed certificate for `host`, valid from now+from_days to now+to_days. */
static void write_cert(const char *name, EVP_PKEY *pk, const char *host, long from_days,
                       long to_days)
{
	write_cert_by(name, pk, host, from_days, to_days, NULL, NULL);
}

/* adm_cert_identity on dir/name -> 0/-1; self-signed and names-host into the flags. */
static int identity(const char *name, const char *host, bool *self, bool *names_host,
                    char *names, size_t len)
{
	char path[256], err[512];

	snprintf(path, sizeof path, "%s/%s", dir, name);
	return adm_cert_identity(path, host, self, names_host, names, len, err, sizeof err);
}

static void write_key(const char *name, EVP_PKEY *pk, mode_t mode, bool encrypted)
{
	unsigned char pass[] = "secret";
	char path[256];
	FILE *f;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	f = fopen(path, "w");
	if (encrypted)
		PEM_write_PrivateKey(f, pk, EVP_aes_128_cbc(), pass, 6, NULL, NULL);
	else
		PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	chmod(path, mode);
}

static int check(const char *cert, const char *key, const char *host, char *warn,
                 size_t warnlen, char *err, size_t errlen)
{
	char c[256], k[256];

	snprintf(c, sizeof c, "%s/%s", dir, cert);
	snprintf(k, sizeof k, "%s/%s", dir, key);
	err[0] = '\0';
	return adm_cert_check(c, k, host, getgid(), warn, warnlen, err, errlen);
}

int main(void)
{
	EVP_PKEY *a, *b;
	char warn[512], err[512];

	if (mkdtemp(dir) == NULL)
		return 1;
	a = newkey();
	b = newkey();
	write_key("a.key", a, 0640, false);
	write_key("a-world.key", a, 0644, false);
	write_key("a-enc.key", a, 0600, true);
	write_key("b.key", b, 0600, false);
	write_cert("good.pem", a, "relay.test", 0, 400);
	write_cert("soon.pem", a, "relay.test", 0, 10);
	write_cert("expired.pem", a, "relay.test", -20, -10);
	write_cert("future.pem", a, "relay.test", 10, 20);

	ok(check("good.pem", "a.key", "relay.test", warn, sizeof warn, err, sizeof err) == 0,
	   "a valid certificate with its key passes (%s)", err);
	is_str(warn, "", "no warning for a certificate that names the host");
	ok(check("good.pem", "a.key", "other.test", warn, sizeof warn, err, sizeof err) == 0 &&
	   strstr(warn, "does not name the host other.test") != NULL,
	   "another host name: accepted with a warning");
	ok(check("soon.pem", "a.key", "relay.test", warn, sizeof warn, err, sizeof err) == 0 &&
	   strstr(warn, "expires in") != NULL, "expiring within 30 days: a warning");
	ok(check("expired.pem", "a.key", NULL, warn, sizeof warn, err, sizeof err) < 0 &&
	   strstr(err, "expired") != NULL, "expired: refused (%s)", err);
	ok(check("future.pem", "a.key", NULL, warn, sizeof warn, err, sizeof err) < 0 &&
	   strstr(err, "not valid yet") != NULL, "not yet valid: refused");
	ok(check("good.pem", "b.key", NULL, warn, sizeof warn, err, sizeof err) < 0 &&
	   strstr(err, "does not belong") != NULL, "the key of another certificate: refused");
	ok(check("good.pem", "a-world.key", NULL, warn, sizeof warn, err, sizeof err) < 0 &&
	   strstr(err, "every user") != NULL, "a world-readable key: refused");
	ok(check("good.pem", "a-enc.key", NULL, warn, sizeof warn, err, sizeof err) < 0 &&
	   strstr(err, "encrypted") != NULL, "an encrypted key: refused, saying why");
	ok(check("good.pem", "missing.key", NULL, warn, sizeof warn, err, sizeof err) < 0,
	   "a missing key: refused");
	ok(check("a.key", "a.key", NULL, warn, sizeof warn, err, sizeof err) < 0 &&
	   strstr(err, "no PEM certificate") != NULL, "a key given as the certificate: refused");
	{
		/* key and certificate in one file, the how-to's layout */
		char path[256], line[512];
		FILE *out, *in;

		snprintf(path, sizeof path, "%s/combined.pem", dir);
		out = fopen(path, "w");
		for (int i = 0; i < 2; i++) {
			char src[256];

			snprintf(src, sizeof src, "%s/%s", dir, i == 0 ? "a.key" : "good.pem");
			in = fopen(src, "r");
			while (fgets(line, sizeof line, in))
				fputs(line, out);
			fclose(in);
		}
		fclose(out);
		chmod(path, 0600);
		ok(check("combined.pem", "combined.pem", "relay.test", warn, sizeof warn, err,
		         sizeof err) == 0, "key and certificate in one file pass");
	}
	{
		char c[256], k[256], subject[256], issuer[256];
		time_t not_after = 0;

		snprintf(c, sizeof c, "%s/gen.pem", dir);
		snprintf(k, sizeof k, "%s/gen.key", dir);
		ok(adm_cert_generate("relay.example.test", c, k, getgid(), err, sizeof err) == 0,
		   "self-signed certificate generated (%s)", err);
		ok(adm_cert_check(c, k, "relay.example.test", getgid(), warn, sizeof warn, err,
		                  sizeof err) == 0 && warn[0] == '\0',
		   "the generated certificate passes the checks, names the host");
		ok(adm_cert_info(c, subject, sizeof subject, issuer, sizeof issuer, &not_after,
		                 err, sizeof err) == 0 && strstr(subject, "relay.example.test") &&
		   not_after > time(NULL) + 800L * 86400, "its subject and expiry (825 days)");
		{
			struct stat st;

			ok(stat(k, &st) == 0 && (st.st_mode & 0777) == 0640, "its key is 0640");
		}
	}
	{
		/* issue 8: a user who can write a folder on the way to the key plants a link to
		 * a folder of its choice; the key must not be written (or replace a file) there */
		char open_dir[256], link[256], elsewhere[256], c[300], k[300], victim[300];
		struct stat st;

		snprintf(open_dir, sizeof open_dir, "%s/open", dir);
		snprintf(link, sizeof link, "%s/open/evil", dir);
		snprintf(elsewhere, sizeof elsewhere, "%s/elsewhere", dir);
		mkdir(open_dir, 0700);
		chmod(open_dir, 0777);
		mkdir(elsewhere, 0700);
		symlink(elsewhere, link);
		snprintf(c, sizeof c, "%s/cert.pem", link);
		snprintf(k, sizeof k, "%s/key.pem", link);
		snprintf(victim, sizeof victim, "%s/key.pem", elsewhere);
		ok(adm_cert_generate("relay.example.test", c, k, getgid(), err, sizeof err) < 0 &&
		   strstr(err, "symbolic link") != NULL,
		   "a link in a folder others can write is not followed: %s", err);
		ok(stat(victim, &st) < 0, "nothing was written where the link points");
	}
	{
		/* issue 9: what check tells about a certificate, as a client will see it */
		bool self = false, names_host = false;
		char names[256];

		write_cert_by("leaf.pem", a, "relay.test", 0, 400, b, "Test CA");
		/* self-issued (subject = issuer) but signed by another key: not self-signed */
		write_cert_by("forged.pem", a, "relay.test", 0, 400, b, "relay.test");
		ok(identity("good.pem", "relay.test", &self, &names_host, names, sizeof names) == 0 &&
		   self && names_host, "a self-signed certificate is named as such, names its host");
		is_str(names, "relay.test", "its names are listed");
		ok(identity("good.pem", "RELAY.test", &self, &names_host, names, sizeof names) == 0 &&
		   names_host, "host names compare without case");
		ok(identity("leaf.pem", "relay.test", &self, &names_host, names, sizeof names) == 0 &&
		   !self && names_host, "a CA-issued certificate is not self-signed");
		ok(identity("forged.pem", "relay.test", &self, &names_host, names, sizeof names) == 0 &&
		   !self, "subject = issuer without its own signature is not self-signed");
		ok(identity("leaf.pem", "other.test", &self, &names_host, names, sizeof names) == 0 &&
		   !names_host, "another host: not named");
		ok(identity("leaf.pem", "192.0.2.1", &self, &names_host, names, sizeof names) == 0 &&
		   !names_host, "an IP address the certificate does not hold: not named");
		ok(identity("a.key", "relay.test", &self, &names_host, names, sizeof names) < 0,
		   "not a certificate: an error, not a verdict");
	}
	EVP_PKEY_free(a);
	EVP_PKEY_free(b);
	{
		char cmd[300];

		snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			diag("could not remove the temporary folder");
	}
	return tap_done();
}
