/*
 * test-mlt-rate.c — the shared per-login limiter (milter/rate.c): reservations at MAIL
 * and RCPT, commit at end of message with the real byte count, release on abort, loading
 * persisted (wall-clock) usage onto the limiter's clock, clock steps, and many threads
 * racing for one login's last slots: the totals afterwards are exactly what was committed,
 * none slipped past the limit and no aborted reservation leaked.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "rate.h"
#include "tap.h"

static struct mlt_rate *shared;
static atomic_int admitted, committed, commit_errors;
static const struct rdb_limit race_lim[] = { { RDB_METRIC_MESSAGES, 3600, 25 } };

/* One session after another: reserve at MAIL, then commit (odd attempts) or abort. Every
 * successful commit is counted here, so the limiter's totals can be checked exactly. */
static void *racer(void *arg)
{
	for (int i = 0; i < 20; i++) {
		struct mlt_resv resv = { { 0, 0, 0 } };
		const uint64_t need[RDB_METRICS] = { 1, 0, 0 };
		const uint64_t actual[RDB_METRICS] = { 1, 1, 100 };
		size_t which;

		if (mlt_rate_reserve(shared, "racer", race_lim, 1, need, 1000, &resv, &which) != 0)
			continue;
		atomic_fetch_add(&admitted, 1);
		if (i % 2 == 0) {
			mlt_rate_release(shared, "racer", &resv);
		} else if (mlt_rate_commit(shared, "racer", race_lim, 1, &resv, actual, 1000, 3600,
		                           &which) == 0) {
			atomic_fetch_add(&committed, 1);
		} else {
			/* a message limit is not checked again at commit: this must not happen */
			atomic_fetch_add(&commit_errors, 1);
			mlt_rate_release(shared, "racer", &resv);
		}
	}
	return arg;
}

int main(void)
{
	struct mlt_rate *r = mlt_rate_new();
	const struct rdb_limit lims[] = {
		{ RDB_METRIC_MESSAGES, 60, 2 }, { RDB_METRIC_RECIPIENTS, 60, 3 }, { RDB_METRIC_BYTES, 60, 1000 },
	};
	struct mlt_resv a = { { 0, 0, 0 } }, b = { { 0, 0, 0 } }, c = { { 0, 0, 0 } };
	const uint64_t mail[RDB_METRICS] = { 1, 0, 0 }, rcpt[RDB_METRICS] = { 0, 1, 0 };
	size_t which = 99;

	/* two messages in flight fill the message limit; a third waits */
	is_int(mlt_rate_reserve(r, "x", lims, 3, mail, 100, &a, &which), 0, "a admitted");
	is_int(mlt_rate_reserve(r, "x", lims, 3, mail, 100, &b, &which), 0, "b admitted");
	ok(mlt_rate_reserve(r, "x", lims, 3, mail, 100, &c, &which) > 0, "c waits while a, b fly");
	is_int(which, 0, "the message limit decides");
	is_int(c.v[RDB_METRIC_MESSAGES], 0, "nothing reserved for c");
	/* recipients: 3 between a and b */
	is_int(mlt_rate_reserve(r, "x", lims, 3, rcpt, 100, &a, &which), 0, "a rcpt 1");
	is_int(mlt_rate_reserve(r, "x", lims, 3, rcpt, 100, &a, &which), 0, "a rcpt 2");
	is_int(mlt_rate_reserve(r, "x", lims, 3, rcpt, 100, &b, &which), 0, "b rcpt 1");
	ok(mlt_rate_reserve(r, "x", lims, 3, rcpt, 100, &b, &which) > 0, "b rcpt 2 over the limit");
	is_int(which, 1, "the recipient limit decides");
	/* a aborts: its slot frees */
	mlt_rate_release(r, "x", &a);
	is_int(a.v[RDB_METRIC_MESSAGES] + a.v[RDB_METRIC_RECIPIENTS], 0, "release zeroes the reservation");
	is_int(mlt_rate_reserve(r, "x", lims, 3, mail, 100, &c, &which), 0, "c admitted after abort");
	/* b commits 600 bytes; c then cannot commit 500 (1100 > 1000) but can commit 400 */
	is_int(mlt_rate_commit(r, "x", lims, 3, &b, (const uint64_t[]){ 1, 1, 600 }, 101, 60, &which),
	       0, "b commits");
	is_int(mlt_rate_sum(r, "x", RDB_METRIC_MESSAGES, 60, 101), 1, "one message counted");
	is_int(mlt_rate_sum(r, "x", RDB_METRIC_BYTES, 60, 101), 600, "600 bytes counted");
	ok(mlt_rate_commit(r, "x", lims, 3, &c, (const uint64_t[]){ 1, 0, 500 }, 102, 60, &which) > 0,
	   "c's real size breaks the byte limit at end of message");
	is_int(which, 2, "the byte limit decides");
	is_int(c.v[RDB_METRIC_MESSAGES], 1, "a refused commit keeps the reservation for the caller");
	is_int(mlt_rate_commit(r, "x", lims, 3, &c, (const uint64_t[]){ 1, 0, 400 }, 102, 60, &which),
	       0, "400 bytes fit");
	is_int(mlt_rate_sum(r, "x", RDB_METRIC_MESSAGES, 60, 102), 2, "two messages counted");
	/* SIZE= larger than the limit can never fit */
	is_int(mlt_rate_reserve(r, "y", lims, 3, (const uint64_t[]){ 1, 0, 5000 }, 100, &a, &which),
	       RDB_WAIT_NEVER, "SIZE= over the byte limit: never");
	/* persisted usage loaded at start counts: a row written 10 s ago (wall clock 1090 of
	 * 1100) lands 10 s before the limiter clock's 100 */
	ok(mlt_rate_load(r, "z", 1090, (const uint64_t[]){ 2, 2, 10 }, 1100, 100), "load");
	ok(mlt_rate_reserve(r, "z", lims, 3, mail, 100, &a, &which) == 50, "loaded usage counts; room at 150");
	mlt_rate_release(r, "z", &a);
	/* a row from "the future": the wall clock stepped back 300 s before the restart */
	ok(mlt_rate_load(r, "f", 1400, (const uint64_t[]){ 2, 0, 0 }, 1100, 100), "load a future row");
	is_int(mlt_rate_reserve(r, "f", lims, 3, mail, 100, &a, &which), 60,
	       "a future row counts, as written at the restart: one window, not 360 s");
	ok(mlt_rate_load(r, "old", INT64_MIN + 5, (const uint64_t[]){ 2, 0, 0 }, 1100, 100),
	   "an absurdly old row is no error");
	is_int(mlt_rate_sum(r, "old", RDB_METRIC_MESSAGES, 60, 100), 0, "and counts nowhere");
	/* a counter reset (relay-admin usage reset): the named metrics at or before the time */
	ok(mlt_rate_load(r, "rs", 1000, (const uint64_t[]){ 2, 5, 500 }, 1000, 1000) &&
	   mlt_rate_load(r, "rs", 1010, (const uint64_t[]){ 1, 1, 100 }, 1010, 1010),
	   "two entries for rs");
	mlt_rate_reset(r, "rs", 1u << RDB_METRIC_RECIPIENTS, 1000);
	is_int(mlt_rate_sum(r, "rs", RDB_METRIC_RECIPIENTS, 60, 1010), 1,
	       "recipients before the reset are gone, after it stay");
	is_int(mlt_rate_sum(r, "rs", RDB_METRIC_MESSAGES, 60, 1010), 3, "messages untouched");
	mlt_rate_reset(r, "rs", 7, 1010);
	is_int(mlt_rate_sum(r, "rs", RDB_METRIC_MESSAGES, 60, 1010) +
	       mlt_rate_sum(r, "rs", RDB_METRIC_BYTES, 60, 1010), 0, "all metrics, up to 1010");
	{
		/* where a wall-clock instant falls on the limiter's clock: now is now, 10 s ago
		 * is 10 s back (a second boundary may pass between the calls) */
		struct timespec rt;
		int64_t wall_ns, now, at;

		clock_gettime(CLOCK_REALTIME, &rt);
		wall_ns = (int64_t)rt.tv_sec * 1000000000 + rt.tv_nsec;
		at = mlt_rate_clock_of_wall(wall_ns);
		now = mlt_rate_clock();
		ok(at == now || at == now - 1, "now on the limiter clock (%lld, %lld)",
		   (long long)at, (long long)now);
		at = mlt_rate_clock_of_wall(wall_ns - 10000000000LL);
		ok(at == now - 10 || at == now - 11, "10 s ago is 10 s back (%lld)", (long long)at);
	}
	mlt_rate_reset(r, "nobody", 7, 1010);
	ok(mlt_rate_sum(r, "nobody", RDB_METRIC_MESSAGES, 60, 1010) == 0,
	   "a reset of a login without state is harmless");
	mlt_rate_free(r);
	mlt_rate_free(NULL);

	/* a caller whose clock steps back (the daemon's never does: mlt_rate_clock()) */
	r = mlt_rate_new();
	for (int k = 0; k < 2; k++) {
		struct mlt_resv x = { { 0, 0, 0 } };

		is_int(mlt_rate_reserve(r, "s", lims, 3, mail, 1000, &x, &which), 0, "s: message %d", k);
		is_int(mlt_rate_commit(r, "s", lims, 3, &x, (const uint64_t[]){ 1, 0, 0 }, 1000, 60,
		                       &which), 0, "s: commit %d", k);
	}
	is_int(mlt_rate_reserve(r, "s", lims, 3, mail, 700, &a, &which), 60,
	       "back 300 s: still full, for one window from the step");
	is_int(mlt_rate_reserve(r, "s", lims, 3, mail, 759, &a, &which), 1, "back 300 s: 1 s left");
	is_int(mlt_rate_reserve(r, "s", lims, 3, mail, 760, &a, &which), 0,
	       "back 300 s: room one window after the step, not at 1060");
	mlt_rate_release(r, "s", &a);
	is_int(mlt_rate_clock() >= 0, 1, "the limiter clock reads");
	mlt_rate_free(r);

	/* 8 threads x 20 attempts race for 25 slots; half commit, half abort */
	shared = mlt_rate_new();
	{
		pthread_t t[8];
		int n = 0;

		for (int i = 0; i < 8; i++)
			pthread_create(&t[i], NULL, racer, NULL);
		for (int i = 0; i < 8; i++)
			pthread_join(t[i], NULL);
		is_int(atomic_load(&commit_errors), 0, "no admitted message failed to commit");
		ok(atomic_load(&committed) > 0, "commits happened under contention (%d of %d "
		   "admissions)", atomic_load(&committed), atomic_load(&admitted));
		is_int(mlt_rate_sum(shared, "racer", RDB_METRIC_MESSAGES, 3600, 1000),
		       atomic_load(&committed), "usage is exactly the committed messages");
		is_int(mlt_rate_sum(shared, "racer", RDB_METRIC_RECIPIENTS, 3600, 1000),
		       atomic_load(&committed), "... and exactly their recipients");
		is_int(mlt_rate_sum(shared, "racer", RDB_METRIC_BYTES, 3600, 1000),
		       100 * atomic_load(&committed), "... and exactly their bytes");
		ok(atomic_load(&committed) <= 25, "no more than the limit committed");
		/* the aborted reservations all came back: the rest of the 25 slots is free, and
		 * not one more */
		for (;;) {
			struct mlt_resv resv = { { 0, 0, 0 } };

			if (mlt_rate_reserve(shared, "racer", race_lim, 1, (const uint64_t[]){ 1, 0, 0 },
			                     1000, &resv, &which) != 0 || n > 25)
				break;
			mlt_rate_commit(shared, "racer", race_lim, 1, &resv, (const uint64_t[]){ 1, 0, 0 },
			                1000, 3600, &which);
			n++;
		}
		is_int(atomic_load(&committed) + n, 25,
		       "after the race exactly the remaining slots fit (%d)", n);
		is_int(mlt_rate_sum(shared, "racer", RDB_METRIC_MESSAGES, 3600, 1000), 25,
		       "the limit is reached exactly");
	}
	mlt_rate_free(shared);
	return tap_done();
}
