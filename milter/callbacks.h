/*
 * callbacks.h — the milter callbacks of relay-milter and the shared state they use.
 *
 * Callbacks are thin: they gather macros and arguments, call the pure decisions in
 * decide.c and the limiter in rate.c, set the reply and queue the audit record. They
 * reach the MTA only through struct mlt_mta (seam.h): libmilter in the daemon, a fake MTA
 * side in tests/milter/test-mlt-callbacks.c. Return values are libmilter's SMFIS_*
 * (the header is used for its constants only; seam.c alone calls smfi_*).
 *
 * Contexts: a connection context created at negotiate (the first callback of a session)
 * and freed at close (which may come alone: NULL is tolerated); a message context created
 * at MAIL and freed at end of message, abort, refusal or close. No static buffers: with
 * Debian's worker pool the callbacks of one session may run on different threads.
 *
 * Per message: a reservation at MAIL (1 message, SIZE=) and at each RCPT (1 recipient);
 * released at abort, close or refusal; turned into usage at end of message. In memory
 * (rate.h) with an SQLite state database; in the database itself, shared by every node,
 * with a PostgreSQL one (admission.h), where a database that cannot answer tempfails. A
 * configuration is pinned at MAIL and used until the message ends, whatever a reload
 * publishes meanwhile. Every internal error is a temporary failure (451 4.3.0).
 *
 * Ownership: struct mlt_daemon is owned by main() (or a test); the callbacks borrow it
 * through mlt_callbacks_init(). Configuration is reference counted so SIGUSR1 can swap it
 * while sessions hold the old one.
 */
#ifndef RELAY_MLT_CALLBACKS_H
#define RELAY_MLT_CALLBACKS_H

#include <libmilter/mfapi.h>

#include "admission.h"
#include "config.h"
#include "notify.h"
#include "rate.h"
#include "seam.h"
#include "store.h"
#include "writer.h"

struct mlt_daemon {
	struct mlt_store *store;
	struct mlt_rate *rate;            /* the SQLite path's in-memory limiter */
	struct mlt_admit *admit;          /* a PostgreSQL state_db: admission in it (else NULL) */
	struct mlt_writer *writer;
	struct mlt_notifier *notifier;  /* NULL: no notifications */
};

void mlt_callbacks_init(struct mlt_daemon *d);

/* Publishes a configuration (copied); sessions that started earlier keep theirs. */
int mlt_config_publish(const struct mlt_config *cfg);
/* Drops the published configuration at exit. */
void mlt_config_unpublish(void);

/* The callbacks, in protocol order. f0/f1 are the actions and steps the MTA offers; the
 * stages asked for follow from the policy at this moment (see callbacks.c). */
sfsistat mlt_cb_negotiate(const struct mlt_mta *mta, unsigned long f0, unsigned long f1,
                          unsigned long *pf0, unsigned long *pf1);
sfsistat mlt_cb_envfrom(const struct mlt_mta *mta, const char *const *argv);
sfsistat mlt_cb_envrcpt(const struct mlt_mta *mta, const char *const *argv);
sfsistat mlt_cb_header(const struct mlt_mta *mta, const char *name, const char *value);
sfsistat mlt_cb_body(const struct mlt_mta *mta, size_t len);
sfsistat mlt_cb_eom(const struct mlt_mta *mta);
sfsistat mlt_cb_abort(const struct mlt_mta *mta);
sfsistat mlt_cb_close(const struct mlt_mta *mta);

#endif
