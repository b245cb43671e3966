/*
 * seam.c — libmilter on one side, relay-milter's callbacks on the other (see seam.h).
 *
 * Every smfi_* call of the daemon is here. libmilter's prototypes take `char *` where they
 * only read, hence the casts; the callbacks get const strings.
 */
#include "seam.h"

#include <stdint.h>
#include <stdio.h>

#include <libmilter/mfapi.h>

#include "callbacks.h"

static void *lm_getpriv(void *ctx)
{
	return smfi_getpriv(ctx);
}

static int lm_setpriv(void *ctx, void *priv)
{
	return smfi_setpriv(ctx, priv) == MI_SUCCESS ? 0 : -1;
}

static const char *lm_getsymval(void *ctx, const char *name)
{
	return smfi_getsymval(ctx, (char *)(uintptr_t)name);
}

static int lm_setreply(void *ctx, const char *rcode, const char *xcode, const char *text)
{
	return smfi_setreply(ctx, (char *)(uintptr_t)rcode, (char *)(uintptr_t)xcode,
	                     (char *)(uintptr_t)text) == MI_SUCCESS ? 0 : -1;
}

static int lm_quarantine(void *ctx, const char *reason)
{
	return smfi_quarantine(ctx, (char *)(uintptr_t)reason) == MI_SUCCESS ? 0 : -1;
}

static int lm_setsymlist(void *ctx, int stage, const char *macros)
{
	return smfi_setsymlist(ctx, stage, (char *)(uintptr_t)macros) == MI_SUCCESS ? 0 : -1;
}

static const struct mlt_mta_ops libmilter_ops = {
	.getpriv = lm_getpriv,
	.setpriv = lm_setpriv,
	.getsymval = lm_getsymval,
	.setreply = lm_setreply,
	.quarantine = lm_quarantine,
	.setsymlist = lm_setsymlist,
};

#define MTA(ctx) (&(struct mlt_mta){ &libmilter_ops, (ctx) })

static sfsistat x_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1,
                            unsigned long f2, unsigned long f3, unsigned long *pf0,
                            unsigned long *pf1, unsigned long *pf2, unsigned long *pf3)
{
	(void)f2;
	(void)f3;
	*pf2 = 0;
	*pf3 = 0;
	return mlt_cb_negotiate(MTA(ctx), f0, f1, pf0, pf1);
}

static sfsistat x_envfrom(SMFICTX *ctx, char **argv)
{
	return mlt_cb_envfrom(MTA(ctx), (const char *const *)argv);
}

static sfsistat x_envrcpt(SMFICTX *ctx, char **argv)
{
	return mlt_cb_envrcpt(MTA(ctx), (const char *const *)argv);
}

static sfsistat x_header(SMFICTX *ctx, char *name, char *value)
{
	return mlt_cb_header(MTA(ctx), name, value);
}

static sfsistat x_body(SMFICTX *ctx, unsigned char *chunk, size_t len)
{
	(void)chunk;
	return mlt_cb_body(MTA(ctx), len);
}

static sfsistat x_eom(SMFICTX *ctx)
{
	return mlt_cb_eom(MTA(ctx));
}

static sfsistat x_abort(SMFICTX *ctx)
{
	return mlt_cb_abort(MTA(ctx));
}

static sfsistat x_close(SMFICTX *ctx)
{
	return mlt_cb_close(MTA(ctx));
}

static struct smfiDesc filter = {
	.xxfi_name = (char *)(uintptr_t)"relay-milter",
	.xxfi_version = SMFI_VERSION,
	.xxfi_flags = SMFIF_QUARANTINE | SMFIF_SETSYMLIST,
	.xxfi_connect = NULL,
	.xxfi_helo = NULL,
	.xxfi_envfrom = x_envfrom,
	.xxfi_envrcpt = x_envrcpt,
	.xxfi_header = x_header,
	.xxfi_eoh = NULL,
	.xxfi_body = x_body,
	.xxfi_eom = x_eom,
	.xxfi_abort = x_abort,
	.xxfi_close = x_close,
	.xxfi_unknown = NULL,
	.xxfi_data = NULL,
	.xxfi_negotiate = x_negotiate,
};

int mlt_seam_listen(const struct mlt_config *cfg, char *err, size_t errlen)
{
	if (smfi_setconn((char *)(uintptr_t)cfg->socket) != MI_SUCCESS ||
	    smfi_settimeout((int)cfg->timeout) != MI_SUCCESS || smfi_register(filter) != MI_SUCCESS) {
		snprintf(err, errlen, "libmilter refused the socket %s or the filter", cfg->socket);
		return -1;
	}
	if (smfi_opensocket(true) != MI_SUCCESS) {
		snprintf(err, errlen, "cannot listen on %s (does its folder exist and belong to us?)",
		         cfg->socket);
		return -1;
	}
	return 0;
}

int mlt_seam_run(void)
{
	return smfi_main() == MI_SUCCESS ? 0 : -1;
}
