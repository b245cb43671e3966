/*
 * test-rdb.c — the data layer (sql/rdb.c, users.c, migrations.c) on real SQLite files in
 * a private temporary folder: init, refusal of foreign/newer/missing files, read-only
 * opens, the authentication lookup and its states, administration calls and their
 * errors, and that bad input writes nothing; the migration of a version 1 file (today's
 * schema.sql less what migrations/002.sql adds, so no copy of an old schema is kept) to
 * version 2, and the limit-row cap of version 2 against RDB_LIMITS_MAX.
 */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "policy.h"
#include "rdb-private.h" /* rdb_handle(): white-box checks of the connection */
#include "rdb.h"
#include "scratch.h"
#include "tap.h"

/* Embedded by sql/embed-sql.py: the schema texts relay-admin init runs. */
extern const char rdb_schema_sql[];
extern const char rdb_migration_002_sql[];
extern const char rdb_migration_003_sql[];

/* Turns a file made with today's schema.sql back into version 2: drops exactly what
 * migrations/004.sql and 003.sql create (see v2_to_v1_sql). 004's AUTOINCREMENT leaves
 * sqlite_sequence behind, which SQLite will not drop; 004 creates it anyway. */
static const char v3_to_v2_sql[] =
	"DROP TABLE usage_reset;"
	"DROP TRIGGER logins_name_free;"
	"DROP TRIGGER credentials_name_free;"
	"DROP TABLE credentials;"
	"PRAGMA user_version = 2;";

/* Turns a version 2 file back into version 1: drops exactly what migrations/002.sql
 * creates. Version 1 is schema.sql without those, so this derives the v1 file instead of
 * keeping a copy of the old schema that would drift. */
static const char v2_to_v1_sql[] =
	"DROP TRIGGER limits_per_login_max;"
	"DROP TABLE site_secret;"
	"PRAGMA user_version = 1;";

#define STR_(x) #x
#define STR(x) STR_(x)
#define RDB_VERSION_STR STR(RDB_SCHEMA_VERSION)

/* is_str() on an array trips -Waddress (its NULL test); go through a pointer. */
#define is_buf(got, ...) do { const char *got_ = (got); is_str(got_, __VA_ARGS__); } while (0)

static const char *path_in(const char *name)
{
	return scratch_path(name);
}

static int raw_exec(const char *path, const char *sql)
{
	sqlite3 *h = NULL;
	int rc = sqlite3_open(path, &h);

	if (rc == SQLITE_OK)
		rc = sqlite3_exec(h, sql, NULL, NULL, NULL);
	sqlite3_close(h);
	return rc;
}

/* A version 2 file as relay-admin init of version 2 made it (see v3_to_v2_sql). */
static int make_v2(const char *path)
{
	int rc = raw_exec(path, rdb_schema_sql);

	return rc != SQLITE_OK ? rc : raw_exec(path, v3_to_v2_sql);
}

/* A version 1 file as relay-admin init of version 1 made it (see v2_to_v1_sql). */
static int make_v1(const char *path)
{
	int rc = make_v2(path);

	return rc != SQLITE_OK ? rc : raw_exec(path, v2_to_v1_sql);
}

static long long raw_count(const char *path, const char *sql)
{
	sqlite3 *h = NULL;
	sqlite3_stmt *st = NULL;
	long long n = -1;

	if (sqlite3_open(path, &h) == SQLITE_OK &&
	    sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(h);
	return n;
}

static void write_file(const char *path, const char *content)
{
	FILE *f = fopen(path, "w");

	if (f != NULL) {
		fputs(content, f);
		fclose(f);
	}
}

static void test_init_and_refusals(void)
{
	char err[512];
	struct rdb *db = NULL;
	int before = -1, after = -1;
	long long text_size;
	const char *p;

	p = path_in("users.db");
	is_int(rdb_init_versions(p, &before, &after, err, sizeof err), RDB_OK, "init creates: %s", err);
	is_int(before, 0, "new file had no schema");
	is_int(after, RDB_SCHEMA_VERSION, "now at the current schema");
	is_int(rdb_init_versions(p, &before, &after, err, sizeof err), RDB_OK, "init again is fine");
	is_int(before, RDB_SCHEMA_VERSION, "second init found the current schema");
	is_int(raw_count(p, "PRAGMA application_id"), 1919706212, "application_id set");

	is_int(rdb_open(p, RDB_READONLY, &db, err, sizeof err), RDB_OK, "open read-only: %s", err);
	rdb_close(db);
	db = NULL;
	is_int(rdb_open(p, RDB_READWRITE, &db, err, sizeof err), RDB_OK, "open read-write");
	ok(rdb_handle(db) != NULL, "rdb_handle gives the connection");
	rdb_close(db);
	rdb_close(NULL);
	is_str(rdb_errmsg(NULL), "no database handle", "rdb_errmsg(NULL)");

	db = (struct rdb *)1;
	is_int(rdb_open(path_in("missing.db"), RDB_READONLY, &db, err, sizeof err), RDB_ERROR,
	       "missing file refused");
	ok(db == NULL, "no handle for a missing file");
	ok(strstr(err, "no such file") != NULL, "message says so: %s", err);
	ok(access(path_in("missing.db"), F_OK) != 0, "opening did not create it");

	p = path_in("text.db");
	write_file(p, "this is not a database, it is a text file of some length.....\n");
	{
		struct stat st0;
		text_size = stat(p, &st0) == 0 ? (long long)st0.st_size : -1;
	}
	is_int(rdb_open(p, RDB_READWRITE, &db, err, sizeof err), RDB_ERROR, "text file refused");
	ok(strstr(err, "not an SQLite database") != NULL, "message: %s", err);
	is_int(rdb_init(p, err, sizeof err), RDB_ERROR, "init refuses a text file");
	{
		struct stat st;
		ok(stat(p, &st) == 0 && st.st_size == text_size && text_size > 0, "text file untouched");
	}

	p = path_in("foreign.db");
	raw_exec(p, "CREATE TABLE t (x); INSERT INTO t VALUES (1);");
	is_int(rdb_open(p, RDB_READONLY, &db, err, sizeof err), RDB_ERROR, "foreign SQLite refused");
	ok(strstr(err, "not an smtp-relay users database") != NULL, "message: %s", err);
	is_int(rdb_init(p, err, sizeof err), RDB_ERROR, "init refuses a foreign SQLite file");
	is_int(raw_count(p, "SELECT count(*) FROM sqlite_schema"), 1, "foreign file untouched");

	p = path_in("newer.db");
	is_int(rdb_init(p, err, sizeof err), RDB_OK, "init newer.db");
	raw_exec(p, "PRAGMA user_version = 99");
	is_int(rdb_open(p, RDB_READONLY, &db, err, sizeof err), RDB_ERROR, "newer schema refused");
	ok(strstr(err, "newer") != NULL, "message: %s", err);
	is_int(rdb_init(p, err, sizeof err), RDB_ERROR, "init refuses a newer schema");
	is_int(raw_count(p, "PRAGMA user_version"), 99, "newer file untouched");

	p = path_in("older.db");
	raw_exec(p, "PRAGMA application_id = 1919706212; CREATE TABLE x (y);");
	is_int(rdb_open(p, RDB_READWRITE, &db, err, sizeof err), RDB_ERROR, "older schema refused by open");
	ok(strstr(err, "relay-admin init") != NULL, "message says to migrate: %s", err);

	p = path_in("empty.db");
	write_file(p, "");
	is_int(rdb_init(p, err, sizeof err), RDB_OK, "init fills an empty file: %s", err);

	is_int(rdb_init(scratch_dir, err, sizeof err), RDB_ERROR, "init refuses a folder");
	is_int(rdb_init(path_in("nodir/users.db"), err, sizeof err), RDB_ERROR,
	       "init in a missing folder fails");
	is_int(rdb_init("", err, sizeof err), RDB_INVALID, "empty path");
}

static enum rdb_result add(struct rdb *db, const char *name, const char *pw, int64_t now)
{
	unsigned char plain[RDB_PLAIN_SECRET_LEN];
	char scram[RDB_SCRAM_MAX];
	struct rdb_login_new n = { 0 };

	if (rdb_secret_plain(pw, strlen(pw), NULL, plain) != RDB_OK ||
	    rdb_secret_scram_sha256(pw, strlen(pw), RDB_SCRAM_ITERATIONS, NULL, 0, scram) != RDB_OK)
		return RDB_ERROR;
	n.name = name;
	n.plain = plain;
	n.scram = scram;
	n.now = now;
	return rdb_login_add(db, &n);
}

static int count_cb(const struct rdb_login *l, void *arg)
{
	(void)l;
	(*(int *)arg)++;
	return 0;
}

static int collect_cb(const char *pattern, void *arg)
{
	char *buf = arg;

	strcat(buf, pattern);
	strcat(buf, " ");
	return 0;
}

static void test_logins(void)
{
	const char *p = path_in("users.db");
	struct rdb *rw = NULL, *ro = NULL;
	struct rdb_secrets s;
	struct rdb_login l;
	unsigned char again[RDB_PLAIN_SECRET_LEN];
	char err[512], list[1024];
	int n = 0;
	long long changes;

	is_int(rdb_open(p, RDB_READWRITE, &rw, err, sizeof err), RDB_OK, "open rw");
	is_int(rdb_open(p, RDB_READONLY, &ro, err, sizeof err), RDB_OK, "open ro");
	if (rw == NULL || ro == NULL)
		return;

	is_int(add(rw, "alice@example.com", "correct horse battery staple", 1000), RDB_OK, "add alice");
	is_int(add(rw, "ALICE@example.com", "x", 1000), RDB_EXISTS, "names are case-insensitive");
	ok(strstr(rdb_errmsg(rw), "already exists") != NULL, "exists message: %s", rdb_errmsg(rw));
	is_int(add(rw, "bob", "hunter2hunter2hunter2", 1000), RDB_OK, "add bob");

	is_int(rdb_lookup_secrets(ro, "Alice@Example.COM", 2000, &s), RDB_OK, "lookup any case");
	is_buf(s.name, "alice@example.com", "stored spelling returned");
	is_int(s.state, RDB_LOGIN_ACTIVE, "active");
	ok(s.has_scram && strncmp(s.scram, "SCRAM-SHA-256$4096:", 19) == 0, "scram returned");
	is_int(rdb_secret_plain("correct horse battery staple", 28, s.plain, again), RDB_OK, "recompute");
	ok(memcmp(again, s.plain, sizeof again) == 0, "stored PLAIN secret verifies the password");
	explicit_bzero(&s, sizeof s);

	is_int(rdb_lookup_secrets(ro, "carol", 2000, &s), RDB_NOTFOUND, "unknown login");
	is_int(rdb_lookup_secrets(ro, "' UNION SELECT 123 --", 2000, &s), RDB_NOTFOUND,
	       "injection attempt is just not found");
	is_int(rdb_lookup_secrets(ro, "", 2000, &s), RDB_NOTFOUND, "empty name not found");
	is_int(rdb_lookup_secrets(ro, NULL, 2000, &s), RDB_NOTFOUND, "NULL name not found");

	is_int(rdb_login_set_enabled(rw, "bob", false, 1100), RDB_OK, "disable bob");
	is_int(rdb_lookup_secrets(ro, "bob", 2000, &s), RDB_OK, "disabled bob found");
	is_int(s.state, RDB_LOGIN_DISABLED, "state disabled");
	is_int(rdb_login_set_enabled(rw, "bob", true, 1100), RDB_OK, "enable bob");
	is_int(rdb_login_set_expiry(rw, "bob", true, 1500, 1100), RDB_OK, "expire bob at 1500");
	is_int(rdb_lookup_secrets(ro, "bob", 1499, &s), RDB_OK, "bob before expiry");
	is_int(s.state, RDB_LOGIN_ACTIVE, "active before");
	is_int(rdb_lookup_secrets(ro, "bob", 1500, &s), RDB_OK, "bob at expiry");
	is_int(s.state, RDB_LOGIN_EXPIRED, "expired at the instant");
	is_int(rdb_login_set_expiry(rw, "bob", false, 0, 1100), RDB_OK, "clear expiry");
	is_int(rdb_lookup_secrets(ro, "bob", 99999, &s), RDB_OK, "bob later");
	is_int(s.state, RDB_LOGIN_ACTIVE, "active without expiry");

	is_int(rdb_login_set_note(rw, "bob", "printer \xe2\x82\xac", 1200), RDB_OK, "set note");
	is_int(rdb_login_get(rw, "BOB", &l), RDB_OK, "get bob");
	is_buf(l.note, "printer \xe2\x82\xac", "note stored");
	is_buf(l.source, "admin", "source admin");
	ok(l.enabled && !l.has_expiry && l.has_scram, "flags");
	is_int(l.created_at, 1000, "created_at");
	is_int(l.updated_at, 1200, "updated_at");
	is_int(l.password_changed_at, 1000, "password_changed_at");

	/* password change */
	{
		unsigned char plain[RDB_PLAIN_SECRET_LEN];
		rdb_secret_plain("new password for bob", 20, NULL, plain);
		is_int(rdb_login_set_secrets(rw, "bob", plain, NULL, 1300), RDB_OK, "set secrets");
		is_int(rdb_lookup_secrets(ro, "bob", 2000, &s), RDB_OK, "lookup after change");
		ok(!s.has_scram, "scram cleared when not given");
		ok(memcmp(s.plain, plain, sizeof plain) == 0, "new PLAIN secret stored");
		is_int(rdb_login_get(rw, "bob", &l), RDB_OK, "get");
		is_int(l.password_changed_at, 1300, "password_changed_at moved");
		is_int(rdb_login_set_secrets(rw, "nobody", plain, NULL, 1300), RDB_NOTFOUND,
		       "set secrets of a missing login");
		is_str(rdb_errmsg(rw), "no such login: nobody", "message names the login");
	}

	/* senders */
	is_int(rdb_sender_add(rw, "bob", "Bob@Example.COM", 1400), RDB_OK, "add sender");
	is_int(rdb_sender_add(rw, "bob", "bob@example.com", 1400), RDB_EXISTS, "duplicate sender (any case)");
	is_int(rdb_sender_add(rw, "bob", "@example.org", 1400), RDB_OK, "add domain pattern");
	is_int(rdb_sender_add(rw, "bob", "<>", 1400), RDB_OK, "add null sender");
	is_int(rdb_sender_add(rw, "bob", "bad pattern", 1400), RDB_INVALID, "bad pattern");
	is_int(rdb_sender_add(rw, "nobody", "@example.org", 1400), RDB_NOTFOUND, "sender for missing login");
	list[0] = '\0';
	is_int(rdb_sender_foreach(rw, "bob", collect_cb, list, NULL), RDB_OK, "list senders");
	is_buf(list, "<> @example.org bob@example.com ", "senders sorted, lowercase");
	is_int(rdb_sender_del(rw, "bob", "<>", 1450), RDB_OK, "delete sender");
	is_int(rdb_sender_del(rw, "bob", "<>", 1450), RDB_NOTFOUND, "delete it again");
	ok(strstr(rdb_errmsg(rw), "has no sender") != NULL, "message: %s", rdb_errmsg(rw));
	is_int(rdb_login_get(rw, "bob", &l), RDB_OK, "get");
	is_int(l.nsenders, 2, "two senders left");
	is_int(l.updated_at, 1450, "sender change touched updated_at");

	/* limits rows go with the login (trigger), senders by cascade */
	raw_exec(p, "INSERT INTO limits SELECT id, 'messages', 3600, 10 FROM logins WHERE name = 'bob'");
	is_int(raw_count(p, "SELECT count(*) FROM limits"), 1, "limit row present");

	/* bad input writes nothing */
	changes = sqlite3_total_changes(rdb_handle(rw));
	is_int(add(rw, "bad name", "pw", 1), RDB_INVALID, "bad name refused");
	ok(strstr(rdb_errmsg(rw), "space") != NULL, "message: %s", rdb_errmsg(rw));
	is_int(add(rw, "a\"b", "pw", 1), RDB_INVALID, "quote refused");
	{
		struct rdb_login_new bad = { .name = "carol", .plain = again, .note = "x\ny", .now = 1 };
		is_int(rdb_login_add(rw, &bad), RDB_INVALID, "bad note refused");
		bad.note = NULL;
		bad.source = "ldap";
		is_int(rdb_login_add(rw, &bad), RDB_INVALID, "bad source refused");
		bad.source = NULL;
		bad.scram = "plaintext";
		is_int(rdb_login_add(rw, &bad), RDB_INVALID, "bad scram refused");
	}
	is_int(rdb_login_set_note(rw, "bob", "\x1b[2J", 1), RDB_INVALID, "control bytes in note refused");
	is_int(rdb_login_delete(rw, "b'ob"), RDB_INVALID, "delete with a bad name");
	is_int(sqlite3_total_changes(rdb_handle(rw)), changes, "nothing was written");

	/* transactions: a rolled back add leaves nothing */
	is_int(rdb_begin(rw), RDB_OK, "begin");
	is_int(add(rw, "tx@example.com", "pw", 1), RDB_OK, "add in transaction");
	is_int(rdb_sender_add(rw, "tx@example.com", "@example.com", 1), RDB_OK, "sender in transaction");
	rdb_rollback(rw);
	is_int(rdb_login_get(rw, "tx@example.com", &l), RDB_NOTFOUND, "rolled back");
	rdb_rollback(rw); /* harmless without a transaction */
	is_int(rdb_begin(rw), RDB_OK, "begin");
	is_int(add(rw, "tx@example.com", "pw", 1), RDB_OK, "add in transaction");
	is_int(rdb_commit(rw), RDB_OK, "commit");
	is_int(rdb_login_get(rw, "tx@example.com", &l), RDB_OK, "committed");

	n = 0;
	is_int(rdb_login_foreach(rw, count_cb, &n, NULL), RDB_OK, "list logins");
	is_int(n, 3, "three logins");

	is_int(rdb_login_delete(rw, "bob"), RDB_OK, "delete bob");
	is_int(rdb_login_delete(rw, "bob"), RDB_NOTFOUND, "delete bob again");
	is_str(rdb_errmsg(rw), "no such login: bob", "message");
	is_int(raw_count(p, "SELECT count(*) FROM senders"), 0, "senders cascaded");
	is_int(raw_count(p, "SELECT count(*) FROM limits"), 0, "limits removed by trigger");
	is_int(rdb_lookup_secrets(ro, "bob", 2000, &s), RDB_NOTFOUND, "reader sees the delete");

	/* A malformed row is an error, never "not found" (checks bypassed on purpose). */
	raw_exec(p, "PRAGMA ignore_check_constraints = 1;"
	            "INSERT INTO logins (name, plain_secret, created_at, updated_at, password_changed_at)"
	            " VALUES ('mallory', 'short text', 0, 0, 0)");
	is_int(rdb_lookup_secrets(ro, "mallory", 2000, &s), RDB_ERROR, "malformed row is an error");
	ok(strstr(rdb_errmsg(ro), "malformed") != NULL, "message: %s", rdb_errmsg(ro));
	is_int(rdb_lookup_secrets(ro, "alice@example.com", 2000, &s), RDB_OK, "next lookup fine");
	explicit_bzero(&s, sizeof s);

	/* the read-only handle cannot write */
	ok(sqlite3_exec(rdb_handle(ro), "DELETE FROM logins", NULL, NULL, NULL) != SQLITE_OK,
	   "read-only handle refuses writes");
	rdb_close(ro);
	rdb_close(rw);
}

/* ---- schema version 2: migration from version 1, decoy key, limit-row cap ------------- */

/* Runs `sql` with one text parameter and returns sqlite3_step's result; the error message
 * (if any) goes to msg. */
static int raw_step(const char *path, const char *sql, const char *arg, char *msg, size_t msglen)
{
	sqlite3 *h = NULL;
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_open(path, &h);

	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(h, sql, -1, &st, NULL);
	if (rc == SQLITE_OK && arg != NULL)
		rc = sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	snprintf(msg, msglen, "%s", sqlite3_errmsg(h));
	sqlite3_finalize(st);
	sqlite3_close(h);
	return rc;
}

/* The objects of a database as one string: type, name and SQL of each, by name. */
static void schema_text(const char *path, char *out, size_t outlen)
{
	sqlite3 *h = NULL;
	sqlite3_stmt *st = NULL;
	size_t used = 0;

	out[0] = '\0';
	if (sqlite3_open(path, &h) == SQLITE_OK &&
	    sqlite3_prepare_v2(h, "SELECT type, name, coalesce(sql, '') FROM sqlite_schema"
	                       " ORDER BY name", -1, &st, NULL) == SQLITE_OK)
		while (sqlite3_step(st) == SQLITE_ROW && used < outlen)
			used += (size_t)snprintf(out + used, outlen - used, "%s %s %s\n",
			                         sqlite3_column_text(st, 0), sqlite3_column_text(st, 1),
			                         sqlite3_column_text(st, 2));
	sqlite3_finalize(st);
	sqlite3_close(h);
}

static void test_migrate_v1(void)
{
	char v1[PATH_MAX + 64], v1b[PATH_MAX + 64], fresh[PATH_MAX + 64]; /* path_in is static */
	static char fresh_schema[16384], migrated_schema[16384];
	char err[512], key1[80], key2[80];
	int before = -1, after = -1;
	struct rdb *db = NULL;
	struct rdb_secrets s;

	snprintf(v1, sizeof v1, "%s", path_in("v1.db"));
	snprintf(v1b, sizeof v1b, "%s", path_in("v1b.db"));
	snprintf(fresh, sizeof fresh, "%s", path_in("fresh.db"));
	/* A version 1 file as version 1 of relay-admin init made it, with data in it. */
	is_int(make_v1(v1), SQLITE_OK, "a v1 file (today's schema less 002.sql)");
	is_int(raw_exec(v1, "INSERT INTO logins (name, plain_secret, scram_sha256, created_at,"
	                    " updated_at, password_changed_at) VALUES ('Kim', randomblob(33),"
	                    " 'SCRAM-SHA-256$4096:c2FsdHNhbHRzYWx0c2FsdA==$AAAA:BBBB', 1, 1, 1);"
	                    "INSERT INTO senders VALUES (1, 'kim@example.org');"
	                    "INSERT INTO limits VALUES (1, 'messages', 3600, 10);"
	                    "INSERT INTO limits VALUES (0, 'messages', 86400, 500);"),
	       SQLITE_OK, "with a login, a sender and limits");
	is_int(raw_count(v1, "PRAGMA user_version"), 1, "it is at version 1");

	/* Readers (the plugin, the milter) refuse it and say what to do. */
	is_int(rdb_open(v1, RDB_READONLY, &db, err, sizeof err), RDB_ERROR,
	       "a read-only open (plugin, milter) refuses a v1 file");
	ok(strstr(err, "schema version 1 is older than " RDB_VERSION_STR) != NULL &&
	   strstr(err, "relay-admin init") != NULL, "and says to run relay-admin init: %s", err);

	is_int(rdb_init_versions(v1, &before, &after, err, sizeof err), RDB_OK,
	       "relay-admin init migrates it: %s", err);
	is_int(before, 1, "found version 1");
	is_int(after, RDB_SCHEMA_VERSION, "left the current version");
	is_int(raw_count(v1, "PRAGMA user_version"), RDB_SCHEMA_VERSION, "user_version current");
	is_int(raw_count(v1, "SELECT count(*) FROM site_secret WHERE id = 1 AND"
	                     " typeof(decoy_key) = 'blob' AND length(decoy_key) = 32"), 1,
	       "it got a 32-byte decoy key");
	is_int(raw_count(v1, "SELECT count(*) FROM logins WHERE name = 'Kim' AND scram_sha256 ="
	                     " 'SCRAM-SHA-256$4096:c2FsdHNhbHRzYWx0c2FsdA==$AAAA:BBBB'"), 1,
	       "its login is still there, secrets unchanged");
	is_int(raw_count(v1, "SELECT count(*) FROM senders"), 1, "its sender too");
	is_int(raw_count(v1, "SELECT count(*) FROM limits"), 2, "its limits too");
	is_int(rdb_init_versions(v1, &before, &after, err, sizeof err), RDB_OK, "init again");
	is_int(before, RDB_SCHEMA_VERSION, "nothing left to migrate");
	is_int(raw_count(v1, "SELECT count(*) FROM site_secret"), 1, "still one key");

	/* Migrated and fresh files have the same schema, object for object. */
	is_int(rdb_init(fresh, err, sizeof err), RDB_OK, "a fresh file");
	schema_text(fresh, fresh_schema, sizeof fresh_schema);
	schema_text(v1, migrated_schema, sizeof migrated_schema);
	ok(fresh_schema[0] != '\0', "schema read");
	is_str(migrated_schema, fresh_schema,
	       "migrated schema = fresh schema (002.sql + 003.sql = schema.sql)");

	/* Every database draws its own key. */
	is_int(make_v1(v1b), SQLITE_OK, "another v1 file");
	is_int(rdb_init(v1b, err, sizeof err), RDB_OK, "migrated");
	{
		sqlite3 *h = NULL;
		sqlite3_stmt *st = NULL;
		const char *paths[] = { v1, v1b };
		char *keys[] = { key1, key2 };

		for (int i = 0; i < 2; i++) {
			keys[i][0] = '\0';
			if (sqlite3_open(paths[i], &h) == SQLITE_OK &&
			    sqlite3_prepare_v2(h, "SELECT hex(decoy_key) FROM site_secret", -1, &st,
			                       NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
				snprintf(keys[i], 80, "%s", sqlite3_column_text(st, 0));
			sqlite3_finalize(st);
			sqlite3_close(h);
			st = NULL;
			h = NULL;
		}
		ok(strlen(key1) == 64 && strlen(key2) == 64 && strcmp(key1, key2) != 0,
		   "two databases, two different keys");
	}

	/* The migrated file serves lookups: a decoy for unknown names, case-folded. */
	is_int(rdb_open(v1, RDB_READONLY, &db, err, sizeof err), RDB_OK, "migrated file opens: %s", err);
	if (db != NULL) {
		char decoy[RDB_SCRAM_MAX];

		char decoy2[RDB_SCRAM_MAX];

		is_int(rdb_lookup_secrets(db, "kim", 10, &s), RDB_OK, "its login is found");
		ok(s.has_scram && s.state == RDB_LOGIN_ACTIVE, "active, with its verifier");
		ok(s.has_decoy_key, "with the decoy key");
		is_int(rdb_secret_scram_decoy(s.decoy_key, "kim", s.scram, decoy), RDB_OK, "its decoy");
		ok(strncmp(decoy, "SCRAM-SHA-256$4096:c2FsdHNhbHRzYWx0c2FsdA==$", 44) == 0 &&
		   strcmp(decoy, s.scram) != 0, "its decoy keeps its salt, not its keys");
		is_int(rdb_lookup_secrets(db, "nobody", 10, &s), RDB_NOTFOUND, "unknown: not found");
		ok(s.has_decoy_key, "but with the decoy key");
		is_int(rdb_secret_scram_decoy(s.decoy_key, "nobody", NULL, decoy), RDB_OK, "a decoy");
		ok(strncmp(decoy, "SCRAM-SHA-256$4096:", 19) == 0 && strlen(decoy) > 100, "%s", decoy);
		is_int(rdb_lookup_secrets(db, "NoBody", 10, &s), RDB_NOTFOUND, "NoBody");
		is_int(rdb_secret_scram_decoy(s.decoy_key, "NoBody", NULL, decoy2), RDB_OK, "its decoy");
		is_buf(decoy2, decoy, "the same decoy for any spelling");
		is_int(rdb_lookup_secrets(db, "b'ad", 10, &s), RDB_NOTFOUND, "a name that cannot exist");
		ok(!s.has_decoy_key, "gets no key (the database is not asked)");
		rdb_close(db);
		db = NULL;
	}

	/* Without its key the database cannot answer: an error, never "no such login". */
	is_int(raw_exec(v1, "DELETE FROM site_secret"), SQLITE_OK, "the key row removed");
	is_int(rdb_open(v1, RDB_READONLY, &db, err, sizeof err), RDB_OK, "still opens");
	if (db != NULL) {
		is_int(rdb_lookup_secrets(db, "nobody", 10, &s), RDB_ERROR, "unknown login: RDB_ERROR");
		ok(strstr(rdb_errmsg(db), "no decoy key") != NULL, "message: %s", rdb_errmsg(db));
		is_int(rdb_lookup_secrets(db, "kim", 10, &s), RDB_ERROR, "known login: RDB_ERROR too");
		rdb_close(db);
	}
	explicit_bzero(&s, sizeof s);
	unlink(v1);
	unlink(v1b);
	unlink(fresh);
}

/* ---- schema version 3: app credentials ------------------------------------------------ */

static enum rdb_result cred_add(struct rdb *db, const char *name, const char *label,
                                const char *pw, char authname[RDB_NAME_MAX + 1])
{
	unsigned char plain[RDB_PLAIN_SECRET_LEN];
	char scram[RDB_SCRAM_MAX];

	if (rdb_secret_plain(pw, strlen(pw), NULL, plain) != RDB_OK ||
	    rdb_secret_scram_sha256(pw, strlen(pw), RDB_SCRAM_ITERATIONS, NULL, 0, scram) != RDB_OK)
		return RDB_ERROR;
	return rdb_credential_add(db, name, label, plain, scram, 5000, authname);
}

static int cred_cb(const struct rdb_credential *c, void *arg)
{
	char *buf = arg;

	strcat(buf, c->label);
	strcat(buf, "=");
	strcat(buf, c->authname);
	strcat(buf, " ");
	return 0;
}

/* Pure: labels and the authentication names built from them. */
static void test_credential_names(void)
{
	char out[RDB_NAME_MAX + 1], why[160], longname[RDB_NAME_MAX + 1];

	ok(rdb_label_valid("printer-2", why, sizeof why), "a label");
	ok(!rdb_label_valid("", why, sizeof why), "empty label refused");
	ok(!rdb_label_valid("Printer", why, sizeof why), "uppercase refused: %s", why);
	ok(!rdb_label_valid("a+b", why, sizeof why), "'+' refused");
	ok(!rdb_label_valid("a@b", why, sizeof why), "'@' refused");
	ok(!rdb_label_valid("a b", why, sizeof why), "space refused");
	ok(rdb_label_valid("0123456789abcdef0123456789abcdef", why, sizeof why), "32 characters");
	ok(!rdb_label_valid("0123456789abcdef0123456789abcdefx", why, sizeof why), "33 refused");
	ok(rdb_credential_authname("alice", "phone", out, why, sizeof why) &&
	   strcmp(out, "alice+phone") == 0, "alice + phone = %s", out);
	ok(rdb_credential_authname("app1@example.com", "cron", out, why, sizeof why) &&
	   strcmp(out, "app1+cron@example.com") == 0, "sub-address style: %s", out);
	memset(longname, 'a', RDB_NAME_MAX - 3);
	longname[RDB_NAME_MAX - 3] = '\0';
	ok(!rdb_credential_authname(longname, "abc", out, why, sizeof why) &&
	   strstr(why, "longer than 255") != NULL, "too long a result refused: %s", why);
	ok(!rdb_credential_authname("b'ad", "x", out, why, sizeof why), "bad login name refused");
}

static void test_credentials(void)
{
	const char *p = path_in("cred.db");
	struct rdb *rw = NULL, *ro = NULL;
	struct rdb_secrets s;
	unsigned char again[RDB_PLAIN_SECRET_LEN];
	char err[512], authname[RDB_NAME_MAX + 1], list[1024];

	is_int(rdb_init(p, err, sizeof err), RDB_OK, "init cred.db: %s", err);
	is_int(rdb_open(p, RDB_READWRITE, &rw, err, sizeof err), RDB_OK, "open rw");
	is_int(rdb_open(p, RDB_READONLY, &ro, err, sizeof err), RDB_OK, "open ro");
	if (rw == NULL || ro == NULL)
		return;
	is_int(add(rw, "alice", "alice's own password", 1000), RDB_OK, "add alice");
	is_int(add(rw, "bob@example.org", "bob's own password!", 1000), RDB_OK, "add bob");

	is_int(cred_add(rw, "alice", "phone", "phone secret 1234567", authname), RDB_OK, "add phone");
	is_buf(authname, "alice+phone", "its authentication name");
	is_int(cred_add(rw, "ALICE", "printer", "printer secret 12345", authname), RDB_OK,
	       "add printer (login name in any case)");
	is_int(cred_add(rw, "bob@example.org", "cron", "cron secret 12345678", authname), RDB_OK,
	       "add bob's cron");
	is_buf(authname, "bob+cron@example.org", "sub-address style");

	/* refused, and nothing written */
	is_int(cred_add(rw, "alice", "phone", "another phone secret", authname), RDB_EXISTS,
	       "the same label twice");
	is_int(cred_add(rw, "alice", "Phone", "x", authname), RDB_INVALID, "a bad label");
	is_int(cred_add(rw, "carol", "phone", "x", authname), RDB_NOTFOUND, "no such login");
	ok(strstr(rdb_errmsg(rw), "no such login: carol") != NULL, "says so: %s", rdb_errmsg(rw));
	is_int(add(rw, "alice+phone", "a login over a credential", 1000), RDB_EXISTS,
	       "a login named like a credential is refused");
	ok(strstr(rdb_errmsg(rw), "app credential") != NULL, "says why: %s", rdb_errmsg(rw));
	is_int(add(rw, "ALICE+PHONE", "a login over a credential", 1000), RDB_EXISTS,
	       "in any case");
	is_int(add(rw, "dave+app", "dave plus app's pass", 1000), RDB_OK, "a login dave+app");
	is_int(add(rw, "dave", "dave's own password", 1000), RDB_OK, "and dave");
	is_int(cred_add(rw, "dave", "app", "x", authname), RDB_EXISTS,
	       "a credential named like a login is refused");
	ok(strstr(rdb_errmsg(rw), "already a login's name") != NULL, "says why: %s", rdb_errmsg(rw));
	{
		char msg[256];

		/* the schema keeps the namespace whatever writes the file */
		ok(raw_step(p, "INSERT INTO logins (name, plain_secret, created_at, updated_at,"
		               " password_changed_at) VALUES ('alice+printer', randomblob(33), 1, 1, 1)",
		            NULL, msg, sizeof msg) != SQLITE_DONE &&
		   strstr(msg, "taken by an app credential") != NULL, "trigger: %s", msg);
	}

	/* authentication: the credential's secrets, the login's name and state */
	is_int(rdb_lookup_secrets(ro, "Alice+Phone", 2000, &s), RDB_OK, "lookup the credential");
	is_buf(s.name, "alice", "the login's name");
	is_buf(s.credential, "phone", "the credential's label");
	is_int(s.state, RDB_LOGIN_ACTIVE, "active");
	is_int(rdb_secret_plain("phone secret 1234567", 20, s.plain, again), RDB_OK, "recompute");
	ok(memcmp(again, s.plain, sizeof again) == 0, "the credential's own PLAIN secret");
	ok(s.has_scram && strncmp(s.scram, "SCRAM-SHA-256$4096:", 19) == 0, "its SCRAM verifier");
	is_int(rdb_lookup_secrets(ro, "alice", 2000, &s), RDB_OK, "the login itself");
	is_buf(s.credential, "", "no credential");
	is_int(rdb_secret_plain("alice's own password", 20, s.plain, again), RDB_OK, "recompute");
	ok(memcmp(again, s.plain, sizeof again) == 0, "the login's own secret, unchanged");
	is_int(rdb_lookup_secrets(ro, "alice+tablet", 2000, &s), RDB_NOTFOUND, "unknown label");
	ok(s.has_decoy_key, "with the decoy key, like any unknown name");

	list[0] = '\0';
	is_int(rdb_credential_foreach(ro, "alice", cred_cb, list, NULL), RDB_OK, "list");
	is_buf(list, "phone=alice+phone printer=alice+printer ", "by label");

	/* the login's state is the credential's */
	is_int(rdb_login_set_enabled(rw, "alice", false, 3000), RDB_OK, "disable alice");
	is_int(rdb_lookup_secrets(ro, "alice+phone", 3000, &s), RDB_OK, "still found");
	is_int(s.state, RDB_LOGIN_DISABLED, "but disabled with its login");
	is_int(rdb_login_set_enabled(rw, "alice", true, 3000), RDB_OK, "enable alice");
	is_int(rdb_login_set_expiry(rw, "alice", true, 2500, 3000), RDB_OK, "expire alice");
	is_int(rdb_lookup_secrets(ro, "alice+phone", 3000, &s), RDB_OK, "found");
	is_int(s.state, RDB_LOGIN_EXPIRED, "expired with its login");
	is_int(rdb_login_set_expiry(rw, "alice", false, 0, 3000), RDB_OK, "no expiry");

	/* revoke: that one only */
	is_int(rdb_credential_revoke(rw, "alice", "phone"), RDB_OK, "revoke phone");
	is_int(rdb_lookup_secrets(ro, "alice+phone", 3000, &s), RDB_NOTFOUND, "phone is gone");
	is_int(rdb_lookup_secrets(ro, "alice+printer", 3000, &s), RDB_OK, "printer stays");
	is_int(rdb_lookup_secrets(ro, "alice", 3000, &s), RDB_OK, "the login stays");
	is_int(rdb_secret_plain("alice's own password", 20, s.plain, again), RDB_OK, "recompute");
	ok(memcmp(again, s.plain, sizeof again) == 0, "with its own password");
	is_int(rdb_credential_revoke(rw, "alice", "phone"), RDB_NOTFOUND, "revoke twice");
	is_int(rdb_credential_revoke(rw, "alice", "PHONE"), RDB_INVALID, "a bad label");
	is_int(rdb_credential_revoke(rw, "nobody", "phone"), RDB_NOTFOUND, "no such login");

	/* deleting the login deletes its credentials (ON DELETE CASCADE) */
	is_int(rdb_login_delete(rw, "alice"), RDB_OK, "delete alice");
	is_int(rdb_lookup_secrets(ro, "alice+printer", 3000, &s), RDB_NOTFOUND, "printer gone too");
	is_int(raw_count(p, "SELECT count(*) FROM credentials"), 1, "bob's cron is left");
	is_int(add(rw, "alice+printer", "now a login of its own", 1000), RDB_OK,
	       "the name is free again");
	explicit_bzero(&s, sizeof s);
	rdb_close(rw);
	rdb_close(ro);
	unlink(p);
}

/* A version 2 file with data migrates to the current version: credentials and usage_reset
 * appear, nothing else changes. */
static void test_migrate_v2(void)
{
	char v2[PATH_MAX + 64], fresh[PATH_MAX + 64];
	static char fresh_schema[16384], migrated_schema[16384];
	char err[512], authname[RDB_NAME_MAX + 1];
	int before = -1, after = -1;
	struct rdb *db = NULL;

	snprintf(v2, sizeof v2, "%s", path_in("v2.db"));
	snprintf(fresh, sizeof fresh, "%s", path_in("fresh3.db"));
	is_int(make_v2(v2), SQLITE_OK, "a v2 file (today's schema less 003.sql)");
	is_int(raw_exec(v2, "INSERT INTO logins (name, plain_secret, created_at, updated_at,"
	                    " password_changed_at) VALUES ('kim', randomblob(33), 1, 1, 1);"),
	       SQLITE_OK, "with a login");
	is_int(rdb_init_versions(v2, &before, &after, err, sizeof err), RDB_OK, "migrates: %s", err);
	is_int(before, 2, "found version 2");
	is_int(after, RDB_SCHEMA_VERSION, "left the current version");
	is_int(raw_count(v2, "SELECT count(*) FROM logins"), 1, "the login is still there");
	is_int(rdb_init(fresh, err, sizeof err), RDB_OK, "a fresh file");
	schema_text(fresh, fresh_schema, sizeof fresh_schema);
	schema_text(v2, migrated_schema, sizeof migrated_schema);
	is_str(migrated_schema, fresh_schema, "migrated schema = fresh schema (003.sql + 004.sql = schema.sql)");
	is_int(rdb_open(v2, RDB_READWRITE, &db, err, sizeof err), RDB_OK, "opens: %s", err);
	if (db != NULL)
		is_int(cred_add(db, "kim", "app", "kim's app secret 123", authname), RDB_OK,
		       "a credential for the migrated login");
	rdb_close(db);
	unlink(v2);
	unlink(fresh);
}

/* The cap in the schema text is a number SQL cannot take from a C header: check both texts
 * that create the trigger against RDB_LIMITS_MAX, and the trigger itself. */
static long cap_in(const char *sql, const char *after)
{
	const char *p = strstr(sql, after);

	return p != NULL ? strtol(p + strlen(after), NULL, 10) : -1;
}

static void test_limit_cap(void)
{
	static const char when[] = "WHERE login_id = NEW.login_id) >= ";
	static const char max[] = "too many limit rows for one login (max ";
	const char *p = path_in("cap.db");
	char err[512], msg[256];
	int rc = SQLITE_DONE;

	is_int(cap_in(rdb_schema_sql, when), RDB_LIMITS_MAX, "schema.sql trigger caps at RDB_LIMITS_MAX");
	is_int(cap_in(rdb_schema_sql, max), RDB_LIMITS_MAX, "schema.sql message says RDB_LIMITS_MAX");
	is_int(cap_in(rdb_migration_002_sql, when), RDB_LIMITS_MAX, "002.sql trigger caps at RDB_LIMITS_MAX");
	is_int(cap_in(rdb_migration_002_sql, max), RDB_LIMITS_MAX, "002.sql message says RDB_LIMITS_MAX");

	is_int(rdb_init(p, err, sizeof err), RDB_OK, "a v2 file");
	for (int i = 1; i <= RDB_LIMITS_MAX && rc == SQLITE_DONE; i++) {
		char sql[160];

		snprintf(sql, sizeof sql, "INSERT INTO limits VALUES (7, 'messages', %d, 1)", i);
		rc = raw_step(p, sql, NULL, msg, sizeof msg);
	}
	is_int(rc, SQLITE_DONE, "%d limit rows for one login are fine", RDB_LIMITS_MAX);
	rc = raw_step(p, "INSERT INTO limits VALUES (7, 'bytes', 60, 1)", NULL, msg, sizeof msg);
	ok(rc != SQLITE_DONE && strstr(msg, "too many limit rows for one login") != NULL,
	   "one more is refused by the database: %s", msg);
	is_int(raw_count(p, "SELECT count(*) FROM limits WHERE login_id = 7"), RDB_LIMITS_MAX,
	       "and not stored");
	is_int(raw_step(p, "INSERT INTO limits VALUES (8, 'bytes', 60, 1)", NULL, msg, sizeof msg),
	       SQLITE_DONE, "another login is not affected");
	unlink(p);
}

static void cleanup(void)
{
	static const char *files[] = { "users.db", "text.db", "foreign.db", "newer.db", "older.db",
	                               "empty.db", "users.db-journal" };

	scratch_remove(files, sizeof files / sizeof files[0]);
}

int main(void)
{
	if (scratch_make("test-rdb") != 0)
		return 1;
	test_init_and_refusals();
	test_logins();
	test_migrate_v1();
	test_migrate_v2();
	test_credential_names();
	test_credentials();
	test_limit_cap();
	cleanup();
	return tap_done();
}
