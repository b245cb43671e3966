/*
 * writer.c — batched state-database writes on a thread of their own (see writer.h).
 *
 * Only the writer thread touches the SQLite handle and the file checks; callbacks only
 * push records and read `healthy` under the mutex, so they never wait for the disk.
 * Why the care with a replaced file: SQLite names the WAL and shared-memory files after
 * the path, so a file moved away leaves its WAL under the path's name. Opening a new file
 * there while the old WAL holds frames would read the old file's pages into the new one.
 * Hence: checkpoint the old file (its WAL empties into it), close it without letting
 * SQLite delete those names (rdb_state_close_moved), only then open the new file.
 * The crash journal (journal.h) is driven from here, under the queue mutex where order
 * matters: a counted record is appended to it and queued in one step, so the queue holds
 * the records in journal order and a batch taken together with mlt_journal_switch() holds
 * every record of the file the appends just left.
 * A PostgreSQL state database (w->shared) has no file to watch and no crash journal: the
 * counts of limited logins are committed by the admission (admission.h) before Postfix
 * hears "accept", so what the writer batches there is last use, audit records and the
 * counts of exempt logins; a kill -9 loses at most the last state_flush_ms of those
 * (relay-milter(8)). A failed batch is retried, the milter tempfailing meanwhile, as here.
 */
#include "writer.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "journal.h"
#include "log.h"
#include "metrics.h"
#include "state.h"

#define QUEUE_MAX 200000     /* records; past this, new ones are dropped and health fails */
#define PRUNE_EVERY 60       /* seconds */
#define RETRY_MAX_MS 500     /* at stop: how often to retry at most */
#define LOST_LINES_MAX 1000  /* at stop: lost records logged one per line, then a count */

/* Counters read from a file that left the path, waiting to be merged into its successor. */
struct carry_usage {
	char login[256];
	int64_t ts;
	uint64_t v[3];
};

struct carry_last {
	char login[256];
	char client[64];
	int64_t ts;
};

struct carry_cred {
	char login[256];
	char label[33];
	char client[64];
	int64_t ts;
};

struct carry {
	struct carry_usage *u;
	size_t nu, capu;
	struct carry_last *l;
	size_t nl, capl;
	struct carry_cred *c;          /* the last use of app credentials */
	size_t nc, capc;
	bool pending;                  /* taken from the old file, not yet merged */
};

struct mlt_writer {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct mlt_record *head, *tail;
	size_t len;
	size_t inflight;               /* records of the batch being written (the backlog gauge) */
	bool stop;
	bool healthy;
	bool shared;                   /* PostgreSQL: no file checks, no journal (see above) */
	int64_t flush_ms, retention, usage_keep;
	int64_t stop_retry_ms;
	int lost;                      /* set by the thread at stop: -1 if anything was lost */
	struct mlt_journal *journal;   /* appends under mu; switch under mu; release by the thread */
	bool flushed;                  /* set by the thread at stop: every record reached the file */
	uint64_t committed_seq;        /* writer thread: the last journal record committed */
	/* writer thread only: */
	int64_t last_prune;
	char *path;
	struct rdb_state *st;          /* NULL between closing an old file and opening its successor */
	dev_t dev;                     /* identity of the file st was opened from */
	ino_t ino;
	bool file_ok;                  /* the path holds st's file */
	struct carry carry;
	char last_err[512];            /* the last switch_file() failure, logged once */
};

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void free_list(struct mlt_record *r)
{
	while (r != NULL) {
		struct mlt_record *next = r->next;

		free(r);
		r = next;
	}
}

static void carry_free(struct carry *c)
{
	free(c->u);
	free(c->l);
	free(c->c);
	memset(c, 0, sizeof *c);
}

static int carry_usage_row(const char *login, int64_t ts, const uint64_t v[3], void *arg)
{
	struct carry *c = arg;

	if (c->nu == c->capu) {
		size_t cap = c->capu ? c->capu * 2 : 64;
		struct carry_usage *u = realloc(c->u, cap * sizeof *u);

		if (u == NULL)
			return -1;
		c->u = u;
		c->capu = cap;
	}
	snprintf(c->u[c->nu].login, sizeof c->u[c->nu].login, "%s", login);
	c->u[c->nu].ts = ts;
	memcpy(c->u[c->nu].v, v, sizeof c->u[c->nu].v);
	c->nu++;
	return 0;
}

static int carry_last_row(const char *login, int64_t ts, const char *client, void *arg)
{
	struct carry *c = arg;

	if (c->nl == c->capl) {
		size_t cap = c->capl ? c->capl * 2 : 64;
		struct carry_last *l = realloc(c->l, cap * sizeof *l);

		if (l == NULL)
			return -1;
		c->l = l;
		c->capl = cap;
	}
	snprintf(c->l[c->nl].login, sizeof c->l[c->nl].login, "%s", login);
	snprintf(c->l[c->nl].client, sizeof c->l[c->nl].client, "%s", client);
	c->l[c->nl].ts = ts;
	c->nl++;
	return 0;
}

static int carry_cred_row(const char *login, const char *label, int64_t ts, const char *client,
                          void *arg)
{
	struct carry *c = arg;

	if (c->nc == c->capc) {
		size_t cap = c->capc ? c->capc * 2 : 64;
		struct carry_cred *n = realloc(c->c, cap * sizeof *n);

		if (n == NULL)
			return -1;
		c->c = n;
		c->capc = cap;
	}
	snprintf(c->c[c->nc].login, sizeof c->c[c->nc].login, "%s", login);
	snprintf(c->c[c->nc].label, sizeof c->c[c->nc].label, "%s", label);
	snprintf(c->c[c->nc].client, sizeof c->c[c->nc].client, "%s", client);
	c->c[c->nc].ts = ts;
	c->nc++;
	return 0;
}

/* Logs why switching files failed, once per distinct reason: the writer retries at every
 * wake-up, and the log should say it once, not five times a second. */
__attribute__((format(printf, 2, 3)))
static bool switch_failed(struct mlt_writer *w, const char *fmt, ...)
{
	char msg[sizeof w->last_err];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (strcmp(msg, w->last_err) != 0) {
		mlt_log(LOG_ERR, "%s", msg);
		memcpy(w->last_err, msg, sizeof msg);
	}
	return false;
}

/* Merges the carried counters into w->st in one transaction. */
static bool carry_merge(struct mlt_writer *w)
{
	if (rdb_state_begin(w->st) != RDB_OK)
		goto fail;
	for (size_t k = 0; k < w->carry.nu; k++)
		if (rdb_state_usage_merge(w->st, w->carry.u[k].login, w->carry.u[k].ts,
		                          w->carry.u[k].v) != RDB_OK)
			goto fail;
	for (size_t k = 0; k < w->carry.nl; k++)
		if (rdb_state_last_use_merge(w->st, w->carry.l[k].login, w->carry.l[k].ts,
		                             w->carry.l[k].client) != RDB_OK)
			goto fail;
	for (size_t k = 0; k < w->carry.nc; k++)
		if (rdb_state_credential_use_merge(w->st, w->carry.c[k].login, w->carry.c[k].label,
		                                   w->carry.c[k].ts, w->carry.c[k].client) != RDB_OK)
			goto fail;
	/* the journal records the old file got are in the usage just merged: a replay after a
	 * crash must not add them to this file a second time */
	if (w->committed_seq > 0 &&
	    rdb_state_journal_set(w->st, mlt_journal_id(w->journal), w->committed_seq) != RDB_OK)
		goto fail;
	if (rdb_state_commit(w->st) != RDB_OK)
		goto fail;
	return true;
fail:
	switch_failed(w, "state database %s: carrying counters over: %s", w->path,
	              rdb_state_errmsg(w->st));
	rdb_state_rollback(w->st);
	return false;
}

/* The file at the path is not the one w->st holds (or there is none and at_stop says make
 * one): take the counters from the old file, let it go, open the one at the path, merge.
 * Any step that fails leaves what is done done (the carry survives a closed old file) and
 * is retried at the next wake-up. */
static bool switch_file(struct mlt_writer *w, bool at_stop, int64_t keep)
{
	char err[512];
	struct stat sb;

	if (w->st != NULL) {
		if (!w->carry.pending) {
			if (rdb_state_usage_foreach(w->st, NULL, (int64_t)time(NULL) - keep,
			                            carry_usage_row, &w->carry) != RDB_OK ||
			    rdb_state_last_use_foreach(w->st, carry_last_row, &w->carry) != RDB_OK ||
			    rdb_state_credential_use_foreach(w->st, carry_cred_row, &w->carry) != RDB_OK) {
				switch_failed(w, "state database %s: reading the counters of the file that "
				              "was there: %s", w->path, rdb_state_errmsg(w->st));
				carry_free(&w->carry);
				return false;
			}
			w->carry.pending = true;
		}
		if (rdb_state_checkpoint(w->st) != RDB_OK) {
			return switch_failed(w, "state database %s: the file that was there keeps data in"
			                     " its WAL (%s); not opening the new file while that WAL could be"
			                     " read as its own", w->path, rdb_state_errmsg(w->st));
		}
		rdb_state_close_moved(w->st);
		w->st = NULL;
	}
	if (!at_stop && stat(w->path, &sb) != 0)
		return false; /* gone again: wait for it (the carry stays) */
	if (rdb_state_init(w->path, err, sizeof err) != RDB_OK)
		return switch_failed(w, "state database: %s", err);
	if (stat(w->path, &sb) != 0)
		return switch_failed(w, "state database %s: %s", w->path, strerror(errno));
	if (rdb_state_open(w->path, RDB_READWRITE, &w->st, err, sizeof err) != RDB_OK)
		return switch_failed(w, "state database: %s", err);
	w->dev = sb.st_dev;
	w->ino = sb.st_ino;
	if (!carry_merge(w))
		return false;
	mlt_log(LOG_NOTICE, "state database %s: %s; carried %zu usage rows and %zu last uses over "
	        "from the file that was there (its audit log stays in that file)", w->path,
	        at_stop ? "was missing at stop, created it afresh" : "another file is in place, using it",
	        w->carry.nu, w->carry.nl);
	carry_free(&w->carry);
	w->last_err[0] = '\0';
	return true;
}

/* Is the file at the path the one we write to? Sorts it out if it can; false means "do not
 * write now" (the reason is logged once per change). Writer thread only. */
static bool check_file(struct mlt_writer *w, bool at_stop, int64_t keep)
{
	struct stat sb;
	int e = 0;

	if (w->shared) /* no file: a lost connection is the next commit's error */
		return true;
	if (stat(w->path, &sb) != 0)
		e = errno;
	if (e == 0 && w->st != NULL && !w->carry.pending && sb.st_dev == w->dev &&
	    sb.st_ino == w->ino) {
		if (!w->file_ok)
			mlt_log(LOG_NOTICE, "state database %s is back", w->path);
		w->file_ok = true;
		return true;
	}
	if (e != 0 && e != ENOENT) {
		if (w->file_ok)
			mlt_log(LOG_ERR, "state database %s: %s; refusing mail (451) until it can be "
			        "checked", w->path, strerror(e));
		w->file_ok = false;
		return false;
	}
	if (e == ENOENT && !at_stop) {
		if (w->file_ok) {
			mlt_log(LOG_ERR, "state database %s is missing (moved or deleted): refusing mail "
			        "(451) until it, or another state database, is back at that path; nothing "
			        "more is written to the file that was there", w->path);
			/* the moved file gets its WAL, so a copy of it is complete on its own */
			if (w->st != NULL && rdb_state_checkpoint(w->st) != RDB_OK)
				mlt_log(LOG_WARNING, "state database %s: checkpointing the moved file: %s",
				        w->path, rdb_state_errmsg(w->st));
		}
		w->file_ok = false;
		return false;
	}
	if (w->file_ok && e == 0)
		mlt_log(LOG_NOTICE, "state database %s was replaced by another file", w->path);
	w->file_ok = switch_file(w, at_stop, keep);
	return w->file_ok;
}

/* Commits a batch in one transaction; true on success. */
static bool write_batch(struct mlt_writer *w, struct mlt_record *batch, int64_t now, int64_t keep,
                        int64_t retention)
{
	struct mlt_metrics_mark mark;
	uint64_t seq = 0;

	if (rdb_state_begin(w->st) != RDB_OK)
		goto fail;
	for (struct mlt_record *r = batch; r != NULL; r = r->next) {
		if (mlt_record_write(w->st, r) != RDB_OK)
			goto fail;
		if (r->journal_seq > seq)
			seq = r->journal_seq;
	}
	/* in the same transaction: a crash after this commit must not replay these records */
	if (seq > 0 && rdb_state_journal_set(w->st, mlt_journal_id(w->journal), seq) != RDB_OK)
		goto fail;
	/* what the metrics gained since the last commit, for `relay-admin metrics` */
	if (mlt_metrics_persist(w->st, &mark) != RDB_OK)
		goto fail;
	if (now - w->last_prune >= PRUNE_EVERY) {
		if (rdb_state_prune(w->st, now - keep, now - retention) != RDB_OK)
			goto fail;
		w->last_prune = now;
	}
	if (rdb_state_commit(w->st) != RDB_OK)
		goto fail;
	if (seq > 0)
		w->committed_seq = seq;
	mlt_metrics_persisted(&mark);
	return true;
fail:
	mlt_metrics_db_error(MLT_DB_STATE);
	mlt_log(LOG_ERR, "state database: %s", rdb_state_errmsg(w->st));
	rdb_state_rollback(w->st);
	return false;
}

/* The stop's retry time is over: says exactly what did not reach the state database.
 * Accepted messages are in the journal (the next start applies them); audit-only records
 * and carried counters are lost. Returns true if anything is lost. Lock held. */
static bool log_lost(struct mlt_writer *w)
{
	size_t total = 0, journaled = 0, n = 0;

	for (struct mlt_record *r = w->head; r != NULL; r = r->next) {
		total++;
		journaled += r->journal_seq != 0;
	}
	if (total > 0)
		mlt_log(journaled == total ? LOG_WARNING : LOG_ERR, "state database %s: stopping with "
		        "%zu record%s not written: %zu accepted message%s kept in the journal (the next "
		        "start applies %s), %zu audit-only record%s lost:", w->path, total,
		        total == 1 ? "" : "s", journaled, journaled == 1 ? "" : "s",
		        journaled == 1 ? "it" : "them", total - journaled,
		        total - journaled == 1 ? "" : "s");
	for (struct mlt_record *r = w->head; r != NULL; r = r->next, n++) {
		if (n == LOST_LINES_MAX) {
			mlt_log(LOG_ERR, "not written at stop: ... and %zu more records", total - n);
			break;
		}
		mlt_log(r->journal_seq ? LOG_WARNING : LOG_ERR, "%s at stop: %s login=%s ts=%" PRId64
		        " verdict=%s messages=%" PRIu64 " recipients=%" PRIu64 " bytes=%" PRIu64,
		        r->journal_seq ? "in the journal" : "lost", r->queue_id[0] ? r->queue_id :
		        "NOQUEUE", r->login, r->ts, r->verdict, r->counted ? r->v[0] : 0,
		        r->counted ? r->v[1] : 0, r->counted ? r->v[2] : 0);
	}
	if (w->carry.pending)
		mlt_log(LOG_ERR, "state database %s: stopping with the counters of the file that was "
		        "there (%zu usage rows, %zu last uses) not carried over, lost", w->path,
		        w->carry.nu, w->carry.nl);
	return journaled < total || w->carry.pending;
}

static void *run(void *arg)
{
	struct mlt_writer *w = arg;
	int64_t deadline = 0;
	bool retrying = false;

	pthread_mutex_lock(&w->mu);
	for (;;) {
		struct timespec until;
		struct mlt_record *batch;
		bool stopping, okay, dirty;
		int64_t wait_ms = retrying ? (w->flush_ms < RETRY_MAX_MS ? w->flush_ms : RETRY_MAX_MS)
		                           : w->flush_ms;
		int64_t keep = w->usage_keep, retention = w->retention;

		/* CLOCK_MONOTONIC (the condition variable's clock, see mlt_writer_start): on the
		 * wall clock a step back of N seconds would stall the writer for N seconds, with
		 * the usage it holds not on disk. */
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
		until.tv_sec += wait_ms / 1000 + until.tv_nsec / 1000000000L;
		until.tv_nsec %= 1000000000L;
		/* retrying at stop: sleep the whole interval (stop is already set) */
		while ((retrying || !w->stop) &&
		       pthread_cond_timedwait(&w->cv, &w->mu, &until) != ETIMEDOUT)
			;
		stopping = w->stop;
		if (stopping && deadline == 0)
			deadline = mono_ms() + w->stop_retry_ms;
		batch = w->head;
		w->head = w->tail = NULL;
		w->inflight = w->len;
		w->len = 0;
		if (w->journal != NULL)
			mlt_journal_switch(w->journal);
		pthread_mutex_unlock(&w->mu);

		/* counters that gained are committed even without records (an idle relay's
		 * reloads, its failures once the file is writable again) */
		dirty = mlt_metrics_dirty();
		okay = check_file(w, stopping, keep) &&
		       ((batch == NULL && !dirty) ||
		        write_batch(w, batch, (int64_t)time(NULL), keep, retention));
		if (!okay && (batch != NULL || dirty))
			mlt_metrics_writer_failure();
		if (okay && w->journal != NULL) /* the file the appends left: committed by now */
			mlt_journal_release(w->journal);

		pthread_mutex_lock(&w->mu);
		if (okay) {
			free_list(batch);
			if (!w->healthy && !stopping)
				mlt_log(LOG_NOTICE, "state database writable again");
			w->healthy = true;
		} else if (batch != NULL) {
			/* put the batch back in front, to retry */
			struct mlt_record *last = batch;
			size_t n = 1;

			w->healthy = false;
			while (last->next != NULL) {
				last = last->next;
				n++;
			}
			last->next = w->head;
			if (w->head == NULL)
				w->tail = last;
			w->head = batch;
			w->len += n;
		} else {
			w->healthy = false;
		}
		w->inflight = 0;
		mlt_metrics_backlog(w->len);
		if (!stopping)
			continue;
		if (okay) {
			if (w->head == NULL)
				break;
			continue; /* records pushed by sessions still finishing: write them too */
		}
		if (w->head == NULL && !w->carry.pending)
			break; /* nothing left to lose (the path could not be checked, e.g. EACCES) */
		if (mono_ms() >= deadline) {
			if (log_lost(w))
				w->lost = -1;
			break;
		}
		if (!retrying)
			mlt_log(LOG_WARNING, "stopping: %zu state record%s not written yet%s: retrying for"
			        " up to %" PRId64 " s (no new mail is taken meanwhile)", w->len,
			        w->len == 1 ? "" : "s", w->carry.pending ? ", counters not carried over"
			        " to the file at the path" : "", (deadline - mono_ms() + 999) / 1000);
		retrying = true;
	}
	w->flushed = w->head == NULL;
	free_list(w->head);
	w->head = w->tail = NULL;
	w->len = 0;
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

/* Start-up, before the thread and before the milter answers anyone: what a killed milter
 * left in the journal goes into the state database (exactly once, by the journal mark). */
static int recover(struct mlt_writer *w, char *err, size_t errlen)
{
	size_t recovered, skipped, torn;

	if (mlt_journal_open(w->path, &w->journal, err, errlen) != 0)
		return -1;
	if (mlt_journal_recover(w->journal, w->st, &recovered, &skipped, &torn, err, errlen) != 0)
		return -1;
	if (recovered + skipped + torn > 0)
		mlt_log(LOG_NOTICE, "journal: recovered %zu records (accepted messages: counted and "
		        "audited) into %s; %zu were already there; %zu bytes of torn records dropped",
		        recovered, w->path, skipped, torn);
	else
		mlt_log(LOG_INFO, "journal: recovered 0 records (the last stop was clean)");
	return 0;
}

int mlt_writer_start(const char *state_db, int64_t flush_ms, int64_t audit_retention,
                     struct mlt_writer **out, char *err, size_t errlen)
{
	struct mlt_writer *w;
	struct stat sb;

	*out = NULL;
	if (rdb_state_init(state_db, err, errlen) != RDB_OK)
		return -1;
	w = calloc(1, sizeof *w);
	if (w == NULL || (w->path = strdup(state_db)) == NULL) {
		free(w);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	w->shared = rdb_is_postgresql(state_db);
	/* stat before open: if the file is replaced in between, the first check sees it */
	if (!w->shared && stat(state_db, &sb) != 0) {
		snprintf(err, errlen, "%s: %s", state_db, strerror(errno));
		free(w->path);
		free(w);
		return -1;
	}
	if (rdb_state_open(state_db, RDB_READWRITE, &w->st, err, errlen) != RDB_OK) {
		free(w->path);
		free(w);
		return -1;
	}
	if (!w->shared) {
		w->dev = sb.st_dev;
		w->ino = sb.st_ino;
	}
	w->file_ok = true;
	if (w->shared)
		mlt_log(LOG_INFO, "state database on PostgreSQL: no crash journal (counts are "
		        "committed at end of message)");
	else if (recover(w, err, errlen) != 0) {
		mlt_journal_close(w->journal);
		rdb_state_close(w->st);
		free(w->path);
		free(w);
		return -1;
	}
	pthread_mutex_init(&w->mu, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&w->cv, &ca);
		pthread_condattr_destroy(&ca);
	}
	w->healthy = true;
	w->flush_ms = flush_ms;
	w->retention = audit_retention;
	w->usage_keep = 86400;
	w->last_prune = 0;
	if ((errno = pthread_create(&w->thread, NULL, run, w)) != 0) {
		snprintf(err, errlen, "starting the writer thread: %s", strerror(errno));
		mlt_journal_close(w->journal);
		rdb_state_close(w->st);
		pthread_mutex_destroy(&w->mu);
		pthread_cond_destroy(&w->cv);
		free(w->path);
		free(w);
		return -1;
	}
	*out = w;
	return 0;
}

int mlt_writer_stop(struct mlt_writer *w, int64_t retry_s)
{
	int lost;

	if (w == NULL)
		return 0;
	pthread_mutex_lock(&w->mu);
	w->stop = true;
	w->healthy = false; /* callbacks still running answer 451 from now on */
	w->stop_retry_ms = retry_s * 1000;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);
	lost = w->lost;
	/* everything committed: empty both journal files (whatever is left there otherwise is
	 * applied, or skipped by its mark, at the next start) */
	if (w->flushed && w->journal != NULL) {
		mlt_journal_switch(w->journal);
		mlt_journal_release(w->journal);
	}
	mlt_journal_close(w->journal);
	/* a file that left the path keeps the names of the WAL files for its successor */
	if (w->file_ok)
		rdb_state_close(w->st);
	else
		rdb_state_close_moved(w->st);
	carry_free(&w->carry);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv);
	free(w->path);
	free(w);
	return lost;
}

int mlt_writer_push(struct mlt_writer *w, struct mlt_record *rec)
{
	bool counted = rec->counted;

	rec->next = NULL;
	rec->journal_seq = 0;
	pthread_mutex_lock(&w->mu);
	if (w->len >= QUEUE_MAX) {
		w->healthy = false;
		pthread_mutex_unlock(&w->mu);
		mlt_log(LOG_ERR, "state queue full: record for %s dropped%s", rec->login,
		        counted ? ", message refused (451)" : "");
		free(rec);
		return counted ? -1 : 0;
	}
	/* one write() into the page cache, no fsync: it survives the process, and the
	 * callback never waits for the disk. Under mu, so queue order is journal order. */
	if (counted && w->journal != NULL && mlt_journal_append(w->journal, rec) != 0) {
		int e = errno;

		pthread_mutex_unlock(&w->mu);
		mlt_log(LOG_ERR, "journal: cannot record the message of %s: %s; refusing it (451)",
		        rec->login, strerror(e));
		free(rec);
		return -1;
	}
	if (w->tail != NULL)
		w->tail->next = rec;
	else
		w->head = rec;
	w->tail = rec;
	w->len++;
	mlt_metrics_backlog(w->len + w->inflight);
	pthread_mutex_unlock(&w->mu);
	return 0;
}

bool mlt_writer_healthy(struct mlt_writer *w)
{
	bool h;

	pthread_mutex_lock(&w->mu);
	h = w->healthy && !w->stop;
	pthread_mutex_unlock(&w->mu);
	return h;
}

void mlt_writer_set(struct mlt_writer *w, int64_t flush_ms, int64_t audit_retention,
                    int64_t usage_keep)
{
	pthread_mutex_lock(&w->mu);
	w->flush_ms = flush_ms;
	w->retention = audit_retention;
	/* keep a day at least, so `relay-admin usage` has something to show without limits */
	w->usage_keep = usage_keep > 86400 ? usage_keep : 86400;
	pthread_mutex_unlock(&w->mu);
}

int mlt_writer_load_usage(const char *state_db, int64_t now, int64_t keep,
                          int (*fn)(const char *login, int64_t ts, const uint64_t v[3], void *),
                          void *arg, char *err, size_t errlen)
{
	struct rdb_state *st;
	enum rdb_result r;

	if (rdb_state_open(state_db, RDB_READONLY, &st, err, errlen) != RDB_OK)
		return -1;
	r = rdb_state_usage_foreach(st, NULL, now - keep, fn, arg);
	if (r != RDB_OK)
		snprintf(err, errlen, "%s: %s", state_db, rdb_state_errmsg(st));
	rdb_state_close(st);
	return r == RDB_OK ? 0 : -1;
}
