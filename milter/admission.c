/*
 * admission.c — the pool of state-database connections behind relay-milter's exact admission
 * (see admission.h); the decisions themselves are sql/admit.h's.
 */
#include "admission.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "state.h"
#include "admit.h"
#include "log.h"

#define ADMIT_CONNS 4   /* database sessions per node: enough for 2 cores, few for the server */

struct slot {
	struct rdb_state *st;   /* NULL until first use, or after an open failed */
	bool busy;
};

struct mlt_admit {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct slot slot[ADMIT_CONNS];
	char *name;
	char node[HOST_NAME_MAX + 24];
};

static struct slot *take(struct mlt_admit *a)
{
	struct slot *s = NULL;

	pthread_mutex_lock(&a->mu);
	for (;;) {
		/* an open connection first, so that the pool does not grow past what is used */
		for (int k = 0; k < ADMIT_CONNS && s == NULL; k++)
			if (!a->slot[k].busy && a->slot[k].st != NULL)
				s = &a->slot[k];
		for (int k = 0; k < ADMIT_CONNS && s == NULL; k++)
			if (!a->slot[k].busy)
				s = &a->slot[k];
		if (s != NULL)
			break;
		pthread_cond_wait(&a->cv, &a->mu);
	}
	s->busy = true;
	pthread_mutex_unlock(&a->mu);
	return s;
}

static void give(struct mlt_admit *a, struct slot *s)
{
	pthread_mutex_lock(&a->mu);
	s->busy = false;
	pthread_cond_signal(&a->cv);
	pthread_mutex_unlock(&a->mu);
}

/* The slot's connection, opened if need be; NULL (logged) if the database cannot be reached. */
static struct rdb_state *conn(struct mlt_admit *a, struct slot *s)
{
	char err[512];

	if (s->st == NULL &&
	    rdb_state_open(a->name, RDB_READWRITE, &s->st, err, sizeof err) != RDB_OK) {
		mlt_log(LOG_ERR, "admission: %s; refusing mail (451) until it answers", err);
		return NULL;
	}
	return s->st;
}

int mlt_admit_new(const char *state_db, struct mlt_admit **out, char *err, size_t errlen)
{
	struct mlt_admit *a = calloc(1, sizeof *a);
	char host[HOST_NAME_MAX + 1] = "";

	*out = NULL;
	if (a == NULL || (a->name = strdup(state_db)) == NULL) {
		free(a);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (gethostname(host, sizeof host) != 0)
		snprintf(host, sizeof host, "unknown");
	host[sizeof host - 1] = '\0';
	snprintf(a->node, sizeof a->node, "%s:%ld", host, (long)getpid());
	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->cv, NULL);
	if (rdb_state_open(state_db, RDB_READWRITE, &a->slot[0].st, err, errlen) != RDB_OK) {
		mlt_admit_free(a);
		return -1;
	}
	*out = a;
	return 0;
}

void mlt_admit_free(struct mlt_admit *a)
{
	if (a == NULL)
		return;
	for (int k = 0; k < ADMIT_CONNS; k++)
		rdb_state_close(a->slot[k].st);
	pthread_mutex_destroy(&a->mu);
	pthread_cond_destroy(&a->cv);
	free(a->name);
	free(a);
}

/* A failed call: logged with the database's reason. The connection is kept: the core
 * (sql/pgconn.c) reconnects at its next use when the failure was a lost connection. */
static int64_t failed(struct rdb_state *st, const char *what, const char *login)
{
	mlt_log(LOG_ERR, "admission (%s) for %s: %s; tempfail (451)", what, login,
	        rdb_state_errmsg(st));
	return MLT_ADMIT_ERROR;
}

int64_t mlt_admit_reserve(struct mlt_admit *a, const char *login, const struct rdb_limit *lims,
                          size_t n, const uint64_t need[RDB_METRICS], int64_t ttl,
                          struct mlt_resv *resv, int64_t *resv_id, size_t *which)
{
	struct slot *s = take(a);
	struct rdb_state *st = conn(a, s);
	int64_t wait = MLT_ADMIT_ERROR;

	if (st != NULL && rdb_admit_reserve(st, login, a->node, ttl, lims, n, need, resv_id,
	                                    resv->v, &wait, which) != RDB_OK)
		wait = failed(st, "reserve", login);
	give(a, s);
	return wait;
}

int64_t mlt_admit_commit(struct mlt_admit *a, const char *login, const struct rdb_limit *lims,
                         size_t n, struct mlt_resv *resv, int64_t *resv_id,
                         const uint64_t actual[RDB_METRICS], size_t *which)
{
	struct slot *s = take(a);
	struct rdb_state *st = conn(a, s);
	int64_t wait = MLT_ADMIT_ERROR;

	if (st != NULL && rdb_admit_commit(st, login, lims, n, actual, resv_id, resv->v, &wait,
	                                   which) != RDB_OK)
		wait = failed(st, "commit", login);
	give(a, s);
	return wait;
}

void mlt_admit_release(struct mlt_admit *a, const char *login, struct mlt_resv *resv,
                       int64_t *resv_id)
{
	struct slot *s;
	struct rdb_state *st;

	if (*resv_id <= 0) {
		memset(resv, 0, sizeof *resv);
		return;
	}
	s = take(a);
	st = conn(a, s);
	if (st == NULL || rdb_admit_release(st, resv_id, resv->v) != RDB_OK)
		mlt_log(LOG_WARNING, "admission: releasing the reservation of %s failed (%s): it "
		        "expires on its own after reservation_ttl", login,
		        st ? rdb_state_errmsg(st) : "no connection");
	give(a, s);
	memset(resv, 0, sizeof *resv);
	*resv_id = 0;
}
