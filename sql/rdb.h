/*
 * rdb.h — the users database: the data layer shared by relay-admin, the relaydb SASL
 * plugin and relay-milter.
 *
 * What it is: a thin, strict layer over one SQLite file (default /var/lib/relay/users.db)
 * holding logins, their secrets, allowed senders and per-login limits. Schema in
 * schema.sql, versioned with PRAGMA user_version; rdb_init() creates or migrates.
 *
 * Ownership: struct rdb is opaque, created by rdb_open() and released by rdb_close()
 * (NULL-safe). Strings passed in are borrowed; strings and arrays handed out are owned by
 * the caller and freed with the matching _free() function. A struct rdb is not thread safe:
 * use one per thread, or guard it with a mutex.
 *
 * Errors: every call returns an enum rdb_result. RDB_ERROR always means "the database could
 * not answer" (I/O, corruption, busy past the timeout, wrong schema): callers must treat it as
 * a temporary failure, never as "not found" and never as "allowed". rdb_errmsg() says why.
 *
 * Security: every value is bound with sqlite3_bind_*; statements are prepared once per
 * connection; columns are type-checked before use; read-only handles are opened with
 * SQLITE_OPEN_READONLY and SQLITE_DBCONFIG_DEFENSIVE.
 */
#ifndef RELAY_RDB_H
#define RELAY_RDB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum rdb_result {
	RDB_OK = 0,
	RDB_NOTFOUND,   /* no such login / sender / limit */
	RDB_EXISTS,     /* already there */
	RDB_INVALID,    /* bad input: nothing was written; rdb_errmsg() names the problem */
	RDB_ERROR,      /* the database could not answer: temporary, fail closed */
};

const char *rdb_result_str(enum rdb_result r);

/* ---- limits of what we accept ------------------------------------------------------ */

#define RDB_NAME_MAX 255           /* bytes in a login name */
#define RDB_PATTERN_MAX 255        /* bytes in a sender pattern */
#define RDB_NOTE_MAX 1024          /* bytes in a note */
#define RDB_PLAIN_SECRET_LEN 33    /* salt[16] || 0x00 || MD5(salt || "sasldb" || password) */
#define RDB_PLAIN_SALT_LEN 16
#define RDB_SCRAM_MAX 256          /* "SCRAM-SHA-256$<iter>:<b64 salt>$<b64 StoredKey>:<b64 ServerKey>" */
#define RDB_SCRAM_ITERATIONS 4096  /* default and minimum */
#define RDB_SCHEMA_VERSION 1

/* ---- validation (pure; `why` may be NULL) ------------------------------------------ */

/* A login name: 1..RDB_NAME_MAX bytes of printable ASCII without space, quotes, backslash
 * or the characters <>(),;:[] — so `alice`, `app1@example.com`, `bob@realm` pass and
 * nothing that needs quoting anywhere does. Matching is case-insensitive (ASCII). */
bool rdb_name_valid(const char *name, char *why, size_t whylen);

/* A sender pattern: an exact address `local@domain` or a domain pattern `@domain`; the
 * special pattern `<>` allows the null sender. Case-insensitive. */
bool rdb_pattern_valid(const char *pattern, char *why, size_t whylen);

/* ---- opening ------------------------------------------------------------------------ */

struct rdb;

enum rdb_mode {
	RDB_READONLY,   /* plugin, milter: SQLITE_OPEN_READONLY, never creates */
	RDB_READWRITE,  /* relay-admin: must already exist and carry our current schema */
};

/* Opens an existing users database. A missing file, a file that is not ours (no or a
 * foreign schema) or a newer schema is RDB_ERROR with the reason in `err`. */
enum rdb_result rdb_open(const char *path, enum rdb_mode mode, struct rdb **out,
                         char *err, size_t errlen);
void rdb_close(struct rdb *db);
const char *rdb_errmsg(const struct rdb *db);

/* Creates the database, or migrates an older schema, in one transaction. Refuses (RDB_ERROR)
 * a schema newer than RDB_SCHEMA_VERSION or a file that is not an smtp-relay database. */
enum rdb_result rdb_init(const char *path, char *err, size_t errlen);

/* ---- secrets (secrets.c; OpenSSL EVP, salts from getrandom) ------------------------ */

/* cmusaslsecretPLAIN exactly as libsasl2 2.1.28 verifies it. With salt NULL a fresh random
 * salt is drawn; a given salt is for tests and recomputation. */
enum rdb_result rdb_secret_plain(const char *password, size_t len,
                                 const unsigned char *salt /* [16] or NULL */,
                                 unsigned char out[RDB_PLAIN_SECRET_LEN]);

/* SCRAM-SHA-256 verifier in the authPassword form libsasl2's scram plugin reads.
 * iterations >= RDB_SCRAM_ITERATIONS; salt NULL → random 16 bytes. */
enum rdb_result rdb_secret_scram_sha256(const char *password, size_t len, unsigned iterations,
                                        const unsigned char *salt, size_t saltlen,
                                        char out[RDB_SCRAM_MAX]);

/* A generated credential with >= 128 bits of entropy, printable, no ambiguous characters. */
enum rdb_result rdb_generate_password(char *out, size_t outlen);

/* ---- lookups for authentication (the plugin) --------------------------------------- */

enum rdb_login_state {
	RDB_LOGIN_ACTIVE,
	RDB_LOGIN_DISABLED,
	RDB_LOGIN_EXPIRED,
};

struct rdb_secrets {
	char name[RDB_NAME_MAX + 1];             /* as stored (canonical spelling) */
	enum rdb_login_state state;
	unsigned char plain[RDB_PLAIN_SECRET_LEN];
	bool has_scram;
	char scram[RDB_SCRAM_MAX];
};

/* Finds a login by name (case-insensitive) as of `now` (unix seconds). RDB_NOTFOUND if there
 * is none; RDB_OK with out->state telling active/disabled/expired otherwise. The caller
 * wipes *out (explicit_bzero) when done. */
enum rdb_result rdb_lookup_secrets(struct rdb *db, const char *name, int64_t now,
                                   struct rdb_secrets *out);

/* Escape hatch for modules of this library that add their own prepared statements
 * (sql/policy.c for the milter). Not for front ends. */
struct sqlite3;
struct sqlite3 *rdb_handle(struct rdb *db);

#endif
