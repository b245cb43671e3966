/*
 * notify.h — relay-milter's notifier: one thread that mails the admin (notify_to) when a
 * login hits a limit, is held, or keeps trying refused senders (notice.h says what and
 * when), through Postfix's sendmail on this host.
 *
 * Never in the way of mail: a callback calls mlt_notify(), which only asks the gate (an
 * in-memory table under a mutex, no I/O) and, when a notification is due, appends it to a
 * bounded queue; it never waits for the thread or for sendmail. A full queue drops the
 * notification with one log line and counts it. Whatever happens to a notification
 * (sendmail missing, non-zero exit, timeout: killed) is logged and changes no verdict.
 *
 * sendmail runs as the milter's user (the thread starts after the privilege drop), by
 * fork + execve without a shell, with a fixed environment (PATH and nothing else), stdin
 * the message, stdout and stderr a pipe whose first line goes to the log; argv:
 *   notify_sendmail -i -f notify_from [-C notify_postfix_config] -- notify_to
 * Postfix must let that user submit (authorized_submit_users; the default lets anyone).
 *
 * Ownership: struct mlt_notifier from mlt_notifier_start(), stopped and freed by
 * mlt_notifier_stop() (NULL-safe; notifications still queued are dropped, with a count).
 * Thread safety: mlt_notify() and mlt_notifier_stats() from any thread; start and stop
 * from the main thread.
 */
#ifndef RELAY_MLT_NOTIFY_H
#define RELAY_MLT_NOTIFY_H

#include <stdint.h>

#include "config.h"
#include "notice.h"

#define MLT_NOTIFY_QUEUE 32

struct mlt_notifier;

struct mlt_notify_stats {
	uint64_t sent;       /* sendmail exited 0 */
	uint64_t failed;     /* could not run, non-zero exit, or killed after notify_timeout */
	uint64_t dropped;    /* queue full, or the gate could not track the login */
};

/* Starts the thread. NULL and a message in err on failure (the milter runs without). */
struct mlt_notifier *mlt_notifier_start(char *err, size_t errlen);
void mlt_notifier_stop(struct mlt_notifier *n);

/* An event seen by a callback, with the configuration that callback pinned. Does nothing
 * when `n` is NULL or cfg->notify_to is empty; else asks the gate (limiter clock, see
 * rate.h) and queues a notification when one is due. Never blocks on I/O. */
void mlt_notify(struct mlt_notifier *n, const struct mlt_config *cfg,
                const struct mlt_notice *ev);

void mlt_notifier_stats(struct mlt_notifier *n, struct mlt_notify_stats *out);

#endif
