/*
 * pgstate.c — the state database on PostgreSQL (see pgstate.h and admit.h).
 *
 * One statement table, prepared on every connect; every value is a bound parameter ($n,
 * sent as text), every column is checked for NULL and parsed strictly before use. The
 * schema is sql/pg-state-schema.sql, embedded by embed-sql.py and created by
 * rdb_pgstate_init() in one transaction under an advisory lock (two nodes starting at
 * once must not both create it). Why database time: nodes' clocks differ; usage and
 * reservations are shared, so their times come from now() of the one database.
 *
 * Admission (admit.h) runs four or five statements in one transaction: the advisory lock
 * with now(), the window sums of every limit (one query over unnest() of the windows),
 * the other reservations, then the write. Only a refusal reads the login's usage rows,
 * to compute the time until it fits with rdb_limits_wait(), the SQLite path's arithmetic.
 */
#include "pgstate.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "errbuf.h"

#define PG_STATE_VERSION 1              /* relay_state_meta.version this program writes */
#define PG_LOCK_CLASS 1919706227        /* advisory lock namespace: 0x726C7973, "rlys" */
#define PG_LOCK_CLASS_S "1919706227"    /* the same, in the statement text */
#define PG_INIT_LOCK 0                  /* (class, 0): creating the schema */
#define CONNINFO_MAX 4096

/* Embedded from sql/pg-state-schema.sql by embed-sql.py. */
extern const char rdb_pg_state_schema_sql[];

enum {
	P_BEGIN, P_COMMIT, P_ROLLBACK, P_VERSION,
	P_AUDIT_ADD, P_USAGE_ADD, P_USAGE_MERGE, P_TOUCH, P_LAST_USE_MERGE,
	P_PRUNE_USAGE, P_PRUNE_AUDIT, P_PRUNE_RESV,
	P_USAGE_ALL, P_USAGE_ONE, P_AUDIT_ALL, P_AUDIT_ONE, P_LAST_USE, P_LAST_USE_ALL,
	P_A_LOCK, P_A_SUMS, P_A_RESERVED, P_A_ROWS, P_A_INSERT, P_A_UPDATE, P_A_DELETE,
	P_A_COUNT,
	P_COUNT_
};

#define AUDIT_COLS "id, ts, login, client_addr, tls_version, cipher, env_from, header_from," \
                   " rcpt_count, size, queue_id, verdict, reason"
#define DB_NOW "floor(extract(epoch FROM now()))::bigint"

static const char *const psql[P_COUNT_] = {
	[P_BEGIN] = "BEGIN",
	[P_COMMIT] = "COMMIT",
	[P_ROLLBACK] = "ROLLBACK",
	[P_VERSION] = "SELECT kind, version FROM relay_state_meta WHERE id = 1",
	[P_AUDIT_ADD] = "INSERT INTO audit (ts, login, client_addr, tls_version, cipher, env_from,"
	                " header_from, rcpt_count, size, queue_id, verdict, reason)"
	                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
	[P_USAGE_ADD] = "INSERT INTO usage (login, ts, messages, recipients, bytes)"
	                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT ((lower(login)), ts) DO UPDATE SET"
	                " messages = usage.messages + excluded.messages,"
	                " recipients = usage.recipients + excluded.recipients,"
	                " bytes = usage.bytes + excluded.bytes",
	/* copying or carrying counters: the larger count of a second wins (state.h) */
	[P_USAGE_MERGE] = "INSERT INTO usage (login, ts, messages, recipients, bytes)"
	                  " VALUES ($1, $2, $3, $4, $5) ON CONFLICT ((lower(login)), ts) DO UPDATE"
	                  " SET messages = greatest(usage.messages, excluded.messages),"
	                  " recipients = greatest(usage.recipients, excluded.recipients),"
	                  " bytes = greatest(usage.bytes, excluded.bytes)",
	[P_TOUCH] = "INSERT INTO last_use (login, ts, client_addr) VALUES ($1, $2, $3)"
	            " ON CONFLICT ((lower(login))) DO UPDATE SET"
	            " ts = greatest(last_use.ts, excluded.ts), client_addr = excluded.client_addr",
	[P_LAST_USE_MERGE] = "INSERT INTO last_use (login, ts, client_addr) VALUES ($1, $2, $3)"
	                     " ON CONFLICT ((lower(login))) DO UPDATE SET ts = excluded.ts,"
	                     " client_addr = excluded.client_addr WHERE excluded.ts > last_use.ts",
	[P_PRUNE_USAGE] = "DELETE FROM usage WHERE ts <= $1",
	[P_PRUNE_AUDIT] = "DELETE FROM audit WHERE ts <= $1",
	[P_PRUNE_RESV] = "DELETE FROM reservations WHERE expires_at <= now()",
	[P_USAGE_ALL] = "SELECT login, ts, messages, recipients, bytes FROM usage WHERE ts > $1"
	                " ORDER BY lower(login), ts",
	[P_USAGE_ONE] = "SELECT login, ts, messages, recipients, bytes FROM usage"
	                " WHERE lower(login) = lower($2) AND ts > $1 ORDER BY ts",
	[P_AUDIT_ALL] = "SELECT * FROM (SELECT " AUDIT_COLS " FROM audit WHERE ts >= $1"
	                " ORDER BY id DESC LIMIT $2) AS newest ORDER BY id",
	[P_AUDIT_ONE] = "SELECT * FROM (SELECT " AUDIT_COLS " FROM audit WHERE ts >= $1"
	                " AND lower(login) = lower($2) ORDER BY id DESC LIMIT $3) AS newest"
	                " ORDER BY id",
	[P_LAST_USE] = "SELECT ts, client_addr FROM last_use WHERE lower(login) = lower($1)",
	[P_LAST_USE_ALL] = "SELECT login, ts, client_addr FROM last_use ORDER BY lower(login)",
	/* admission: serialise the login's checks across every node, and read the clock */
	[P_A_LOCK] = "SELECT pg_advisory_xact_lock(" PG_LOCK_CLASS_S ", hashtext(lower($1))), " DB_NOW,
	/* per limit window (in the order given), the login's usage in the window ending now */
	[P_A_SUMS] = "SELECT w.i, coalesce(sum(u.messages), 0)::bigint,"
	             " coalesce(sum(u.recipients), 0)::bigint, coalesce(sum(u.bytes), 0)::bigint"
	             " FROM unnest($2::bigint[]) WITH ORDINALITY AS w(win, i)"
	             " LEFT JOIN usage u ON lower(u.login) = lower($1)"
	             " AND u.ts > " DB_NOW " - w.win GROUP BY w.i ORDER BY w.i",
	/* open reservations of every node but this message's own, and whether that one lives */
	[P_A_RESERVED] = "SELECT coalesce(sum(messages) FILTER (WHERE id <> $2), 0)::bigint,"
	                 " coalesce(sum(recipients) FILTER (WHERE id <> $2), 0)::bigint,"
	                 " coalesce(sum(bytes) FILTER (WHERE id <> $2), 0)::bigint,"
	                 " count(*) FILTER (WHERE id = $2) FROM reservations"
	                 " WHERE lower(login) = lower($1) AND expires_at > now()",
	/* only on a refusal: the rows that say when it will fit */
	[P_A_ROWS] = "SELECT ts, messages, recipients, bytes FROM usage"
	             " WHERE lower(login) = lower($1) AND ts > " DB_NOW " - $2 ORDER BY ts",
	[P_A_INSERT] = "INSERT INTO reservations (login, node, messages, recipients, bytes,"
	               " expires_at) VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6))"
	               " RETURNING id",
	[P_A_UPDATE] = "UPDATE reservations SET messages = $2, recipients = $3, bytes = $4,"
	               " expires_at = now() + make_interval(secs => $5) WHERE id = $1",
	[P_A_DELETE] = "DELETE FROM reservations WHERE id = $1",
	[P_A_COUNT] = "INSERT INTO usage (login, ts, messages, recipients, bytes)"
	              " VALUES ($1, " DB_NOW ", $2, $3, $4) ON CONFLICT ((lower(login)), ts)"
	              " DO UPDATE SET messages = usage.messages + excluded.messages,"
	              " recipients = usage.recipients + excluded.recipients,"
	              " bytes = usage.bytes + excluded.bytes",
};

struct rdb_pgstate {
	PGconn *pc;
	char *conninfo;
	enum rdb_mode mode;
	bool in_tx;
	char err[320];
};

/* ---- names and connections ----------------------------------------------------------- */

bool rdb_state_is_pg_name(const char *name)
{
	return name != NULL && (strncmp(name, "postgresql://", 13) == 0 ||
	                        strncmp(name, "postgres://", 11) == 0 || strncmp(name, "pg:", 3) == 0);
}

/* The conninfo a `pg:/path` file holds: the file must be a regular file its owner alone may
 * read (it may carry a password), checked on the open descriptor like sql/safefs does. */
static char *conninfo_file(const char *path, char *err, size_t errlen)
{
	struct stat sb;
	char *buf;
	ssize_t n;
	int fd;

	if (path[0] != '/') {
		rdb_seterr(err, errlen, "pg:%s: the conninfo file must be an absolute path", path);
		return NULL;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		rdb_seterr(err, errlen, "pg:%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || (sb.st_mode & 077) != 0) {
		rdb_seterr(err, errlen, "pg:%s: must be a regular file that only its owner can read"
		           " (chmod 600): it may hold the database password", path);
		close(fd);
		return NULL;
	}
	buf = malloc(CONNINFO_MAX + 1);
	if (buf == NULL) {
		close(fd);
		rdb_seterr(err, errlen, "out of memory");
		return NULL;
	}
	n = read(fd, buf, CONNINFO_MAX + 1);
	close(fd);
	if (n < 0 || n > CONNINFO_MAX || memchr(buf, '\0', (size_t)n) != NULL) {
		rdb_seterr(err, errlen, "pg:%s: %s", path, n < 0 ? strerror(errno) :
		           "not a conninfo string (too long or binary)");
		free(buf);
		return NULL;
	}
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
		n--;
	buf[n] = '\0';
	return buf;
}

static char *conninfo_of(const char *name, char *err, size_t errlen)
{
	char *s;

	if (strncmp(name, "pg:", 3) == 0)
		return conninfo_file(name + 3, err, errlen);
	s = strdup(name);
	if (s == NULL)
		rdb_seterr(err, errlen, "out of memory");
	return s;
}

/* libpq's message, one line (it ends in a newline; it may hold two). */
static void pg_message(char *out, size_t outlen, const char *what, const char *msg)
{
	size_t len;

	rdb_seterr(out, outlen, "%s: %s", what, msg && *msg ? msg : "unknown error");
	len = strlen(out);
	while (len > 0 && (out[len - 1] == '\n' || out[len - 1] == ' '))
		out[--len] = '\0';
	for (char *p = out; *p; p++)
		if (*p == '\n' || *p == '\t')
			*p = ' ';
}

static enum rdb_result fail_conn(struct rdb_pgstate *p, const char *what)
{
	pg_message(p->err, sizeof p->err, what, p->pc ? PQerrorMessage(p->pc) : "not connected");
	return RDB_ERROR;
}

static enum rdb_result read_version(PGconn *pc, int64_t *version, char *err, size_t errlen);

/* Connects, checks that the database holds our schema at our version, prepares the table.
 * Defaults first, the caller's conninfo last: libpq takes the last value of a keyword, so
 * the admin's own connect_timeout wins over ours. */
static enum rdb_result connect_db(struct rdb_pgstate *p)
{
	static const char *const keys[] = { "connect_timeout", "application_name", "dbname", NULL };
	const char *vals[] = { "5", "relay-state", p->conninfo, NULL };
	enum rdb_result r;
	int64_t version = 0;
	PGresult *res;

	if (p->pc != NULL)
		PQfinish(p->pc);
	p->in_tx = false;
	p->pc = PQconnectdbParams(keys, vals, 1);
	if (p->pc == NULL || PQstatus(p->pc) != CONNECTION_OK)
		return fail_conn(p, "state database: cannot connect");
	/* a database that hangs must not hold a milter callback past Postfix's timeouts */
	res = PQexec(p->pc, "SET statement_timeout = '10s'");
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		PQclear(res);
		return fail_conn(p, "state database: setting statement_timeout");
	}
	PQclear(res);
	if ((r = read_version(p->pc, &version, p->err, sizeof p->err)) != RDB_OK)
		goto refuse;
	if (version != PG_STATE_VERSION) {
		rdb_seterr(p->err, sizeof p->err, "state database: schema version %" PRId64 ", this"
		           " program needs %d (run relay-admin init)", version, PG_STATE_VERSION);
		r = RDB_INVALID;
		goto refuse;
	}
	for (int k = 0; k < P_COUNT_; k++) {
		char id[16];

		snprintf(id, sizeof id, "rs%d", k);
		res = PQprepare(p->pc, id, psql[k], 0, NULL);
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			char what[64];

			PQclear(res);
			snprintf(what, sizeof what, "state database: preparing statement %d", k);
			return fail_conn(p, what);
		}
		PQclear(res);
	}
	return RDB_OK;
refuse:
	/* not ours (or not yet): no connection is kept to a database we may not use */
	PQfinish(p->pc);
	p->pc = NULL;
	return r == RDB_NOTFOUND ? RDB_ERROR : r;
}

/* The connection is usable, or made so: outside a transaction a lost one is replaced. */
static enum rdb_result ensure(struct rdb_pgstate *p)
{
	if (p->pc != NULL && PQstatus(p->pc) == CONNECTION_OK)
		return RDB_OK;
	if (p->in_tx) {
		p->in_tx = false;
		return fail_conn(p, "state database: connection lost in a transaction");
	}
	return connect_db(p);
}

/* Runs prepared statement `id` with n text parameters; NULL (error recorded) unless the
 * result has the status a statement of its kind has. */
static PGresult *run(struct rdb_pgstate *p, int id, int n, const char *const *vals)
{
	char name[16];
	PGresult *res;
	ExecStatusType s;

	if (ensure(p) != RDB_OK)
		return NULL;
	snprintf(name, sizeof name, "rs%d", id);
	res = PQexecPrepared(p->pc, name, n, vals, NULL, NULL, 0);
	s = PQresultStatus(res);
	if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK)
		return res;
	{
		char what[64];

		snprintf(what, sizeof what, "state database (statement %d)", id);
		pg_message(p->err, sizeof p->err, what,
		           res ? PQresultErrorMessage(res) : PQerrorMessage(p->pc));
	}
	PQclear(res);
	return NULL;
}

static enum rdb_result exec0(struct rdb_pgstate *p, int id, int n, const char *const *vals)
{
	PGresult *res = run(p, id, n, vals);

	if (res == NULL)
		return RDB_ERROR;
	PQclear(res);
	return RDB_OK;
}

/* ---- values ------------------------------------------------------------------------- */

struct num {
	char s[24];
};

static const char *i64(struct num *b, int64_t v)
{
	snprintf(b->s, sizeof b->s, "%" PRId64, v);
	return b->s;
}

static const char *u64c(struct num *b, uint64_t v)
{
	return i64(b, v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v);
}

/* A non-NULL integer column, strictly parsed. */
static bool col_i64(const PGresult *res, int row, int col, int64_t *out)
{
	const char *s;
	char *end;
	long long v;

	if (PQgetisnull(res, row, col))
		return false;
	s = PQgetvalue(res, row, col);
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0')
		return false;
	*out = v;
	return true;
}

static bool col_u64(const PGresult *res, int row, int col, uint64_t *out)
{
	int64_t v;

	if (!col_i64(res, row, col, &v) || v < 0)
		return false;
	*out = (uint64_t)v;
	return true;
}

static bool col_text(const PGresult *res, int row, int col, const char **out)
{
	if (PQgetisnull(res, row, col))
		return false;
	*out = PQgetvalue(res, row, col);
	return true;
}

static enum rdb_result shape(struct rdb_pgstate *p, const char *what)
{
	rdb_seterr(p->err, sizeof p->err, "state database: %s row has an unexpected shape", what);
	return RDB_ERROR;
}

/* The audit text rule of state.h: clamped, control characters as '?'; NULL is "". */
struct clean {
	char s[RDB_AUDIT_FIELD_MAX + 1];
};

static const char *clean(struct clean *b, const char *in)
{
	size_t o = 0;

	for (; in != NULL && *in != '\0' && o < RDB_AUDIT_FIELD_MAX; in++)
		b->s[o++] = ((unsigned char)*in < 0x20 || *in == 0x7f) ? '?' : *in;
	b->s[o] = '\0';
	return b->s;
}

/* ---- schema, open, close ------------------------------------------------------------ */

static struct rdb_pgstate *pg_new(const char *name, enum rdb_mode mode, char *err, size_t errlen)
{
	struct rdb_pgstate *p = calloc(1, sizeof *p);

	if (p == NULL) {
		rdb_seterr(err, errlen, "out of memory");
		return NULL;
	}
	p->mode = mode;
	p->conninfo = conninfo_of(name, err, errlen);
	if (p->conninfo == NULL) {
		free(p);
		return NULL;
	}
	return p;
}

void rdb_pgstate_close(struct rdb_pgstate *p)
{
	if (p == NULL)
		return;
	if (p->pc != NULL)
		PQfinish(p->pc);
	if (p->conninfo != NULL) {
		explicit_bzero(p->conninfo, strlen(p->conninfo));
		free(p->conninfo);
	}
	free(p);
}

const char *rdb_pgstate_errmsg(const struct rdb_pgstate *p)
{
	return p->err[0] ? p->err : "no error";
}

/* Reads relay_state_meta with a plain connection (the statement table needs the tables):
 * RDB_OK with *version, RDB_NOTFOUND when there is no schema at all, RDB_INVALID when
 * there are tables of that name that are not ours. */
static enum rdb_result read_version(PGconn *pc, int64_t *version, char *err, size_t errlen)
{
	PGresult *res = PQexec(pc, "SELECT to_regclass('relay_state_meta') IS NOT NULL,"
	                           " to_regclass('usage') IS NOT NULL");
	enum rdb_result r;

	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		pg_message(err, errlen, "state database", PQerrorMessage(pc));
		PQclear(res);
		return RDB_ERROR;
	}
	if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
		r = strcmp(PQgetvalue(res, 0, 1), "t") == 0 ? RDB_INVALID : RDB_NOTFOUND;
		if (r == RDB_INVALID)
			rdb_seterr(err, errlen, "state database: has a table \"usage\" but no"
			           " relay_state_meta: not a relay state database");
		else
			rdb_seterr(err, errlen, "state database: no state schema in this database (relay-milter"
			           " creates it on start, or run relay-admin init)");
		PQclear(res);
		return r;
	}
	PQclear(res);
	res = PQexec(pc, "SELECT kind, version FROM relay_state_meta WHERE id = 1");
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		pg_message(err, errlen, "state database", PQerrorMessage(pc));
		PQclear(res);
		return RDB_ERROR;
	}
	if (PQntuples(res) != 1 || strcmp(PQgetvalue(res, 0, 0), "relay-state") != 0 ||
	    !col_i64(res, 0, 1, version)) {
		rdb_seterr(err, errlen, "state database: relay_state_meta is not a relay state header");
		PQclear(res);
		return RDB_INVALID;
	}
	PQclear(res);
	return RDB_OK;
}

static PGconn *plain_connect(const char *name, char *err, size_t errlen)
{
	static const char *const keys[] = { "connect_timeout", "application_name", "dbname", NULL };
	char *ci = conninfo_of(name, err, errlen);
	const char *vals[] = { "5", "relay-state", ci, NULL };
	PGconn *pc;

	if (ci == NULL)
		return NULL;
	pc = PQconnectdbParams(keys, vals, 1);
	explicit_bzero(ci, strlen(ci));
	free(ci);
	if (pc == NULL || PQstatus(pc) != CONNECTION_OK) {
		pg_message(err, errlen, "state database: cannot connect", pc ? PQerrorMessage(pc) : NULL);
		PQfinish(pc);
		return NULL;
	}
	return pc;
}

static bool plain_exec(PGconn *pc, const char *sql, char *err, size_t errlen)
{
	PGresult *res = PQexec(pc, sql);
	ExecStatusType s = PQresultStatus(res);

	PQclear(res);
	if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK)
		return true;
	pg_message(err, errlen, "state database", PQerrorMessage(pc));
	return false;
}

enum rdb_result rdb_pgstate_init(const char *name, char *err, size_t errlen)
{
	PGconn *pc = plain_connect(name, err, errlen);
	enum rdb_result r = RDB_ERROR;
	int64_t version = 0;
	char lock[96];

	if (pc == NULL)
		return RDB_ERROR;
	snprintf(lock, sizeof lock, "SELECT pg_advisory_xact_lock(%d, %d)", PG_LOCK_CLASS,
	         PG_INIT_LOCK);
	if (!plain_exec(pc, "BEGIN", err, errlen) || !plain_exec(pc, lock, err, errlen))
		goto out;
	r = read_version(pc, &version, err, errlen);
	if (r == RDB_NOTFOUND) {
		if (!plain_exec(pc, rdb_pg_state_schema_sql, err, errlen)) {
			r = RDB_ERROR;
			goto out;
		}
		r = RDB_OK;
	} else if (r == RDB_OK && version > PG_STATE_VERSION) {
		rdb_seterr(err, errlen, "state database: schema version %" PRId64 " is newer than this"
		           " program's (%d): upgrade smtp-relay", version, PG_STATE_VERSION);
		r = RDB_INVALID;
	}
	if (r == RDB_OK && !plain_exec(pc, "COMMIT", err, errlen))
		r = RDB_ERROR;
out:
	PQfinish(pc);
	return r;
}

enum rdb_result rdb_pgstate_probe(const char *name, int64_t *version, char *err, size_t errlen)
{
	PGconn *pc = plain_connect(name, err, errlen);
	enum rdb_result r;

	if (pc == NULL)
		return RDB_ERROR;
	r = read_version(pc, version, err, errlen);
	PQfinish(pc);
	return r;
}

enum rdb_result rdb_pgstate_open(const char *name, enum rdb_mode mode, struct rdb_pgstate **out,
                                 char *err, size_t errlen)
{
	struct rdb_pgstate *p = pg_new(name, mode, err, errlen);
	enum rdb_result r;

	*out = NULL;
	if (p == NULL)
		return RDB_ERROR;
	if ((r = connect_db(p)) != RDB_OK) {
		rdb_seterr(err, errlen, "%s", p->err);
		rdb_pgstate_close(p);
		return r;
	}
	*out = p;
	return RDB_OK;
}

/* ---- transactions and writes -------------------------------------------------------- */

enum rdb_result rdb_pgstate_begin(struct rdb_pgstate *p)
{
	if (exec0(p, P_BEGIN, 0, NULL) != RDB_OK)
		return RDB_ERROR;
	p->in_tx = true;
	return RDB_OK;
}

enum rdb_result rdb_pgstate_commit(struct rdb_pgstate *p)
{
	enum rdb_result r = exec0(p, P_COMMIT, 0, NULL);

	p->in_tx = false;
	return r;
}

void rdb_pgstate_rollback(struct rdb_pgstate *p)
{
	if (p->in_tx && p->pc != NULL && PQstatus(p->pc) == CONNECTION_OK) {
		char name[16];

		snprintf(name, sizeof name, "rs%d", P_ROLLBACK);
		PQclear(PQexecPrepared(p->pc, name, 0, NULL, NULL, NULL, 0));
	}
	p->in_tx = false;
}

enum rdb_result rdb_pgstate_audit_add(struct rdb_pgstate *p, const struct rdb_audit *a)
{
	struct num ts, rc, sz;
	struct clean c[9];
	const char *v[12] = {
		i64(&ts, a->ts), clean(&c[0], a->login), clean(&c[1], a->client_addr),
		clean(&c[2], a->tls_version), clean(&c[3], a->cipher), clean(&c[4], a->env_from),
		clean(&c[5], a->header_from), u64c(&rc, a->rcpt_count), u64c(&sz, a->size),
		clean(&c[6], a->queue_id), clean(&c[7], a->verdict), clean(&c[8], a->reason),
	};

	return exec0(p, P_AUDIT_ADD, 12, v);
}

enum rdb_result rdb_pgstate_usage_write(struct rdb_pgstate *p, bool merge, const char *login,
                                        int64_t ts, const uint64_t v[3])
{
	struct num t, a, b, c;
	const char *vals[5] = { login, i64(&t, ts), u64c(&a, v[0]), u64c(&b, v[1]), u64c(&c, v[2]) };

	return exec0(p, merge ? P_USAGE_MERGE : P_USAGE_ADD, 5, vals);
}

enum rdb_result rdb_pgstate_last_use_write(struct rdb_pgstate *p, bool merge, const char *login,
                                           int64_t ts, const char *client_addr)
{
	struct num t;
	struct clean c;
	const char *vals[3] = { login, i64(&t, ts), clean(&c, client_addr) };

	return exec0(p, merge ? P_LAST_USE_MERGE : P_TOUCH, 3, vals);
}

enum rdb_result rdb_pgstate_prune(struct rdb_pgstate *p, int64_t usage_before,
                                  int64_t audit_before)
{
	struct num u, a;
	const char *vu[1] = { i64(&u, usage_before) }, *va[1] = { i64(&a, audit_before) };

	if (exec0(p, P_PRUNE_USAGE, 1, vu) != RDB_OK || exec0(p, P_PRUNE_AUDIT, 1, va) != RDB_OK)
		return RDB_ERROR;
	/* reservations of a node that died: they stopped counting at expires_at already */
	return exec0(p, P_PRUNE_RESV, 0, NULL);
}

/* ---- reads ---------------------------------------------------------------------------- */

enum rdb_result rdb_pgstate_usage_foreach(struct rdb_pgstate *p, const char *login,
                                          int64_t since,
                                          int (*fn)(const char *login, int64_t ts,
                                                    const uint64_t v[3], void *arg),
                                          void *arg)
{
	struct num s;
	const char *vals[2] = { i64(&s, since), login };
	PGresult *res = run(p, login ? P_USAGE_ONE : P_USAGE_ALL, login ? 2 : 1, vals);
	enum rdb_result r = RDB_OK;

	if (res == NULL)
		return RDB_ERROR;
	for (int i = 0; i < PQntuples(res) && r == RDB_OK; i++) {
		const char *name;
		int64_t ts;
		uint64_t v[3];

		if (PQnfields(res) != 5 || !col_text(res, i, 0, &name) || !col_i64(res, i, 1, &ts) ||
		    !col_u64(res, i, 2, &v[0]) || !col_u64(res, i, 3, &v[1]) ||
		    !col_u64(res, i, 4, &v[2]))
			r = shape(p, "usage");
		else if (fn(name, ts, v, arg) != 0) {
			rdb_seterr(p->err, sizeof p->err, "a usage row could not be kept (out of memory?)");
			r = RDB_ERROR;
		}
	}
	PQclear(res);
	return r;
}

enum rdb_result rdb_pgstate_audit_foreach(struct rdb_pgstate *p, const char *login,
                                          int64_t since, int64_t limit,
                                          int (*fn)(const struct rdb_audit *a, void *arg),
                                          void *arg)
{
	struct num s, l;
	const char *one[3] = { i64(&s, since), login, i64(&l, limit) };
	const char *all[2] = { one[0], one[2] };
	PGresult *res = login ? run(p, P_AUDIT_ONE, 3, one) : run(p, P_AUDIT_ALL, 2, all);
	enum rdb_result r = RDB_OK;

	if (res == NULL)
		return RDB_ERROR;
	for (int i = 0; i < PQntuples(res) && r == RDB_OK; i++) {
		static const int texts[] = { 2, 3, 4, 5, 6, 7, 10, 11, 12 };
		const char *t[13] = { NULL };
		struct rdb_audit a;
		bool okay = PQnfields(res) == 13;

		memset(&a, 0, sizeof a);
		okay = okay && col_i64(res, i, 0, &a.id) && col_i64(res, i, 1, &a.ts) &&
		       col_u64(res, i, 8, &a.rcpt_count) && col_u64(res, i, 9, &a.size);
		for (size_t k = 0; okay && k < sizeof texts / sizeof texts[0]; k++)
			okay = col_text(res, i, texts[k], &t[texts[k]]);
		if (!okay) {
			r = shape(p, "audit");
			break;
		}
		a.login = t[2];
		a.client_addr = t[3];
		a.tls_version = t[4];
		a.cipher = t[5];
		a.env_from = t[6];
		a.header_from = t[7];
		a.queue_id = t[10];
		a.verdict = t[11];
		a.reason = t[12];
		if (fn(&a, arg) != 0) {
			rdb_seterr(p->err, sizeof p->err, "an audit record could not be kept");
			r = RDB_ERROR;
		}
	}
	PQclear(res);
	return r;
}

enum rdb_result rdb_pgstate_last_use(struct rdb_pgstate *p, const char *login, int64_t *ts,
                                     char *client, size_t clientlen)
{
	const char *vals[1] = { login };
	PGresult *res = run(p, P_LAST_USE, 1, vals);
	enum rdb_result r = RDB_NOTFOUND;
	const char *c;

	if (res == NULL)
		return RDB_ERROR;
	if (PQntuples(res) > 0) {
		if (PQnfields(res) != 2 || !col_i64(res, 0, 0, ts) || !col_text(res, 0, 1, &c)) {
			r = shape(p, "last_use");
		} else {
			if (client != NULL && clientlen > 0)
				snprintf(client, clientlen, "%s", c);
			r = RDB_OK;
		}
	}
	PQclear(res);
	return r;
}

enum rdb_result rdb_pgstate_last_use_foreach(struct rdb_pgstate *p,
                                             int (*fn)(const char *login, int64_t ts,
                                                       const char *client_addr, void *arg),
                                             void *arg)
{
	PGresult *res = run(p, P_LAST_USE_ALL, 0, NULL);
	enum rdb_result r = RDB_OK;

	if (res == NULL)
		return RDB_ERROR;
	for (int i = 0; i < PQntuples(res) && r == RDB_OK; i++) {
		const char *name, *c;
		int64_t ts;

		if (PQnfields(res) != 3 || !col_text(res, i, 0, &name) || !col_i64(res, i, 1, &ts) ||
		    !col_text(res, i, 2, &c))
			r = shape(p, "last_use");
		else if (fn(name, ts, c, arg) != 0) {
			rdb_seterr(p->err, sizeof p->err, "a last_use row could not be kept");
			r = RDB_ERROR;
		}
	}
	PQclear(res);
	return r;
}

/* ---- admission ------------------------------------------------------------------------ */

static uint64_t sat_add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* The window sums of every limit as of the database's now (one row per limit, in order). */
static enum rdb_result window_sums(struct rdb_pgstate *p, const char *login,
                                   const struct rdb_limit *lims, size_t n,
                                   uint64_t used[][RDB_METRICS])
{
	char arr[RDB_LIMITS_MAX * 24 + 4];
	size_t o = 0;
	const char *vals[2] = { login, arr };
	PGresult *res;
	enum rdb_result r = RDB_OK;

	arr[o++] = '{';
	for (size_t k = 0; k < n; k++)
		o += (size_t)snprintf(arr + o, sizeof arr - o, "%s%" PRId64, k ? "," : "",
		                      lims[k].window);
	snprintf(arr + o, sizeof arr - o, "}");
	if ((res = run(p, P_A_SUMS, 2, vals)) == NULL)
		return RDB_ERROR;
	if (PQntuples(res) != (int)n || PQnfields(res) != 4)
		r = shape(p, "window sum");
	for (int i = 0; r == RDB_OK && i < (int)n; i++)
		if (!col_u64(res, i, 1, &used[i][0]) || !col_u64(res, i, 2, &used[i][1]) ||
		    !col_u64(res, i, 3, &used[i][2]))
			r = shape(p, "window sum");
	PQclear(res);
	return r;
}

/* The time until `need` fits, from the login's rows (a refusal only): the SQLite path's
 * arithmetic on the database's numbers. */
static enum rdb_result refusal_wait(struct rdb_pgstate *p, const char *login,
                                    const struct rdb_limit *lims, size_t n,
                                    const uint64_t reserved[RDB_METRICS],
                                    const uint64_t need[RDB_METRICS], int64_t now,
                                    int64_t *wait, size_t *which)
{
	struct rdb_usage *u = rdb_usage_new();
	int64_t longest = 1;
	struct num w;
	const char *vals[2] = { login, NULL };
	PGresult *res;
	enum rdb_result r = RDB_OK;

	if (u == NULL) {
		rdb_seterr(p->err, sizeof p->err, "out of memory");
		return RDB_ERROR;
	}
	for (size_t k = 0; k < n; k++)
		if (need[lims[k].metric] > 0 && lims[k].window > longest)
			longest = lims[k].window;
	vals[1] = i64(&w, longest);
	if ((res = run(p, P_A_ROWS, 2, vals)) == NULL) {
		rdb_usage_free(u);
		return RDB_ERROR;
	}
	for (int i = 0; r == RDB_OK && i < PQntuples(res); i++) {
		int64_t ts;
		uint64_t v[3];

		if (PQnfields(res) != 4 || !col_i64(res, i, 0, &ts) || !col_u64(res, i, 1, &v[0]) ||
		    !col_u64(res, i, 2, &v[1]) || !col_u64(res, i, 3, &v[2]))
			r = shape(p, "usage");
		else if (!rdb_usage_add(u, ts, v)) {
			rdb_seterr(p->err, sizeof p->err, "out of memory");
			r = RDB_ERROR;
		}
	}
	PQclear(res);
	if (r == RDB_OK) {
		*wait = rdb_limits_wait(u, lims, n, reserved, need, now, which);
		if (*wait == 0)
			*wait = 1; /* the sums said no: a second from now is the earliest retry */
	}
	rdb_usage_free(u);
	return r;
}

/* Does `need` fit under every limit it touches, given the sums and the reservations? */
static bool fits(const struct rdb_limit *lims, size_t n, uint64_t used[][RDB_METRICS],
                 const uint64_t reserved[RDB_METRICS], const uint64_t need[RDB_METRICS],
                 size_t *which)
{
	for (size_t k = 0; k < n; k++) {
		enum rdb_metric m = lims[k].metric;

		if (need[m] == 0)
			continue;
		if (sat_add(sat_add(used[k][m], reserved[m]), need[m]) > lims[k].max) {
			*which = k;
			return false;
		}
	}
	return true;
}

/* The check of admit.h, inside the caller's transaction: lock, clock, sums, reservations.
 * *own_live says whether this message's reservation still counts. */
static enum rdb_result check(struct rdb_pgstate *p, const char *login,
                             const struct rdb_limit *lims, size_t n, int64_t resv_id,
                             const uint64_t own[RDB_METRICS], bool count_own,
                             const uint64_t need[RDB_METRICS], bool *own_live, int64_t *wait,
                             size_t *which)
{
	uint64_t used[RDB_LIMITS_MAX][RDB_METRICS], reserved[RDB_METRICS];
	struct num id;
	const char *vl[1] = { login }, *vr[2] = { login, i64(&id, resv_id) };
	int64_t now, live;
	PGresult *res;

	if (n > RDB_LIMITS_MAX) {
		rdb_seterr(p->err, sizeof p->err, "more than %d limits", RDB_LIMITS_MAX);
		return RDB_ERROR;
	}
	if ((res = run(p, P_A_LOCK, 1, vl)) == NULL)
		return RDB_ERROR;
	if (PQntuples(res) != 1 || PQnfields(res) != 2 || !col_i64(res, 0, 1, &now)) {
		PQclear(res);
		return shape(p, "clock");
	}
	PQclear(res);
	if (window_sums(p, login, lims, n, used) != RDB_OK)
		return RDB_ERROR;
	if ((res = run(p, P_A_RESERVED, 2, vr)) == NULL)
		return RDB_ERROR;
	if (PQntuples(res) != 1 || PQnfields(res) != 4 || !col_u64(res, 0, 0, &reserved[0]) ||
	    !col_u64(res, 0, 1, &reserved[1]) || !col_u64(res, 0, 2, &reserved[2]) ||
	    !col_i64(res, 0, 3, &live)) {
		PQclear(res);
		return shape(p, "reservation sum");
	}
	PQclear(res);
	*own_live = resv_id > 0 && live > 0;
	/* this message's own earlier checks count as reserved, as in milter/rate.c */
	if (count_own && *own_live)
		for (int m = 0; m < RDB_METRICS; m++)
			reserved[m] = sat_add(reserved[m], own[m]);
	*wait = 0;
	if (fits(lims, n, used, reserved, need, which))
		return RDB_OK;
	return refusal_wait(p, login, lims, n, reserved, need, now, wait, which);
}

static enum rdb_result finish(struct rdb_pgstate *p, enum rdb_result r)
{
	if (r == RDB_OK && rdb_pgstate_commit(p) == RDB_OK)
		return RDB_OK;
	rdb_pgstate_rollback(p);
	return RDB_ERROR;
}

/* Writes the admitted reservation: a new row, the row extended, or (it expired meanwhile)
 * a new row for everything this message holds. */
static enum rdb_result reserve_write(struct rdb_pgstate *p, const char *login, const char *node,
                                     int64_t ttl, bool own_live, int64_t *resv_id,
                                     const uint64_t total[RDB_METRICS])
{
	struct num id, a, b, c, t;
	PGresult *res;
	int64_t newid;

	if (own_live) {
		const char *v[5] = { i64(&id, *resv_id), u64c(&a, total[0]), u64c(&b, total[1]),
		                     u64c(&c, total[2]), i64(&t, ttl) };

		return exec0(p, P_A_UPDATE, 5, v);
	}
	{
		const char *v[6] = { login, node, u64c(&a, total[0]), u64c(&b, total[1]),
		                     u64c(&c, total[2]), i64(&t, ttl) };

		if ((res = run(p, P_A_INSERT, 6, v)) == NULL)
			return RDB_ERROR;
	}
	if (PQntuples(res) != 1 || !col_i64(res, 0, 0, &newid) || newid <= 0) {
		PQclear(res);
		return shape(p, "reservation");
	}
	PQclear(res);
	if (*resv_id > 0) { /* the expired row: gone from every count already, delete it */
		const char *v[1] = { i64(&id, *resv_id) };

		if (exec0(p, P_A_DELETE, 1, v) != RDB_OK)
			return RDB_ERROR;
	}
	*resv_id = newid;
	return RDB_OK;
}

enum rdb_result rdb_pgstate_admit(struct rdb_pgstate *p, bool commit, const char *login,
                                  const char *node, int64_t ttl, const struct rdb_limit *lims,
                                  size_t n, const uint64_t amount[RDB_METRICS], int64_t *resv_id,
                                  uint64_t resv_v[RDB_METRICS], int64_t *wait, size_t *which)
{
	uint64_t need[RDB_METRICS], total[RDB_METRICS];
	bool own_live = false;
	enum rdb_result r;

	*wait = 0;
	if (rdb_pgstate_begin(p) != RDB_OK)
		return RDB_ERROR;
	if (!commit) {
		memcpy(need, amount, sizeof need);
		r = check(p, login, lims, n, *resv_id, resv_v, true, need, &own_live, wait, which);
		if (r != RDB_OK || *wait != 0)
			return finish(p, r); /* refused: nothing written, the lock goes with the commit */
		for (int m = 0; m < RDB_METRICS; m++)
			total[m] = sat_add(resv_v[m], need[m]);
		r = reserve_write(p, login, node, ttl, own_live, resv_id, total);
		if ((r = finish(p, r)) == RDB_OK)
			memcpy(resv_v, total, sizeof total);
		return r;
	}
	/* end of message: the actual bytes replace the reserved ones; if the reservation is no
	 * longer counted (it expired), the whole message is checked as if new */
	need[0] = 0;
	need[1] = 0;
	need[2] = amount[RDB_METRIC_BYTES];
	r = check(p, login, lims, n, *resv_id, resv_v, false, need, &own_live, wait, which);
	if (r == RDB_OK && *wait == 0 && !own_live) {
		memcpy(need, amount, sizeof need);
		uint64_t none[RDB_METRICS] = { 0, 0, 0 };
		bool dummy;

		r = check(p, login, lims, n, *resv_id, none, false, need, &dummy, wait, which);
	}
	if (r != RDB_OK || *wait != 0)
		return finish(p, r);
	{
		struct num id, a, b, c;
		const char *vd[1] = { i64(&id, *resv_id) };
		const char *vc[4] = { login, u64c(&a, amount[0]), u64c(&b, amount[1]),
		                      u64c(&c, amount[2]) };

		if (*resv_id > 0 && exec0(p, P_A_DELETE, 1, vd) != RDB_OK)
			r = RDB_ERROR;
		if (r == RDB_OK)
			r = exec0(p, P_A_COUNT, 4, vc);
	}
	if ((r = finish(p, r)) == RDB_OK) {
		*resv_id = 0;
		memset(resv_v, 0, RDB_METRICS * sizeof resv_v[0]);
	}
	return r;
}

enum rdb_result rdb_pgstate_release(struct rdb_pgstate *p, int64_t resv_id)
{
	struct num id;
	const char *v[1] = { i64(&id, resv_id) };

	if (resv_id <= 0)
		return RDB_OK;
	return exec0(p, P_A_DELETE, 1, v);
}
