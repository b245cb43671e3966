/*
 * fixture.c — see fixture.h. Test-support code: inserts logins the way relay-admin stores
 * them (plain_secret BLOB of 33 bytes, scram_sha256 TEXT or NULL), all values bound.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "fixture.h"
#include "rdb.h"

bool fx_create(const char *path)
{
	char err[256] = "";

	if (rdb_init(path, err, sizeof err) != RDB_OK) {
		fprintf(stderr, "fixture: rdb_init %s: %s\n", path, err);
		return false;
	}
	return true;
}

bool fx_add(const char *path, const struct fx_login *login)
{
	static const char sql[] =
		"INSERT INTO logins (name, enabled, expires_at, plain_secret, scram_sha256,"
		" created_at, updated_at, password_changed_at)"
		" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?6)";
	unsigned char plain[RDB_PLAIN_SECRET_LEN];
	char scram[RDB_SCRAM_MAX];
	size_t plen = strlen(login->password);
	sqlite3 *h = NULL;
	sqlite3_stmt *st = NULL;
	bool ok = false;

	if (rdb_secret_plain(login->password, plen, NULL, plain) != RDB_OK ||
	    (login->scram && rdb_secret_scram_sha256(login->password, plen, RDB_SCRAM_ITERATIONS,
	                                             NULL, 0, scram) != RDB_OK)) {
		fprintf(stderr, "fixture: cannot compute secrets for %s\n", login->name);
		goto out;
	}
	if (sqlite3_open_v2(path, &h, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK ||
	    sqlite3_busy_timeout(h, 5000) != SQLITE_OK ||
	    sqlite3_prepare_v2(h, sql, -1, &st, NULL) != SQLITE_OK)
		goto sqlerr;
	sqlite3_bind_text(st, 1, login->name, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, login->enabled ? 1 : 0);
	if (login->expires_at != 0)
		sqlite3_bind_int64(st, 3, login->expires_at);
	else
		sqlite3_bind_null(st, 3);
	sqlite3_bind_blob(st, 4, plain, RDB_PLAIN_SECRET_LEN, SQLITE_STATIC);
	if (login->scram)
		sqlite3_bind_text(st, 5, scram, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 5);
	sqlite3_bind_int64(st, 6, (sqlite3_int64)time(NULL));
	if (sqlite3_step(st) != SQLITE_DONE)
		goto sqlerr;
	ok = true;
	goto out;
sqlerr:
	fprintf(stderr, "fixture: %s: %s\n", path, h ? sqlite3_errmsg(h) : "out of memory");
out:
	sqlite3_finalize(st);
	sqlite3_close(h);
	explicit_bzero(plain, sizeof plain);
	explicit_bzero(scram, sizeof scram);
	return ok;
}
