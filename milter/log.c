/*
 * log.c — syslog or stderr sink for relay-milter (see log.h).
 */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>

#include "config.h"

static atomic_int sink = MLT_LOG_STDERR;
static atomic_int max_level = LOG_INFO;
static atomic_bool startup;

void mlt_log_open(int s, int facility, int level)
{
	atomic_store(&sink, s);
	atomic_store(&max_level, level);
	if (s == MLT_LOG_SYSLOG)
		openlog("relay-milter", LOG_PID | LOG_NDELAY, facility);
}

void mlt_log_startup(bool on)
{
	atomic_store(&startup, on);
}

void mlt_log_level(int level)
{
	atomic_store(&max_level, level);
}

void mlt_log(int prio, const char *fmt, ...)
{
	static const char *const names[] = { "emerg", "alert", "crit", "error", "warning",
	                                      "notice", "info", "debug" };
	char line[1024];
	va_list ap;

	if (prio > atomic_load(&max_level))
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (atomic_load(&sink) == MLT_LOG_SYSLOG)
		syslog(prio, "%s", line);
	if (atomic_load(&sink) != MLT_LOG_SYSLOG || (atomic_load(&startup) && prio <= LOG_WARNING))
		fprintf(stderr, "relay-milter: %s: %s\n", names[prio & 7], line);
}
