/*
 * cmd_log_follow.c — `relay-admin log --follow`: the audit log as it grows, like tail -f
 * (see audit_log.h).
 *
 * Polling, cheaply: every POLL_MS the follower stat()s the path and asks PRAGMA
 * data_version, which moves only when another connection (relay-milter's writer) committed;
 * only then does it read the highest id and the records between the last one printed and
 * that id. Reading the id first means a commit between the two reads is seen at the next
 * turn, never skipped.
 * A replaced state database (a restore, a fresh file; relay-milter's writer moves to the
 * file at its path, milter/writer.h): when the path names another file (dev/ino) the old
 * handle is read a last time and closed, and the new file is opened by path and read from
 * the time the old one was last seen (minus a second, as times are whole seconds), so
 * a restored backup does not replay its old records; a missing file is waited for.
 * A PostgreSQL state database (several relays, one audit log) has no file to watch: the
 * follower keeps its one handle (the core reconnects after a lost connection), and the
 * change marker is the highest audit id, which the writers hand out in commit order
 * (sql/state.c), so reading up to it never skips a record another node commits later.
 * Ending: SIGINT and SIGTERM end the loop (exit 0); so does a closed stdout — poll() on it
 * reports POLLERR/POLLHUP even while nothing is printed, and a write that fails with EPIPE
 * (SIGPIPE is ignored here) ends it too.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audit_log.h"

#define POLL_MS 250

static volatile sig_atomic_t stop_signal;

static void on_stop(int sig)
{
	stop_signal = sig;
}

struct follower {
	struct adm_ctx *ctx;
	bool shared;             /* PostgreSQL: no path to stat, never replaced */
	const struct adm_log_query *q;
	struct rdb_state *st;
	dev_t dev;
	ino_t ino;
	int64_t last_id;         /* the highest id read from st */
	int64_t data_version;    /* -1: read at the next turn */
	int64_t floor;           /* records older than this are not printed (--since, reopen) */
	int64_t seen_at;         /* wall time st was last read */
	bool missing_noted;
	bool out_closed;
};

static int print_rec(const struct rdb_audit *a, void *arg)
{
	struct follower *fw = arg;
	struct adm_out o;

	adm_out_begin(&o, fw->ctx);
	adm_log_record(&o, a);
	adm_out_finish(&o);
	return 0;
}

/* Did the output go away? Then nothing more can be said: drop what stdio holds. */
static bool flush_out(struct follower *fw)
{
	if (fflush(fw->ctx->out) == 0 && !ferror(fw->ctx->out))
		return true;
	if (errno != EPIPE)
		adm_err(fw->ctx, "cannot write the output: %s", strerror(errno));
	__fpurge(fw->ctx->out);
	clearerr(fw->ctx->out);
	fw->out_closed = true;
	return false;
}

/* Reads what was committed since the last turn; `limit` > 0: only the newest that many. */
static int read_new(struct follower *fw, int64_t limit)
{
	struct rdb_audit_filter f;
	int64_t top;

	if (rdb_state_audit_max_id(fw->st, &top) != RDB_OK)
		goto fail;
	if (top < fw->last_id)   /* ids went down: the rows were rewritten; start from there */
		fw->last_id = 0;
	f = (struct rdb_audit_filter){ .after_id = fw->last_id, .upto_id = top,
	                               .since = fw->floor, .login = fw->q->user,
	                               .verdict = fw->q->verdict, .limit = limit };
	if (top > fw->last_id && rdb_state_audit_query(fw->st, &f, print_rec, fw) != RDB_OK)
		goto fail;
	fw->last_id = top;
	fw->seen_at = (int64_t)time(NULL);
	flush_out(fw);
	return ADM_EXIT_OK;
fail:
	adm_err(fw->ctx, "state database: %s", rdb_state_errmsg(fw->st));
	return ADM_EXIT_DB;
}

/* Opens the file at the path; -1 when it is not there (yet), else an exit code. */
static int open_path(struct follower *fw, bool first)
{
	struct stat sb = { 0 };
	char err[512];

	if (!fw->shared && stat(fw->ctx->state_db_path, &sb) != 0 && !first)
		return -1;
	if (rdb_state_open(fw->ctx->state_db_path, RDB_READONLY, &fw->st, err, sizeof err) !=
	    RDB_OK) {
		if (first) {
			adm_err(fw->ctx, "%s", err);
			return ADM_EXIT_DB;
		}
		return -1;   /* being created or migrated: the next turn tries again */
	}
	fw->dev = sb.st_dev;
	fw->ino = sb.st_ino;
	fw->last_id = 0;
	fw->data_version = -1;
	return ADM_EXIT_OK;
}

/* One turn: is the file at the path still ours? Then has anything been committed? */
static int turn(struct follower *fw)
{
	struct stat sb;
	int64_t v;
	int rc;

	if (fw->shared) {
		/* nothing to reopen: the same database, whatever happens to its server */
	} else if (stat(fw->ctx->state_db_path, &sb) != 0) {
		if (!fw->missing_noted)
			adm_note(fw->ctx, "state database %s is missing: waiting for it",
			         fw->ctx->state_db_path);
		fw->missing_noted = true;
		if (fw->st == NULL)
			return ADM_EXIT_OK;
	} else if (fw->st == NULL || sb.st_dev != fw->dev || sb.st_ino != fw->ino) {
		if (fw->st != NULL) {
			/* the last records of the file that left the path */
			if ((rc = read_new(fw, 0)) != ADM_EXIT_OK)
				return rc;
			rdb_state_close(fw->st);
			fw->st = NULL;
			/* the new file: only what happened since we last saw the old one */
			if (fw->seen_at - 1 > fw->floor)
				fw->floor = fw->seen_at - 1;
		}
		if (open_path(fw, false) != ADM_EXIT_OK)
			return ADM_EXIT_OK;
		if (fw->missing_noted)
			adm_note(fw->ctx, "state database %s is back", fw->ctx->state_db_path);
		fw->missing_noted = false;
	}
	if (rdb_state_data_version(fw->st, &v) != RDB_OK) {
		adm_err(fw->ctx, "state database: %s", rdb_state_errmsg(fw->st));
		return ADM_EXIT_DB;
	}
	if (v == fw->data_version)
		return ADM_EXIT_OK;
	fw->data_version = v;
	return read_new(fw, 0);
}

int adm_log_follow(struct adm_ctx *ctx, const struct adm_log_query *q)
{
	struct follower fw = { .ctx = ctx, .q = q, .floor = q->since,
	                       .shared = rdb_is_postgresql(ctx->state_db_path) };
	struct sigaction sa, old_int, old_term, old_pipe;
	int rc;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_stop;   /* no SA_RESTART: poll() returns at once */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, &old_pipe);

	rc = open_path(&fw, true);
	if (rc == ADM_EXIT_OK && rdb_state_data_version(fw.st, &fw.data_version) != RDB_OK) {
		adm_err(ctx, "state database: %s", rdb_state_errmsg(fw.st));
		rc = ADM_EXIT_DB;
	}
	if (rc == ADM_EXIT_OK)
		rc = read_new(&fw, q->limit);
	while (rc == ADM_EXIT_OK && !stop_signal && !fw.out_closed) {
		struct pollfd p = { .fd = fileno(ctx->out), .events = 0 };

		/* events 0: only POLLERR/POLLHUP, i.e. the reader of stdout went away */
		if (poll(&p, 1, POLL_MS) > 0 && (p.revents & (POLLERR | POLLHUP)))
			break;
		if (stop_signal)
			break;
		rc = turn(&fw);
	}
	rdb_state_close(fw.st);
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	sigaction(SIGPIPE, &old_pipe, NULL);
	return rc;
}
