/*
 * writer.c — batched state-database writes on a thread of their own (see writer.h).
 */
#include "writer.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "state.h"

#define QUEUE_MAX 200000     /* records; past this, new ones are dropped and health fails */
#define PRUNE_EVERY 60       /* seconds */

struct mlt_writer {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct mlt_record *head, *tail;
	size_t len;
	bool stop;
	bool healthy;
	int64_t flush_ms, retention, usage_keep;
	int64_t last_prune;
	struct rdb_state *st;
};

static void free_list(struct mlt_record *r)
{
	while (r != NULL) {
		struct mlt_record *next = r->next;

		free(r);
		r = next;
	}
}

static enum rdb_result write_one(struct rdb_state *st, const struct mlt_record *r)
{
	struct rdb_audit a = {
		.ts = r->ts, .login = r->login, .client_addr = r->client_addr,
		.tls_version = r->tls_version, .cipher = r->cipher, .env_from = r->env_from,
		.header_from = r->header_from, .rcpt_count = r->rcpt_count, .size = r->size,
		.queue_id = r->queue_id, .verdict = r->verdict, .reason = r->reason,
	};
	enum rdb_result res;

	if (r->counted && (res = rdb_state_usage_add(st, r->login, r->ts, r->v[0], r->v[1],
	                                               r->v[2])) != RDB_OK)
		return res;
	if (r->touch && (res = rdb_state_touch(st, r->login, r->ts, r->client_addr)) != RDB_OK)
		return res;
	return rdb_state_audit_add(st, &a);
}

/* Commits a batch in one transaction; true on success. */
static bool write_batch(struct mlt_writer *w, struct mlt_record *batch, int64_t now)
{
	if (rdb_state_begin(w->st) != RDB_OK)
		goto fail;
	for (struct mlt_record *r = batch; r != NULL; r = r->next)
		if (write_one(w->st, r) != RDB_OK)
			goto fail;
	if (now - w->last_prune >= PRUNE_EVERY) {
		if (rdb_state_prune(w->st, now - w->usage_keep, now - w->retention) != RDB_OK)
			goto fail;
		w->last_prune = now;
	}
	if (rdb_state_commit(w->st) != RDB_OK)
		goto fail;
	return true;
fail:
	mlt_log(LOG_ERR, "state database: %s", rdb_state_errmsg(w->st));
	rdb_state_rollback(w->st);
	return false;
}

static void *run(void *arg)
{
	struct mlt_writer *w = arg;

	pthread_mutex_lock(&w->mu);
	for (;;) {
		struct timespec until;
		struct mlt_record *batch;
		bool stopping;

		/* CLOCK_MONOTONIC (the condition variable's clock, see mlt_writer_start): on the
		 * wall clock a step back of N seconds would stall the writer for N seconds, with
		 * the usage it holds not on disk. */
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_nsec += (long)(w->flush_ms % 1000) * 1000000L;
		until.tv_sec += w->flush_ms / 1000 + until.tv_nsec / 1000000000L;
		until.tv_nsec %= 1000000000L;
		while (!w->stop && pthread_cond_timedwait(&w->cv, &w->mu, &until) != ETIMEDOUT)
			;
		stopping = w->stop;
		batch = w->head;
		if (batch == NULL && stopping)
			break;
		w->head = w->tail = NULL;
		w->len = 0;
		pthread_mutex_unlock(&w->mu);

		bool okay = batch == NULL ? true : write_batch(w, batch, (int64_t)time(NULL));

		pthread_mutex_lock(&w->mu);
		if (okay) {
			free_list(batch);
			if (!w->healthy)
				mlt_log(LOG_NOTICE, "state database writable again");
			w->healthy = true;
		} else {
			/* put the batch back in front, to retry; give up on it only when stopping */
			struct mlt_record *last = batch;
			size_t n = 1;

			w->healthy = false;
			while (last->next != NULL) {
				last = last->next;
				n++;
			}
			if (stopping) {
				mlt_log(LOG_ERR, "state database: %zu records lost at stop", n + w->len);
				free_list(batch);
				break;
			}
			last->next = w->head;
			if (w->head == NULL)
				w->tail = last;
			w->head = batch;
			w->len += n;
		}
		if (stopping && w->head == NULL)
			break;
	}
	free_list(w->head);
	w->head = w->tail = NULL;
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

int mlt_writer_start(const char *state_db, int64_t flush_ms, int64_t audit_retention,
                     struct mlt_writer **out, char *err, size_t errlen)
{
	struct mlt_writer *w;

	*out = NULL;
	if (rdb_state_init(state_db, err, errlen) != RDB_OK)
		return -1;
	w = calloc(1, sizeof *w);
	if (w == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (rdb_state_open(state_db, RDB_READWRITE, &w->st, err, errlen) != RDB_OK) {
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
		rdb_state_close(w->st);
		pthread_mutex_destroy(&w->mu);
		pthread_cond_destroy(&w->cv);
		free(w);
		return -1;
	}
	*out = w;
	return 0;
}

void mlt_writer_stop(struct mlt_writer *w)
{
	if (w == NULL)
		return;
	pthread_mutex_lock(&w->mu);
	w->stop = true;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);
	rdb_state_close(w->st);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv);
	free(w);
}

void mlt_writer_push(struct mlt_writer *w, struct mlt_record *rec)
{
	rec->next = NULL;
	pthread_mutex_lock(&w->mu);
	if (w->len >= QUEUE_MAX) {
		w->healthy = false;
		pthread_mutex_unlock(&w->mu);
		mlt_log(LOG_ERR, "state queue full: record for %s dropped", rec->login);
		free(rec);
		return;
	}
	if (w->tail != NULL)
		w->tail->next = rec;
	else
		w->head = rec;
	w->tail = rec;
	w->len++;
	pthread_mutex_unlock(&w->mu);
}

bool mlt_writer_healthy(struct mlt_writer *w)
{
	bool h;

	pthread_mutex_lock(&w->mu);
	h = w->healthy;
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
