/*
 * copy.c — relay-admin copy for the users data: every row of logins (ids and secrets
 * included), senders, limits and app credentials (ids and secrets too), and the site secret, from one users database to another,
 * SQLite or PostgreSQL on either side (rdb.h, rdb_copy_users).
 *
 * Why rows and not the admin API: a copy must be the same data — the same ids (senders
 * and limits point at them), timestamps, secrets and decoy key — so that the target
 * answers every login exactly as the source did. Each table is one pair of statements in
 * rdb.c's tables (read with all columns, insert with all columns); conn.c's row copy
 * binds each column by its type, so both engines share this code.
 *
 * All writes run in one transaction on the target; the counts are compared before the
 * commit, so a partial copy is never kept. The source is read in one snapshot.
 */
#include <string.h>

#include "rdb-private.h"

static enum rdb_result counts(struct rdb *db, struct rdb_copy_counts *c)
{
	struct rdb_st *st = rdb_stmt(db, STMT_C_COUNT);
	enum rdb_result r = RDB_OK;

	if (st == NULL)
		return rdb_fail(db, RDB_ERROR, "copy: the database handle is closed");
	if (rdb_step(st) != RDB_STEP_ROW || rdb_col_type(st, 0) != RDB_COL_INT ||
	    rdb_col_type(st, 1) != RDB_COL_INT || rdb_col_type(st, 2) != RDB_COL_INT ||
	    rdb_col_type(st, 3) != RDB_COL_INT) {
		r = rdb_fail_sqlite(db, "copy: counting rows");
	} else {
		c->logins = rdb_col_int64(st, 0);
		c->senders = rdb_col_int64(st, 1);
		c->limits = rdb_col_int64(st, 2);
		c->credentials = rdb_col_int64(st, 3);
	}
	rdb_st_done(st);
	return r;
}

static enum rdb_result exec(struct rdb *db, enum rdb_stmt_id id, const char *what)
{
	return rdb_conn_exec(&db->c, id, what);
}

static enum rdb_result copy_tables(struct rdb *from, struct rdb *to, bool replace,
                                   struct rdb_copy_counts *copied, int *which)
{
	struct rdb_copy_counts have, want;
	enum rdb_result r;
	int64_t one = 0;

	*which = 0;
	if ((r = counts(from, &want)) != RDB_OK)
		return r;
	*which = 1;
	if ((r = counts(to, &have)) != RDB_OK)
		return r;
	if (have.logins + have.senders + have.limits + have.credentials > 0) {
		if (!replace)
			return rdb_fail(to, RDB_EXISTS, "the target already holds %lld logins, %lld "
			                "senders, %lld limits and %lld app credentials; refusing to mix "
			                "(--replace deletes them first)", (long long)have.logins,
			                (long long)have.senders, (long long)have.limits,
			                (long long)have.credentials);
		if ((r = exec(to, STMT_C_CLEAR_CREDS, "copy: clearing credentials")) != RDB_OK ||
		    (r = exec(to, STMT_C_CLEAR_SENDERS, "copy: clearing senders")) != RDB_OK ||
		    (r = exec(to, STMT_C_CLEAR_LIMITS, "copy: clearing limits")) != RDB_OK ||
		    (r = exec(to, STMT_C_CLEAR_LOGINS, "copy: clearing logins")) != RDB_OK)
			return r;
	}
	if ((r = rdb_conn_copy_rows(&from->c, STMT_C_LOGINS, &to->c, STMT_C_LOGIN_PUT,
	                            &copied->logins, which)) != RDB_OK ||
	    (r = rdb_conn_copy_rows(&from->c, STMT_C_SENDERS, &to->c, STMT_C_SENDER_PUT,
	                            &copied->senders, which)) != RDB_OK ||
	    (r = rdb_conn_copy_rows(&from->c, STMT_C_LIMITS, &to->c, STMT_C_LIMIT_PUT,
	                            &copied->limits, which)) != RDB_OK ||
	    (r = rdb_conn_copy_rows(&from->c, STMT_C_CREDS, &to->c, STMT_C_CRED_PUT,
	                            &copied->credentials, which)) != RDB_OK ||
	    (r = rdb_conn_copy_rows(&from->c, STMT_C_SECRET, &to->c, STMT_C_SECRET_PUT,
	                            &one, which)) != RDB_OK)
		return r;
	*which = 1;
	if (one != 1)
		return rdb_fail(to, RDB_ERROR, "copy: the source has no site secret (corrupt?)");
	if (rdb_conn_changes(&to->c) != 1)
		return rdb_fail(to, RDB_ERROR, "copy: the target has no site_secret row (run "
		                "relay-admin init on it)");
	{
		struct rdb_st *st = rdb_stmt(to, STMT_C_AFTER);

		if (st == NULL || rdb_step(st) != RDB_STEP_ROW) {
			rdb_st_done(st);
			return rdb_fail_sqlite(to, "copy: continuing the login and credential ids");
		}
		rdb_st_done(st);
	}
	/* verified in the transaction: only a complete copy is committed */
	if ((r = counts(to, &have)) != RDB_OK)
		return r;
	if (have.logins != want.logins || have.senders != want.senders ||
	    have.limits != want.limits || have.credentials != want.credentials ||
	    copied->logins != want.logins)
		return rdb_fail(to, RDB_ERROR, "copy: the target would have %lld/%lld/%lld/%lld "
		                "logins/senders/limits/credentials, the source has "
		                "%lld/%lld/%lld/%lld; nothing kept",
		                (long long)have.logins, (long long)have.senders,
		                (long long)have.limits, (long long)have.credentials,
		                (long long)want.logins, (long long)want.senders,
		                (long long)want.limits, (long long)want.credentials);
	return RDB_OK;
}

enum rdb_result rdb_copy_users(struct rdb *from, struct rdb *to, bool replace,
                               struct rdb_copy_counts *copied, int *which_failed)
{
	enum rdb_result r;
	int which = 0;

	memset(copied, 0, sizeof *copied);
	if (from == NULL || to == NULL)
		return RDB_INVALID;
	if ((r = rdb_begin_read(from)) != RDB_OK) {
		*which_failed = 0;
		return r;
	}
	if ((r = rdb_begin(to)) != RDB_OK) {
		rdb_rollback(from);
		*which_failed = 1;
		return r;
	}
	r = copy_tables(from, to, replace, copied, &which);
	if (r == RDB_OK) {
		which = 1;
		r = rdb_commit(to);
	}
	if (r != RDB_OK)
		rdb_rollback(to);
	rdb_rollback(from); /* the read snapshot: nothing to keep */
	*which_failed = which;
	return r;
}
