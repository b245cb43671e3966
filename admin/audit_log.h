/*
 * audit_log.h — what `relay-admin log` (cmd_log.c) and `relay-admin log --follow`
 * (cmd_log_follow.c) share: the query the options build and the rendering of one record.
 *
 * Ownership: struct adm_log_query borrows its strings from argv. Single-threaded.
 */
#ifndef RELAY_ADM_AUDIT_LOG_H
#define RELAY_ADM_AUDIT_LOG_H

#include <stdbool.h>
#include <stdint.h>

#include "adm.h"
#include "render.h"
#include "state.h"

struct adm_log_query {
	const char *user;      /* NULL: every login */
	const char *verdict;   /* as stored (accepted, rejected, held, tempfailed); NULL: all */
	int64_t since;         /* unix seconds; 0: from the first record */
	int64_t limit;         /* how many of the newest records to list first */
	bool follow;
};

/* One record through the renderer: every string escaped (it came from clients). */
void adm_log_record(struct adm_out *o, const struct rdb_audit *a);

/* `log --follow`: lists the newest q->limit records, then each new one as it is
 * committed, one per line (one JSON document per line with --json), until SIGINT,
 * SIGTERM or a closed stdout (each a clean exit, 0). Survives the state database being
 * replaced or missing for a while (it waits for it and reopens it by path). */
int adm_log_follow(struct adm_ctx *ctx, const struct adm_log_query *q);

#endif
