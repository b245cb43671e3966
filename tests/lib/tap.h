/*
 * tap.h — a minimal TAP producer for the C unit tests (meson test, protocol: 'tap').
 *
 * Usage: ok(cond, "what", ...) per check, is_int(), is_str(), then return tap_done();
 * tap_done() prints the plan and returns the exit status (0 iff every check passed).
 * Header-only and single-threaded by design: tests are small, one process each.
 */
#ifndef RELAY_TAP_H
#define RELAY_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int tap_count;
static int tap_failed;

__attribute__((format(printf, 2, 3), unused))
static int ok(int cond, const char *fmt, ...)
{
	va_list ap;

	tap_count++;
	printf("%s %d - ", cond ? "ok" : "not ok", tap_count);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (!cond)
		tap_failed++;
	fflush(stdout);
	return cond;
}

#define is_int(got, want, ...) \
	(ok((long long)(got) == (long long)(want), __VA_ARGS__) ? 1 : \
	 (printf("#   got %lld, want %lld\n", (long long)(got), (long long)(want)), 0))

/* A function, not a macro, so that a char array argument does not trip -Waddress. */
__attribute__((format(printf, 3, 4), unused))
static int is_str(const char *got, const char *want, const char *fmt, ...)
{
	char what[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	if (ok(got != NULL && strcmp(got, want) == 0, "%s", what))
		return 1;
	printf("#   got \"%s\", want \"%s\"\n", got ? got : "(null)", want);
	return 0;
}

__attribute__((unused))
static void diag(const char *msg)
{
	printf("# %s\n", msg);
}

__attribute__((unused))
static int tap_done(void)
{
	printf("1..%d\n", tap_count);
	return tap_failed ? 1 : 0;
}

#endif
