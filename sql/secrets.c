/*
 * secrets.c — the password-derived secrets we store instead of passwords, and generated
 * credentials.
 *
 * What it is: pure functions over OpenSSL's EVP interface (never <openssl/md5.h> nor the
 * SASL headers: <sasl/md5.h> defines a clashing MD5_CTX). Salts and generated passwords
 * come from getrandom(2).
 *   - cmusaslsecretPLAIN, the 33-byte form libsasl2 2.1.28 verifies for PLAIN/LOGIN in
 *     lib/checkpw.c: salt[16] || 0x00 || MD5(salt || "sasldb" || password).
 *   - a SCRAM-SHA-256 verifier in the authPassword form plugins/scram.c parses:
 *     SCRAM-SHA-256$<iter>:<b64 salt>$<b64 StoredKey>:<b64 ServerKey> (RFC 5802:
 *     SaltedPassword = PBKDF2-HMAC-SHA256(password, salt, iter), ClientKey =
 *     HMAC(SaltedPassword, "Client Key"), StoredKey = SHA256(ClientKey), ServerKey =
 *     HMAC(SaltedPassword, "Server Key")).
 *   - a decoy SCRAM-SHA-256 verifier of the same shape for a login that must not
 *     authenticate, keyed by the database's decoy key (see rdb_secret_scram_decoy in rdb.h).
 *
 * Ownership: callers own every buffer. Intermediate key material on the stack is wiped
 * with explicit_bzero before returning. Thread safe (no shared state).
 *
 * Errors: RDB_INVALID for bad arguments (NULL, too few iterations, short buffer),
 * RDB_ERROR when OpenSSL or the random source fails.
 */
#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>

#include "rdb.h"

#define SHA256_LEN 32

/* getrandom() may return fewer bytes than asked for large requests or on a signal. */
static enum rdb_result fill_random(unsigned char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = getrandom(buf, len, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return RDB_ERROR;
		}
		buf += n;
		len -= (size_t)n;
	}
	return RDB_OK;
}

enum rdb_result rdb_secret_plain(const char *password, size_t len, const unsigned char *salt,
                                 unsigned char out[RDB_PLAIN_SECRET_LEN])
{
	static const char sasldb[] = "sasldb";
	unsigned char s[RDB_PLAIN_SALT_LEN];
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int dlen = 0;
	enum rdb_result r = RDB_ERROR;
	EVP_MD_CTX *md;

	if (password == NULL || out == NULL)
		return RDB_INVALID;
	if (salt != NULL)
		memcpy(s, salt, sizeof s);
	else if (fill_random(s, sizeof s) != RDB_OK)
		return RDB_ERROR;

	md = EVP_MD_CTX_new();
	if (md == NULL)
		goto out;
	if (EVP_DigestInit_ex(md, EVP_md5(), NULL) != 1 ||
	    EVP_DigestUpdate(md, s, sizeof s) != 1 ||
	    EVP_DigestUpdate(md, sasldb, strlen(sasldb)) != 1 ||
	    EVP_DigestUpdate(md, password, len) != 1 ||
	    EVP_DigestFinal_ex(md, digest, &dlen) != 1 || dlen != 16)
		goto out;
	memcpy(out, s, RDB_PLAIN_SALT_LEN);
	out[RDB_PLAIN_SALT_LEN] = 0x00;
	memcpy(out + RDB_PLAIN_SALT_LEN + 1, digest, 16);
	r = RDB_OK;
out:
	EVP_MD_CTX_free(md);
	explicit_bzero(digest, sizeof digest);
	return r;
}

static bool hmac_sha256(const unsigned char *key, size_t keylen, const char *msg,
                        unsigned char out[SHA256_LEN])
{
	unsigned int olen = 0;

	return HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)msg, strlen(msg),
	            out, &olen) != NULL && olen == SHA256_LEN;
}

/* base64 with padding, the alphabet libsasl2's decode64 reads. `out` has room for
 * 4 * ceil(len / 3) + 1 bytes (checked by the caller's buffer arithmetic). */
static size_t b64(const unsigned char *in, size_t len, char *out)
{
	return (size_t)EVP_EncodeBlock((unsigned char *)out, in, (int)len);
}

/* snprintf()'s result `n` for a verifier written to out[RDB_SCRAM_MAX]: RDB_OK if it all
 * fits; else RDB_INVALID with out wiped, so no truncated verifier is ever used. */
static enum rdb_result verifier_fits(int n, char *out)
{
	if (n >= 0 && n < RDB_SCRAM_MAX)
		return RDB_OK;
	explicit_bzero(out, RDB_SCRAM_MAX);
	return RDB_INVALID;
}

enum rdb_result rdb_secret_scram_sha256(const char *password, size_t len, unsigned iterations,
                                        const unsigned char *salt, size_t saltlen,
                                        char out[RDB_SCRAM_MAX])
{
	/* libsasl2 2.1.28 refuses stored iteration counts it cannot parse with strtoul, and
	 * anything above this is a denial of service on every SCRAM login. */
	enum { MAX_ITER = 10000000, MAX_SALT = 64 };
	unsigned char s[MAX_SALT];
	unsigned char salted[SHA256_LEN], client_key[SHA256_LEN];
	unsigned char stored_key[SHA256_LEN], server_key[SHA256_LEN];
	char bsalt[(MAX_SALT + 2) / 3 * 4 + 1];
	char bstored[(SHA256_LEN + 2) / 3 * 4 + 1], bserver[(SHA256_LEN + 2) / 3 * 4 + 1];
	unsigned int dlen = 0;
	enum rdb_result r = RDB_ERROR;
	int n;

	if (password == NULL || out == NULL || iterations < RDB_SCRAM_ITERATIONS ||
	    iterations > MAX_ITER || len > (size_t)0x7fffffff)
		return RDB_INVALID;
	if (salt == NULL) {
		saltlen = 16;
		if (fill_random(s, saltlen) != RDB_OK)
			return RDB_ERROR;
	} else {
		if (saltlen == 0 || saltlen > MAX_SALT)
			return RDB_INVALID;
		memcpy(s, salt, saltlen);
	}

	if (PKCS5_PBKDF2_HMAC(password, (int)len, s, (int)saltlen, (int)iterations, EVP_sha256(),
	                      SHA256_LEN, salted) != 1)
		goto out;
	if (!hmac_sha256(salted, sizeof salted, "Client Key", client_key) ||
	    !hmac_sha256(salted, sizeof salted, "Server Key", server_key))
		goto out;
	if (EVP_Digest(client_key, sizeof client_key, stored_key, &dlen, EVP_sha256(), NULL) != 1 ||
	    dlen != SHA256_LEN)
		goto out;

	b64(s, saltlen, bsalt);
	b64(stored_key, sizeof stored_key, bstored);
	b64(server_key, sizeof server_key, bserver);
	n = snprintf(out, RDB_SCRAM_MAX, "SCRAM-SHA-256$%u:%s$%s:%s", iterations, bsalt, bstored,
	             bserver);
	r = verifier_fits(n, out);
out:
	explicit_bzero(salted, sizeof salted);
	explicit_bzero(client_key, sizeof client_key);
	explicit_bzero(stored_key, sizeof stored_key);
	explicit_bzero(server_key, sizeof server_key);
	return r;
}

/* The length of "SCRAM-SHA-256$<iter>:<b64 salt>$" at the start of a stored verifier, or 0
 * if it does not start that way (iteration count: 1-8 digits; salt: base64 of 1-64 bytes). */
static size_t verifier_prefix(const char *v)
{
	static const char head[] = "SCRAM-SHA-256$";
	size_t i = sizeof head - 1, start;

	if (v == NULL || strncmp(v, head, i) != 0)
		return 0;
	for (start = i; v[i] >= '0' && v[i] <= '9'; i++)
		;
	if (i == start || i - start > 8 || v[i++] != ':')
		return 0;
	for (start = i; (v[i] >= 'A' && v[i] <= 'Z') || (v[i] >= 'a' && v[i] <= 'z') ||
	                (v[i] >= '0' && v[i] <= '9') || v[i] == '+' || v[i] == '/' || v[i] == '=';
	     i++)
		;
	if (i == start || i - start > 88 || v[i++] != '$')
		return 0;
	return i;
}

/* The three parts of a decoy, out[k] = HMAC-SHA256(key, labels[k] || 0x00 ||
 * lowercase(name)): the labels keep the parts independent, the NUL keeps label and name
 * apart. One fetched HMAC and one context for all three (the key set once): OpenSSL 3's
 * one-shot HMAC() fetches the algorithm on every call, which tripled the cost. */
static bool decoy_parts(const unsigned char key[RDB_DECOY_KEY_LEN], const char *name,
                        size_t namelen, unsigned char out[3][SHA256_LEN])
{
	static const char *const labels[3] = { "salt", "stored key", "server key" };
	char digest[] = "SHA256";
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
		OSSL_PARAM_construct_end(),
	};
	unsigned char lc[RDB_NAME_MAX];
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *ctx = mac != NULL ? EVP_MAC_CTX_new(mac) : NULL;
	bool ok = ctx != NULL;

	for (size_t i = 0; i < namelen; i++) {
		char c = name[i];

		lc[i] = (unsigned char)((c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c);
	}
	for (int k = 0; ok && k < 3; k++) {
		size_t olen = 0;

		/* A NULL key re-initialises with the key set by the first call. */
		ok = EVP_MAC_init(ctx, k == 0 ? key : NULL, k == 0 ? RDB_DECOY_KEY_LEN : 0,
		                  k == 0 ? params : NULL) == 1 &&
		     EVP_MAC_update(ctx, (const unsigned char *)labels[k], strlen(labels[k]) + 1) == 1 &&
		     EVP_MAC_update(ctx, lc, namelen) == 1 &&
		     EVP_MAC_final(ctx, out[k], &olen, SHA256_LEN) == 1 && olen == SHA256_LEN;
	}
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(mac);
	explicit_bzero(lc, sizeof lc);
	return ok;
}

enum rdb_result rdb_secret_scram_decoy(const unsigned char key[RDB_DECOY_KEY_LEN],
                                       const char *name, const char *real,
                                       char out[RDB_SCRAM_MAX])
{
	unsigned char part[3][SHA256_LEN]; /* salt (first 16 bytes), StoredKey, ServerKey */
	char bsalt[(16 + 2) / 3 * 4 + 1];
	char bstored[(SHA256_LEN + 2) / 3 * 4 + 1], bserver[(SHA256_LEN + 2) / 3 * 4 + 1];
	size_t namelen, keep = verifier_prefix(real);
	enum rdb_result r = RDB_ERROR;
	int n;

	if (key == NULL || name == NULL || out == NULL)
		return RDB_INVALID;
	namelen = strnlen(name, RDB_NAME_MAX + 1);
	if (namelen == 0 || namelen > RDB_NAME_MAX)
		return RDB_INVALID;
	/* All three always, whether the real salt is kept or not: the same work either way. */
	if (!decoy_parts(key, name, namelen, part))
		goto out;
	b64(part[0], 16, bsalt); /* 16 bytes, as rdb_secret_scram_sha256 draws */
	b64(part[1], SHA256_LEN, bstored);
	b64(part[2], SHA256_LEN, bserver);
	if (keep > 0)
		n = snprintf(out, RDB_SCRAM_MAX, "%.*s%s:%s", (int)keep, real, bstored, bserver);
	else
		n = snprintf(out, RDB_SCRAM_MAX, "SCRAM-SHA-256$%u:%s$%s:%s", RDB_SCRAM_ITERATIONS,
		             bsalt, bstored, bserver);
	r = verifier_fits(n, out);
out:
	explicit_bzero(part, sizeof part);
	return r;
}

/* 31 symbols: lowercase letters and digits without the look-alikes 0 o 1 l i. */
static const char alphabet[] = "23456789abcdefghjkmnpqrstuvwxyz";

enum rdb_result rdb_generate_password(char *out, size_t outlen)
{
	/* 5 groups of 6 symbols: 30 * log2(31) = 148.6 bits; dashes help reading it aloud. */
	enum { GROUPS = 5, PER_GROUP = 6, LEN = GROUPS * PER_GROUP + GROUPS - 1 };
	_Static_assert(LEN == RDB_PASSWORD_GEN_LEN, "rdb.h promises this length");
	const unsigned nsym = sizeof alphabet - 1;
	/* Rejection sampling keeps every symbol equally likely: accept bytes below the
	 * largest multiple of nsym that fits in a byte. */
	const unsigned limit = 256 - 256 % nsym;
	unsigned char pool[64];
	size_t used = sizeof pool, pos = 0;
	int sym = 0;

	if (out == NULL || outlen < RDB_PASSWORD_GEN_LEN + 1)
		return RDB_INVALID;
	while (pos < LEN) {
		unsigned char b;

		if (pos % (PER_GROUP + 1) == PER_GROUP) {
			out[pos++] = '-';
			continue;
		}
		if (used == sizeof pool) {
			if (fill_random(pool, sizeof pool) != RDB_OK) {
				explicit_bzero(pool, sizeof pool);
				explicit_bzero(out, outlen);
				return RDB_ERROR;
			}
			used = 0;
		}
		b = pool[used++];
		if (b >= limit)
			continue;
		out[pos++] = alphabet[b % nsym];
		sym++;
	}
	out[pos] = '\0';
	explicit_bzero(pool, sizeof pool);
	return sym == GROUPS * PER_GROUP ? RDB_OK : RDB_ERROR;
}
