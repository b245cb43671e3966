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
 * Security: every value is bound with sqlite3_bind_*; every statement is prepared once,
 * when the file opens (conn.h: one table per database kind); columns are type-checked
 * before use; read-only handles are opened with SQLITE_OPEN_READONLY and
 * SQLITE_DBCONFIG_DEFENSIVE. This header never exposes SQLite: front ends do not include
 * <sqlite3.h>.
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
#define RDB_SCHEMA_VERSION 4        /* 2: site_secret (SCRAM decoy key), limit-row cap;
                                    * 3: credentials (app credentials);
                                    * 4: usage_reset (relay-admin usage reset) */
#define RDB_DECOY_KEY_LEN 32         /* the per-database key behind SCRAM decoys */
#define RDB_PASSWORD_GEN_LEN 34    /* rdb_generate_password(): 5 dash-separated groups of 6 */
#define RDB_LABEL_MAX 32           /* bytes in an app credential's label: [a-z0-9-] */

/* ---- validation (pure; `why` may be NULL) ------------------------------------------ */

/* A login name: 1..RDB_NAME_MAX bytes of printable ASCII without space, quotes, backslash
 * or the characters <>(),;:[] — so `alice`, `app1@example.com`, `bob@realm` pass and
 * nothing that needs quoting anywhere does. Matching is case-insensitive (ASCII). */
bool rdb_name_valid(const char *name, char *why, size_t whylen);

/* A sender pattern: an exact address `local@domain` or a domain pattern `@domain`; the
 * special pattern `<>` allows the null sender. Case-insensitive. */
bool rdb_pattern_valid(const char *pattern, char *why, size_t whylen);

/* ---- opening ------------------------------------------------------------------------ */

/* Which engine a database name selects: true for a PostgreSQL name — a "postgresql://"
 * or "postgres://" URI, or "pg:/path/to/file" whose file (mode 0600 or stricter) holds a
 * libpq connection string — and false for anything else, an SQLite path (the default).
 * Every function below that takes a path takes either. */
bool rdb_is_postgresql(const char *name);

/* The name as messages and logs may show it: an SQLite path or a pg: name unchanged, a
 * URI without its password. */
void rdb_name_display(const char *name, char *out, size_t outlen);

/* The parts of smtp-relay that connect to a shared database, for the grants each role
 * needs (relay-admin init / grants). */
enum rdb_role {
	RDB_ROLE_PLUGIN,  /* the relaydb SASL plugin in smtpd: reads logins and site_secret */
	RDB_ROLE_MILTER,  /* relay-milter: reads the users data, writes its state */
	RDB_ROLE_ADMIN,   /* relay-admin: everything */
};

/* The GRANT statements (SQL, one per line) that PostgreSQL role `role` needs on the users
 * tables to act as `part`, the role quoted as an identifier. The tables belong to the role
 * that ran relay-admin init; it runs these. Malloc'ed (free it); NULL for a role name that
 * is empty, longer than 63 bytes or holds control characters, or out of memory. */
char *rdb_pg_grants(enum rdb_role part, const char *role);

/* The same for the state tables (sql/pg-state-schema.sql): usage, last_use, audit,
 * counters, credential_use, reset_mark, reservations and their sequences. The plugin needs
 * none ("" then). Defined in sql/state.c, beside the state schema it must match. */
char *rdb_pg_state_grants(enum rdb_role part, const char *role);


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

/* How long a lookup waits for relay-admin's write lock before RDB_ERROR (the open sets
 * 5000 ms; the plugin sets its relaydb_busy_timeout). */
enum rdb_result rdb_set_busy_timeout(struct rdb *db, int ms);

/* The users database's commit counter, read from the file behind `fd` (the caller's own
 * read-only descriptor on the same file) with one pread and no lock: it changes with
 * every commit, so an answer read under one value is still the database's answer while
 * the value stays. false when the file cannot tell (a WAL file does not count commits
 * in its header; a short read): the caller then caches nothing. */
bool rdb_commit_counter(int fd, uint32_t *out);

/* Creates the database, or migrates an older schema, in one transaction. Refuses (RDB_ERROR)
 * a schema newer than RDB_SCHEMA_VERSION or a file that is not an smtp-relay database. */
enum rdb_result rdb_init(const char *path, char *err, size_t errlen);

/* rdb_init() that also reports the schema version found (0: new or empty file) and the one
 * left behind; either pointer may be NULL. */
enum rdb_result rdb_init_versions(const char *path, int *before, int *after,
                                  char *err, size_t errlen);

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

/* The SCRAM-SHA-256 verifier handed out for a login that must not authenticate (unknown,
 * disabled, expired) or has no verifier, so that SCRAM's first server message looks the
 * same for every name and the exchange fails only at the client's proof, like a wrong
 * password. Deterministic: salt, StoredKey and ServerKey are HMAC-SHA256(key, label || 0 ||
 * lowercase(name)) — lowercase because names match case-insensitively (COLLATE NOCASE) —
 * so repeated attempts and every node sharing the database see the same answer, and
 * nobody without the key can tell it from a real one. Same shape as a real verifier: 4096
 * iterations, a 16-byte salt. If `real` is a well-formed stored verifier (a disabled or
 * expired login's), its iteration count and salt are kept, so disabling a login does not
 * change what SCRAM shows. A decoy never authenticates, even for someone holding the key:
 * a proof needs a ClientKey whose SHA-256 is the StoredKey, and this StoredKey is no hash
 * of anything known. `name` must pass rdb_name_valid(). */
enum rdb_result rdb_secret_scram_decoy(const unsigned char key[RDB_DECOY_KEY_LEN],
                                       const char *name, const char *real,
                                       char out[RDB_SCRAM_MAX]);

/* A generated credential with >= 128 bits of entropy, printable, no ambiguous characters:
 * RDB_PASSWORD_GEN_LEN characters (about 148 bits); outlen >= RDB_PASSWORD_GEN_LEN + 1. */
enum rdb_result rdb_generate_password(char *out, size_t outlen);

/* ---- lookups for authentication (the plugin) --------------------------------------- */

enum rdb_login_state {
	RDB_LOGIN_ACTIVE,
	RDB_LOGIN_DISABLED,
	RDB_LOGIN_EXPIRED,
};

struct rdb_secrets {
	char name[RDB_NAME_MAX + 1];             /* the login's, as stored (canonical spelling) */
	char credential[RDB_LABEL_MAX + 1];      /* the app credential's label; "" = the login's own */
	enum rdb_login_state state;
	unsigned char plain[RDB_PLAIN_SECRET_LEN];
	bool has_scram;
	char scram[RDB_SCRAM_MAX];
	bool has_decoy_key;                      /* false only for a name that cannot exist */
	unsigned char decoy_key[RDB_DECOY_KEY_LEN]; /* the database's, for rdb_secret_scram_decoy() */
};

/* Finds an authentication name (case-insensitive) as of `now` (unix seconds): a login's
 * name, else an app credential's authentication name, in one query of two indexed
 * probes. For a credential, out->name is its login's, out->credential its label, the
 * secrets its own and out->state the login's (a disabled, expired or deleted login takes
 * its credentials with it). RDB_NOTFOUND if neither exists (an unknown or revoked
 * credential is just an unknown name); RDB_OK with out->state telling
 * active/disabled/expired otherwise. On both,
 * out->decoy_key holds the database's decoy key (read by the same query, found or not), for
 * rdb_secret_scram_decoy() when SCRAM asks about a login that must not authenticate or has
 * no verifier. A name that fails rdb_name_valid() is RDB_NOTFOUND without the key (it cannot
 * exist; the database is not asked). A database without its decoy key is RDB_ERROR. The
 * caller wipes *out (explicit_bzero) when done: it holds secrets. */
enum rdb_result rdb_lookup_secrets(struct rdb *db, const char *name, int64_t now,
                                   struct rdb_secrets *out);

/* ---- administration (relay-admin; users.c) ------------------------------------------ */
/* Writes need an RDB_READWRITE handle; _get, _foreach and rdb_begin_read work on either. */

/* Write transactions. BEGIN IMMEDIATE takes the write lock up front (waiting up to the
 * busy timeout), so two relay-admin processes serialise instead of failing half-way. The
 * functions below may run inside or outside one; outside, each statement commits alone.
 * rdb_rollback() is safe to call when no transaction is open. */
enum rdb_result rdb_begin(struct rdb *db);
/* A read snapshot (deferred BEGIN; works on read-only handles); end it with rdb_commit() or
 * rdb_rollback(). */
enum rdb_result rdb_begin_read(struct rdb *db);
enum rdb_result rdb_commit(struct rdb *db);
void rdb_rollback(struct rdb *db);

/* One login as relay-admin shows it (no secrets). */
struct rdb_login {
	char name[RDB_NAME_MAX + 1];
	bool enabled;
	bool has_expiry;
	int64_t expires_at;                    /* unix seconds; the login fails from then on */
	char note[RDB_NOTE_MAX + 1];
	char source[8];                        /* "admin" or "sasldb" */
	bool has_scram;
	bool rate_exempt;
	bool hold_over_limit;
	int64_t created_at, updated_at, password_changed_at;
	unsigned nsenders;
};

struct rdb_login_new {
	const char *name;                      /* rdb_name_valid() */
	const unsigned char *plain;            /* RDB_PLAIN_SECRET_LEN bytes */
	const char *scram;                     /* rdb_secret_scram_sha256() output, or NULL */
	bool has_expiry;
	int64_t expires_at;
	const char *note;                      /* NULL: empty; at most RDB_NOTE_MAX bytes, UTF-8, no control bytes */
	const char *source;                    /* NULL: "admin"; or "sasldb" */
	int64_t now;
};

/* A note: at most RDB_NOTE_MAX bytes of valid UTF-8 without control characters. */
bool rdb_note_valid(const char *note, char *why, size_t whylen);

/* Lowercases a valid pattern into out (RDB_PATTERN_MAX + 1 bytes): the stored form. */
void rdb_pattern_canon(const char *pattern, char out[RDB_PATTERN_MAX + 1]);

/* Every function below: RDB_INVALID for a bad name/pattern/note (nothing written,
 * rdb_errmsg() says why), RDB_NOTFOUND ("no such login: NAME"), RDB_EXISTS, RDB_ERROR. */
enum rdb_result rdb_login_add(struct rdb *db, const struct rdb_login_new *login);
enum rdb_result rdb_login_get(struct rdb *db, const char *name, struct rdb_login *out);
enum rdb_result rdb_login_set_secrets(struct rdb *db, const char *name,
                                      const unsigned char plain[RDB_PLAIN_SECRET_LEN],
                                      const char *scram, int64_t now);
enum rdb_result rdb_login_set_enabled(struct rdb *db, const char *name, bool enabled, int64_t now);
enum rdb_result rdb_login_set_expiry(struct rdb *db, const char *name, bool has_expiry,
                                     int64_t expires_at, int64_t now);
enum rdb_result rdb_login_set_note(struct rdb *db, const char *name, const char *note, int64_t now);
enum rdb_result rdb_login_delete(struct rdb *db, const char *name);

/* ---- app credentials (credentials.c) --------------------------------------------------- */

/* A label: 1..RDB_LABEL_MAX bytes of [a-z0-9-] (lowercase, so the authentication name
 * built from it is the same however the client spells it, and URL-safe). */
bool rdb_label_valid(const char *label, char *why, size_t whylen);

/* The authentication name of credential `label` of login `name`, sub-address style:
 * NAME+LABEL, or local+LABEL@domain for local@domain. false (with why) when `name` or
 * `label` is invalid or the result would not be a valid login name (too long). Pure. */
bool rdb_credential_authname(const char *name, const char *label, char out[RDB_NAME_MAX + 1],
                             char *why, size_t whylen);

struct rdb_credential {
	char label[RDB_LABEL_MAX + 1];
	char authname[RDB_NAME_MAX + 1];
	int64_t created_at;
};

/* Adds credential `label` to login `name` with the given secrets (as for a login's own:
 * rdb_secret_plain() and rdb_secret_scram_sha256(), both required). RDB_INVALID (bad
 * label, secrets), RDB_NOTFOUND (no such login), RDB_EXISTS (the login has that label, or
 * the authentication name is a login's name or another credential's). `authname`
 * (RDB_NAME_MAX + 1, may be NULL) receives the authentication name. */
enum rdb_result rdb_credential_add(struct rdb *db, const char *name, const char *label,
                                   const unsigned char plain[RDB_PLAIN_SECRET_LEN],
                                   const char *scram, int64_t now, char *authname);
/* Deletes one credential: RDB_NOTFOUND if the login or the label is missing. The login's
 * own password and its other credentials stay. */
enum rdb_result rdb_credential_revoke(struct rdb *db, const char *name, const char *label);
/* Calls fn for each credential of the login, by label; as rdb_sender_foreach(). */
enum rdb_result rdb_credential_foreach(struct rdb *db, const char *name,
                                       int (*fn)(const struct rdb_credential *c, void *arg),
                                       void *arg, int *fn_ret);

/* Calls fn for every login, ordered by name; a non-zero return from fn stops the walk and
 * is passed back through *fn_ret (may be NULL). Do not write from inside fn. */
enum rdb_result rdb_login_foreach(struct rdb *db,
                                  int (*fn)(const struct rdb_login *login, void *arg),
                                  void *arg, int *fn_ret);

/* Sender patterns of a login (validated, stored lowercase). sender_add: RDB_EXISTS if the
 * login already has it; sender_del: RDB_NOTFOUND if the login or the pattern is missing. */
enum rdb_result rdb_sender_add(struct rdb *db, const char *name, const char *pattern, int64_t now);
enum rdb_result rdb_sender_del(struct rdb *db, const char *name, const char *pattern, int64_t now);
enum rdb_result rdb_sender_foreach(struct rdb *db, const char *name,
                                   int (*fn)(const char *pattern, void *arg), void *arg,
                                   int *fn_ret);

/* ---- copying between databases (copy.c) --------------------------------------------- */

struct rdb_copy_counts {
	int64_t logins, senders, limits, credentials;
};

/* Copies the users data — logins with their secrets and ids, senders, limits, app
 * credentials with their secrets and the site secret (the SCRAM decoy key, so decoys stay the same) — from `from` (read in one
 * snapshot) to `to` (RDB_READWRITE, schema current), either engine to either, in one
 * transaction on `to`. A target that holds any login, sender or limit is refused
 * (RDB_EXISTS) unless `replace`, which first deletes them in the same transaction.
 * Verified before the commit: the target's counts must equal the source's, else nothing
 * is kept (RDB_ERROR). *copied gets the counts. Messages: rdb_errmsg(to) (or (from)
 * when reading failed: *which_failed says 0 for from, 1 for to). */
enum rdb_result rdb_copy_users(struct rdb *from, struct rdb *to, bool replace,
                               struct rdb_copy_counts *copied, int *which_failed);

#endif
