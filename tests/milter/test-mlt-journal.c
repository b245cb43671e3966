/*
 * test-mlt-journal.c — milter/journal.c on real files and a real state database in a
 * private temporary folder: records appended, recovered into the state database and the
 * files emptied; exactly once when a crash came after the commit and before the files
 * were emptied (the files put back as they were); a torn record at the end and garbage in
 * the middle; the two-file switch and release the writer drives; the v1 -> v2 migration
 * of the state database that adds the journal mark.
 */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "journal.h"
#include "state.h"
#include "scratch.h"
#include "tap.h"

static char db[PATH_MAX + 32];

static struct mlt_record *record(const char *login, const char *qid)
{
	struct mlt_record *r = calloc(1, sizeof *r);

	if (r == NULL)
		abort();
	r->ts = 1700000000;
	r->counted = true;
	r->touch = true;
	r->v[0] = 1;
	r->v[1] = 2;
	r->v[2] = 300;
	r->rcpt_count = 2;
	r->size = 300;
	snprintf(r->login, sizeof r->login, "%s", login);
	snprintf(r->client_addr, sizeof r->client_addr, "192.0.2.1");
	snprintf(r->tls_version, sizeof r->tls_version, "TLSv1.3");
	snprintf(r->env_from, sizeof r->env_from, "%s@example.com", login);
	snprintf(r->queue_id, sizeof r->queue_id, "%s", qid);
	snprintf(r->verdict, sizeof r->verdict, "accepted");
	snprintf(r->reason, sizeof r->reason, "ok");
	return r;
}

/* Appends one record (the writer frees it after its commit; here at once). */
static int append(struct mlt_journal *j, const char *login, const char *qid)
{
	struct mlt_record *r = record(login, qid);
	int rc = mlt_journal_append(j, r);

	free(r);
	return rc;
}

static long long query(const char *sql)
{
	sqlite3 *h = NULL;
	sqlite3_stmt *s = NULL;
	long long v = -1;

	if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(h, sql, -1, &s, NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(h);
	return v;
}

static long long file_size(const char *name)
{
	struct stat sb;

	return stat(scratch_path(name), &sb) == 0 ? (long long)sb.st_size : -1;
}

/* Copies file `from` to `to` (both in scratch_dir): a journal file as a crash would leave it. */
static void copy(const char *from, const char *to)
{
	char buf[65536];
	int in = open(scratch_path(from), O_RDONLY), out;
	ssize_t n;

	out = open(scratch_path(to), O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (in < 0 || out < 0)
		abort();
	while ((n = read(in, buf, sizeof buf)) > 0)
		if (write(out, buf, (size_t)n) != n)
			abort();
	close(in);
	close(out);
}

/* Opens the journal and the state database and recovers; the counts in *out[3]. */
static int recover(size_t out[3])
{
	struct mlt_journal *j = NULL;
	struct rdb_state *st = NULL;
	char err[512] = "";
	int rc = -1;

	if (rdb_state_open(db, RDB_READWRITE, &st, err, sizeof err) == RDB_OK &&
	    mlt_journal_open(db, &j, err, sizeof err) == 0)
		rc = mlt_journal_recover(j, st, &out[0], &out[1], &out[2], err, sizeof err);
	if (rc != 0)
		diag(err);
	mlt_journal_close(j);
	rdb_state_close(st);
	return rc;
}

static void test_recover_once(void)
{
	struct mlt_journal *j = NULL;
	struct rdb_state *st = NULL;
	char err[512] = "";
	size_t n[3];

	is_int(mlt_journal_open(db, &j, err, sizeof err), 0, "journal opened (%s)", err);
	is_int(rdb_state_open(db, RDB_READWRITE, &st, err, sizeof err), RDB_OK, "state opened");
	is_int(mlt_journal_recover(j, st, &n[0], &n[1], &n[2], err, sizeof err), 0,
	       "empty journal recovered");
	is_int(n[0] + n[1] + n[2], 0, "nothing in it");
	rdb_state_close(st);
	is_int(append(j, "alice", "Q1"), 0, "append 1");
	is_int(append(j, "alice", "Q2"), 0, "append 2");
	is_int(append(j, "bob", "Q3"), 0, "append 3");
	ok(file_size("state.db.journal-0") > 96, "three records in journal-0");
	/* the process dies here: nothing was committed */
	mlt_journal_close(j);

	/* the crash before "emptied": keep a copy of the files as they are now */
	copy("state.db.journal-0", "saved-0");
	copy("state.db.journal-1", "saved-1");
	is_int(recover(n), 0, "recovered after the crash");
	is_int(n[0], 3, "3 records applied");
	is_int(n[1], 0, "none skipped");
	is_int(n[2], 0, "nothing torn");
	is_int(query("SELECT count(*) FROM audit WHERE verdict = 'accepted'"), 3, "3 audit records");
	is_int(query("SELECT sum(messages) FROM usage WHERE login = 'alice'"), 2, "alice: 2 counted");
	is_int(query("SELECT sum(recipients) FROM usage WHERE login = 'bob'"), 2,
	       "bob: 2 recipients counted");
	is_int(query("SELECT count(*) FROM last_use"), 2, "last use of both");
	is_int(file_size("state.db.journal-0"), 0, "journal-0 emptied");
	is_int(query("SELECT seq FROM journal_mark"), 3, "the mark says 3");

	/* a crash after the commit and before the files were emptied: the same records again */
	copy("saved-0", "state.db.journal-0");
	copy("saved-1", "state.db.journal-1");
	is_int(recover(n), 0, "recovered the same journal again");
	is_int(n[0], 0, "nothing applied twice");
	is_int(n[1], 3, "3 skipped by the mark");
	is_int(query("SELECT count(*) FROM audit"), 3, "still 3 audit records");
	is_int(query("SELECT sum(messages) FROM usage"), 3, "still 3 counted");
	unlink(scratch_path("saved-0"));
	unlink(scratch_path("saved-1"));
}

static void test_torn_and_garbage(void)
{
	struct mlt_journal *j = NULL;
	struct rdb_state *st = NULL;
	char err[512] = "";
	size_t n[3];
	long long before = query("SELECT sum(messages) FROM usage");
	int fd;

	is_int(rdb_state_open(db, RDB_READWRITE, &st, err, sizeof err), RDB_OK, "state opened");
	is_int(mlt_journal_open(db, &j, err, sizeof err), 0, "journal opened");
	is_int(mlt_journal_recover(j, st, &n[0], &n[1], &n[2], err, sizeof err), 0, "recovered");
	rdb_state_close(st);
	is_int(append(j, "carol", "Q4"), 0, "append");
	/* garbage between two records (a torn append that could not be cut off) */
	fd = open(scratch_path("state.db.journal-0"), O_WRONLY | O_APPEND);
	ok(fd >= 0 && write(fd, "RLJ1 garbage, not a record", 26) == 26, "garbage written");
	close(fd);
	is_int(append(j, "carol", "Q5"), 0, "append after the garbage");
	mlt_journal_close(j);
	/* and half a record at the end: the write a kill -9 cut short */
	copy("state.db.journal-0", "whole");
	{
		char buf[4096];
		int in = open(scratch_path("whole"), O_RDONLY);
		ssize_t got = in >= 0 ? read(in, buf, sizeof buf) : -1;

		close(in);
		fd = open(scratch_path("state.db.journal-0"), O_WRONLY | O_APPEND);
		ok(got > 40 && fd >= 0 && write(fd, buf, 40) == 40, "a torn record appended");
		close(fd);
		unlink(scratch_path("whole"));
	}
	is_int(recover(n), 0, "recovered");
	is_int(n[0], 2, "both whole records applied");
	is_int(n[2], 26 + 40, "garbage and torn tail dropped");
	is_int(query("SELECT sum(messages) FROM usage") - before, 2, "2 more counted");
}

static void test_switch_release(void)
{
	struct mlt_journal *j = NULL;
	struct rdb_state *st = NULL;
	char err[512] = "";
	size_t n[3];
	long long before = query("SELECT sum(messages) FROM usage");

	is_int(rdb_state_open(db, RDB_READWRITE, &st, err, sizeof err), RDB_OK, "state opened");
	is_int(mlt_journal_open(db, &j, err, sizeof err), 0, "journal opened");
	is_int(mlt_journal_recover(j, st, &n[0], &n[1], &n[2], err, sizeof err), 0, "recovered");
	is_int(append(j, "dave", "Q6"), 0, "append to file 0");
	mlt_journal_switch(j);                 /* the writer takes a batch: [Q6] */
	is_int(append(j, "dave", "Q7"), 0, "append to file 1 while the batch is written");
	ok(file_size("state.db.journal-0") > 0 && file_size("state.db.journal-1") > 0,
	   "one record in each file");
	/* the batch [Q6] is committed, with its mark */
	{
		struct mlt_record *r = record("dave", "Q6");

		ok(rdb_state_begin(st) == RDB_OK && rdb_state_usage_add(st, "dave", r->ts, 1, 2, 300)
		   == RDB_OK && rdb_state_journal_set(st, mlt_journal_id(j), 1) == RDB_OK &&
		   rdb_state_commit(st) == RDB_OK, "batch committed with mark 1");
		free(r);
	}
	is_int(mlt_journal_release(j), 0, "release");
	is_int(file_size("state.db.journal-0"), 0, "the file the batch came from is emptied");
	ok(file_size("state.db.journal-1") > 0, "the other keeps Q7");
	mlt_journal_switch(j);                 /* next batch: [Q7] */
	is_int(append(j, "dave", "Q8"), 0, "append to file 0 again");
	mlt_journal_switch(j);                 /* file 1 is not empty: no switch */
	is_int(append(j, "dave", "Q9"), 0, "append stays in file 0");
	/* killed before [Q7] was committed */
	mlt_journal_close(j);
	rdb_state_close(st);
	is_int(recover(n), 0, "recovered");
	is_int(n[0], 3, "Q7, Q8, Q9 applied");
	is_int(n[1], 0, "nothing skipped (Q6 left with its file)");
	is_int(query("SELECT sum(messages) FROM usage") - before, 4, "4 counted, each once");
}

static int no_credential(const struct rdb_audit *a, void *arg)
{
	(void)arg;
	return a->credential == NULL || a->credential[0] != '\0';
}

static void test_migration(void)
{
	char *v1 = scratch_path("v1.db");
	sqlite3 *h = NULL;
	struct rdb_state *st = NULL;
	char err[512] = "";
	uint64_t id = 0, seq = 0;
	int64_t ts = 0;

	/* a version 1 file, as the milter before the journal left it */
	ok(sqlite3_open(v1, &h) == SQLITE_OK && sqlite3_exec(h,
	   "PRAGMA application_id = 1919706227; CREATE TABLE usage (login TEXT NOT NULL COLLATE"
	   " NOCASE, ts INTEGER NOT NULL, messages INTEGER NOT NULL DEFAULT 0, recipients INTEGER"
	   " NOT NULL DEFAULT 0, bytes INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (login, ts))"
	   " WITHOUT ROWID; CREATE TABLE last_use (login TEXT NOT NULL COLLATE NOCASE PRIMARY KEY,"
	   " ts INTEGER NOT NULL, client_addr TEXT NOT NULL DEFAULT '') WITHOUT ROWID;"
	   " CREATE TABLE audit (id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, login TEXT NOT NULL,"
	   " client_addr TEXT NOT NULL, tls_version TEXT NOT NULL, cipher TEXT NOT NULL, env_from"
	   " TEXT NOT NULL, header_from TEXT NOT NULL, rcpt_count INTEGER NOT NULL, size INTEGER"
	   " NOT NULL, queue_id TEXT NOT NULL, verdict TEXT NOT NULL, reason TEXT NOT NULL);"
	   " INSERT INTO audit VALUES (1, 1, 'kim', '', '', '', '', '', 0, 0, '', 'accepted', 'ok');"
	   " PRAGMA user_version = 1;", NULL, NULL, NULL) == SQLITE_OK, "a v1 state database");
	sqlite3_close(h);
	is_int(rdb_state_open(v1, RDB_READONLY, &st, err, sizeof err), RDB_OK,
	       "readers still open a v1 file (%s)", err);
	is_int(rdb_state_journal_get(st, &id, &seq), RDB_ERROR, "no mark through a reader");
	is_int(rdb_state_audit_foreach(st, NULL, 0, 10, no_credential, NULL), RDB_OK,
	       "a reader reads its audit log as the current version shows it (%s)",
	       rdb_state_errmsg(st));
	is_int(rdb_state_credential_last_use(st, "x", "y", &ts, NULL, 0), RDB_NOTFOUND,
	       "and finds no credential use");
	rdb_state_close(st);
	is_int(rdb_state_init(v1, err, sizeof err), RDB_OK, "init migrates it (%s)", err);
	is_int(rdb_state_open(v1, RDB_READWRITE, &st, err, sizeof err), RDB_OK, "opened rw");
	is_int(rdb_state_journal_get(st, &id, &seq), RDB_NOTFOUND, "no mark yet");
	{
		struct rdb_audit a = { .ts = 1, .login = "kim", .verdict = "accepted",
		                       .credential = "phone" };

		is_int(rdb_state_audit_add(st, &a), RDB_OK, "migrated: audit records take a credential");
		is_int(rdb_state_credential_touch(st, "kim", "phone", 5, "192.0.2.1"), RDB_OK,
		       "migrated: credential use is recorded");
	}
	is_int(rdb_state_journal_set(st, UINT64_MAX - 1, 7), RDB_OK, "mark set");
	ok(rdb_state_journal_get(st, &id, &seq) == RDB_OK && id == UINT64_MAX - 1 && seq == 7,
	   "all 64 bits of the id come back");
	rdb_state_close(st);
	unlink(v1);
	unlink(scratch_path("v1.db-wal"));
	unlink(scratch_path("v1.db-shm"));
}

/* App credentials: a record names the credential the message came through; it lands in
 * the audit record and the credential's last use. A record written before the field
 * existed (by the milter of the previous release, recovered after an upgrade) still
 * decodes, with no credential. */
static void le(unsigned char *p, uint64_t v, int n)
{
	for (int k = 0; k < n; k++)
		p[k] = (unsigned char)(v >> (8 * k));
}

/* The record format before app credentials: nine text fields (journal.c's encode() of
 * that release, byte for byte). */
static size_t old_record(unsigned char *buf, const char *login, const char *qid, uint64_t seq)
{
	const char *fields[9] = { login, "192.0.2.1", "TLSv1.3", "", "old@example.com", "", qid,
	                          "accepted", "ok" };
	unsigned char *p = buf + 32;
	uint64_t h = 0xcbf29ce484222325u;

	memset(buf, 0, 32 + 49);
	le(p, 1700000000, 8);
	le(p + 8, 1, 8);
	le(p + 32, 1, 8);
	p[48] = 3; /* counted, touch */
	p += 49;
	for (int k = 0; k < 9; k++) {
		size_t n = strlen(fields[k]);

		le(p, n, 2);
		memcpy(p + 2, fields[k], n);
		p += 2 + n;
	}
	le(buf, 0x314a4c52u, 4);
	le(buf + 4, (uint64_t)(p - buf - 32), 4);
	le(buf + 16, 0x5eed, 8);
	le(buf + 24, seq, 8);
	for (unsigned char *q = buf + 16; q < p; q++) {
		h ^= *q;
		h *= 0x100000001b3u;
	}
	le(buf + 8, h, 8);
	return (size_t)(p - buf);
}

static void test_credential_field(void)
{
	struct mlt_journal *j = NULL;
	struct mlt_record *r = record("carl", "QC1");
	unsigned char buf[1024];
	char err[512] = "";
	size_t n[3], len;
	int fd;

	snprintf(r->credential, sizeof r->credential, "phone");
	is_int(mlt_journal_open(db, &j, err, sizeof err), 0, "journal opened (%s)", err);
	is_int(mlt_journal_append(j, r), 0, "a record with a credential appended");
	free(r);
	mlt_journal_close(j);
	is_int(recover(n), 0, "recovered");
	is_int(n[0], 1, "1 record applied");
	is_int(query("SELECT count(*) FROM audit WHERE login = 'carl' AND credential = 'phone'"), 1,
	       "the audit record names the credential");
	is_int(query("SELECT ts FROM credential_use WHERE login = 'carl' AND label = 'phone'"),
	       1700000000, "the credential's last use");
	is_int(query("SELECT count(*) FROM last_use WHERE login = 'carl'"), 1, "the login's too");

	len = old_record(buf, "olga", "QO1", 1);
	fd = open(scratch_path("state.db.journal-0"), O_WRONLY | O_APPEND);
	ok(fd >= 0 && write(fd, buf, len) == (ssize_t)len, "a record in the old format");
	if (fd >= 0)
		close(fd);
	is_int(recover(n), 0, "recovered");
	is_int(n[0], 1, "the old record applied");
	is_int(n[2], 0, "not taken for a torn one");
	is_int(query("SELECT count(*) FROM audit WHERE login = 'olga' AND credential = ''"), 1,
	       "with no credential");
	is_int(query("SELECT count(*) FROM credential_use WHERE login = 'olga'"), 0,
	       "and no credential use");
}

/* A counter reset record (milter/reset.h): the login's rows at or before its time lose the
 * metrics, the audit record is written the first time the file sees the reset id only. */
static struct mlt_record *reset_record(int64_t id, unsigned metrics, int64_t ts)
{
	struct mlt_record *r = calloc(1, sizeof *r);

	if (r == NULL)
		abort();
	r->reset_id = id;
	r->reset_metrics = metrics;
	r->ts = ts;
	snprintf(r->login, sizeof r->login, "rs");
	snprintf(r->verdict, sizeof r->verdict, "admin");
	snprintf(r->reason, sizeof r->reason, "usage reset");
	return r;
}

static enum rdb_result write_one(struct rdb_state *st, struct mlt_record *r)
{
	enum rdb_result res = rdb_state_begin(st);

	if (res == RDB_OK && (res = mlt_record_write(st, r)) == RDB_OK)
		res = rdb_state_commit(st);
	if (res != RDB_OK)
		rdb_state_rollback(st);
	free(r);
	return res;
}

static void test_reset_record(void)
{
	struct rdb_state *st = NULL;
	struct mlt_record *m;
	char err[512] = "";
	int64_t mark = -1;

	is_int(rdb_state_open(db, RDB_READWRITE, &st, err, sizeof err), RDB_OK, "state opened");
	is_int(rdb_state_reset_mark_get(st, &mark), RDB_OK, "reset mark read");
	is_int(mark, 0, "no reset applied yet");
	for (int64_t ts = 1700000100; ts <= 1700000300; ts += 100) {
		m = record("RS", "QR");
		m->ts = ts;
		is_int(write_one(st, m), RDB_OK, "a counted message at %lld", (long long)ts);
	}
	is_int(write_one(st, reset_record(5, 1u << 1, 1700000200)), RDB_OK, "reset 5: recipients");
	is_int(query("SELECT sum(recipients) FROM usage WHERE login = 'rs'"), 2,
	       "recipients up to the reset's time are 0, case aside");
	is_int(query("SELECT sum(messages) FROM usage WHERE login = 'rs'"), 3, "messages stay");
	is_int(query("SELECT count(*) FROM audit WHERE verdict = 'admin'"), 1, "one admin record");
	is_int(write_one(st, reset_record(5, 7, 1700000200)), RDB_OK, "reset 5 again (a restart)");
	is_int(query("SELECT count(*) FROM audit WHERE verdict = 'admin'"), 1, "still one record");
	is_int(query("SELECT count(*) FROM usage WHERE login = 'rs'"), 1,
	       "but the rows are cleared again: all-zero rows go");
	is_int(write_one(st, reset_record(4, 7, 1700000300)), RDB_OK, "an older id");
	is_int(query("SELECT count(*) FROM audit WHERE verdict = 'admin'"), 1, "is not audited");
	ok(rdb_state_reset_mark_get(st, &mark) == RDB_OK && mark == 5, "the mark stays at 5");
	rdb_state_close(st);
}

int main(void)
{
	char err[512] = "";

	if (scratch_make("test-mlt-journal") != 0)
		return 1;
	snprintf(db, sizeof db, "%s/state.db", scratch_dir);
	is_int(rdb_state_init(db, err, sizeof err), RDB_OK, "state database created (%s)", err);
	is_int(query("PRAGMA user_version"), RDB_STATE_SCHEMA_VERSION, "at the current version");
	test_recover_once();
	test_torn_and_garbage();
	test_credential_field();
	test_switch_release();
	test_migration();
	test_reset_record();
	{
		static const char *const files[] = { "state.db", "state.db-wal", "state.db-shm",
		                                      "state.db.journal-0", "state.db.journal-1" };

		scratch_remove(files, sizeof files / sizeof files[0]);
	}
	return tap_done();
}
