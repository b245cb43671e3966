/*
 * test-limit.c — the limit domain (sql/limit.c): sliding-window arithmetic (sums, several
 * windows per metric, reservations, the time until room frees, bounded memory, wall-clock
 * steps backwards and forwards), unit parsing, metric names and the login state rule.
 */
#include <stdint.h>

#include "tap.h"

/* Hides an array's address from -Waddress inside is_str(). */
static const char *S(const char *s)
{
	return s;
}
#include "limit.h"

static void add(struct rdb_usage *u, int64_t t, uint64_t m, uint64_t r, uint64_t b)
{
	const uint64_t v[RDB_METRICS] = { m, r, b };

	ok(rdb_usage_add(u, t, v), "add at %lld", (long long)t);
}

/* Issue 8, item 5: with the clock 300 s behind, a 2/1h login sent 8 messages in a row
 * (entries "in the future" were skipped, and new usage was folded into them). */
static void clock_steps(void)
{
	const struct rdb_limit two_h = { RDB_METRIC_MESSAGES, 3600, 2 };
	struct rdb_usage *u = rdb_usage_new();

	/* backward step: one message at 1000, then the clock reads 700 */
	add(u, 1000, 1, 1, 100);
	is_int(rdb_usage_sum(u, RDB_METRIC_MESSAGES, 3600, 700), 1, "back 300 s: the entry still counts");
	is_int(rdb_window_wait(u, &two_h, 0, 1, 700), 0, "back 300 s: the second message fits");
	add(u, 700, 1, 1, 100);
	is_int(rdb_usage_sum(u, RDB_METRIC_MESSAGES, 3600, 700), 2, "back 300 s: both messages count");
	is_int(rdb_window_wait(u, &two_h, 0, 1, 700), 3600,
	       "back 300 s: the third waits one window, not 3900 s");
	for (int k = 0; k < 6; k++)
		ok(rdb_window_wait(u, &two_h, 0, 1, 701 + k) > 0, "back 300 s: attempt %d refused", k + 3);
	is_int(rdb_usage_sum(u, RDB_METRIC_MESSAGES, 3600, 4299), 2, "counted until one window after the step");
	is_int(rdb_usage_sum(u, RDB_METRIC_MESSAGES, 3600, 4300), 0,
	       "gone one window after the step (not when the clock reaches 4600)");
	is_int(rdb_window_wait(u, &two_h, 0, 1, 4300), 0, "fits one window after the step");
	/* forward step: indistinguishable from time passing */
	is_int(rdb_usage_sum(u, RDB_METRIC_MESSAGES, 3600, 700 + 7200), 0, "forward 2 h: aged out");
	rdb_usage_free(u);

	/* the clock ran 2 h fast (entries at 8200) and is put right (now 1000) */
	u = rdb_usage_new();
	add(u, 8200, 1, 0, 0);
	add(u, 8201, 1, 0, 0);
	is_int(rdb_usage_sum(u, RDB_METRIC_MESSAGES, 3600, 1000), 2, "corrected clock: entries still count");
	is_int(rdb_window_wait(u, &two_h, 0, 1, 1000), 3600,
	       "corrected clock: wait one window, not until 8201 + 3600");
	add(u, 1000, 0, 1, 0);
	is_int(rdb_usage_len(u), 1, "corrected clock: future entries re-dated and merged");
	is_int(rdb_usage_sum(u, RDB_METRIC_MESSAGES, 3600, 4600), 0, "gone one window after the correction");
	rdb_usage_free(u);
}

/* The stored metric names (the users schema's CHECK lists the same three) and the one rule
 * for a login's state, which the plugin, the milter and relay-admin share. */
static void names_and_states(void)
{
	enum rdb_metric m;

	for (int k = 0; k < RDB_METRICS; k++) {
		ok(rdb_metric_parse(rdb_metric_name((enum rdb_metric)k), &m) && (int)m == k,
		   "metric %d round-trips as \"%s\"", k, rdb_metric_name((enum rdb_metric)k));
	}
	is_str(rdb_metric_name(RDB_METRIC_BYTES), "bytes", "bytes spelled as stored");
	is_str(rdb_metric_name(RDB_METRICS), "?", "out of range: ?");
	ok(!rdb_metric_parse("Messages", &m) && !rdb_metric_parse("", &m), "exact names only");

	is_int(rdb_login_state_at(true, false, 0, 1000), RDB_LOGIN_ACTIVE, "enabled, no expiry");
	is_int(rdb_login_state_at(true, true, 1001, 1000), RDB_LOGIN_ACTIVE, "before its expiry");
	is_int(rdb_login_state_at(true, true, 1000, 1000), RDB_LOGIN_EXPIRED, "expired at the second");
	is_int(rdb_login_state_at(false, true, 900, 1000), RDB_LOGIN_DISABLED,
	       "disabled wins over expired");
	is_int(rdb_login_state_at(false, false, 0, 1000), RDB_LOGIN_DISABLED, "disabled");
}

int main(void)
{
	struct rdb_usage *u = rdb_usage_new();
	const struct rdb_limit five10 = { RDB_METRIC_MESSAGES, 10, 5 };
	const struct rdb_limit rc = { RDB_METRIC_RECIPIENTS, 60, 10 };
	const uint64_t none[RDB_METRICS] = { 0, 0, 0 };

	/* 5 messages at t = 100..104 */
	for (int i = 0; i < 5; i++)
		add(u, 100 + i, 1, 3, 1000);
	is_int(rdb_usage_sum(u, RDB_METRIC_MESSAGES, 10, 104), 5, "5 messages in 10s");
	is_int(rdb_usage_sum(u, RDB_METRIC_RECIPIENTS, 10, 104), 15, "15 recipients");
	is_int(rdb_usage_sum(u, RDB_METRIC_MESSAGES, 3, 104), 3, "window of 3s sees 102..104");
	is_int(rdb_usage_sum(u, RDB_METRIC_MESSAGES, 10, 110), 4, "at 110 the entry at 100 has left");
	is_int(rdb_window_wait(u, &five10, 0, 1, 104), 6, "6th message waits until 110");
	is_int(rdb_window_wait(u, &five10, 0, 1, 110), 0, "fits at 110");
	is_int(rdb_window_wait(u, &five10, 0, 2, 110), 1, "two more fit at 111");
	is_int(rdb_window_wait(u, &five10, 0, 6, 104), RDB_WAIT_NEVER, "6 at once never fit");
	is_int(rdb_window_wait(NULL, &five10, 0, 1, 104), 0, "empty log: fits");
	/* reservations of messages in flight */
	is_int(rdb_window_wait(u, &five10, 1, 1, 110), 1, "a reservation pushes the wait");
	is_int(rdb_window_wait(NULL, &five10, 5, 1, 104), 10, "only reservations: wait a window");
	/* same second merges */
	add(u, 104, 1, 0, 0);
	is_int(rdb_usage_len(u), 5, "same second merged");
	is_int(rdb_usage_sum(u, RDB_METRIC_MESSAGES, 1, 104), 2, "merged entry counts both");
	add(u, 104, 1, 0, 0);
	is_int(rdb_usage_len(u), 5, "same second merged again");
	/* several limits: largest wait wins, NEVER dominates */
	{
		const struct rdb_limit lims[] = { five10, { RDB_METRIC_MESSAGES, 100, 6 }, rc };
		const uint64_t need1[RDB_METRICS] = { 1, 0, 0 };
		const uint64_t needr[RDB_METRICS] = { 0, 20, 0 };
		size_t which = 99;

		is_int(rdb_limits_wait(u, lims, 3, none, need1, 104, &which), 97,
		       "100s window decides: 8 > 6 until 101 leaves at 201");
		is_int(which, 1, "the 100s limit is named");
		is_int(rdb_limits_wait(u, lims, 3, none, needr, 104, &which), RDB_WAIT_NEVER,
		       "20 recipients never fit under 10");
		is_int(which, 2, "the recipient limit is named");
		is_int(rdb_limits_wait(u, lims, 3, none, none, 104, &which), 0, "nothing needed: fits");
	}
	rdb_usage_prune(u, 200, 10);
	is_int(rdb_usage_len(u), 0, "prune drops everything older than 10s");
	rdb_usage_free(u);
	rdb_usage_free(NULL);

	clock_steps();

	/* bounded memory: squeezing merges forward and never under-counts */
	u = rdb_usage_new();
	for (int64_t t = 1; t <= RDB_USAGE_MAX + 100; t++)
		if (!rdb_usage_add(u, t, (const uint64_t[]){ 1, 1, 1 }))
			break;
	is_int(rdb_usage_len(u), RDB_USAGE_MAX, "log bounded at RDB_USAGE_MAX");
	is_int(rdb_usage_sum(u, RDB_METRIC_MESSAGES, 1000000, RDB_USAGE_MAX + 100), RDB_USAGE_MAX + 100,
	       "nothing lost in a covering window");
	ok(rdb_usage_sum(u, RDB_METRIC_MESSAGES, 50, RDB_USAGE_MAX + 100) >= 50,
	   "short window never under-counts");
	rdb_usage_free(u);

	/* units */
	{
		static const struct { const char *s; int64_t v; } d[] = {
			{ "10s", 10 }, { "1m", 60 }, { "1h", 3600 }, { "1d", 86400 }, { "2w", 1209600 },
			{ "90", 90 }, { "0s", -1 }, { "1y", -1 }, { "", -1 }, { "-1m", -1 }, { "1h ", -1 },
			{ "99999999999999999999d", -1 }, { "367d", -1 },
		};
		static const struct { const char *s; int64_t v; } sz[] = {
			{ "1000", 1000 }, { "50K", 51200 }, { "50M", 52428800 }, { "2G", 2147483648 },
			{ "10MB", 10485760 }, { "1X", -1 }, { "M", -1 }, { "99999999999G", -1 },
		};
		char buf[32];

		for (size_t k = 0; k < sizeof d / sizeof d[0]; k++) {
			int64_t v = -1;
			bool r = rdb_parse_duration(d[k].s, 31622400, &v);

			is_int(r ? v : -1, d[k].v, "duration \"%s\"", d[k].s);
		}
		for (size_t k = 0; k < sizeof sz / sizeof sz[0]; k++) {
			uint64_t v = 0;
			bool r = rdb_parse_size(sz[k].s, &v);

			is_int(r ? (int64_t)v : -1, sz[k].v, "size \"%s\"", sz[k].s);
		}
		rdb_format_duration(3600, buf, sizeof buf);
		is_str(S(buf), "1h", "format 3600");
		rdb_format_duration(90, buf, sizeof buf);
		is_str(S(buf), "90s", "format 90");
		rdb_format_duration(86400 * 7, buf, sizeof buf);
		is_str(S(buf), "1w", "format a week");
	}
	names_and_states();
	return tap_done();
}
