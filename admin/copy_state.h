/*
 * copy_state.h — `relay-admin copy --state`, the state part of copy: usage, last use and
 * the audit log of one state database into another, SQLite and PostgreSQL either way (the
 * users part is sql/copy.c, through admin/cmd_pg.c). Reservations are not copied: they
 * are messages in flight on a live node, and expire on their own.
 *
 * Safe by construction: the destination is created or migrated first (rdb_state_init),
 * must hold no usage, last use or audit rows yet (a copy never merges two histories), is
 * written in one transaction, and is verified afterwards by counting what it holds
 * against what was read: any difference is an error. The source is opened read-only.
 * Audit records keep their order (new ids at the destination); logins compare without
 * regard to case at both ends.
 *
 * Errors: -1 with the reason in err (nothing committed at the destination unless the
 * counts check was what failed, and then err says so); 0 with the counts in *n.
 * Thread safety: none needed (relay-admin is single-threaded).
 */
#ifndef RELAY_ADM_COPY_STATE_H
#define RELAY_ADM_COPY_STATE_H

#include <stddef.h>

struct adm_copy_state_counts {
	size_t usage, last_use, audit, credential_use, counters;
};

int adm_copy_state(const char *from, const char *to, struct adm_copy_state_counts *n,
                   char *err, size_t errlen);

struct adm_ctx;

/* `relay-admin copy --state --from DB --to DB`: adm_copy_state() and its report (the
 * counts, text or JSON); shown_* are the names for messages (no password). Exit code. */
int adm_copy_state_run(struct adm_ctx *ctx, const char *from, const char *to,
                       const char *shown_from, const char *shown_to);

#endif
