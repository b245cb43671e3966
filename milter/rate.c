/*
 * rate.c — the shared per-login limiter (see rate.h). A chained hash table of logins, one
 * mutex for all of it: each operation is a few additions, far shorter than the milter
 * round trip it sits in, so one lock does not limit throughput on two cores.
 */
#include "rate.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BUCKETS 1024

struct login_state {
	char *name;
	struct rdb_usage *log;
	uint64_t reserved[RDB_METRICS];
	struct login_state *next;
};

struct mlt_rate {
	pthread_mutex_t mu;
	struct login_state *bucket[BUCKETS];
};

static unsigned hash(const char *s)
{
	unsigned h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h % BUCKETS;
}

struct mlt_rate *mlt_rate_new(void)
{
	struct mlt_rate *r = calloc(1, sizeof *r);

	if (r != NULL)
		pthread_mutex_init(&r->mu, NULL);
	return r;
}

static void state_free(struct login_state *s)
{
	rdb_usage_free(s->log);
	free(s->name);
	free(s);
}

void mlt_rate_free(struct mlt_rate *r)
{
	if (r == NULL)
		return;
	for (size_t b = 0; b < BUCKETS; b++) {
		struct login_state *s = r->bucket[b];

		while (s != NULL) {
			struct login_state *next = s->next;

			state_free(s);
			s = next;
		}
	}
	pthread_mutex_destroy(&r->mu);
	free(r);
}

/* Finds or (create = true) creates the login's state. Lock held. */
static struct login_state *find(struct mlt_rate *r, const char *login, bool create)
{
	unsigned b = hash(login);
	struct login_state *s;

	for (s = r->bucket[b]; s != NULL; s = s->next)
		if (strcmp(s->name, login) == 0)
			return s;
	if (!create)
		return NULL;
	s = calloc(1, sizeof *s);
	if (s == NULL)
		return NULL;
	s->name = strdup(login);
	s->log = rdb_usage_new();
	if (s->name == NULL || s->log == NULL) {
		state_free(s);
		return NULL;
	}
	s->next = r->bucket[b];
	r->bucket[b] = s;
	return s;
}

/* Drops a login with nothing in its log and nothing reserved. Lock held. */
static void maybe_drop(struct mlt_rate *r, struct login_state *s)
{
	struct login_state **pp;

	if (rdb_usage_len(s->log) > 0)
		return;
	for (int m = 0; m < RDB_METRICS; m++)
		if (s->reserved[m] != 0)
			return;
	for (pp = &r->bucket[hash(s->name)]; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == s) {
			*pp = s->next;
			state_free(s);
			return;
		}
	}
}

/* CLOCK_BOOTTIME: Linux since 2.6.39. CLOCK_MONOTONIC, which stops while the machine
 * sleeps (windows would then outlast their real length), only if it is refused. */
static void limiter_now(struct timespec *ts)
{
	if (clock_gettime(CLOCK_BOOTTIME, ts) != 0)
		clock_gettime(CLOCK_MONOTONIC, ts);
}

int64_t mlt_rate_clock(void)
{
	struct timespec ts;

	limiter_now(&ts);
	return (int64_t)ts.tv_sec;
}

int64_t mlt_rate_clock_of_wall(int64_t wall_ns)
{
	struct timespec rt, bt;
	int64_t t;

	clock_gettime(CLOCK_REALTIME, &rt);
	limiter_now(&bt);
	t = wall_ns + ((int64_t)bt.tv_sec - (int64_t)rt.tv_sec) * 1000000000 +
	    ((int64_t)bt.tv_nsec - (int64_t)rt.tv_nsec);
	return t >= 0 ? t / 1000000000 : -((-t + 999999999) / 1000000000);
}

bool mlt_rate_load(struct mlt_rate *r, const char *login, int64_t ts,
                   const uint64_t v[RDB_METRICS], int64_t wall_now, int64_t now)
{
	struct login_state *s;
	int64_t age = 0, t;
	bool okay;

	/* the row's age on the wall clock; a row from "the future" is as young as can be */
	if (ts < wall_now && __builtin_sub_overflow(wall_now, ts, &age))
		return true; /* older than any window can be */
	if (__builtin_sub_overflow(now, age, &t))
		return true;
	pthread_mutex_lock(&r->mu);
	s = find(r, login, true);
	okay = s != NULL && rdb_usage_add(s->log, t, v);
	pthread_mutex_unlock(&r->mu);
	return okay;
}

/* Takes the lock and the login's state (made if new), its log clamped to `now` (a no-op
 * on a steady clock; see sql/limit.h). NULL, lock released, if there is no room for it. */
static struct login_state *lock_login(struct mlt_rate *r, const char *login, int64_t now)
{
	struct login_state *s;

	pthread_mutex_lock(&r->mu);
	s = find(r, login, true);
	if (s == NULL) {
		pthread_mutex_unlock(&r->mu);
		return NULL;
	}
	rdb_usage_clamp(s->log, now);
	return s;
}

int64_t mlt_rate_reserve(struct mlt_rate *r, const char *login, const struct rdb_limit *lims,
                         size_t n, const uint64_t need[RDB_METRICS], int64_t now,
                         struct mlt_resv *resv, size_t *which)
{
	struct login_state *s;
	int64_t wait;

	s = lock_login(r, login, now);
	if (s == NULL)
		return MLT_RATE_ERROR;
	wait = rdb_limits_wait(s->log, lims, n, s->reserved, need, now, which);
	if (wait == 0) {
		for (int m = 0; m < RDB_METRICS; m++) {
			s->reserved[m] += need[m];
			resv->v[m] += need[m];
		}
	} else {
		maybe_drop(r, s);
	}
	pthread_mutex_unlock(&r->mu);
	return wait;
}

/* How much of resv is still counted in s->reserved: never more than is there, so a
 * reservation can never take the total below zero. Lock held. */
static uint64_t still_reserved(const struct login_state *s, const struct mlt_resv *resv, int m)
{
	return resv->v[m] <= s->reserved[m] ? resv->v[m] : s->reserved[m];
}

static void give_back(struct login_state *s, struct mlt_resv *resv)
{
	for (int m = 0; m < RDB_METRICS; m++) {
		s->reserved[m] -= still_reserved(s, resv, m);
		resv->v[m] = 0;
	}
}

int64_t mlt_rate_commit(struct mlt_rate *r, const char *login, const struct rdb_limit *lims,
                        size_t n, struct mlt_resv *resv, const uint64_t actual[RDB_METRICS],
                        int64_t now, int64_t keep, size_t *which)
{
	struct login_state *s;
	uint64_t others[RDB_METRICS];
	const uint64_t need[RDB_METRICS] = { 0, 0, actual[RDB_METRIC_BYTES] };
	int64_t wait;

	s = lock_login(r, login, now);
	if (s == NULL)
		return MLT_RATE_ERROR;
	for (int m = 0; m < RDB_METRICS; m++)
		others[m] = s->reserved[m] - still_reserved(s, resv, m);
	wait = rdb_limits_wait(s->log, lims, n, others, need, now, which);
	if (wait == 0) {
		give_back(s, resv);
		if (!rdb_usage_add(s->log, now, actual))
			wait = MLT_RATE_ERROR;
		rdb_usage_prune(s->log, now, keep);
	}
	pthread_mutex_unlock(&r->mu);
	return wait;
}

void mlt_rate_release(struct mlt_rate *r, const char *login, struct mlt_resv *resv)
{
	struct login_state *s;

	if (resv->v[0] == 0 && resv->v[1] == 0 && resv->v[2] == 0)
		return;
	pthread_mutex_lock(&r->mu);
	s = find(r, login, false);
	if (s != NULL) {
		give_back(s, resv);
		maybe_drop(r, s);
	}
	memset(resv, 0, sizeof *resv);
	pthread_mutex_unlock(&r->mu);
}

uint64_t mlt_rate_sum(struct mlt_rate *r, const char *login, enum rdb_metric m,
                      int64_t window, int64_t now)
{
	struct login_state *s;
	uint64_t sum = 0;

	pthread_mutex_lock(&r->mu);
	s = find(r, login, false);
	if (s != NULL) {
		rdb_usage_clamp(s->log, now);
		sum = rdb_usage_sum(s->log, m, window, now);
	}
	pthread_mutex_unlock(&r->mu);
	return sum;
}

void mlt_rate_reset(struct mlt_rate *r, const char *login, unsigned metrics, int64_t before)
{
	struct login_state *s;

	pthread_mutex_lock(&r->mu);
	s = find(r, login, false);
	if (s != NULL)
		rdb_usage_zero(s->log, metrics, before);
	pthread_mutex_unlock(&r->mu);
}
