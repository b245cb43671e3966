/*
 * callbacks.h — the libmilter callbacks of relay-milter and the shared state they use.
 *
 * Callbacks are thin: they gather macros and arguments, call the pure decisions in
 * decide.c and the limiter in rate.c, set the reply and queue the audit record. Contexts:
 * a connection context created at negotiate (the first callback of a session) and freed
 * at close (which may come alone: NULL is tolerated); a message context created at MAIL
 * and freed at end of message, abort, refusal or close. No static buffers: with Debian's
 * worker pool the callbacks of one session may run on different threads.
 *
 * Ownership: struct mlt_daemon is owned by main(); the callbacks borrow it through
 * mlt_callbacks_init(). Configuration is reference counted so SIGUSR1 can swap it while
 * sessions hold the old one.
 */
#ifndef RELAY_MLT_CALLBACKS_H
#define RELAY_MLT_CALLBACKS_H

#include <libmilter/mfapi.h>

#include "config.h"
#include "rate.h"
#include "store.h"
#include "writer.h"

struct mlt_cfgref;

struct mlt_daemon {
	struct mlt_store *store;
	struct mlt_rate *rate;
	struct mlt_writer *writer;
};

void mlt_callbacks_init(struct mlt_daemon *d);

/* Publishes a configuration (copied); sessions that started earlier keep theirs. */
int mlt_config_publish(const struct mlt_config *cfg);
/* Drops the published configuration at exit. */
void mlt_config_unpublish(void);

extern struct smfiDesc mlt_filter;

#endif
