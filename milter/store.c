/*
 * store.c — cached users-database lookups for the milter (see store.h).
 *
 * The cache is a chained hash table keyed by the lowercased authentication name: a login's
 * name, or an app credential's (LOGIN+LABEL), whose entry is its login's policy with the
 * credential's label (so usage, limits and the audit log stay the login's). "Not found" is
 * cached too (a login that does not exist costs one query per refresh period, not one per
 * MAIL). A database error is never cached. A change of PRAGMA data_version drops the whole
 * table: relay-admin writes are rare, lookups are many. data_version only sees commits to
 * the file we hold open, so each refresh also stat()s the path: a file put in its place
 * (a restore) is opened instead, and a missing one is an error, as in the SASL plugin.
 * A users database on PostgreSQL (users_db = postgresql://… or pg:FILE) has no file:
 * there the change marker is the schema's users_generation counter (any commit on any
 * node moves it), and the one handle reconnects by itself after a failure (sql/pgconn.c),
 * while each failed refresh or lookup is an error the caller tempfails on.
 */
#include "store.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "log.h"
#include "decide.h"
#include "metrics.h"
#include "limit.h"
#include "policy.h"
#include "rdb.h"

/* The policy entry holds what the reader returns: a smaller copy would drop limits, a
 * shorter name buffer would cut logins the database holds. (struct mlt_limit is struct
 * rdb_limit, sql/limit.h: limits are copied as they are.) */
static_assert(MLT_LIMITS_MAX == RDB_LIMITS_MAX,
              "milter/decide.h MLT_LIMITS_MAX must equal sql/limit.h RDB_LIMITS_MAX");
static_assert(MLT_LOGIN_MAX == RDB_NAME_MAX,
              "milter/decide.h MLT_LOGIN_MAX must equal sql/rdb.h RDB_NAME_MAX");
static_assert(MLT_LABEL_MAX == RDB_LABEL_MAX,
              "milter/decide.h MLT_LABEL_MAX must equal sql/rdb.h RDB_LABEL_MAX");

/* The decision code's names for the states of the one rule (rdb_login_state_at()). */
static enum mlt_login_state login_state(enum rdb_login_state st)
{
	switch (st) {
	case RDB_LOGIN_ACTIVE: return MLT_LOGIN_ACTIVE;
	case RDB_LOGIN_DISABLED: return MLT_LOGIN_DISABLED;
	case RDB_LOGIN_EXPIRED: return MLT_LOGIN_EXPIRED;
	}
	return MLT_LOGIN_DISABLED; /* not reached: fail closed */
}

#define BUCKETS 1024
#define ENTRIES_MAX 20000

struct entry {
	struct mlt_login login;        /* first: mlt_store_put() casts back */
	char key[MLT_LOGIN_MAX + 1];   /* the authentication name asked for, lowercased */
	atomic_int refs;
	bool found;
	bool has_expiry;
	int64_t expires_at;
	char *pool;                    /* sender strings */
	struct entry *next;
};

struct mlt_store {
	pthread_mutex_t mu;
	char *path;
	dev_t dev;                     /* identity of the file db was opened from */
	ino_t ino;
	struct rdb *db;
	struct rdb_policy *pol;
	int64_t version;
	int64_t last_check_ms;
	int64_t refresh_ms;
	bool loaded;                /* the first policy is in: later drops are reloads */
	int64_t horizon;
	unsigned metrics;              /* bits 1 << enum mlt_metric of every limit in the db */
	int64_t reset_seen;            /* the newest counter reset handed to on_reset */
	void (*on_reset)(const struct rdb_usage_reset *r, void *arg);
	void *on_reset_arg;
	size_t n;
	struct entry *bucket[BUCKETS];
};

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void lower(char *out, size_t outlen, const char *in)
{
	size_t o = 0;

	for (; *in && o + 1 < outlen; in++)
		out[o++] = (*in >= 'A' && *in <= 'Z') ? (char)(*in - 'A' + 'a') : *in;
	out[o] = '\0';
}

static unsigned hash(const char *s)
{
	unsigned h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h % BUCKETS;
}

static void entry_unref(struct entry *e)
{
	if (e != NULL && atomic_fetch_sub(&e->refs, 1) == 1) {
		free(e->pool);
		free((void *)e->login.senders);
		free(e);
	}
}

void mlt_store_put(const struct mlt_login *l)
{
	entry_unref((struct entry *)(void *)(uintptr_t)l);
}

static void flush(struct mlt_store *s)
{
	for (size_t b = 0; b < BUCKETS; b++) {
		struct entry *e = s->bucket[b];

		while (e != NULL) {
			struct entry *next = e->next;

			entry_unref(e);
			e = next;
		}
		s->bucket[b] = NULL;
	}
	s->n = 0;
}

/* Opens s->path (stat first: if the file is replaced meanwhile, the next check sees a
 * new identity and opens again) and swaps it in for the current handle, if any. The
 * cache is dropped via data_version: a new handle starts at version -1. Lock held. */
static int open_db(struct mlt_store *s, char *err, size_t errlen)
{
	struct rdb *db = NULL;
	struct rdb_policy *pol = NULL;
	struct stat st = { 0 };

	if (!rdb_is_postgresql(s->path) && stat(s->path, &st) != 0) {
		snprintf(err, errlen, "%s: %s", s->path, strerror(errno));
		return -1;
	}
	if (rdb_open(s->path, RDB_READONLY, &db, err, errlen) != RDB_OK)
		return -1;
	if (rdb_policy_new(db, &pol) != RDB_OK) {
		snprintf(err, errlen, "%s: preparing policy queries: %s", s->path, rdb_errmsg(db));
		rdb_close(db);
		return -1;
	}
	rdb_policy_free(s->pol);
	rdb_close(s->db);
	s->db = db;
	s->pol = pol;
	s->dev = st.st_dev;
	s->ino = st.st_ino;
	s->version = -1;
	return 0;
}

static int pass_reset(const struct rdb_usage_reset *r, void *arg)
{
	struct mlt_store *s = arg;

	s->on_reset(r, s->on_reset_arg);
	if (r->id > s->reset_seen)
		s->reset_seen = r->id;
	return 0;
}

/* The resets relay-admin added since the last look, to the watcher. Lock held. */
static enum rdb_result new_resets(struct mlt_store *s)
{
	return rdb_usage_reset_foreach(s->pol, NULL, s->reset_seen, 0, pass_reset, s);
}

/* Asks whether the database changed (or was replaced); drops the cache if so. Called with
 * the lock held. On failure the reason is in err. */
static int refresh(struct mlt_store *s, char *err, size_t errlen)
{
	struct stat st;
	int64_t v, w;

	if (rdb_is_postgresql(s->path)) {
		/* no file to watch: the generation counter below says it all */
	} else if (stat(s->path, &st) != 0) {
		snprintf(err, errlen, "%s: %s", s->path, strerror(errno));
		return -1;
	} else if ((st.st_dev != s->dev || st.st_ino != s->ino) && open_db(s, err, errlen) != 0) {
		return -1;
	}
	if (rdb_policy_data_version(s->pol, &v) != RDB_OK) {
		snprintf(err, errlen, "%s", rdb_policy_errmsg(s->pol));
		return -1;
	}
	if (v != s->version) {
		unsigned metrics;

		if (rdb_policy_max_window(s->pol, &w) != RDB_OK ||
		    rdb_policy_metrics(s->pol, &metrics) != RDB_OK) {
			snprintf(err, errlen, "%s", rdb_policy_errmsg(s->pol));
			return -1;
		}
		if (s->on_reset != NULL && new_resets(s) != RDB_OK) {
			snprintf(err, errlen, "%s", rdb_policy_errmsg(s->pol));
			return -1;
		}
		flush(s);
		if (s->loaded)
			mlt_metrics_policy_reload();
		s->loaded = true;
		s->version = v;
		s->horizon = w > MLT_HORIZON_MIN ? w : MLT_HORIZON_MIN;
		s->metrics = metrics;
	}
	return 0;
}

int mlt_store_open(const char *users_db, int64_t refresh_ms, struct mlt_store **out,
                   char *err, size_t errlen)
{
	struct mlt_store *s = calloc(1, sizeof *s);

	*out = NULL;
	if (s == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	pthread_mutex_init(&s->mu, NULL);
	s->refresh_ms = refresh_ms;
	s->version = -1;
	s->path = strdup(users_db);
	if (s->path == NULL) {
		snprintf(err, errlen, "out of memory");
		mlt_store_close(s);
		return -1;
	}
	if (open_db(s, err, errlen) != 0 || refresh(s, err, errlen) != 0) {
		mlt_store_close(s);
		return -1;
	}
	s->last_check_ms = mono_ms();
	*out = s;
	return 0;
}

void mlt_store_close(struct mlt_store *s)
{
	if (s == NULL)
		return;
	flush(s);
	rdb_policy_free(s->pol);
	rdb_close(s->db);
	free(s->path);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

void mlt_store_set_refresh(struct mlt_store *s, int64_t refresh_ms)
{
	pthread_mutex_lock(&s->mu);
	s->refresh_ms = refresh_ms;
	pthread_mutex_unlock(&s->mu);
}

/* Refreshes when policy_refresh_ms has passed since the last check. Lock held. */
static int refresh_due(struct mlt_store *s)
{
	int64_t ms = mono_ms();
	char err[512];

	if (ms - s->last_check_ms < s->refresh_ms)
		return 0;
	if (refresh(s, err, sizeof err) != 0) {
		mlt_metrics_db_error(MLT_DB_USERS);
		mlt_log(LOG_ERR, "users database: %s", err);
		return -1;
	}
	s->last_check_ms = ms;
	return 0;
}

int mlt_store_metrics(struct mlt_store *s)
{
	int m;

	pthread_mutex_lock(&s->mu);
	m = refresh_due(s) == 0 ? (int)s->metrics : -1;
	pthread_mutex_unlock(&s->mu);
	return m;
}

int mlt_store_resets(struct mlt_store *s, int64_t after_id, int64_t since,
                     int (*fn)(const struct rdb_usage_reset *r, void *arg), void *arg,
                     char *err, size_t errlen)
{
	int rc = 0;

	pthread_mutex_lock(&s->mu);
	if (rdb_usage_reset_foreach(s->pol, NULL, after_id, since, fn, arg) != RDB_OK) {
		snprintf(err, errlen, "reading counter resets: %s", rdb_policy_errmsg(s->pol));
		rc = -1;
	}
	pthread_mutex_unlock(&s->mu);
	return rc;
}

void mlt_store_watch_resets(struct mlt_store *s, int64_t after_id,
                            void (*fn)(const struct rdb_usage_reset *r, void *arg), void *arg)
{
	pthread_mutex_lock(&s->mu);
	s->reset_seen = after_id;
	s->on_reset = fn;
	s->on_reset_arg = arg;
	pthread_mutex_unlock(&s->mu);
}

int64_t mlt_store_horizon(struct mlt_store *s)
{
	int64_t h;

	pthread_mutex_lock(&s->mu);
	h = s->horizon;
	pthread_mutex_unlock(&s->mu);
	return h;
}

struct senders_acc {
	size_t n, cap, bytes;
	char **list;
};

static int add_sender(const char *pattern, void *arg)
{
	struct senders_acc *a = arg;

	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 8;
		char **l = realloc(a->list, cap * sizeof *l);

		if (l == NULL)
			return -1;
		a->list = l;
		a->cap = cap;
	}
	a->list[a->n] = strdup(pattern);
	if (a->list[a->n] == NULL)
		return -1;
	a->bytes += strlen(pattern) + 1;
	a->n++;
	return 0;
}

static void acc_free(struct senders_acc *a)
{
	for (size_t k = 0; k < a->n; k++)
		free(a->list[k]);
	free(a->list);
}

/* Builds an entry from the database; NULL with *r set on error. Lock held. */
static struct entry *load(struct mlt_store *s, const char *key, int64_t now, enum mlt_lookup *r)
{
	struct rdb_login_policy lp;
	struct senders_acc acc = { 0 };
	struct entry *e = calloc(1, sizeof *e);
	enum rdb_result rr;

	*r = MLT_LOOKUP_ERROR;
	if (e == NULL)
		return NULL;
	atomic_init(&e->refs, 1);
	/* One read snapshot for the login row, its limits and its senders: a relay-admin commit
	 * between the reads must not give a mixed entry. */
	if (rdb_begin_read(s->db) != RDB_OK) {
		mlt_log(LOG_ERR, "users database: %s", rdb_errmsg(s->db));
		free(e);
		return NULL;
	}
	rr = rdb_policy_login(s->pol, key, &lp);
	if (rr == RDB_NOTFOUND) {
		/* not a login: an app credential's authentication name? Then the policy is
		 * its login's, read in the same snapshot. */
		char login[RDB_NAME_MAX + 1];

		rr = rdb_policy_credential(s->pol, key, login, e->login.credential);
		if (rr == RDB_OK)
			rr = rdb_policy_login(s->pol, login, &lp);
	}
	if (rr == RDB_NOTFOUND) {
		rdb_rollback(s->db);
		e->login.credential[0] = '\0';
		snprintf(e->login.name, sizeof e->login.name, "%s", key);
		*r = MLT_LOOKUP_NOTFOUND;
		return e;
	}
	if (rr != RDB_OK || rdb_policy_senders(s->pol, lp.name, add_sender, &acc) != RDB_OK) {
		mlt_log(LOG_ERR, "users database: %s", rdb_policy_errmsg(s->pol));
		rdb_rollback(s->db);
		acc_free(&acc);
		free(e);
		return NULL;
	}
	rdb_rollback(s->db); /* read-only snapshot: nothing to commit */
	e->found = true;
	lower(e->login.name, sizeof e->login.name, lp.name);
	e->has_expiry = lp.has_expiry;
	e->expires_at = lp.expires_at;
	e->login.state = login_state(rdb_login_state_at(lp.enabled, lp.has_expiry, lp.expires_at,
	                                                now));
	e->login.rate_exempt = lp.rate_exempt;
	e->login.hold_over_limit = lp.hold_over_limit;
	for (size_t k = 0; k < lp.nlimits && k < MLT_LIMITS_MAX; k++)
		e->login.limits[e->login.nlimits++] = lp.limits[k];
	e->pool = malloc(acc.bytes + 1);
	e->login.senders = calloc(acc.n + 1, sizeof *e->login.senders);
	if (e->pool == NULL || e->login.senders == NULL) {
		acc_free(&acc);
		free(e->pool);
		free((void *)e->login.senders);
		free(e);
		return NULL;
	}
	size_t off = 0;

	for (size_t k = 0; k < acc.n; k++) {
		size_t len = strlen(acc.list[k]) + 1;

		memcpy(e->pool + off, acc.list[k], len);
		e->login.senders[k] = e->pool + off;
		off += len;
	}
	e->login.nsenders = acc.n;
	acc_free(&acc);
	*r = MLT_LOOKUP_FOUND;
	return e;
}

enum mlt_lookup mlt_store_get(struct mlt_store *s, const char *name, int64_t now,
                              const struct mlt_login **out)
{
	char key[MLT_LOGIN_MAX + 1];
	struct entry *e, **pp;
	enum mlt_lookup r;
	unsigned b;

	*out = NULL;
	if (strlen(name) > MLT_LOGIN_MAX)
		return MLT_LOOKUP_NOTFOUND;
	lower(key, sizeof key, name);
	b = hash(key);
	pthread_mutex_lock(&s->mu);
	if (refresh_due(s) != 0) {
		pthread_mutex_unlock(&s->mu);
		return MLT_LOOKUP_ERROR;
	}
	for (pp = &s->bucket[b]; (e = *pp) != NULL; pp = &e->next) {
		if (strcmp(e->key, key) != 0)
			continue;
		/* an expiry that passed since the entry was built: rebuild it */
		if (e->found && e->login.state == MLT_LOGIN_ACTIVE &&
		    rdb_login_state_at(true, e->has_expiry, e->expires_at, now) != RDB_LOGIN_ACTIVE) {
			*pp = e->next;
			entry_unref(e);
			s->n--;
			break;
		}
		goto hit;
	}
	e = load(s, key, now, &r);
	if (e == NULL) {
		mlt_metrics_db_error(MLT_DB_USERS);
		pthread_mutex_unlock(&s->mu);
		return MLT_LOOKUP_ERROR;
	}
	if (s->n >= ENTRIES_MAX)
		flush(s);
	/* cached under the name we were asked for: the login's own name may differ in case,
	 * a credential's is another name altogether */
	memcpy(e->key, key, sizeof e->key);
	e->next = s->bucket[b];
	s->bucket[b] = e;
	s->n++;
hit:
	if (!e->found) {
		pthread_mutex_unlock(&s->mu);
		return MLT_LOOKUP_NOTFOUND;
	}
	atomic_fetch_add(&e->refs, 1);
	pthread_mutex_unlock(&s->mu);
	*out = &e->login;
	return MLT_LOOKUP_FOUND;
}
