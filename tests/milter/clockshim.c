/*
 * clockshim.c — an LD_PRELOAD library for tests that steps a process's wall clock.
 *
 * time() and clock_gettime(CLOCK_REALTIME, CLOCK_REALTIME_COARSE) return the real wall
 * clock plus a number of seconds (signed decimal) read from the file named by
 * RELAY_TEST_CLOCK_FILE; the file is read on every call, so a test steps the clock
 * mid-run by rewriting it (write a new file and rename it over the old one). A missing or
 * unreadable file means offset 0. Every other clock (CLOCK_MONOTONIC, CLOCK_BOOTTIME …) is
 * passed through untouched: an NTP step, a VM restore or `date -s` move only the wall clock,
 * and that is what the tests must reproduce. gettimeofday() is left alone on purpose:
 * libmilter turns it into pthread_cond_timedwait() deadlines, which the kernel measures on
 * the real clock, so shifting it would make libmilter's workers spin, an artefact of the
 * shim that no real clock step causes.
 *
 * Only raw system calls are used (no dlsym, stdio or malloc): the shim can be reached
 * before libc or a sanitizer runtime is fully set up, from any thread, and under ASan it
 * sits behind the sanitizer's own interceptors (ASan must come first in LD_PRELOAD). errno
 * is preserved.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long offset_seconds(void)
{
	const char *path = getenv("RELAY_TEST_CLOCK_FILE");
	char buf[32];
	long n, k, v = 0, sign = 1;
	int fd;

	if (path == NULL)
		return 0;
	fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = syscall(SYS_read, fd, buf, sizeof buf - 1);
	syscall(SYS_close, fd);
	if (n <= 0)
		return 0;
	k = 0;
	if (buf[0] == '-' || buf[0] == '+')
		sign = buf[k++] == '-' ? -1 : 1;
	for (; k < n && buf[k] >= '0' && buf[k] <= '9'; k++)
		v = v * 10 + (buf[k] - '0');
	return sign * v;
}

static int real_clock(clockid_t id, struct timespec *ts)
{
	return (int)syscall(SYS_clock_gettime, id, ts);
}

int clock_gettime(clockid_t id, struct timespec *ts)
{
	int saved = errno;
	int r = real_clock(id, ts);

	if (r == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE))
		ts->tv_sec += offset_seconds();
	if (r == 0)
		errno = saved;
	return r;
}

time_t time(time_t *out)
{
	int saved = errno;
	struct timespec ts;
	time_t t;

	real_clock(CLOCK_REALTIME, &ts);
	t = ts.tv_sec + offset_seconds();
	errno = saved;
	if (out != NULL)
		*out = t;
	return t;
}
