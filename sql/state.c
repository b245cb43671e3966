/*
 * state.c — the state database: schema, open, and the few statements the milter writes
 * and relay-admin reads (see state.h).
 *
 * The schema lives here, beside the code that depends on it. Statements are prepared
 * once per connection, at open; every value is bound; every column is type-checked.
 */
#include "state.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "errbuf.h"

#define BUSY_TIMEOUT_MS 3000  /* well below Postfix's 30 s milter_command_timeout */

static const char schema_v1[] =
	"PRAGMA application_id = 1919706227;\n"
	/* one row per login and second with traffic: the sliding windows are sums over these */
	"CREATE TABLE usage (\n"
	"  login      TEXT    NOT NULL COLLATE NOCASE,\n"
	"  ts         INTEGER NOT NULL,\n"
	"  messages   INTEGER NOT NULL DEFAULT 0 CHECK (messages >= 0),\n"
	"  recipients INTEGER NOT NULL DEFAULT 0 CHECK (recipients >= 0),\n"
	"  bytes      INTEGER NOT NULL DEFAULT 0 CHECK (bytes >= 0),\n"
	"  PRIMARY KEY (login, ts)\n"
	") WITHOUT ROWID;\n"
	"CREATE TABLE last_use (\n"
	"  login       TEXT    NOT NULL COLLATE NOCASE PRIMARY KEY,\n"
	"  ts          INTEGER NOT NULL,\n"
	"  client_addr TEXT    NOT NULL DEFAULT ''\n"
	") WITHOUT ROWID;\n"
	"CREATE TABLE audit (\n"
	"  id          INTEGER PRIMARY KEY,\n"
	"  ts          INTEGER NOT NULL,\n"
	"  login       TEXT    NOT NULL,\n"
	"  client_addr TEXT    NOT NULL,\n"
	"  tls_version TEXT    NOT NULL,\n"
	"  cipher      TEXT    NOT NULL,\n"
	"  env_from    TEXT    NOT NULL,\n"
	"  header_from TEXT    NOT NULL,\n"
	"  rcpt_count  INTEGER NOT NULL,\n"
	"  size        INTEGER NOT NULL,\n"
	"  queue_id    TEXT    NOT NULL,\n"
	"  verdict     TEXT    NOT NULL,\n"
	"  reason      TEXT    NOT NULL\n"
	");\n"
	"CREATE INDEX audit_ts ON audit (ts);\n"
	"CREATE INDEX audit_login_ts ON audit (login COLLATE NOCASE, ts);\n"
	"PRAGMA user_version = 1;\n";

/* Version 2: relay-milter's crash journal (milter/journal.h). One row: the journal id and
 * sequence number of the last journal record applied, written in the same transaction as
 * the record, so that a record is never applied twice. */
static const char migrate_v2[] =
	"CREATE TABLE journal_mark (\n"
	"  id         INTEGER PRIMARY KEY CHECK (id = 1),\n"
	"  journal_id INTEGER NOT NULL,\n"
	"  seq        INTEGER NOT NULL CHECK (seq >= 0)\n"
	");\n"
	"PRAGMA user_version = 2;\n";

enum {
	S_BEGIN, S_COMMIT, S_ROLLBACK,
	S_AUDIT_ADD, S_USAGE_ADD, S_TOUCH, S_PRUNE_USAGE, S_PRUNE_AUDIT,
	S_USAGE_ALL, S_USAGE_ONE, S_AUDIT_ALL, S_AUDIT_ONE, S_LAST_USE,
	S_USAGE_MERGE, S_LAST_USE_ALL, S_LAST_USE_MERGE, S_CHECKPOINT,
	S_JOURNAL_GET, S_JOURNAL_SET,   /* last: readers do not prepare them (a v1 file lacks the table) */
	S_COUNT_
};

static const char *const sql[S_COUNT_] = {
	[S_BEGIN] = "BEGIN IMMEDIATE",
	[S_COMMIT] = "COMMIT",
	[S_ROLLBACK] = "ROLLBACK",
	[S_AUDIT_ADD] = "INSERT INTO audit (ts, login, client_addr, tls_version, cipher, env_from,"
	                " header_from, rcpt_count, size, queue_id, verdict, reason)"
	                " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
	[S_USAGE_ADD] = "INSERT INTO usage (login, ts, messages, recipients, bytes)"
	                " VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (login, ts) DO UPDATE SET"
	                " messages = messages + excluded.messages,"
	                " recipients = recipients + excluded.recipients,"
	                " bytes = bytes + excluded.bytes",
	[S_TOUCH] = "INSERT INTO last_use (login, ts, client_addr) VALUES (?1, ?2, ?3)"
	            " ON CONFLICT (login) DO UPDATE SET ts = max(ts, excluded.ts),"
	            " client_addr = excluded.client_addr",
	[S_PRUNE_USAGE] = "DELETE FROM usage WHERE ts <= ?1",
	[S_PRUNE_AUDIT] = "DELETE FROM audit WHERE ts <= ?1",
	[S_USAGE_ALL] = "SELECT login, ts, messages, recipients, bytes FROM usage WHERE ts > ?1"
	                " ORDER BY login, ts",
	[S_USAGE_ONE] = "SELECT login, ts, messages, recipients, bytes FROM usage"
	                " WHERE login = ?2 AND ts > ?1 ORDER BY ts",
	[S_AUDIT_ALL] = "SELECT * FROM (SELECT id, ts, login, client_addr, tls_version, cipher,"
	                " env_from, header_from, rcpt_count, size, queue_id, verdict, reason"
	                " FROM audit WHERE ts >= ?1 ORDER BY id DESC LIMIT ?3) ORDER BY id",
	[S_AUDIT_ONE] = "SELECT * FROM (SELECT id, ts, login, client_addr, tls_version, cipher,"
	                " env_from, header_from, rcpt_count, size, queue_id, verdict, reason"
	                " FROM audit WHERE ts >= ?1 AND login = ?2 COLLATE NOCASE"
	                " ORDER BY id DESC LIMIT ?3) ORDER BY id",
	[S_LAST_USE] = "SELECT ts, client_addr FROM last_use WHERE login = ?1",
	/* carrying counters over into a replacement file: the larger count of each second wins,
	 * so merging the same rows twice (or into a copy that has them) counts nothing twice */
	[S_USAGE_MERGE] = "INSERT INTO usage (login, ts, messages, recipients, bytes)"
	                  " VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (login, ts) DO UPDATE SET"
	                  " messages = max(messages, excluded.messages),"
	                  " recipients = max(recipients, excluded.recipients),"
	                  " bytes = max(bytes, excluded.bytes)",
	[S_LAST_USE_ALL] = "SELECT login, ts, client_addr FROM last_use ORDER BY login",
	[S_LAST_USE_MERGE] = "INSERT INTO last_use (login, ts, client_addr) VALUES (?1, ?2, ?3)"
	                     " ON CONFLICT (login) DO UPDATE SET ts = excluded.ts,"
	                     " client_addr = excluded.client_addr WHERE excluded.ts > ts",
	[S_CHECKPOINT] = "PRAGMA wal_checkpoint(TRUNCATE)",
	[S_JOURNAL_GET] = "SELECT journal_id, seq FROM journal_mark WHERE id = 1",
	[S_JOURNAL_SET] = "INSERT INTO journal_mark (id, journal_id, seq) VALUES (1, ?1, ?2)"
	                  " ON CONFLICT (id) DO UPDATE SET journal_id = excluded.journal_id,"
	                  " seq = excluded.seq",
};

struct rdb_state {
	sqlite3 *h;
	sqlite3_stmt *st[S_COUNT_];
	char err[320];
};

static enum rdb_result fail(struct rdb_state *st, const char *what)
{
	rdb_seterr(st->err, sizeof st->err, "%s: %s", what, sqlite3_errmsg(st->h));
	return RDB_ERROR;
}

static bool configure(sqlite3 *h, char *err, size_t errlen)
{
	int on = 1;

	if (sqlite3_extended_result_codes(h, 1) != SQLITE_OK ||
	    sqlite3_db_config(h, SQLITE_DBCONFIG_DEFENSIVE, on, NULL) != SQLITE_OK ||
	    sqlite3_db_config(h, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL) != SQLITE_OK ||
	    sqlite3_busy_timeout(h, BUSY_TIMEOUT_MS) != SQLITE_OK) {
		rdb_seterr(err, errlen, "configuring the connection: %s", sqlite3_errmsg(h));
		return false;
	}
	return true;
}

static bool pragma_int(sqlite3 *h, const char *q, int64_t *out)
{
	sqlite3_stmt *s = NULL;
	bool okay = false;

	if (sqlite3_prepare_v2(h, q, -1, &s, NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW &&
	    sqlite3_column_type(s, 0) == SQLITE_INTEGER) {
		*out = sqlite3_column_int64(s, 0);
		okay = true;
	}
	sqlite3_finalize(s);
	return okay;
}

/* Checks that h is a state database of our version; `allow_new` accepts an empty file. */
static enum rdb_result check_header(sqlite3 *h, const char *path, bool allow_new, int64_t *ver,
                                    char *err, size_t errlen)
{
	int64_t app = 0, tables = 0;

	if (!pragma_int(h, "PRAGMA application_id", &app) ||
	    !pragma_int(h, "PRAGMA user_version", ver) ||
	    !pragma_int(h, "SELECT count(*) FROM sqlite_schema", &tables)) {
		rdb_seterr(err, errlen, "%s: cannot read the database header: %s", path, sqlite3_errmsg(h));
		return RDB_ERROR;
	}
	if (app == 0 && *ver == 0 && tables == 0 && allow_new)
		return RDB_OK;
	if (app != RDB_STATE_APPLICATION_ID) {
		rdb_seterr(err, errlen, "%s: not an smtp-relay state database", path);
		return RDB_ERROR;
	}
	if (*ver > RDB_STATE_SCHEMA_VERSION || *ver < 1) {
		rdb_seterr(err, errlen, "%s: state schema version %lld, this program knows %d", path,
		       (long long)*ver, RDB_STATE_SCHEMA_VERSION);
		return RDB_ERROR;
	}
	return RDB_OK;
}

/* Why sqlite3_open_v2 failed. SQLITE_OPEN_NOFOLLOW refuses a symbolic link anywhere in the
 * path (a folder owned by the milter's user must not steer root's relay-admin elsewhere);
 * SQLite's own message for that is only "unable to open database file". */
static const char *open_errmsg(sqlite3 *h)
{
	if (h == NULL)
		return "out of memory";
	if (sqlite3_extended_errcode(h) == SQLITE_CANTOPEN_SYMLINK)
		return "the path contains a symbolic link, which the state database refuses";
	return sqlite3_errmsg(h);
}

enum rdb_result rdb_state_init(const char *path, char *err, size_t errlen)
{
	sqlite3 *h = NULL;
	int64_t ver = 0;
	enum rdb_result r = RDB_ERROR;
	char *msg = NULL;

	if (sqlite3_open_v2(path, &h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
	                    SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW, NULL) != SQLITE_OK) {
		rdb_seterr(err, errlen, "%s: %s", path, open_errmsg(h));
		goto out;
	}
	if (!configure(h, err, errlen))
		goto out;
	if (sqlite3_exec(h, "BEGIN IMMEDIATE", NULL, NULL, &msg) != SQLITE_OK) {
		rdb_seterr(err, errlen, "%s: %s", path, msg ? msg : sqlite3_errmsg(h));
		goto out;
	}
	if ((r = check_header(h, path, true, &ver, err, errlen)) != RDB_OK) {
		sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL);
		goto out;
	}
	if ((ver == 0 && sqlite3_exec(h, schema_v1, NULL, NULL, &msg) != SQLITE_OK) ||
	    (ver < 2 && sqlite3_exec(h, migrate_v2, NULL, NULL, &msg) != SQLITE_OK)) {
		rdb_seterr(err, errlen, "%s: creating the schema: %s", path, msg ? msg : "?");
		sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL);
		r = RDB_ERROR;
		goto out;
	}
	if (sqlite3_exec(h, "COMMIT", NULL, NULL, &msg) != SQLITE_OK) {
		rdb_seterr(err, errlen, "%s: %s", path, msg ? msg : sqlite3_errmsg(h));
		r = RDB_ERROR;
		goto out;
	}
	sqlite3_free(msg);
	msg = NULL;
	if (sqlite3_exec(h, "PRAGMA journal_mode = WAL", NULL, NULL, &msg) != SQLITE_OK) {
		rdb_seterr(err, errlen, "%s: enabling WAL: %s", path, msg ? msg : sqlite3_errmsg(h));
		r = RDB_ERROR;
		goto out;
	}
	r = RDB_OK;
out:
	sqlite3_free(msg);
	sqlite3_close(h);
	return r;
}

enum rdb_result rdb_state_open(const char *path, enum rdb_mode mode, struct rdb_state **out,
                               char *err, size_t errlen)
{
	struct rdb_state *st;
	int flags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW |
	            (mode == RDB_READONLY ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE);
	int64_t ver;

	*out = NULL;
	if (access(path, F_OK) != 0) {
		rdb_seterr(err, errlen, "%s: no state database (relay-milter creates it on start, or run"
		       " relay-admin init)", path);
		return RDB_ERROR;
	}
	st = calloc(1, sizeof *st);
	if (st == NULL) {
		rdb_seterr(err, errlen, "out of memory");
		return RDB_ERROR;
	}
	if (sqlite3_open_v2(path, &st->h, flags, NULL) != SQLITE_OK) {
		rdb_seterr(err, errlen, "%s: %s", path, open_errmsg(st->h));
		rdb_state_close(st);
		return RDB_ERROR;
	}
	if (!configure(st->h, err, errlen) ||
	    check_header(st->h, path, false, &ver, err, errlen) != RDB_OK) {
		rdb_state_close(st);
		return RDB_ERROR;
	}
	for (int k = 0; k < (mode == RDB_READONLY ? S_JOURNAL_GET : S_COUNT_); k++) {
		if (sqlite3_prepare_v3(st->h, sql[k], -1, SQLITE_PREPARE_PERSISTENT, &st->st[k], NULL) !=
		    SQLITE_OK) {
			rdb_seterr(err, errlen, "%s: preparing statements: %s", path, sqlite3_errmsg(st->h));
			rdb_state_close(st);
			return RDB_ERROR;
		}
	}
	*out = st;
	return RDB_OK;
}

void rdb_state_close(struct rdb_state *st)
{
	if (st == NULL)
		return;
	for (int k = 0; k < S_COUNT_; k++)
		sqlite3_finalize(st->st[k]);
	sqlite3_close(st->h);
	free(st);
}

const char *rdb_state_errmsg(const struct rdb_state *st)
{
	return st->err;
}

static enum rdb_result step_done(struct rdb_state *st, int which)
{
	sqlite3_stmt *s = st->st[which];
	int rc = sqlite3_step(s);

	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (rc != SQLITE_DONE)
		return fail(st, sql[which]);
	return RDB_OK;
}

enum rdb_result rdb_state_begin(struct rdb_state *st)
{
	return step_done(st, S_BEGIN);
}

enum rdb_result rdb_state_commit(struct rdb_state *st)
{
	return step_done(st, S_COMMIT);
}

void rdb_state_rollback(struct rdb_state *st)
{
	if (!sqlite3_get_autocommit(st->h))
		step_done(st, S_ROLLBACK);
}

/* Binds a clamped, control-free copy of s (NULL → ""). */
static int bind_clean(sqlite3_stmt *s, int col, const char *in)
{
	char buf[RDB_AUDIT_FIELD_MAX + 1];
	size_t o = 0;

	for (; in != NULL && *in != '\0' && o < RDB_AUDIT_FIELD_MAX; in++)
		buf[o++] = ((unsigned char)*in < 0x20 || *in == 0x7f) ? '?' : *in;
	buf[o] = '\0';
	return sqlite3_bind_text(s, col, buf, (int)o, SQLITE_TRANSIENT);
}

static int64_t clamp64(uint64_t v)
{
	return v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v;
}

enum rdb_result rdb_state_audit_add(struct rdb_state *st, const struct rdb_audit *a)
{
	sqlite3_stmt *s = st->st[S_AUDIT_ADD];

	if (sqlite3_bind_int64(s, 1, a->ts) != SQLITE_OK ||
	    bind_clean(s, 2, a->login) != SQLITE_OK || bind_clean(s, 3, a->client_addr) != SQLITE_OK ||
	    bind_clean(s, 4, a->tls_version) != SQLITE_OK || bind_clean(s, 5, a->cipher) != SQLITE_OK ||
	    bind_clean(s, 6, a->env_from) != SQLITE_OK || bind_clean(s, 7, a->header_from) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 8, clamp64(a->rcpt_count)) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 9, clamp64(a->size)) != SQLITE_OK ||
	    bind_clean(s, 10, a->queue_id) != SQLITE_OK || bind_clean(s, 11, a->verdict) != SQLITE_OK ||
	    bind_clean(s, 12, a->reason) != SQLITE_OK) {
		sqlite3_clear_bindings(s);
		return fail(st, "binding an audit record");
	}
	return step_done(st, S_AUDIT_ADD);
}

enum rdb_result rdb_state_usage_add(struct rdb_state *st, const char *login, int64_t ts,
                                    uint64_t messages, uint64_t recipients, uint64_t bytes)
{
	sqlite3_stmt *s = st->st[S_USAGE_ADD];

	if (sqlite3_bind_text(s, 1, login, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 2, ts) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 3, clamp64(messages)) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 4, clamp64(recipients)) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 5, clamp64(bytes)) != SQLITE_OK) {
		sqlite3_clear_bindings(s);
		return fail(st, "binding usage");
	}
	return step_done(st, S_USAGE_ADD);
}

enum rdb_result rdb_state_touch(struct rdb_state *st, const char *login, int64_t ts,
                                const char *client_addr)
{
	sqlite3_stmt *s = st->st[S_TOUCH];

	if (sqlite3_bind_text(s, 1, login, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 2, ts) != SQLITE_OK || bind_clean(s, 3, client_addr) != SQLITE_OK) {
		sqlite3_clear_bindings(s);
		return fail(st, "binding last use");
	}
	return step_done(st, S_TOUCH);
}

enum rdb_result rdb_state_prune(struct rdb_state *st, int64_t usage_before, int64_t audit_before)
{
	enum rdb_result r;

	if (sqlite3_bind_int64(st->st[S_PRUNE_USAGE], 1, usage_before) != SQLITE_OK ||
	    (r = step_done(st, S_PRUNE_USAGE)) != RDB_OK)
		return fail(st, "pruning usage");
	if (sqlite3_bind_int64(st->st[S_PRUNE_AUDIT], 1, audit_before) != SQLITE_OK ||
	    (r = step_done(st, S_PRUNE_AUDIT)) != RDB_OK)
		return fail(st, "pruning the audit log");
	return RDB_OK;
}

enum rdb_result rdb_state_usage_foreach(struct rdb_state *st, const char *login, int64_t since,
                                        int (*fn)(const char *login, int64_t ts,
                                                  const uint64_t v[3], void *arg),
                                        void *arg)
{
	sqlite3_stmt *s = st->st[login ? S_USAGE_ONE : S_USAGE_ALL];
	enum rdb_result r = RDB_OK;
	int rc;

	if (sqlite3_bind_int64(s, 1, since) != SQLITE_OK ||
	    (login != NULL && sqlite3_bind_text(s, 2, login, -1, SQLITE_STATIC) != SQLITE_OK)) {
		r = fail(st, "bind");
		goto out;
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		uint64_t v[3];

		if (sqlite3_column_type(s, 0) != SQLITE_TEXT) {
			rdb_seterr(st->err, sizeof st->err, "usage row has an unexpected shape");
			r = RDB_ERROR;
			goto out;
		}
		for (int c = 1; c <= 4; c++) {
			if (sqlite3_column_type(s, c) != SQLITE_INTEGER || sqlite3_column_int64(s, c) < 0) {
				rdb_seterr(st->err, sizeof st->err, "usage row has an unexpected shape");
				r = RDB_ERROR;
				goto out;
			}
		}
		for (int m = 0; m < 3; m++)
			v[m] = (uint64_t)sqlite3_column_int64(s, 2 + m);
		if (fn((const char *)sqlite3_column_text(s, 0), sqlite3_column_int64(s, 1), v, arg)) {
			rdb_seterr(st->err, sizeof st->err, "a usage row could not be kept (out of memory?)");
			r = RDB_ERROR;
			goto out;
		}
	}
	if (rc != SQLITE_DONE)
		r = fail(st, "reading usage");
out:
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return r;
}

enum rdb_result rdb_state_audit_foreach(struct rdb_state *st, const char *login, int64_t since,
                                        int64_t limit,
                                        int (*fn)(const struct rdb_audit *a, void *arg),
                                        void *arg)
{
	sqlite3_stmt *s = st->st[login ? S_AUDIT_ONE : S_AUDIT_ALL];
	enum rdb_result r = RDB_OK;
	int rc;

	if (sqlite3_bind_int64(s, 1, since) != SQLITE_OK ||
	    (login != NULL && sqlite3_bind_text(s, 2, login, -1, SQLITE_STATIC) != SQLITE_OK) ||
	    sqlite3_bind_int64(s, 3, limit) != SQLITE_OK) {
		r = fail(st, "bind");
		goto out;
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		static const int ints[] = { 0, 1, 8, 9 };
		static const int texts[] = { 2, 3, 4, 5, 6, 7, 10, 11, 12 };
		struct rdb_audit a;

		for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++)
			if (sqlite3_column_type(s, ints[k]) != SQLITE_INTEGER)
				goto shape;
		for (size_t k = 0; k < sizeof texts / sizeof texts[0]; k++)
			if (sqlite3_column_type(s, texts[k]) != SQLITE_TEXT)
				goto shape;
		a = (struct rdb_audit){
			.id = sqlite3_column_int64(s, 0),
			.ts = sqlite3_column_int64(s, 1),
			.login = (const char *)sqlite3_column_text(s, 2),
			.client_addr = (const char *)sqlite3_column_text(s, 3),
			.tls_version = (const char *)sqlite3_column_text(s, 4),
			.cipher = (const char *)sqlite3_column_text(s, 5),
			.env_from = (const char *)sqlite3_column_text(s, 6),
			.header_from = (const char *)sqlite3_column_text(s, 7),
			.rcpt_count = (uint64_t)sqlite3_column_int64(s, 8),
			.size = (uint64_t)sqlite3_column_int64(s, 9),
			.queue_id = (const char *)sqlite3_column_text(s, 10),
			.verdict = (const char *)sqlite3_column_text(s, 11),
			.reason = (const char *)sqlite3_column_text(s, 12),
		};
		if (fn(&a, arg)) {
			rdb_seterr(st->err, sizeof st->err, "an audit record could not be kept");
			r = RDB_ERROR;
			goto out;
		}
	}
	if (rc != SQLITE_DONE)
		r = fail(st, "reading the audit log");
	goto out;
shape:
	rdb_seterr(st->err, sizeof st->err, "audit row has an unexpected shape");
	r = RDB_ERROR;
out:
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return r;
}

enum rdb_result rdb_state_last_use(struct rdb_state *st, const char *login, int64_t *ts,
                                   char *client, size_t clientlen)
{
	sqlite3_stmt *s = st->st[S_LAST_USE];
	enum rdb_result r;
	int rc;

	if (sqlite3_bind_text(s, 1, login, -1, SQLITE_STATIC) != SQLITE_OK) {
		r = fail(st, "bind");
		goto out;
	}
	rc = sqlite3_step(s);
	if (rc == SQLITE_DONE) {
		r = RDB_NOTFOUND;
	} else if (rc != SQLITE_ROW) {
		r = fail(st, "reading last use");
	} else if (sqlite3_column_type(s, 0) != SQLITE_INTEGER ||
	           sqlite3_column_type(s, 1) != SQLITE_TEXT) {
		rdb_seterr(st->err, sizeof st->err, "last_use row has an unexpected shape");
		r = RDB_ERROR;
	} else {
		*ts = sqlite3_column_int64(s, 0);
		if (client != NULL && clientlen > 0)
			snprintf(client, clientlen, "%s", (const char *)sqlite3_column_text(s, 1));
		r = RDB_OK;
	}
out:
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return r;
}

enum rdb_result rdb_state_usage_merge(struct rdb_state *st, const char *login, int64_t ts,
                                      const uint64_t v[3])
{
	sqlite3_stmt *s = st->st[S_USAGE_MERGE];

	if (sqlite3_bind_text(s, 1, login, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 2, ts) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 3, clamp64(v[0])) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 4, clamp64(v[1])) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 5, clamp64(v[2])) != SQLITE_OK) {
		sqlite3_clear_bindings(s);
		return fail(st, "binding usage");
	}
	return step_done(st, S_USAGE_MERGE);
}

enum rdb_result rdb_state_last_use_merge(struct rdb_state *st, const char *login, int64_t ts,
                                         const char *client_addr)
{
	sqlite3_stmt *s = st->st[S_LAST_USE_MERGE];

	if (sqlite3_bind_text(s, 1, login, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 2, ts) != SQLITE_OK || bind_clean(s, 3, client_addr) != SQLITE_OK) {
		sqlite3_clear_bindings(s);
		return fail(st, "binding last use");
	}
	return step_done(st, S_LAST_USE_MERGE);
}

enum rdb_result rdb_state_last_use_foreach(struct rdb_state *st,
                                           int (*fn)(const char *login, int64_t ts,
                                                     const char *client_addr, void *arg),
                                           void *arg)
{
	sqlite3_stmt *s = st->st[S_LAST_USE_ALL];
	enum rdb_result r = RDB_OK;
	int rc;

	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (sqlite3_column_type(s, 0) != SQLITE_TEXT ||
		    sqlite3_column_type(s, 1) != SQLITE_INTEGER ||
		    sqlite3_column_type(s, 2) != SQLITE_TEXT) {
			rdb_seterr(st->err, sizeof st->err, "last_use row has an unexpected shape");
			r = RDB_ERROR;
			goto out;
		}
		if (fn((const char *)sqlite3_column_text(s, 0), sqlite3_column_int64(s, 1),
		       (const char *)sqlite3_column_text(s, 2), arg)) {
			rdb_seterr(st->err, sizeof st->err, "a last_use row could not be kept");
			r = RDB_ERROR;
			goto out;
		}
	}
	if (rc != SQLITE_DONE)
		r = fail(st, "reading last use");
out:
	sqlite3_reset(s);
	return r;
}

enum rdb_result rdb_state_checkpoint(struct rdb_state *st)
{
	sqlite3_stmt *s = st->st[S_CHECKPOINT];
	enum rdb_result r = RDB_OK;
	int rc = sqlite3_step(s);

	/* one row: busy flag, WAL frames, frames checkpointed; busy means readers kept the
	 * WAL from being emptied */
	if (rc != SQLITE_ROW) {
		r = fail(st, "checkpoint");
	} else if (sqlite3_column_int(s, 0) != 0) {
		rdb_seterr(st->err, sizeof st->err, "checkpoint: the WAL is still in use by a reader");
		r = RDB_ERROR;
	}
	sqlite3_reset(s);
	return r;
}

void rdb_state_close_moved(struct rdb_state *st)
{
	int persist = 1;

	/* SQLite deletes "<path>-wal" and "<path>-shm" by name when its last connection
	 * closes; those names now belong to whatever file sits at the path. */
	if (st != NULL)
		sqlite3_file_control(st->h, "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
	rdb_state_close(st);
}

enum rdb_result rdb_state_journal_get(struct rdb_state *st, uint64_t *journal_id, uint64_t *seq)
{
	sqlite3_stmt *s = st->st[S_JOURNAL_GET];
	enum rdb_result r = RDB_NOTFOUND;
	int rc;

	if (s == NULL) {
		rdb_seterr(st->err, sizeof st->err, "journal mark: not on a read-only handle");
		return RDB_ERROR;
	}
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		if (sqlite3_column_type(s, 0) != SQLITE_INTEGER ||
		    sqlite3_column_type(s, 1) != SQLITE_INTEGER) {
			rdb_seterr(st->err, sizeof st->err, "journal mark: not integers");
			r = RDB_ERROR;
		} else {
			*journal_id = (uint64_t)sqlite3_column_int64(s, 0);
			*seq = (uint64_t)sqlite3_column_int64(s, 1);
			r = RDB_OK;
		}
	} else if (rc != SQLITE_DONE) {
		r = fail(st, "reading the journal mark");
	}
	sqlite3_reset(s);
	return r;
}

enum rdb_result rdb_state_journal_set(struct rdb_state *st, uint64_t journal_id, uint64_t seq)
{
	sqlite3_stmt *s = st->st[S_JOURNAL_SET];

	if (s == NULL) {
		rdb_seterr(st->err, sizeof st->err, "journal mark: not on a read-only handle");
		return RDB_ERROR;
	}
	/* the id is 64 random bits: stored as the int64 with the same bits */
	sqlite3_bind_int64(s, 1, (sqlite3_int64)journal_id);
	sqlite3_bind_int64(s, 2, clamp64(seq));
	return step_done(st, S_JOURNAL_SET);
}
