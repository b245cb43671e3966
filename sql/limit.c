/*
 * limit.c — the limit domain (see limit.h): sliding-window arithmetic over a per-second
 * usage log, units, metric names and the rule that makes a login active, disabled or
 * expired.
 *
 * The log is a ring buffer ordered by time; appends happen at the newest end, pruning at
 * the oldest, so both are O(1) amortised and sums are O(entries in the window). Pure: no
 * I/O, no locks (callers hold theirs), no database.
 */
#include "limit.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct entry {
	int64_t t;
	uint64_t v[RDB_METRICS];
};

struct rdb_usage {
	struct entry *e;
	size_t cap, head, len; /* ring: oldest at head */
};

struct rdb_usage *rdb_usage_new(void)
{
	return calloc(1, sizeof(struct rdb_usage));
}

void rdb_usage_free(struct rdb_usage *u)
{
	if (u == NULL)
		return;
	free(u->e);
	free(u);
}

static struct entry *at(const struct rdb_usage *u, size_t k)
{
	return &u->e[(u->head + k) % u->cap];
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static bool grow(struct rdb_usage *u)
{
	size_t cap = u->cap ? u->cap * 2 : 16;
	struct entry *e;

	if (cap > RDB_USAGE_MAX)
		cap = RDB_USAGE_MAX;
	e = malloc(cap * sizeof *e);
	if (e == NULL)
		return false;
	for (size_t k = 0; k < u->len; k++)
		e[k] = *at(u, k);
	free(u->e);
	u->e = e;
	u->cap = cap;
	u->head = 0;
	return true;
}

/* The log is full: merge the two oldest entries into the later one. Over-counts a little
 * for windows that see only the later second; never under-counts. */
static void squeeze(struct rdb_usage *u)
{
	struct entry *a = at(u, 0), *b = at(u, 1);

	for (int m = 0; m < RDB_METRICS; m++)
		b->v[m] = sat_add(b->v[m], a->v[m]);
	u->head = (u->head + 1) % u->cap;
	u->len--;
}

/* Re-dates every entry after `t` to `t`, merging them into one entry (the newest). Entries
 * after `t` exist only if the clock stepped back since they were written: they stay counted
 * in full (a step must not hand out the quota again) but leave the windows at most one
 * window after `t`, instead of one window after the clock catches up with them. */
void rdb_usage_clamp(struct rdb_usage *u, int64_t t)
{
	struct entry *last;

	if (u->len == 0 || at(u, u->len - 1)->t <= t)
		return;
	last = at(u, u->len - 1);
	while (u->len > 1 && at(u, u->len - 2)->t >= t) {
		struct entry *prev = at(u, u->len - 2);

		for (int m = 0; m < RDB_METRICS; m++)
			prev->v[m] = sat_add(prev->v[m], last->v[m]);
		u->len--;
		last = prev;
	}
	last->t = t;
}

bool rdb_usage_add(struct rdb_usage *u, int64_t t, const uint64_t v[RDB_METRICS])
{
	rdb_usage_clamp(u, t);
	if (u->len > 0 && at(u, u->len - 1)->t == t) {
		struct entry *last = at(u, u->len - 1);

		for (int m = 0; m < RDB_METRICS; m++)
			last->v[m] = sat_add(last->v[m], v[m]);
		return true;
	}
	if (u->len == u->cap) {
		if (u->cap < RDB_USAGE_MAX) {
			if (!grow(u))
				return false;
		} else {
			squeeze(u);
		}
	}
	struct entry *e = at(u, u->len);

	e->t = t;
	memcpy(e->v, v, sizeof e->v);
	u->len++;
	return true;
}

uint64_t rdb_usage_sum(const struct rdb_usage *u, enum rdb_metric metric, int64_t window,
                       int64_t now)
{
	uint64_t sum = 0;

	if (u == NULL)
		return 0;
	for (size_t k = u->len; k-- > 0;) {
		const struct entry *e = at(u, k);

		if (e->t <= now - window)
			break;
		sum = sat_add(sum, e->v[metric]); /* also an entry after `now`: see limit.h */
	}
	return sum;
}

void rdb_usage_prune(struct rdb_usage *u, int64_t now, int64_t keep)
{
	while (u->len > 0 && at(u, 0)->t <= now - keep) {
		u->head = (u->head + 1) % u->cap;
		u->len--;
	}
}

size_t rdb_usage_len(const struct rdb_usage *u)
{
	return u == NULL ? 0 : u->len;
}

void rdb_usage_zero(struct rdb_usage *u, unsigned metrics, int64_t before)
{
	for (size_t k = 0; u != NULL && k < u->len && at(u, k)->t <= before; k++)
		for (int m = 0; m < RDB_METRICS; m++)
			if (metrics & (1u << m))
				at(u, k)->v[m] = 0;
}

int64_t rdb_window_wait(const struct rdb_usage *u, const struct rdb_limit *lim,
                        uint64_t reserved, uint64_t need, int64_t now)
{
	uint64_t used = rdb_usage_sum(u, lim->metric, lim->window, now);

	if (need > lim->max)
		return RDB_WAIT_NEVER;
	if (sat_add(sat_add(used, reserved), need) <= lim->max)
		return 0;
	/* Walk the window from its oldest entry: entry e leaves the window at e.t + window, an
	 * entry after `now` (the clock stepped back) as if it were dated `now`. */
	if (u != NULL) {
		for (size_t k = 0; k < u->len; k++) {
			const struct entry *e = at(u, k);
			int64_t t = e->t < now ? e->t : now;

			if (t <= now - lim->window)
				continue;
			used -= e->v[lim->metric];
			if (sat_add(sat_add(used, reserved), need) <= lim->max)
				return t + lim->window - now;
		}
	}
	/* Only the reservations stand in the way; once committed they leave in `window`. */
	return lim->window;
}

int64_t rdb_limits_wait(const struct rdb_usage *u, const struct rdb_limit *lims, size_t n,
                        const uint64_t reserved[RDB_METRICS], const uint64_t need[RDB_METRICS],
                        int64_t now, size_t *which)
{
	int64_t worst = 0;

	for (size_t k = 0; k < n; k++) {
		const struct rdb_limit *l = &lims[k];

		if (need[l->metric] == 0)
			continue;
		int64_t w = rdb_window_wait(u, l, reserved[l->metric], need[l->metric], now);

		if (w == 0)
			continue;
		if (worst != RDB_WAIT_NEVER && (w == RDB_WAIT_NEVER || w > worst)) {
			worst = w;
			if (which != NULL)
				*which = k;
		}
	}
	return worst;
}

/* ---- units -------------------------------------------------------------------------- */

static bool parse_number(const char *s, uint64_t *n, const char **rest)
{
	char *end;

	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);

	if (errno != 0)
		return false;
	*n = v;
	*rest = end;
	return true;
}

bool rdb_parse_duration(const char *s, int64_t max, int64_t *out)
{
	static const struct { char unit; int64_t mul; } units[] = {
		{ 's', 1 }, { 'm', 60 }, { 'h', 3600 }, { 'd', 86400 }, { 'w', 604800 },
	};
	uint64_t n;
	const char *rest;
	int64_t mul = 0;

	if (s == NULL || !parse_number(s, &n, &rest))
		return false;
	if (*rest == '\0')
		mul = 1;
	for (size_t k = 0; k < sizeof units / sizeof units[0] && mul == 0; k++)
		if (rest[0] == units[k].unit && rest[1] == '\0')
			mul = units[k].mul;
	if (mul == 0 || n == 0 || n > (uint64_t)max / (uint64_t)mul)
		return false;
	*out = (int64_t)n * mul;
	return true;
}

bool rdb_parse_size(const char *s, uint64_t *out)
{
	uint64_t n, mul = 0;
	const char *rest;

	if (s == NULL || !parse_number(s, &n, &rest))
		return false;
	if (*rest == '\0' || (rest[0] == 'B' && rest[1] == '\0'))
		mul = 1;
	else if (rest[1] == '\0' || (rest[1] == 'B' && rest[2] == '\0')) {
		switch (rest[0]) {
		case 'K': case 'k': mul = UINT64_C(1) << 10; break;
		case 'M': mul = UINT64_C(1) << 20; break;
		case 'G': mul = UINT64_C(1) << 30; break;
		case 'T': mul = UINT64_C(1) << 40; break;
		default: break;
		}
	}
	if (mul == 0 || n > (UINT64_C(1) << 62) / mul)
		return false;
	*out = n * mul;
	return true;
}

void rdb_format_duration(int64_t s, char *out, size_t outlen)
{
	if (s > 0 && s % 604800 == 0)
		snprintf(out, outlen, "%" PRId64 "w", s / 604800);
	else if (s > 0 && s % 86400 == 0)
		snprintf(out, outlen, "%" PRId64 "d", s / 86400);
	else if (s > 0 && s % 3600 == 0)
		snprintf(out, outlen, "%" PRId64 "h", s / 3600);
	else if (s > 0 && s % 60 == 0)
		snprintf(out, outlen, "%" PRId64 "m", s / 60);
	else
		snprintf(out, outlen, "%" PRId64 "s", s);
}

/* ---- metrics and the login rule ------------------------------------------------------ */

/* The spelling in the users database's `limits.metric` column (its CHECK lists the same). */
static const char *const metric_names[RDB_METRICS] = { "messages", "recipients", "bytes" };

const char *rdb_metric_name(enum rdb_metric m)
{
	return (unsigned)m < RDB_METRICS ? metric_names[m] : "?";
}

bool rdb_metric_parse(const char *s, enum rdb_metric *out)
{
	for (int m = 0; m < RDB_METRICS; m++) {
		if (strcmp(s, metric_names[m]) == 0) {
			*out = (enum rdb_metric)m;
			return true;
		}
	}
	return false;
}

enum rdb_login_state rdb_login_state_at(bool enabled, bool has_expiry, int64_t expires_at,
                                        int64_t now)
{
	if (!enabled)
		return RDB_LOGIN_DISABLED;
	if (has_expiry && now >= expires_at)
		return RDB_LOGIN_EXPIRED;
	return RDB_LOGIN_ACTIVE;
}
