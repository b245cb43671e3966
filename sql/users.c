/*
 * users.c — administration of logins and their allowed senders (relay-admin's data layer).
 *
 * What it is: the write and listing side of the users database. Every input is validated
 * before any statement runs, every value is bound, every cached statement is reset on
 * every path, and every column is type-checked before use.
 *
 * Ownership: strings are borrowed for the duration of a call; rows handed to callbacks
 * live only during the callback. Not thread safe per handle, like struct rdb.
 *
 * Errors: RDB_INVALID (bad input, nothing written), RDB_NOTFOUND, RDB_EXISTS, RDB_ERROR;
 * rdb_errmsg() always names the problem, e.g. "no such login: bob".
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "rdb-private.h"

static enum rdb_result exec_simple(struct rdb *db, enum rdb_stmt_id id, const char *what)
{
	struct rdb_st *st = rdb_stmt(db, id);
	enum rdb_result r = RDB_OK;

	if (st == NULL)
		return RDB_ERROR;
	if (rdb_step(st) != RDB_STEP_DONE)
		r = rdb_fail_sqlite(db, what);
	rdb_st_done(st);
	return r;
}

enum rdb_result rdb_begin(struct rdb *db)
{
	return exec_simple(db, STMT_BEGIN, "cannot start a transaction");
}

enum rdb_result rdb_begin_read(struct rdb *db)
{
	return exec_simple(db, STMT_BEGIN_READ, "cannot start a read transaction");
}

enum rdb_result rdb_commit(struct rdb *db)
{
	return exec_simple(db, STMT_COMMIT, "cannot commit");
}

void rdb_rollback(struct rdb *db)
{
	if (db != NULL && rdb_conn_in_tx(&db->c)) {
		char keep[sizeof db->c.err];

		/* Keep the message of the failure that made us roll back. */
		memcpy(keep, db->c.err, sizeof keep);
		exec_simple(db, STMT_ROLLBACK, "cannot roll back");
		memcpy(db->c.err, keep, sizeof keep);
	}
}

/* ---- validation helpers --------------------------------------------------------------- */

bool rdb_note_valid(const char *note, char *why, size_t whylen)
{
	const unsigned char *p = (const unsigned char *)note;
	size_t len;

	if (note == NULL)
		return true;
	len = strnlen(note, RDB_NOTE_MAX + 1);
	if (len > RDB_NOTE_MAX) {
		snprintf(why, whylen, "note longer than %d bytes", RDB_NOTE_MAX);
		return false;
	}
	/* Strict UTF-8 (no overlongs, surrogates or code points past U+10FFFF), no C0/C1
	 * controls or DEL: a note ends up on terminals and in JSON. */
	for (size_t i = 0; i < len;) {
		unsigned c = p[i], need, cp, min;

		if (c < 0x80) {
			if (c < 0x20 || c == 0x7f)
				goto control;
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) { need = 1; cp = c & 0x1f; min = 0x80; }
		else if (c >= 0xe0 && c <= 0xef) { need = 2; cp = c & 0x0f; min = 0x800; }
		else if (c >= 0xf0 && c <= 0xf4) { need = 3; cp = c & 0x07; min = 0x10000; }
		else goto bad;
		for (unsigned k = 1; k <= need; k++) {
			if (i + k >= len || (p[i + k] & 0xc0) != 0x80)
				goto bad;
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			goto bad;
		if (cp >= 0x80 && cp <= 0x9f)
			goto control;
		i += need + 1;
	}
	return true;
control:
	snprintf(why, whylen, "note contains a control character");
	return false;
bad:
	snprintf(why, whylen, "note is not valid UTF-8");
	return false;
}

void rdb_pattern_canon(const char *pattern, char out[RDB_PATTERN_MAX + 1])
{
	size_t i = 0;

	for (; pattern[i] != '\0' && i < RDB_PATTERN_MAX; i++)
		out[i] = (char)tolower((unsigned char)pattern[i]);
	out[i] = '\0';
}

static enum rdb_result check_name(struct rdb *db, const char *name)
{
	char why[128];

	if (!rdb_name_valid(name, why, sizeof why))
		return rdb_fail(db, RDB_INVALID, "invalid login name: %s", why);
	return RDB_OK;
}

/* Steps the one-row statement `id` for a login name, checked first: RDB_OK leaves the row
 * in *stp (the caller reads it, then rdb_st_done()); otherwise the reason is recorded, and
 * RDB_NOTFOUND names the login. */
static enum rdb_result find_login(struct rdb *db, enum rdb_stmt_id id, const char *name,
                                  const char *what, struct rdb_st **stp)
{
	enum rdb_result r = check_name(db, name);

	if (r == RDB_OK)
		r = rdb_step_name(db, id, name, what, stp);
	if (r == RDB_NOTFOUND)
		r = rdb_fail(db, RDB_NOTFOUND, "no such login: %s", name);
	return r;
}

/* Finds the id (and stored spelling) of a login; RDB_NOTFOUND names it. */
static enum rdb_result login_id(struct rdb *db, const char *name, int64_t *id)
{
	struct rdb_st *st;
	enum rdb_result r = find_login(db, STMT_LOGIN_ID, name, "lookup", &st);

	if (r != RDB_OK)
		return r;
	if (rdb_col_type(st, 0) != RDB_COL_INT)
		r = rdb_fail(db, RDB_ERROR, "lookup: malformed login row");
	else
		*id = rdb_col_int64(st, 0);
	rdb_st_done(st);
	return r;
}

/* Runs a bound write statement expected to change exactly one row. */
static enum rdb_result step_write(struct rdb *db, struct rdb_st *st, const char *what)
{
	int rc = rdb_step(st);
	enum rdb_result r = RDB_OK;

	if (rc == RDB_STEP_UNIQUE)
		r = rdb_fail(db, RDB_EXISTS, "%s: already exists", what);
	else if (rc == RDB_STEP_CONSTRAINT)
		r = rdb_fail(db, RDB_INVALID, "%s: %s", what, rdb_conn_dbmsg(&db->c));
	else if (rc != RDB_STEP_DONE)
		r = rdb_fail_sqlite(db, what);
	rdb_st_done(st);
	return r;
}

enum rdb_result rdb_step_write(struct rdb *db, struct rdb_st *st, const char *what)
{
	return step_write(db, st, what);
}

/* An authentication name an app credential already has cannot become a login's name:
 * the name would then mean two things (the schema's logins_name_free trigger refuses it
 * too; this says so in words). */
static enum rdb_result name_free_of_credentials(struct rdb *db, const char *name)
{
	struct rdb_st *st;
	enum rdb_result r = rdb_step_name(db, STMT_CRED_TAKEN, name, "add login", &st);

	if (r == RDB_NOTFOUND)
		return RDB_OK;
	if (r != RDB_OK)
		return r;
	rdb_st_done(st);
	return rdb_fail(db, RDB_EXISTS, "%s is the authentication name of an app credential "
	                "(relay-admin user credential list shows whose)", name);
}

/* ---- logins ------------------------------------------------------------------------- */

enum rdb_result rdb_login_add(struct rdb *db, const struct rdb_login_new *n)
{
	struct rdb_st *st;
	enum rdb_result r;
	const char *source;
	char why[128];

	if (db == NULL || n == NULL || n->plain == NULL)
		return RDB_INVALID;
	r = check_name(db, n->name);
	if (r != RDB_OK)
		return r;
	if (!rdb_note_valid(n->note, why, sizeof why))
		return rdb_fail(db, RDB_INVALID, "invalid note: %s", why);
	source = n->source ? n->source : "admin";
	if (strcmp(source, "admin") != 0 && strcmp(source, "sasldb") != 0)
		return rdb_fail(db, RDB_INVALID, "invalid source");
	if (n->scram != NULL && (strncmp(n->scram, "SCRAM-SHA-256$", 14) != 0 ||
	                         strlen(n->scram) >= RDB_SCRAM_MAX))
		return rdb_fail(db, RDB_INVALID, "invalid SCRAM verifier");
	r = name_free_of_credentials(db, n->name);
	if (r != RDB_OK)
		return r;
	st = rdb_stmt(db, STMT_LOGIN_INSERT);
	if (st == NULL)
		return RDB_ERROR;
	if (rdb_bind_text(st, 1, n->name) != RDB_SQL_OK ||
	    (n->has_expiry ? rdb_bind_int64(st, 2, n->expires_at) : rdb_bind_null(st, 2)) != RDB_SQL_OK ||
	    rdb_bind_text(st, 3, n->note ? n->note : "") != RDB_SQL_OK ||
	    rdb_bind_blob(st, 4, n->plain, RDB_PLAIN_SECRET_LEN) != RDB_SQL_OK ||
	    (n->scram ? rdb_bind_text(st, 5, n->scram) : rdb_bind_null(st, 5)) != RDB_SQL_OK ||
	    rdb_bind_text(st, 6, source) != RDB_SQL_OK ||
	    rdb_bind_int64(st, 7, n->now) != RDB_SQL_OK) {
		r = rdb_fail_sqlite(db, "add login");
		rdb_st_done(st);
		return r;
	}
	r = step_write(db, st, "add login");
	if (r == RDB_EXISTS)
		r = rdb_fail(db, RDB_EXISTS, "login already exists: %s", n->name);
	return r;
}

static bool text_col(struct rdb_st *st, int i, char *out, size_t outlen)
{
	int len;

	if (rdb_col_type(st, i) != RDB_COL_TEXT)
		return false;
	len = rdb_col_bytes(st, i);
	if (len < 0 || (size_t)len >= outlen)
		return false;
	memcpy(out, rdb_col_text(st, i), (size_t)len);
	out[len] = '\0';
	return true;
}

enum rdb_result rdb_login_id(struct rdb *db, const char *name, int64_t *id,
                             char stored[RDB_NAME_MAX + 1])
{
	struct rdb_st *st;
	enum rdb_result r = find_login(db, STMT_LOGIN_ID, name, "lookup", &st);

	if (r != RDB_OK)
		return r;
	if (rdb_col_type(st, 0) != RDB_COL_INT ||
	    (stored != NULL && !text_col(st, 1, stored, RDB_NAME_MAX + 1)))
		r = rdb_fail(db, RDB_ERROR, "lookup: malformed login row");
	else
		*id = rdb_col_int64(st, 0);
	rdb_st_done(st);
	return r;
}

/* Fills a struct rdb_login from a STMT_LOGIN_GET / STMT_LOGIN_ALL row. */
static bool read_login(struct rdb_st *st, struct rdb_login *o)
{
	memset(o, 0, sizeof *o);
	if (rdb_col_count(st) != 12 ||
	    !text_col(st, 0, o->name, sizeof o->name) ||
	    !text_col(st, 3, o->note, sizeof o->note) ||
	    !text_col(st, 4, o->source, sizeof o->source))
		return false;
	for (int i = 1; i < 12; i++) {
		if (i == 3 || i == 4)
			continue;
		if (rdb_col_type(st, i) != RDB_COL_INT &&
		    !(i == 2 && rdb_col_type(st, i) == RDB_COL_NULL))
			return false;
	}
	o->enabled = rdb_col_int64(st, 1) != 0;
	o->has_expiry = rdb_col_type(st, 2) == RDB_COL_INT;
	o->expires_at = o->has_expiry ? rdb_col_int64(st, 2) : 0;
	o->has_scram = rdb_col_int64(st, 5) != 0;
	o->rate_exempt = rdb_col_int64(st, 6) != 0;
	o->hold_over_limit = rdb_col_int64(st, 7) != 0;
	o->created_at = rdb_col_int64(st, 8);
	o->updated_at = rdb_col_int64(st, 9);
	o->password_changed_at = rdb_col_int64(st, 10);
	o->nsenders = (unsigned)rdb_col_int64(st, 11);
	return true;
}

enum rdb_result rdb_login_get(struct rdb *db, const char *name, struct rdb_login *out)
{
	struct rdb_st *st;
	enum rdb_result r;

	if (db == NULL || out == NULL)
		return RDB_INVALID;
	r = find_login(db, STMT_LOGIN_GET, name, "show login", &st);
	if (r != RDB_OK)
		return r;
	if (!read_login(st, out))
		r = rdb_fail(db, RDB_ERROR, "show login: malformed row (corrupt database?)");
	rdb_st_done(st);
	return r;
}

enum rdb_result rdb_login_foreach(struct rdb *db,
                                  int (*fn)(const struct rdb_login *login, void *arg),
                                  void *arg, int *fn_ret)
{
	struct rdb_st *st;
	struct rdb_login row;
	enum rdb_result r = RDB_OK;
	int rc, ret = 0;

	if (db == NULL || fn == NULL)
		return RDB_INVALID;
	st = rdb_stmt(db, STMT_LOGIN_ALL);
	if (st == NULL)
		return RDB_ERROR;
	while ((rc = rdb_step(st)) == RDB_STEP_ROW) {
		if (!read_login(st, &row)) {
			r = rdb_fail(db, RDB_ERROR, "list logins: malformed row (corrupt database?)");
			break;
		}
		ret = fn(&row, arg);
		if (ret != 0)
			break;
	}
	if (r == RDB_OK && ret == 0 && rc != RDB_STEP_DONE)
		r = rdb_fail_sqlite(db, "list logins");
	if (fn_ret != NULL)
		*fn_ret = ret;
	rdb_st_done(st);
	return r;
}

/* The shared shape of the small updates: find the login, bind id + values, step. */
static enum rdb_result update_login(struct rdb *db, const char *name, enum rdb_stmt_id id,
                                    const char *what,
                                    bool (*bind)(struct rdb_st *st, const void *arg),
                                    const void *arg)
{
	struct rdb_st *st;
	int64_t login = 0;
	enum rdb_result r = login_id(db, name, &login);

	if (r != RDB_OK)
		return r;
	st = rdb_stmt(db, id);
	if (st == NULL)
		return RDB_ERROR;
	if (rdb_bind_int64(st, 1, login) != RDB_SQL_OK || !bind(st, arg)) {
		r = rdb_fail_sqlite(db, what);
		rdb_st_done(st);
		return r;
	}
	return step_write(db, st, what);
}

struct secrets_arg {
	const unsigned char *plain;
	const char *scram;
	int64_t now;
};

static bool bind_secrets(struct rdb_st *st, const void *p)
{
	const struct secrets_arg *a = p;

	return rdb_bind_blob(st, 2, a->plain, RDB_PLAIN_SECRET_LEN) == RDB_SQL_OK &&
	       (a->scram ? rdb_bind_text(st, 3, a->scram) :
	                   rdb_bind_null(st, 3)) == RDB_SQL_OK &&
	       rdb_bind_int64(st, 4, a->now) == RDB_SQL_OK;
}

enum rdb_result rdb_login_set_secrets(struct rdb *db, const char *name,
                                      const unsigned char plain[RDB_PLAIN_SECRET_LEN],
                                      const char *scram, int64_t now)
{
	struct secrets_arg a = { plain, scram, now };

	if (db == NULL || plain == NULL)
		return RDB_INVALID;
	if (scram != NULL && (strncmp(scram, "SCRAM-SHA-256$", 14) != 0 ||
	                      strlen(scram) >= RDB_SCRAM_MAX))
		return rdb_fail(db, RDB_INVALID, "invalid SCRAM verifier");
	return update_login(db, name, STMT_LOGIN_SET_SECRETS, "set password", bind_secrets, &a);
}

struct int_arg {
	bool null;
	int64_t value;
	int64_t now;
};

static bool bind_int_now(struct rdb_st *st, const void *p)
{
	const struct int_arg *a = p;

	return (a->null ? rdb_bind_null(st, 2) : rdb_bind_int64(st, 2, a->value)) == RDB_SQL_OK &&
	       rdb_bind_int64(st, 3, a->now) == RDB_SQL_OK;
}

enum rdb_result rdb_login_set_enabled(struct rdb *db, const char *name, bool enabled, int64_t now)
{
	struct int_arg a = { false, enabled ? 1 : 0, now };

	if (db == NULL)
		return RDB_INVALID;
	return update_login(db, name, STMT_LOGIN_SET_ENABLED, "enable/disable", bind_int_now, &a);
}

enum rdb_result rdb_login_set_expiry(struct rdb *db, const char *name, bool has_expiry,
                                     int64_t expires_at, int64_t now)
{
	struct int_arg a = { !has_expiry, expires_at, now };

	if (db == NULL)
		return RDB_INVALID;
	return update_login(db, name, STMT_LOGIN_SET_EXPIRY, "set expiry", bind_int_now, &a);
}

struct note_arg {
	const char *note;
	int64_t now;
};

static bool bind_note(struct rdb_st *st, const void *p)
{
	const struct note_arg *a = p;

	return rdb_bind_text(st, 2, a->note) == RDB_SQL_OK &&
	       rdb_bind_int64(st, 3, a->now) == RDB_SQL_OK;
}

enum rdb_result rdb_login_set_note(struct rdb *db, const char *name, const char *note, int64_t now)
{
	struct note_arg a = { note ? note : "", now };
	char why[128];

	if (db == NULL)
		return RDB_INVALID;
	if (!rdb_note_valid(note, why, sizeof why))
		return rdb_fail(db, RDB_INVALID, "invalid note: %s", why);
	return update_login(db, name, STMT_LOGIN_SET_NOTE, "set note", bind_note, &a);
}

static bool bind_nothing(struct rdb_st *st, const void *p)
{
	(void)st;
	(void)p;
	return true;
}

enum rdb_result rdb_login_delete(struct rdb *db, const char *name)
{
	if (db == NULL)
		return RDB_INVALID;
	/* Senders and credentials go by ON DELETE CASCADE, limits by the
	 * logins_delete_limits trigger. */
	return update_login(db, name, STMT_LOGIN_DELETE, "delete login", bind_nothing, NULL);
}

/* ---- senders ------------------------------------------------------------------------ */

static enum rdb_result check_pattern(struct rdb *db, const char *pattern,
                                     char canon[RDB_PATTERN_MAX + 1])
{
	char why[128];

	if (!rdb_pattern_valid(pattern, why, sizeof why))
		return rdb_fail(db, RDB_INVALID, "invalid sender pattern: %s", why);
	rdb_pattern_canon(pattern, canon);
	return RDB_OK;
}

static enum rdb_result touch(struct rdb *db, int64_t login, int64_t now)
{
	struct rdb_st *st = rdb_stmt(db, STMT_LOGIN_TOUCH);

	if (st == NULL)
		return RDB_ERROR;
	if (rdb_bind_int64(st, 1, login) != RDB_SQL_OK ||
	    rdb_bind_int64(st, 2, now) != RDB_SQL_OK) {
		rdb_st_done(st);
		return rdb_fail_sqlite(db, "update login");
	}
	return step_write(db, st, "update login");
}

static const struct rdb_unit_ids sender_unit = {
	STMT_SENDER_SAVEPOINT, STMT_SENDER_RELEASE, STMT_SENDER_ROLLBACK_TO,
	STMT_BEGIN, STMT_COMMIT, STMT_ROLLBACK,
};

/* Two writes (pattern, updated_at) must land together: a savepoint nests inside the
 * caller's transaction if there is one and is a transaction of its own otherwise
 * (rdb_conn_unit_begin). */
static enum rdb_result sender_change(struct rdb *db, const char *name, const char *pattern,
                                     int64_t now, bool add)
{
	char canon[RDB_PATTERN_MAX + 1];
	struct rdb_st *st;
	struct rdb_unit unit;
	int64_t login = 0;
	enum rdb_result r;

	if (db == NULL)
		return RDB_INVALID;
	r = check_name(db, name);
	if (r == RDB_OK)
		r = check_pattern(db, pattern, canon);
	if (r != RDB_OK)
		return r;
	if ((r = rdb_conn_unit_begin(&db->c, &unit, &sender_unit)) != RDB_OK)
		return r;
	r = login_id(db, name, &login);
	if (r != RDB_OK)
		goto out;
	st = rdb_stmt(db, add ? STMT_SENDER_INSERT : STMT_SENDER_DELETE);
	if (st == NULL) {
		r = RDB_ERROR;
		goto out;
	}
	if (rdb_bind_int64(st, 1, login) != RDB_SQL_OK ||
	    rdb_bind_text(st, 2, canon) != RDB_SQL_OK) {
		r = rdb_fail_sqlite(db, "sender");
		rdb_st_done(st);
		goto out;
	}
	r = step_write(db, st, add ? "add sender" : "delete sender");
	if (r == RDB_EXISTS)
		r = rdb_fail(db, RDB_EXISTS, "%s already has sender %s", name, canon);
	else if (r == RDB_OK && !add && rdb_conn_changes(&db->c) == 0)
		r = rdb_fail(db, RDB_NOTFOUND, "%s has no sender %s", name, canon);
	if (r == RDB_OK)
		r = touch(db, login, now);
out:
	return rdb_conn_unit_end(&db->c, &unit, r);
}

enum rdb_result rdb_sender_add(struct rdb *db, const char *name, const char *pattern, int64_t now)
{
	return sender_change(db, name, pattern, now, true);
}

enum rdb_result rdb_sender_del(struct rdb *db, const char *name, const char *pattern, int64_t now)
{
	return sender_change(db, name, pattern, now, false);
}

enum rdb_result rdb_sender_foreach(struct rdb *db, const char *name,
                                   int (*fn)(const char *pattern, void *arg), void *arg,
                                   int *fn_ret)
{
	char pattern[RDB_PATTERN_MAX + 1];
	struct rdb_st *st;
	int64_t login = 0;
	enum rdb_result r;
	int rc, ret = 0;

	if (db == NULL || fn == NULL)
		return RDB_INVALID;
	r = login_id(db, name, &login);
	if (r != RDB_OK)
		return r;
	st = rdb_stmt(db, STMT_SENDER_LIST);
	if (st == NULL)
		return RDB_ERROR;
	if (rdb_bind_int64(st, 1, login) != RDB_SQL_OK) {
		r = rdb_fail_sqlite(db, "list senders");
		goto out;
	}
	while ((rc = rdb_step(st)) == RDB_STEP_ROW) {
		if (!text_col(st, 0, pattern, sizeof pattern)) {
			r = rdb_fail(db, RDB_ERROR, "list senders: malformed row (corrupt database?)");
			break;
		}
		ret = fn(pattern, arg);
		if (ret != 0)
			break;
	}
	if (r == RDB_OK && ret == 0 && rc != RDB_STEP_DONE)
		r = rdb_fail_sqlite(db, "list senders");
out:
	if (fn_ret != NULL)
		*fn_ret = ret;
	rdb_st_done(st);
	return r;
}
