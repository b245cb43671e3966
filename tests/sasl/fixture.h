/*
 * fixture.h — users databases for the libsasl2 tests and the auth benchmark.
 *
 * What it is: creates a users database with rdb_init() and adds logins with secrets computed
 * by rdb_secret_plain()/rdb_secret_scram_sha256(), inserting rows through SQLite with every
 * value bound. It stands in for relay-admin so these tests do not depend on it.
 *
 * Kept apart from the test programs on purpose: this file includes OpenSSL-free rdb.h and
 * sqlite3.h only, the callers include <sasl/saslplug.h>; neither sees the other's MD5.
 * Not thread safe; errors are returned (false) with a message on stderr.
 */
#ifndef RELAY_TEST_FIXTURE_H
#define RELAY_TEST_FIXTURE_H

#include <stdbool.h>
#include <stdint.h>

/* Creates (or migrates) a users database at path. */
bool fx_create(const char *path);

struct fx_login {
	const char *name;
	const char *password;
	bool enabled;
	int64_t expires_at; /* unix seconds; 0 = never */
	bool scram;         /* also store the SCRAM-SHA-256 verifier */
};

/* Adds one login to an existing users database. */
bool fx_add(const char *path, const struct fx_login *login);

#endif
