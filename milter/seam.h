/*
 * seam.h — the seam between relay-milter and libmilter. seam.c is the only module that
 * calls smfi_*: it registers the filter, listens, runs the event loop, and hands every
 * callback a struct mlt_mta, a table of what a callback may ask of the MTA (private
 * context, macros, replies, quarantine, macro lists). The callbacks (callbacks.c) see
 * only that table, so a unit test drives them with a fake MTA side
 * (tests/milter/test-mlt-callbacks.c) and checks their ordering without a socket.
 *
 * Ownership: a struct mlt_mta is a plain value built per callback; `ctx` belongs to the
 * MTA side (libmilter's SMFICTX, or the test's fake session). Strings returned by
 * getsymval() belong to the MTA side and live until the callback returns.
 * Thread safety: the ops are called from libmilter's worker threads, one session's
 * callbacks never at the same time.
 * Errors: each op returns 0 on success and -1 on failure (MI_SUCCESS / MI_FAILURE).
 */
#ifndef RELAY_MLT_SEAM_H
#define RELAY_MLT_SEAM_H

#include "config.h"

struct mlt_mta_ops {
	void *(*getpriv)(void *ctx);
	int (*setpriv)(void *ctx, void *priv);
	/* NULL when the MTA did not send the macro */
	const char *(*getsymval)(void *ctx, const char *name);
	int (*setreply)(void *ctx, const char *rcode, const char *xcode, const char *text);
	int (*quarantine)(void *ctx, const char *reason);
	/* stage: SMFIM_* (libmilter/mfdef.h); only at negotiation */
	int (*setsymlist)(void *ctx, int stage, const char *macros);
};

struct mlt_mta {
	const struct mlt_mta_ops *ops;
	void *ctx;
};

/* Registers the filter on cfg->socket with cfg->timeout and opens the socket (the caller
 * sets the umask for the socket's mode). -1 with the reason in err. */
int mlt_seam_listen(const struct mlt_config *cfg, char *err, size_t errlen);

/* Runs libmilter's event loop until SIGHUP, SIGTERM or SIGINT: 0 on a clean stop. */
int mlt_seam_run(void);

#endif
