/*
 * credentials.c — app credentials: several named secrets per login (see rdb.h).
 *
 * What it is: a login's printer, phone and backup script each get their own secret, so
 * one that leaks is revoked alone and the audit log says which one sent a message. A
 * credential is a row of `credentials` (schema version 3): its label, its own
 * authentication name, its own two secrets (the forms of the login's own), and when it
 * was made. Everything else — enabled, expiry, senders, limits, usage — is the login's.
 *
 * Why an authentication name per credential (NAME+LABEL, local+LABEL@domain) rather than
 * "any of the login's secrets": libsasl2 verifies one cmusaslsecretPLAIN and one SCRAM
 * verifier per name and never tells the plugin which password the client typed, so a
 * name must lead to exactly one secret. Sub-address style keeps the login visible in the
 * name, survives smtp:// URLs (labels are [a-z0-9-]), and stays a valid login name for
 * every reader. Logins and credentials share one namespace (checked here in words, and
 * by the schema's triggers whatever writes the file).
 *
 * Ownership: strings borrowed for the call; rows handed to callbacks live during the
 * callback. Not thread safe per handle, like struct rdb.
 * Errors: RDB_INVALID (bad input, nothing written), RDB_NOTFOUND, RDB_EXISTS, RDB_ERROR;
 * rdb_errmsg() names the problem.
 */
#include <stdio.h>
#include <string.h>

#include "rdb-private.h"

static bool fail_why(char *why, size_t whylen, const char *msg)
{
	if (why != NULL && whylen > 0)
		snprintf(why, whylen, "%s", msg);
	return false;
}

bool rdb_label_valid(const char *label, char *why, size_t whylen)
{
	size_t len;

	if (label == NULL || label[0] == '\0')
		return fail_why(why, whylen, "empty label");
	len = strnlen(label, RDB_LABEL_MAX + 1);
	if (len > RDB_LABEL_MAX)
		return fail_why(why, whylen, "label longer than 32 characters");
	for (size_t i = 0; i < len; i++) {
		char c = label[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
			return fail_why(why, whylen, "label may only contain a-z, 0-9 and '-'");
	}
	return true;
}

bool rdb_credential_authname(const char *name, const char *label, char out[RDB_NAME_MAX + 1],
                             char *why, size_t whylen)
{
	char tmp[2 * RDB_NAME_MAX + 2];
	const char *at;
	int n;

	if (!rdb_name_valid(name, why, whylen) || !rdb_label_valid(label, why, whylen))
		return false;
	at = strchr(name, '@'); /* at most one (rdb_name_valid) */
	if (at == NULL)
		n = snprintf(tmp, sizeof tmp, "%s+%s", name, label);
	else
		n = snprintf(tmp, sizeof tmp, "%.*s+%s%s", (int)(at - name), name, label, at);
	if (n < 0 || (size_t)n > RDB_NAME_MAX)
		return fail_why(why, whylen, "the credential's authentication name would be longer "
		                "than 255 bytes (use a shorter label)");
	if (!rdb_name_valid(tmp, why, whylen))
		return false;
	memcpy(out, tmp, (size_t)n + 1);
	return true;
}

static enum rdb_result check_label(struct rdb *db, const char *label)
{
	char why[128];

	if (!rdb_label_valid(label, why, sizeof why))
		return rdb_fail(db, RDB_INVALID, "invalid credential label: %s", why);
	return RDB_OK;
}

/* The authentication name must not be a login's name (the other direction is checked by
 * rdb_login_add()). Another credential's is caught by the UNIQUE index. */
static enum rdb_result authname_free(struct rdb *db, const char *authname)
{
	struct rdb_st *st;
	enum rdb_result r = rdb_step_name(db, STMT_LOGIN_ID, authname, "add credential", &st);

	if (r == RDB_NOTFOUND)
		return RDB_OK;
	if (r != RDB_OK)
		return r;
	rdb_st_done(st);
	return rdb_fail(db, RDB_EXISTS, "%s is already a login's name: the credential's "
	                "authentication name would mean two things", authname);
}

enum rdb_result rdb_credential_add(struct rdb *db, const char *name, const char *label,
                                   const unsigned char plain[RDB_PLAIN_SECRET_LEN],
                                   const char *scram, int64_t now, char *authname_out)
{
	char authname[RDB_NAME_MAX + 1], stored[RDB_NAME_MAX + 1], why[160];
	struct rdb_st *st;
	int64_t login = 0;
	enum rdb_result r;

	if (db == NULL || plain == NULL)
		return RDB_INVALID;
	if ((r = check_label(db, label)) != RDB_OK)
		return r;
	if (scram == NULL || strncmp(scram, "SCRAM-SHA-256$", 14) != 0 ||
	    strlen(scram) >= RDB_SCRAM_MAX)
		return rdb_fail(db, RDB_INVALID, "invalid SCRAM verifier");
	if ((r = rdb_login_id(db, name, &login, stored)) != RDB_OK)
		return r;
	/* built from the login's stored spelling: the name shown is the one the login has */
	if (!rdb_credential_authname(stored, label, authname, why, sizeof why))
		return rdb_fail(db, RDB_INVALID, "%s", why);
	if ((r = authname_free(db, authname)) != RDB_OK)
		return r;
	st = rdb_stmt(db, STMT_CRED_INSERT);
	if (st == NULL)
		return RDB_ERROR;
	if (rdb_bind_int64(st, 1, login) != RDB_SQL_OK ||
	    rdb_bind_text(st, 2, label) != RDB_SQL_OK ||
	    rdb_bind_text(st, 3, authname) != RDB_SQL_OK ||
	    rdb_bind_blob(st, 4, plain, RDB_PLAIN_SECRET_LEN) != RDB_SQL_OK ||
	    rdb_bind_text(st, 5, scram) != RDB_SQL_OK ||
	    rdb_bind_int64(st, 6, now) != RDB_SQL_OK) {
		r = rdb_fail_sqlite(db, "add credential");
		rdb_st_done(st);
		return r;
	}
	r = rdb_step_write(db, st, "add credential");
	if (r == RDB_EXISTS)
		r = rdb_fail(db, RDB_EXISTS, "%s already has a credential %s, or %s is taken",
		             name, label, authname);
	if (r == RDB_OK && authname_out != NULL)
		memcpy(authname_out, authname, strlen(authname) + 1);
	return r;
}

enum rdb_result rdb_credential_revoke(struct rdb *db, const char *name, const char *label)
{
	struct rdb_st *st;
	int64_t login = 0;
	enum rdb_result r;

	if (db == NULL)
		return RDB_INVALID;
	if ((r = check_label(db, label)) != RDB_OK)
		return r;
	if ((r = rdb_login_id(db, name, &login, NULL)) != RDB_OK)
		return r;
	st = rdb_stmt(db, STMT_CRED_DELETE);
	if (st == NULL)
		return RDB_ERROR;
	if (rdb_bind_int64(st, 1, login) != RDB_SQL_OK ||
	    rdb_bind_text(st, 2, label) != RDB_SQL_OK) {
		r = rdb_fail_sqlite(db, "revoke credential");
		rdb_st_done(st);
		return r;
	}
	r = rdb_step_write(db, st, "revoke credential");
	if (r == RDB_OK && rdb_conn_changes(&db->c) == 0)
		r = rdb_fail(db, RDB_NOTFOUND, "%s has no credential %s", name, label);
	return r;
}

/* Fills *c from a STMT_CRED_LIST row; false for a row of the wrong shape. */
static bool read_credential(struct rdb_st *st, struct rdb_credential *c)
{
	int llen = rdb_col_bytes(st, 0), alen = rdb_col_bytes(st, 1);

	memset(c, 0, sizeof *c);
	if (rdb_col_count(st) != 3 || rdb_col_type(st, 0) != RDB_COL_TEXT ||
	    rdb_col_type(st, 1) != RDB_COL_TEXT || rdb_col_type(st, 2) != RDB_COL_INT ||
	    llen < 0 || llen > RDB_LABEL_MAX || alen < 0 || alen > RDB_NAME_MAX)
		return false;
	memcpy(c->label, rdb_col_text(st, 0), (size_t)llen);
	memcpy(c->authname, rdb_col_text(st, 1), (size_t)alen);
	c->created_at = rdb_col_int64(st, 2);
	return true;
}

enum rdb_result rdb_credential_foreach(struct rdb *db, const char *name,
                                       int (*fn)(const struct rdb_credential *c, void *arg),
                                       void *arg, int *fn_ret)
{
	struct rdb_credential row;
	struct rdb_st *st;
	int64_t login = 0;
	enum rdb_result r;
	int rc, ret = 0;

	if (db == NULL || fn == NULL)
		return RDB_INVALID;
	if ((r = rdb_login_id(db, name, &login, NULL)) != RDB_OK)
		return r;
	st = rdb_stmt(db, STMT_CRED_LIST);
	if (st == NULL)
		return RDB_ERROR;
	if (rdb_bind_int64(st, 1, login) != RDB_SQL_OK) {
		r = rdb_fail_sqlite(db, "list credentials");
		goto out;
	}
	while ((rc = rdb_step(st)) == RDB_STEP_ROW) {
		if (!read_credential(st, &row)) {
			r = rdb_fail(db, RDB_ERROR, "list credentials: malformed row (corrupt database?)");
			break;
		}
		ret = fn(&row, arg);
		if (ret != 0)
			break;
	}
	if (r == RDB_OK && ret == 0 && rc != RDB_STEP_DONE)
		r = rdb_fail_sqlite(db, "list credentials");
out:
	if (fn_ret != NULL)
		*fn_ret = ret;
	rdb_st_done(st);
	return r;
}
