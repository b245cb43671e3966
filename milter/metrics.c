/*
 * metrics.c — relay-milter's counters, their exposition and the metrics file thread (see
 * metrics.h).
 *
 * One flat array of atomic counters, slot by slot; slot_of() says which family and label a
 * slot is. Relaxed atomics are enough: each counter is independent, and a scrape that sees
 * one counter a moment ahead of another is what any Prometheus target gives.
 */
#include "metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "safefs.h"

enum {
	SL_ACCEPTED, SL_RCPTS, SL_BYTES, SL_HELD, SL_POLICY_RELOADS, SL_CONFIG_RELOADS,
	SL_WRITER_FAILURES,
	SL_LIMIT,                          /* + enum mlt_metric */
	SL_DB = SL_LIMIT + MLT_METRICS,    /* + enum mlt_metrics_db */
	SL_REFUSED = SL_DB + 2,            /* + enum mlt_why */
	SL_TEMPFAIL = SL_REFUSED + MLT_WHY_COUNT_,
	SL_COUNT_ = SL_TEMPFAIL + MLT_WHY_COUNT_
};
_Static_assert(SL_COUNT_ == MLT_METRICS_SLOTS, "MLT_METRICS_SLOTS matches the slots");

static atomic_uint_fast64_t slots[SL_COUNT_];
static atomic_size_t backlog;
static atomic_int_fast64_t start_time;
/* the state writer's persisted mark (writer thread only) */
static uint64_t persisted[SL_COUNT_];

static void bump(size_t slot, uint64_t n)
{
	atomic_fetch_add_explicit(&slots[slot], n, memory_order_relaxed);
}

static uint64_t get(size_t slot)
{
	return atomic_load_explicit(&slots[slot], memory_order_relaxed);
}

static const char *const db_names[] = { "users", "state" };

/* The family and label of a slot. */
static enum rdb_prom_id slot_of(size_t k, const char **label)
{
	static const enum rdb_prom_id fixed[] = {
		[SL_ACCEPTED] = RDB_PROM_ACCEPTED, [SL_RCPTS] = RDB_PROM_ACCEPTED_RCPTS,
		[SL_BYTES] = RDB_PROM_ACCEPTED_BYTES, [SL_HELD] = RDB_PROM_HELD,
		[SL_POLICY_RELOADS] = RDB_PROM_POLICY_RELOADS,
		[SL_CONFIG_RELOADS] = RDB_PROM_CONFIG_RELOADS,
		[SL_WRITER_FAILURES] = RDB_PROM_WRITER_FAILURES,
	};

	*label = NULL;
	if (k < SL_LIMIT)
		return fixed[k];
	if (k < SL_DB) {
		*label = mlt_metric_name((enum mlt_metric)(k - SL_LIMIT));
		return RDB_PROM_LIMIT_HITS;
	}
	if (k < SL_REFUSED) {
		*label = db_names[k - SL_DB];
		return RDB_PROM_DB_ERRORS;
	}
	if (k < SL_TEMPFAIL) {
		*label = mlt_why_tag((enum mlt_why)(k - SL_REFUSED));
		return RDB_PROM_REFUSED;
	}
	*label = mlt_why_tag((enum mlt_why)(k - SL_TEMPFAIL));
	return RDB_PROM_TEMPFAILS;
}

/* The action decide.c's table gives `why` (its codes are only there). */
static enum mlt_action action_of(enum mlt_why why)
{
	struct mlt_verdict v;

	mlt_verdict_set(&v, why, "-");
	return v.action;
}

void mlt_metrics_verdict(const struct mlt_verdict *v)
{
	if ((unsigned)v->why >= MLT_WHY_COUNT_)
		return;
	switch (v->action) {
	case MLT_REJECT: bump(SL_REFUSED + (size_t)v->why, 1); break;
	case MLT_TEMPFAIL: bump(SL_TEMPFAIL + (size_t)v->why, 1); break;
	case MLT_HOLD: bump(SL_HELD, 1); break;
	case MLT_CONTINUE: break;
	}
}

void mlt_metrics_accepted(uint64_t recipients, uint64_t bytes)
{
	bump(SL_ACCEPTED, 1);
	bump(SL_RCPTS, recipients);
	bump(SL_BYTES, bytes);
}

void mlt_metrics_held(void) { bump(SL_HELD, 1); }
void mlt_metrics_policy_reload(void) { bump(SL_POLICY_RELOADS, 1); }
void mlt_metrics_config_reload(void) { bump(SL_CONFIG_RELOADS, 1); }
void mlt_metrics_writer_failure(void) { bump(SL_WRITER_FAILURES, 1); }

void mlt_metrics_limit_hit(enum mlt_metric m)
{
	if ((unsigned)m < MLT_METRICS)
		bump(SL_LIMIT + (size_t)m, 1);
}

void mlt_metrics_db_error(enum mlt_metrics_db which)
{
	if ((unsigned)which < 2)
		bump(SL_DB + (size_t)which, 1);
}

void mlt_metrics_backlog(size_t queued)
{
	atomic_store_explicit(&backlog, queued, memory_order_relaxed);
}

/* The samples of a reason family: one per tag of decide.c's table whose action is
 * `action` (two reasons may share a tag, e.g. over-limit-alone: their sum), zeros
 * included, so every series exists from the start. */
static void render_reasons(struct rdb_prom_buf *b, enum rdb_prom_id id, size_t base,
                           enum mlt_action action)
{
	rdb_prom_head(b, id);
	for (int w = 0; w < MLT_WHY_COUNT_; w++) {
		uint64_t sum = 0;
		bool seen = false;

		if (action_of((enum mlt_why)w) != action)
			continue;
		for (int e = 0; e < w && !seen; e++)
			seen = action_of((enum mlt_why)e) == action &&
			       strcmp(mlt_why_tag((enum mlt_why)e), mlt_why_tag((enum mlt_why)w)) == 0;
		if (seen)
			continue;
		for (int e = w; e < MLT_WHY_COUNT_; e++)
			if (action_of((enum mlt_why)e) == action &&
			    strcmp(mlt_why_tag((enum mlt_why)e), mlt_why_tag((enum mlt_why)w)) == 0)
				sum += get(base + (size_t)e);
		rdb_prom_sample(b, id, mlt_why_tag((enum mlt_why)w), sum);
	}
}

bool mlt_metrics_render(struct rdb_prom_buf *b)
{
	for (int id = 0; id < RDB_PROM_COUNT_; id++) {
		const char *label;

		switch ((enum rdb_prom_id)id) {
		case RDB_PROM_REFUSED:
			render_reasons(b, RDB_PROM_REFUSED, SL_REFUSED, MLT_REJECT);
			continue;
		case RDB_PROM_TEMPFAILS:
			render_reasons(b, RDB_PROM_TEMPFAILS, SL_TEMPFAIL, MLT_TEMPFAIL);
			continue;
		case RDB_PROM_WRITER_BACKLOG:
			rdb_prom_head(b, RDB_PROM_WRITER_BACKLOG);
			rdb_prom_sample(b, RDB_PROM_WRITER_BACKLOG, NULL,
			                atomic_load_explicit(&backlog, memory_order_relaxed));
			continue;
		case RDB_PROM_START_TIME:
			rdb_prom_head(b, RDB_PROM_START_TIME);
			rdb_prom_sample(b, RDB_PROM_START_TIME, NULL, (uint64_t)atomic_load(&start_time));
			continue;
		default:
			break;
		}
		rdb_prom_head(b, (enum rdb_prom_id)id);
		for (size_t k = 0; k < SL_REFUSED; k++)
			if (slot_of(k, &label) == (enum rdb_prom_id)id)
				rdb_prom_sample(b, (enum rdb_prom_id)id, label, get(k));
	}
	return !b->failed;
}

enum rdb_result mlt_metrics_persist(struct rdb_state *st, struct mlt_metrics_mark *taken)
{
	for (size_t k = 0; k < SL_COUNT_; k++) {
		const char *label;
		enum rdb_prom_id id = slot_of(k, &label);
		uint64_t now = get(k);
		enum rdb_result r;

		taken->v[k] = now;
		if (now == persisted[k])
			continue;
		r = rdb_state_counter_add(st, rdb_prom_family(id)->name, label ? label : "",
		                          now - persisted[k]);
		if (r != RDB_OK)
			return r;
	}
	return RDB_OK;
}

void mlt_metrics_persisted(const struct mlt_metrics_mark *taken)
{
	memcpy(persisted, taken->v, sizeof persisted);
}

bool mlt_metrics_dirty(void)
{
	for (size_t k = 0; k < SL_COUNT_; k++)
		if (get(k) != persisted[k])
			return true;
	return false;
}

/* ---- the file ------------------------------------------------------------------------- */

struct mlt_metrics_file {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;
	int64_t interval_s;
	char *path;
	char last_err[512];   /* the last failure, logged once */
};

/* Renders and writes the file: temporary file beside it, fsync, rename (safefs.h). */
static void write_file(struct mlt_metrics_file *f)
{
	struct rdb_prom_buf b = { 0 };
	char name[NAME_MAX + 1], err[512] = "";
	int dirfd;

	if (!mlt_metrics_render(&b)) {
		snprintf(err, sizeof err, "out of memory");
	} else if ((dirfd = sfs_open_parent(f->path, 0, NULL, name, sizeof name, err,
	                                    sizeof err)) >= 0) {
		/* 0644: the scraper (node_exporter) runs as another user */
		sfs_write_atomic_at(dirfd, name, f->path, b.text, b.len, 0644, (uid_t)-1, (gid_t)-1,
		                    err, sizeof err);
		close(dirfd);
	}
	rdb_prom_buf_free(&b);
	if (err[0] != '\0' && strcmp(err, f->last_err) != 0)
		mlt_log(LOG_ERR, "metrics file %s not written: %s", f->path, err);
	else if (err[0] == '\0' && f->last_err[0] != '\0')
		mlt_log(LOG_NOTICE, "metrics file %s written again", f->path);
	memcpy(f->last_err, err, sizeof err);
}

static void *file_thread(void *arg)
{
	struct mlt_metrics_file *f = arg;

	pthread_mutex_lock(&f->mu);
	while (!f->stop) {
		struct timespec until;

		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += f->interval_s;
		while (!f->stop && pthread_cond_timedwait(&f->cv, &f->mu, &until) != ETIMEDOUT)
			;
		pthread_mutex_unlock(&f->mu);
		write_file(f);   /* also after a stop: the last counts */
		pthread_mutex_lock(&f->mu);
	}
	pthread_mutex_unlock(&f->mu);
	return NULL;
}

int mlt_metrics_file_start(const char *path, int64_t interval_s, struct mlt_metrics_file **out,
                           char *err, size_t errlen)
{
	struct mlt_metrics_file *f;
	pthread_condattr_t ca;

	*out = NULL;
	atomic_store(&start_time, (int_fast64_t)time(NULL));
	if (path[0] == '\0')
		return 0;
	f = calloc(1, sizeof *f);
	if (f == NULL || (f->path = strdup(path)) == NULL) {
		free(f);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	f->interval_s = interval_s;
	pthread_mutex_init(&f->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&f->cv, &ca);
	pthread_condattr_destroy(&ca);
	write_file(f);
	if ((errno = pthread_create(&f->thread, NULL, file_thread, f)) != 0) {
		snprintf(err, errlen, "starting the metrics thread: %s", strerror(errno));
		pthread_mutex_destroy(&f->mu);
		pthread_cond_destroy(&f->cv);
		free(f->path);
		free(f);
		return -1;
	}
	*out = f;
	return 0;
}

void mlt_metrics_file_stop(struct mlt_metrics_file *f)
{
	if (f == NULL)
		return;
	pthread_mutex_lock(&f->mu);
	f->stop = true;
	pthread_cond_signal(&f->cv);
	pthread_mutex_unlock(&f->mu);
	pthread_join(f->thread, NULL);
	pthread_mutex_destroy(&f->mu);
	pthread_cond_destroy(&f->cv);
	free(f->path);
	free(f);
}
