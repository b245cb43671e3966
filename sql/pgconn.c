/*
 * pgconn.c — the PostgreSQL connection core (see pgconn.h): resolving the name, the
 * connection and its reconnection, the version check, the statement table, running a
 * statement and mapping what the server says to our results, and the schema's creation
 * and migration.
 *
 * Why so little SQL is built here: every value goes through PQexecPrepared or
 * PQexecParams as a parameter. The only texts sent with PQexec carry no value at all (the
 * kind's schema and migration files, SET of a fixed setting, BEGIN/COMMIT).
 */
#include "pgconn.h"

#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "errbuf.h"
#include "safefs.h"

/* Type OIDs of the columns we read (catalog/pg_type.dat; stable across versions). */
enum {
	OID_BOOL = 16, OID_BYTEA = 17, OID_CHAR = 18, OID_NAME = 19, OID_INT8 = 20,
	OID_INT2 = 21, OID_INT4 = 23, OID_TEXT = 25, OID_OID = 26, OID_VARCHAR = 1043,
};

#define CONNINFO_MAX 4096          /* bytes in a pg: file */
#define INIT_LOCK_KEY 1919706212   /* pg_advisory_xact_lock key of init: "rlyd" */

struct rdb_pg {
	PGconn *h;
	char *conninfo;                /* what we connect with (may hold a password) */
	char display[256];             /* the name without a password, for messages */
	size_t prepared;               /* statements prepared on h */
	bool broken;                   /* reconnect before the next statement */
	bool lost_tx;                  /* the connection died inside a transaction */
	char msg[256];                 /* the last message of the server or libpq */
};

/* ---- names ------------------------------------------------------------------------- */

void rdb_pg_describe(const char *name, char *out, size_t outlen)
{
	PQconninfoOption *opts;
	const char *host = NULL, *port = NULL, *user = NULL, *db = NULL;

	if (strncmp(name, "pg:", 3) == 0) {
		rdb_seterr(out, outlen, "%s", name);
		return;
	}
	opts = PQconninfoParse(name, NULL);
	if (opts == NULL) {
		rdb_seterr(out, outlen, "postgresql://(unparsable URI)");
		return;
	}
	for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
		if (o->val == NULL || o->val[0] == '\0')
			continue;
		if (strcmp(o->keyword, "host") == 0) host = o->val;
		else if (strcmp(o->keyword, "port") == 0) port = o->val;
		else if (strcmp(o->keyword, "user") == 0) user = o->val;
		else if (strcmp(o->keyword, "dbname") == 0) db = o->val;
	}
	rdb_seterr(out, outlen, "postgresql://%s%s%s%s%s/%s", user ? user : "", user ? "@" : "",
	           host ? host : "", port ? ":" : "", port ? port : "", db ? db : "");
	PQconninfoFree(opts);
}

/* Reads the conninfo string of a pg: file. The file may hold a password, so it must be
 * readable by its owner only (checked on the descriptor we read, so a swap between check
 * and read cannot slip another file in). The folders are walked as safefs.h does and the
 * name itself is opened O_NOFOLLOW|O_NONBLOCK: a link planted in a folder another user can
 * write cannot point root's relay-admin at a file of that user's choosing, and a FIFO
 * cannot hang an smtpd process. */
static enum rdb_result read_conninfo_file(const char *path, char **out, char *err,
                                          size_t errlen)
{
	char *buf, name[256], why[256];
	struct stat st;
	ssize_t n;
	size_t len = 0;
	int dirfd, fd;

	dirfd = sfs_open_parent(path, 0, NULL, name, sizeof name, why, sizeof why);
	if (dirfd < 0) {
		rdb_seterr(err, errlen, "pg:%s: %s", path, why);
		return RDB_ERROR;
	}
	fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0) {
		rdb_seterr(err, errlen, "pg:%s: %s", path,
		           errno == ELOOP ? "a symbolic link (name the file itself)" : strerror(errno));
		close(dirfd);
		return RDB_ERROR;
	}
	close(dirfd);
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		rdb_seterr(err, errlen, "pg:%s: not a regular file", path);
		close(fd);
		return RDB_INVALID;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		rdb_seterr(err, errlen, "pg:%s: the file is readable or writable by group or others "
		           "(mode %03o); it may hold a password: chmod 600 it", path,
		           (unsigned)(st.st_mode & 0777));
		close(fd);
		return RDB_INVALID;
	}
	buf = malloc(CONNINFO_MAX + 1);
	if (buf == NULL) {
		close(fd);
		rdb_seterr(err, errlen, "out of memory");
		return RDB_ERROR;
	}
	while (len < CONNINFO_MAX && (n = read(fd, buf + len, CONNINFO_MAX - len)) > 0)
		len += (size_t)n;
	close(fd);
	buf[len] = '\0';
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' ' ||
	                   buf[len - 1] == '\t'))
		buf[--len] = '\0';
	if (len == 0 || len >= CONNINFO_MAX || strchr(buf, '\n') != NULL) {
		rdb_seterr(err, errlen, "pg:%s: expected one line with a libpq connection string "
		           "(host=… dbname=… user=…) of at most %d bytes", path, CONNINFO_MAX - 1);
		explicit_bzero(buf, CONNINFO_MAX + 1);
		free(buf);
		return RDB_INVALID;
	}
	*out = buf;
	return RDB_OK;
}

static enum rdb_result resolve_name(const char *name, char **out, char *err, size_t errlen)
{
	if (strncmp(name, "pg:", 3) == 0)
		return read_conninfo_file(name + 3, out, err, errlen);
	*out = strdup(name);
	if (*out == NULL) {
		rdb_seterr(err, errlen, "out of memory");
		return RDB_ERROR;
	}
	return RDB_OK;
}

static void free_conninfo(char *s)
{
	if (s != NULL) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

/* libpq's messages end with a newline and may run over several lines: one line. */
static void one_line(char *out, size_t outlen, const char *msg)
{
	size_t i = 0;

	if (msg == NULL || msg[0] == '\0')
		msg = "unknown error";
	for (; msg[i] != '\0' && i + 1 < outlen; i++)
		out[i] = msg[i] == '\n' || msg[i] == '\t' ? ' ' : msg[i];
	while (i > 0 && out[i - 1] == ' ')
		i--;
	out[i] = '\0';
}

/* ---- connecting --------------------------------------------------------------------- */

/* Server notices (e.g. "relation already exists, skipping") are not errors; in smtpd a
 * line on stderr would only confuse. Errors come back through results. */
static void ignore_notice(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

/* The defaults come before dbname, which libpq expands (URI or key=value), so anything
 * the name says wins: a bounded connect, and a name in pg_stat_activity. */
static PGconn *connect_db(const char *conninfo, const char *display, char *err, size_t errlen)
{
	const char *const kw[] = { "connect_timeout", "fallback_application_name", "dbname", NULL };
	const char *const val[] = { "10", "smtp-relay", conninfo, NULL };
	PGconn *h = PQconnectdbParams(kw, val, 1);
	char why[256];

	if (h == NULL) {
		rdb_seterr(err, errlen, "%s: out of memory", display);
		return NULL;
	}
	if (PQstatus(h) != CONNECTION_OK) {
		one_line(why, sizeof why, PQerrorMessage(h));
		rdb_seterr(err, errlen, "%s: PostgreSQL unreachable: %s", display, why);
		PQfinish(h);
		return NULL;
	}
	PQsetNoticeProcessor(h, ignore_notice, NULL);
	return h;
}

/* The kind's schema version from relay_schema: RDB_OK, RDB_NOTFOUND (no table or no row:
 * no schema of this kind), RDB_ERROR (why in err). */
static enum rdb_result read_version(PGconn *h, const struct rdb_kind *k, int64_t *version,
                                    char *err, size_t errlen)
{
	const char *params[1] = { k->what };
	PGresult *res = PQexecParams(h, "SELECT version::bigint FROM relay_schema WHERE kind = $1",
	                             1, NULL, params, NULL, NULL, 0);
	enum rdb_result r = RDB_ERROR;
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	char why[256];

	if (res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK) {
		if (PQntuples(res) == 0) {
			r = RDB_NOTFOUND;
		} else {
			*version = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
			r = RDB_OK;
		}
	} else if (state != NULL && strcmp(state, "42P01") == 0) {
		r = RDB_NOTFOUND; /* undefined_table: no relay_schema at all */
	} else {
		one_line(why, sizeof why, res ? PQresultErrorMessage(res) : PQerrorMessage(h));
		rdb_seterr(err, errlen, "reading the schema version: %s", why);
	}
	PQclear(res);
	return r;
}

static bool check_version(const struct rdb_kind *k, enum rdb_mode mode, int64_t v,
                          const char *display, char *err, size_t errlen)
{
	if (v > k->version) {
		rdb_seterr(err, errlen, "%s: %s schema version %lld is newer than this program knows "
		           "(%lld)", display, k->what, (long long)v, (long long)k->version);
		return false;
	}
	/* Unlike an SQLite file, an older PostgreSQL schema is never read as it is (there is
	 * no read_compat here, and every node's relay-milter migrates it at start): readers
	 * too get the clear "run relay-admin init", never a statement that fails to prepare. */
	(void)mode;
	if (v < k->version) {
		rdb_seterr(err, errlen, "%s: %s schema version %lld is older than %lld: run "
		           "relay-admin init to migrate", display, k->what, (long long)v,
		           (long long)k->version);
		return false;
	}
	return true;
}

/* Every statement, readers' too: the schema is always the current version (check_version),
 * and a write prepared in a read-only session fails only if it is run. */
static size_t prepared_count(const struct rdb_kind *k, enum rdb_mode mode)
{
	(void)mode;
	return k->nstmts;
}

static void stmt_name(char *out, size_t outlen, size_t id)
{
	snprintf(out, outlen, "rdb_%zu", id);
}

/* One session on pg->conninfo: connect, read-only if asked, check the version, prepare
 * the statement table. On failure pg->h is NULL and err says why. */
static bool session(struct rdb_conn *c, char *err, size_t errlen)
{
	struct rdb_pg *pg = c->pg;
	const struct rdb_kind *k = c->kind;
	int64_t v = 0;
	enum rdb_result r;
	char why[256];

	if (pg->h != NULL)
		PQfinish(pg->h);
	pg->h = NULL;
	pg->prepared = 0;
	pg->broken = false;
	pg->h = connect_db(pg->conninfo, pg->display, err, errlen);
	if (pg->h == NULL)
		return false;
	if (c->mode == RDB_READONLY) {
		/* readers can never write, whatever a bug upstream asks for */
		PGresult *res = PQexec(pg->h, "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY");
		bool ok = res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK;

		PQclear(res);
		if (!ok) {
			one_line(why, sizeof why, PQerrorMessage(pg->h));
			rdb_seterr(err, errlen, "%s: %s", pg->display, why);
			goto fail;
		}
	}
	r = read_version(pg->h, k, &v, why, sizeof why);
	if (r == RDB_NOTFOUND) {
		rdb_seterr(err, errlen, "%s: no smtp-relay %s schema in this database (create it "
		           "with relay-admin init)", pg->display, k->what);
		goto fail;
	}
	if (r != RDB_OK) {
		rdb_seterr(err, errlen, "%s: %s", pg->display, why);
		goto fail;
	}
	if (!check_version(k, c->mode, v, pg->display, err, errlen))
		goto fail;
	/* Every statement now, as on SQLite: proves the tables are there and keeps the first
	 * request as fast as the others. */
	for (size_t i = 0; i < prepared_count(k, c->mode); i++) {
		char name[32];
		PGresult *res;
		bool ok;

		if (k->pg_stmts[i] == NULL) {
			rdb_seterr(err, errlen, "%s: statement %zu of the %s database has no PostgreSQL "
			           "form", pg->display, i, k->what);
			goto fail;
		}
		stmt_name(name, sizeof name, i);
		res = PQprepare(pg->h, name, k->pg_stmts[i], 0, NULL);
		ok = res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK;
		if (!ok)
			one_line(why, sizeof why, res ? PQresultErrorMessage(res) : PQerrorMessage(pg->h));
		PQclear(res);
		if (!ok) {
			rdb_seterr(err, errlen, "%s: cannot prepare the %s database's statements (is "
			           "the schema intact, and may this role read it?): %s", pg->display,
			           k->what, why);
			goto fail;
		}
		pg->prepared = i + 1;
	}
	return true;
fail:
	PQfinish(pg->h);
	pg->h = NULL;
	pg->prepared = 0;
	return false;
}

enum rdb_result rdb_pg_open(struct rdb_conn *c, const struct rdb_kind *k, const char *name,
                            enum rdb_mode mode, char *err, size_t errlen)
{
	enum rdb_result r;

	c->engine = RDB_ENGINE_PG;
	if (k->pg_stmts == NULL) {
		rdb_seterr(err, errlen, "the %s database cannot be on PostgreSQL yet", k->what);
		return RDB_INVALID;
	}
	c->pg = calloc(1, sizeof *c->pg);
	if (c->pg == NULL) {
		rdb_seterr(err, errlen, "out of memory");
		return RDB_ERROR;
	}
	rdb_pg_describe(name, c->pg->display, sizeof c->pg->display);
	r = resolve_name(name, &c->pg->conninfo, err, errlen);
	if (r != RDB_OK)
		goto fail;
	if (!session(c, err, errlen)) {
		r = RDB_ERROR;
		goto fail;
	}
	return RDB_OK;
fail:
	rdb_pg_close(c);
	return r;
}

void rdb_pg_close(struct rdb_conn *c)
{
	if (c->pg == NULL)
		return;
	if (c->pg->h != NULL)
		PQfinish(c->pg->h);
	free_conninfo(c->pg->conninfo);
	free(c->pg);
	c->pg = NULL;
}

bool rdb_pg_prepared(const struct rdb_conn *c, size_t id)
{
	/* after a lost connection nothing is prepared until the reconnect, which the next
	 * step does: the statement still exists for the caller */
	return c->pg != NULL && id < prepared_count(c->kind, c->mode);
}

bool rdb_pg_in_tx(const struct rdb_conn *c)
{
	PGTransactionStatusType t;

	if (c->pg == NULL)
		return false;
	if (c->pg->lost_tx)
		return true;
	if (c->pg->h == NULL)
		return false;
	t = PQtransactionStatus(c->pg->h);
	return t == PQTRANS_INTRANS || t == PQTRANS_INERROR || t == PQTRANS_ACTIVE;
}

const char *rdb_pg_errmsg(const struct rdb_conn *c)
{
	return c->pg != NULL && c->pg->msg[0] ? c->pg->msg : "no error";
}

/* ---- running a statement ------------------------------------------------------------ */

static bool connection_lost(const char *state)
{
	/* no SQLSTATE: libpq's own failure (the socket died); class 08: connection exception;
	 * 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now */
	return state == NULL || strncmp(state, "08", 2) == 0 || strcmp(state, "57P01") == 0 ||
	       strcmp(state, "57P02") == 0 || strcmp(state, "57P03") == 0;
}

/* Reconnects a broken session before a statement runs. */
static bool ensure_session(struct rdb_conn *c)
{
	struct rdb_pg *pg = c->pg;
	char why[320];

	if (pg->h != NULL && !pg->broken && PQstatus(pg->h) == CONNECTION_OK)
		return true;
	if (session(c, why, sizeof why))
		return true;
	one_line(pg->msg, sizeof pg->msg, why);
	pg->broken = true;
	return false;
}

/* Reconnects now (the session just died); pg->msg says why if it cannot. */
static bool ensure_reconnect(struct rdb_conn *c)
{
	c->pg->broken = true;
	return ensure_session(c);
}

int rdb_pg_step(struct rdb_st *st)
{
	struct rdb_conn *c = st->c;
	struct rdb_pg *pg = c->pg;
	char name[32];

	if (st->ran) {
		if (st->res == NULL || ++st->row >= st->nrows)
			return RDB_STEP_DONE;
		return RDB_STEP_ROW;
	}
	st->ran = true;
	if (pg->lost_tx) {
		/* what the caller thinks is one transaction is gone: say so once (its rollback
		 * usually hears it), then work again */
		pg->lost_tx = false;
		rdb_seterr(pg->msg, sizeof pg->msg, "the connection to PostgreSQL was lost inside a "
		           "transaction, which the server rolled back");
		return RDB_STEP_ERROR;
	}
	if (!ensure_session(c))
		return RDB_STEP_ERROR;
	stmt_name(name, sizeof name, st->id);
	for (int attempt = 0;; attempt++) {
		bool alone = PQtransactionStatus(pg->h) == PQTRANS_IDLE;
		PGresult *res = PQexecPrepared(pg->h, name, st->nparams, st->val, st->len, st->fmt, 1);
		ExecStatusType s = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
		const char *field;
		char state[6] = "";

		if (s == PGRES_TUPLES_OK) {
			st->res = res;
			st->row = 0;
			st->nrows = PQntuples(res);
			c->changes = 0;
			return st->nrows > 0 ? RDB_STEP_ROW : RDB_STEP_DONE;
		}
		if (s == PGRES_COMMAND_OK) {
			c->changes = strtoll(PQcmdTuples(res), NULL, 10);
			PQclear(res);
			return RDB_STEP_DONE;
		}
		/* copied: it lives in res, which is cleared below */
		field = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
		if (field != NULL)
			snprintf(state, sizeof state, "%s", field);
		one_line(pg->msg, sizeof pg->msg,
		         res && PQresultErrorMessage(res)[0] ? PQresultErrorMessage(res)
		                                             : PQerrorMessage(pg->h));
		if (connection_lost(field ? state : NULL) || PQstatus(pg->h) != CONNECTION_OK) {
			char keep[sizeof pg->msg];

			/* A reader's statement outside a transaction changed nothing, so after a
			 * server restart it may run again at once on a new connection: the first
			 * login after the restart need not fail. A writer's might have committed
			 * before the connection died: it fails, and the next call reconnects. */
			if (alone && c->mode == RDB_READONLY && attempt == 0) {
				PQclear(res);
				if (ensure_reconnect(c))
					continue;
				return RDB_STEP_ERROR;
			}
			memcpy(keep, pg->msg, sizeof keep);
			rdb_seterr(pg->msg, sizeof pg->msg, "PostgreSQL connection lost: %s", keep);
			pg->broken = true;
			pg->lost_tx = !alone;
			PQclear(res);
			return RDB_STEP_ERROR;
		}
		if ((strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0) && alone &&
		    attempt == 0) {
			/* a statement on its own is its own transaction: running it again is safe */
			PQclear(res);
			continue;
		}
		PQclear(res);
		if (strcmp(state, "23505") == 0)
			return RDB_STEP_UNIQUE;
		if (strncmp(state, "23", 2) == 0)
			return RDB_STEP_CONSTRAINT;
		return RDB_STEP_ERROR;
	}
}

void rdb_pg_done(struct rdb_st *st)
{
	PQclear(st->res);
	st->res = NULL;
	st->ran = false;
	st->row = st->nrows = 0;
	st->nparams = 0;
	for (int i = 0; i < RDB_ST_PARAMS; i++) {
		st->val[i] = NULL;
		st->len[i] = 0;
		st->fmt[i] = 0;
	}
}

int rdb_pg_col_count(struct rdb_st *st)
{
	return st->res ? PQnfields(st->res) : 0;
}

static bool have_cell(struct rdb_st *st, int i)
{
	return st->res != NULL && st->row < st->nrows && i >= 0 && i < PQnfields(st->res);
}

enum rdb_coltype rdb_pg_col_type(struct rdb_st *st, int i)
{
	if (!have_cell(st, i) || PQgetisnull(st->res, st->row, i))
		return RDB_COL_NULL;
	switch (PQftype(st->res, i)) {
	case OID_BOOL: case OID_INT2: case OID_INT4: case OID_INT8: case OID_OID:
		return RDB_COL_INT;
	case OID_TEXT: case OID_VARCHAR: case OID_NAME: case OID_CHAR:
		return RDB_COL_TEXT;
	case OID_BYTEA:
		return RDB_COL_BLOB;
	default:
		return RDB_COL_OTHER;
	}
}

int64_t rdb_pg_col_int64(struct rdb_st *st, int i)
{
	const unsigned char *p;
	int len;
	uint64_t v = 0;

	if (rdb_pg_col_type(st, i) != RDB_COL_INT)
		return 0;
	p = (const unsigned char *)PQgetvalue(st->res, st->row, i);
	len = PQgetlength(st->res, st->row, i);
	if (len != 1 && len != 2 && len != 4 && len != 8)
		return 0;
	for (int k = 0; k < len; k++)  /* binary format: big-endian two's complement */
		v = v << 8 | p[k];
	if (len < 8 && (p[0] & 0x80) && PQftype(st->res, i) != OID_OID &&
	    PQftype(st->res, i) != OID_BOOL)
		v |= ~UINT64_C(0) << (8 * len);
	return (int64_t)v;
}

const unsigned char *rdb_pg_col_ptr(struct rdb_st *st, int i)
{
	if (!have_cell(st, i) || PQgetisnull(st->res, st->row, i))
		return NULL;
	/* libpq NUL-terminates every value, binary ones included */
	return (const unsigned char *)PQgetvalue(st->res, st->row, i);
}

int rdb_pg_col_bytes(struct rdb_st *st, int i)
{
	if (!have_cell(st, i) || PQgetisnull(st->res, st->row, i))
		return 0;
	return PQgetlength(st->res, st->row, i);
}

/* ---- creating and migrating ----------------------------------------------------------- */

static bool run(PGconn *h, const char *sql, const char *what, char *err, size_t errlen)
{
	PGresult *res = PQexec(h, sql);
	bool ok = res != NULL && (PQresultStatus(res) == PGRES_COMMAND_OK ||
	                          PQresultStatus(res) == PGRES_TUPLES_OK);
	char why[256];

	if (!ok) {
		one_line(why, sizeof why, res ? PQresultErrorMessage(res) : PQerrorMessage(h));
		rdb_seterr(err, errlen, "%s: %s", what, why);
	}
	PQclear(res);
	return ok;
}

static bool set_version(PGconn *h, const struct rdb_kind *k, bool insert, char *err,
                        size_t errlen)
{
	char v[24];
	const char *params[2] = { k->what, v };
	PGresult *res;
	bool ok;
	char why[256];

	snprintf(v, sizeof v, "%lld", (long long)k->version);
	res = PQexecParams(h, insert ? "INSERT INTO relay_schema (kind, version) VALUES ($1, $2)"
	                             : "UPDATE relay_schema SET version = $2 WHERE kind = $1",
	                   2, NULL, params, NULL, NULL, 0);
	ok = res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK;
	if (!ok) {
		one_line(why, sizeof why, res ? PQresultErrorMessage(res) : PQerrorMessage(h));
		rdb_seterr(err, errlen, "recording the schema version: %s", why);
	}
	PQclear(res);
	return ok;
}

/* Inside init's transaction: from `from` (0: none) to k->version. */
static bool migrate(PGconn *h, const struct rdb_kind *k, int64_t from, char *err, size_t errlen)
{
	char what[64];

	if (from == 0) {
		if (!run(h, k->pg_schema_sql, "creating the schema failed", err, errlen))
			return false;
		return set_version(h, k, true, err, errlen);
	}
	for (int64_t v = from + 1; v <= k->version; v++) {
		if (k->pg_migrations == NULL || k->pg_migrations[v] == NULL) {
			rdb_seterr(err, errlen, "no migration from schema version %lld",
			           (long long)(v - 1));
			return false;
		}
		snprintf(what, sizeof what, "migration to schema version %lld failed", (long long)v);
		if (!run(h, k->pg_migrations[v], what, err, errlen))
			return false;
	}
	return set_version(h, k, false, err, errlen);
}

/* Whether relay_schema exists (on the search path), without an error that would abort the
 * transaction around it. */
static bool schema_table_exists(PGconn *h, bool *exists, char *err, size_t errlen)
{
	PGresult *res = PQexec(h, "SELECT to_regclass('relay_schema') IS NOT NULL");
	bool ok = res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;
	char why[256];

	if (ok) {
		*exists = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	} else {
		one_line(why, sizeof why, res ? PQresultErrorMessage(res) : PQerrorMessage(h));
		rdb_seterr(err, errlen, "looking for relay_schema: %s", why);
	}
	PQclear(res);
	return ok;
}

enum rdb_result rdb_pg_init(const struct rdb_kind *k, const char *name, int *before,
                            int *after, char *err, size_t errlen)
{
	char display[256], why[320], *conninfo = NULL;
	PGconn *h = NULL;
	int64_t v = 0;
	bool exists = false;
	enum rdb_result r;

	if (k->pg_schema_sql == NULL) {
		rdb_seterr(err, errlen, "the %s database cannot be on PostgreSQL yet", k->what);
		return RDB_INVALID;
	}
	rdb_pg_describe(name, display, sizeof display);
	r = resolve_name(name, &conninfo, err, errlen);
	if (r != RDB_OK)
		return r;
	r = RDB_ERROR;
	h = connect_db(conninfo, display, err, errlen);
	free_conninfo(conninfo);
	if (h == NULL)
		return RDB_ERROR;
	/* One init at a time per database (the advisory lock ends with the transaction); a
	 * second one then finds the work done. */
	if (!run(h, "BEGIN", "BEGIN", why, sizeof why) ||
	    !run(h, "SELECT pg_advisory_xact_lock(1919706212)", "locking", why, sizeof why) ||
	    !schema_table_exists(h, &exists, why, sizeof why))
		goto fail;
	/* Only when it is missing: CREATE (even IF NOT EXISTS) needs the CREATE privilege on
	 * the schema, which a least-privilege role (relay-milter's, holding only what
	 * `relay-admin grants` prints) lacks, so a current database must need no DDL. */
	if (!exists && !run(h, "CREATE TABLE IF NOT EXISTS relay_schema ("
	                       " kind text PRIMARY KEY, version integer NOT NULL CHECK (version > 0))",
	                    "creating relay_schema", why, sizeof why))
		goto fail;
	r = read_version(h, k, &v, why, sizeof why);
	if (r == RDB_NOTFOUND)
		v = 0;
	else if (r != RDB_OK)
		goto fail;
	r = RDB_ERROR;
	if (before != NULL)
		*before = (int)(v > k->version ? k->version + 1 : v);
	if (v > k->version) {
		rdb_seterr(why, sizeof why, "%s schema version %lld is newer than this program knows "
		           "(%lld); refusing to touch it", k->what, (long long)v, (long long)k->version);
		goto fail;
	}
	if (v < k->version && !migrate(h, k, v, why, sizeof why))
		goto fail;
	if (!run(h, "COMMIT", "COMMIT", why, sizeof why))
		goto fail;
	if (after != NULL)
		*after = (int)k->version;
	PQfinish(h);
	return RDB_OK;
fail:
	rdb_seterr(err, errlen, "%s: %s", display, why);
	PQfinish(h);
	return r;
}

enum rdb_result rdb_pg_probe(const struct rdb_kind *k, const char *name, int64_t *version,
                             char *err, size_t errlen)
{
	char display[256], why[256], *conninfo = NULL;
	PGconn *h;
	enum rdb_result r;

	rdb_pg_describe(name, display, sizeof display);
	r = resolve_name(name, &conninfo, err, errlen);
	if (r != RDB_OK)
		return r == RDB_INVALID ? RDB_ERROR : r;
	h = connect_db(conninfo, display, err, errlen);
	free_conninfo(conninfo);
	if (h == NULL)
		return RDB_ERROR;
	r = read_version(h, k, version, why, sizeof why);
	if (r == RDB_NOTFOUND)
		rdb_seterr(err, errlen, "%s: no smtp-relay %s schema", display, k->what);
	else if (r != RDB_OK)
		rdb_seterr(err, errlen, "%s: %s", display, why);
	PQfinish(h);
	return r;
}
