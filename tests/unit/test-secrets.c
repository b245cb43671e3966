/*
 * test-secrets.c — sql/secrets.c against values computed independently (Python's hashlib,
 * hmac and base64; the script is in the comment of each vector) and its own invariants.
 */
#include <stdio.h>
#include <string.h>

#include "rdb.h"
#include "tap.h"

/* is_str() on an array trips -Waddress (its NULL test); go through a pointer. */
#define is_buf(got, ...) do { const char *got_ = (got); is_str(got_, __VA_ARGS__); } while (0)

static void hex(const unsigned char *b, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
}

static void test_plain(void)
{
	/* python3: salt = bytes(range(16)); (salt + b"\0" +
	 *          hashlib.md5(salt + b"sasldb" + pw).digest()).hex() */
	static const struct { const char *pw; const char *want; } v[] = {
		{ "correct horse battery staple",
		  "000102030405060708090a0b0c0d0e0f00964aa264f48aac44a49febcc79fbbad0" },
		{ "p\xc3\xa4ssw\xc3\xb6rd-\xc3\xbc",
		  "000102030405060708090a0b0c0d0e0f00b1ac111fc7c22e08b5dca7afd32461af" },
	};
	unsigned char salt[16], out[RDB_PLAIN_SECRET_LEN], out2[RDB_PLAIN_SECRET_LEN];
	char h[2 * RDB_PLAIN_SECRET_LEN + 1];

	for (int i = 0; i < 16; i++)
		salt[i] = (unsigned char)i;
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		is_int(rdb_secret_plain(v[i].pw, strlen(v[i].pw), salt, out), RDB_OK, "plain %zu computes", i);
		hex(out, sizeof out, h);
		is_buf(h, v[i].want, "plain %zu matches hashlib", i);
	}

	/* A fresh salt each time: same password, different secrets, same structure. */
	is_int(rdb_secret_plain("pw", 2, NULL, out), RDB_OK, "random salt 1");
	is_int(rdb_secret_plain("pw", 2, NULL, out2), RDB_OK, "random salt 2");
	ok(memcmp(out, out2, RDB_PLAIN_SALT_LEN) != 0, "two random salts differ");
	ok(out[16] == 0 && out2[16] == 0, "byte 16 is the NUL separator");
	/* Recomputing from the stored salt gives the stored secret (what libsasl2 does). */
	is_int(rdb_secret_plain("pw", 2, out, out2), RDB_OK, "recompute from stored salt");
	ok(memcmp(out, out2, sizeof out) == 0, "recomputed secret equals stored one");
	is_int(rdb_secret_plain("px", 2, out, out2), RDB_OK, "wrong password computes");
	ok(memcmp(out, out2, sizeof out) != 0, "wrong password gives another secret");
	/* The length is what counts, not a NUL: "pw\0x" is not "pw". */
	is_int(rdb_secret_plain("pw\0x", 4, out, out2), RDB_OK, "embedded NUL computes");
	ok(memcmp(out, out2, sizeof out) != 0, "length is honoured");
	is_int(rdb_secret_plain(NULL, 0, NULL, out), RDB_INVALID, "NULL password refused");
}

static void test_scram(void)
{
	/* python3: sp = hashlib.pbkdf2_hmac('sha256', pw, salt, 4096);
	 * ck = hmac.new(sp, b"Client Key", 'sha256').digest(); stored = sha256(ck);
	 * server = hmac.new(sp, b"Server Key", 'sha256').digest(); base64 of each. */
	static const unsigned char salt[] = "\xa5\xa5\xa5" "salt-for-scram-1";
	const char *want = "SCRAM-SHA-256$4096:paWlc2FsdC1mb3Itc2NyYW0tMQ==$"
	                   "3/RKejJqL27/yzzNUdtQdKZmD32anyWAoVbX4Zs2NUc=:"
	                   "lR6zv55loDw/J0q1TkL3HaJNAp1Pk2F1E6v5F5UZ9HY=";
	const char *pw = "correct horse battery staple";
	char out[RDB_SCRAM_MAX], out2[RDB_SCRAM_MAX];
	unsigned iter = 0;
	char bsalt[64];

	is_int(rdb_secret_scram_sha256(pw, strlen(pw), 4096, salt, sizeof salt - 1, out), RDB_OK,
	       "scram computes");
	is_buf(out, want, "scram matches hashlib/hmac");

	is_int(rdb_secret_scram_sha256(pw, strlen(pw), 4096, NULL, 0, out), RDB_OK, "random salt 1");
	is_int(rdb_secret_scram_sha256(pw, strlen(pw), 4096, NULL, 0, out2), RDB_OK, "random salt 2");
	ok(strcmp(out, out2) != 0, "random salts give different verifiers");
	ok(sscanf(out, "SCRAM-SHA-256$%u:%63[^$]$", &iter, bsalt) == 2 && iter == 4096,
	   "verifier has the iteration count");
	is_int(strlen(bsalt), 24, "16-byte salt is 24 base64 characters");
	is_int(rdb_secret_scram_sha256(pw, strlen(pw), 10000, NULL, 0, out), RDB_OK, "more iterations");
	ok(strncmp(out, "SCRAM-SHA-256$10000:", 20) == 0, "iteration count written");
	is_int(rdb_secret_scram_sha256(pw, strlen(pw), 4095, NULL, 0, out), RDB_INVALID,
	       "fewer than 4096 iterations refused");
	is_int(rdb_secret_scram_sha256(pw, strlen(pw), 4096, salt, 0, out), RDB_INVALID,
	       "empty salt refused");
	is_int(rdb_secret_scram_sha256(NULL, 0, 4096, NULL, 0, out), RDB_INVALID, "NULL refused");
}

static void test_scram_decoy(void)
{
	/* python3: key = bytes(range(32)); h = lambda l: hmac.new(key, l + b"\0" + b"kim",
	 * 'sha256').digest(); salt = h(b"salt")[:16]; stored = h(b"stored key");
	 * server = h(b"server key"); base64 of each. */
	const char *want = "SCRAM-SHA-256$4096:tyXwtUsb5D2SoE+fg4qDpQ==$"
	                   "j/nHyG0OE6oIc7cz7G+8LdxJq6VxBWGyAekYxUE+49E=:"
	                   "fuE8kCXfB0bMQoYnZycHhT+IIXYZM22A2cE6wneaoAU=";
	const char *want_real = "SCRAM-SHA-256$5000:c2FsdHNhbHQ=$"
	                        "j/nHyG0OE6oIc7cz7G+8LdxJq6VxBWGyAekYxUE+49E=:"
	                        "fuE8kCXfB0bMQoYnZycHhT+IIXYZM22A2cE6wneaoAU=";
	unsigned char key[RDB_DECOY_KEY_LEN], key2[RDB_DECOY_KEY_LEN];
	char out[RDB_SCRAM_MAX], out2[RDB_SCRAM_MAX], real[RDB_SCRAM_MAX];
	char bsalt[64], rsalt[64];
	unsigned iter = 0;

	for (int i = 0; i < RDB_DECOY_KEY_LEN; i++) {
		key[i] = (unsigned char)i;
		key2[i] = (unsigned char)(i + 1);
	}
	is_int(rdb_secret_scram_decoy(key, "kim", NULL, out), RDB_OK, "decoy computes");
	is_buf(out, want, "decoy matches hmac/base64");
	is_int(rdb_secret_scram_decoy(key, "KiM", NULL, out2), RDB_OK, "decoy of KiM");
	is_buf(out2, want, "names are folded like COLLATE NOCASE: KiM = kim");
	is_int(rdb_secret_scram_decoy(key, "kim2", NULL, out2), RDB_OK, "decoy of kim2");
	ok(strcmp(out, out2) != 0, "another name, another decoy");
	is_int(rdb_secret_scram_decoy(key2, "kim", NULL, out2), RDB_OK, "decoy under another key");
	ok(strcmp(out, out2) != 0 && strncmp(out, out2, 19) == 0 && strlen(out) == strlen(out2),
	   "another database (key), another decoy of the same shape");

	/* The shape of a real verifier: same iteration count, same salt length. */
	is_int(rdb_secret_scram_sha256("pw", 2, RDB_SCRAM_ITERATIONS, NULL, 0, real), RDB_OK, "a real one");
	ok(sscanf(out, "SCRAM-SHA-256$%u:%63[^$]$", &iter, bsalt) == 2 && iter == RDB_SCRAM_ITERATIONS,
	   "decoy iteration count = relay-admin's");
	ok(sscanf(real, "SCRAM-SHA-256$%u:%63[^$]$", &iter, rsalt) == 2, "real parses");
	is_int(strlen(bsalt), strlen(rsalt), "decoy salt as long as a real salt");
	is_int(strlen(out), strlen(real), "decoy as long as a real verifier");

	/* A real verifier's iteration count and salt are kept; the keys are the decoy's. */
	is_int(rdb_secret_scram_decoy(key, "kim", "SCRAM-SHA-256$5000:c2FsdHNhbHQ=$AAAA:BBBB", out2),
	       RDB_OK, "decoy over a real verifier");
	is_buf(out2, want_real, "keeps its iteration count and salt, not its keys");
	is_int(rdb_secret_scram_decoy(key, "kim", real, out2), RDB_OK, "decoy over a fresh verifier");
	ok(strncmp(out2, real, 14 + 5 + 25) == 0 && strcmp(out2, real) != 0,
	   "same prefix as the real verifier, other StoredKey/ServerKey");
	/* Malformed stored values are not copied: a full decoy instead. */
	is_int(rdb_secret_scram_decoy(key, "kim", "SCRAM-SHA-256$x:c2Fs$A:B", out2), RDB_OK, "bad iter");
	is_buf(out2, want, "a malformed verifier gives the plain decoy");
	is_int(rdb_secret_scram_decoy(key, "kim", "SCRAM-SHA-256$4096:c,Fs$A:B", out2), RDB_OK, "bad salt");
	is_buf(out2, want, "a salt with a comma is not copied into the server's message");
	is_int(rdb_secret_scram_decoy(key, "kim", "SCRAM-SHA-1$4096:c2Fs$A:B", out2), RDB_OK, "other hash");
	is_buf(out2, want, "another mechanism's verifier is not reused");

	is_int(rdb_secret_scram_decoy(NULL, "kim", NULL, out), RDB_INVALID, "NULL key refused");
	is_int(rdb_secret_scram_decoy(key, NULL, NULL, out), RDB_INVALID, "NULL name refused");
	is_int(rdb_secret_scram_decoy(key, "", NULL, out), RDB_INVALID, "empty name refused");
}

static void test_generate(void)
{
	char a[RDB_PASSWORD_GEN_LEN + 1], b[RDB_PASSWORD_GEN_LEN + 1];
	bool charset = true;
	int symbols = 0;

	is_int(rdb_generate_password(a, sizeof a), RDB_OK, "generate 1");
	is_int(rdb_generate_password(b, sizeof b), RDB_OK, "generate 2");
	ok(strcmp(a, b) != 0, "two generated passwords differ");
	is_int(strlen(a), RDB_PASSWORD_GEN_LEN, "generated length");
	for (const char *p = a; *p; p++) {
		if (*p == '-')
			continue;
		symbols++;
		if (strchr("23456789abcdefghjkmnpqrstuvwxyz", *p) == NULL)
			charset = false;
	}
	ok(charset, "only unambiguous symbols: %s", a);
	/* 31 symbols: log2(31) > 4.95 bits each; >= 26 symbols are >= 128 bits. */
	ok(symbols >= 26, "at least 128 bits (%d symbols)", symbols);
	is_int(rdb_generate_password(a, RDB_PASSWORD_GEN_LEN), RDB_INVALID, "short buffer refused");
}

int main(void)
{
	test_plain();
	test_scram();
	test_scram_decoy();
	test_generate();
	return tap_done();
}
