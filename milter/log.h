/*
 * log.h — relay-milter's one logging interface; the sink is syslog or stderr (config).
 *
 * Thread safety: mlt_log() may be called from any thread (syslog(3) is thread safe; the
 * stderr sink writes each line with one fprintf under the stdio lock). The level can be
 * changed at reload with mlt_log_level(). Callers sanitize client-supplied strings.
 */
#ifndef RELAY_MLT_LOG_H
#define RELAY_MLT_LOG_H

#include <stdbool.h>
#include <syslog.h>

void mlt_log_open(int sink, int facility, int level);
void mlt_log_level(int level);
/* While on, syslog messages are also written to stderr (start-up errors stay visible). */
void mlt_log_startup(bool on);

__attribute__((format(printf, 2, 3)))
void mlt_log(int prio, const char *fmt, ...);

#endif
