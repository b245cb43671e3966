/*
 * state-private.h — what state.c shares with admit.c inside sql/: the state kind's
 * statement ids (one table per kind, texts for both engines in state.c) and the handle's
 * connection core. Front ends never include it.
 */
#ifndef RELAY_RDB_STATE_PRIVATE_H
#define RELAY_RDB_STATE_PRIVATE_H

#include "conn.h"
#include "state.h"

enum {
	S_BEGIN, S_COMMIT, S_ROLLBACK,
	S_AUDIT_ADD, S_USAGE_ADD, S_TOUCH, S_PRUNE_USAGE, S_PRUNE_AUDIT,
	S_USAGE_ALL, S_USAGE_ONE, S_AUDIT_ALL, S_AUDIT_ONE, S_AUDIT_HELD, S_LAST_USE,
	S_USAGE_MERGE, S_LAST_USE_ALL, S_LAST_USE_MERGE, S_CHECKPOINT,
	S_AUDIT_QUERY, S_AUDIT_MAX_ID, S_DATA_VERSION,
	S_CRED_TOUCH, S_CRED_LAST_USE, S_CRED_USE_ALL, S_CRED_USE_MERGE,
	/* from here on: SQLite readers do not prepare them (a v1 file lacks journal_mark, a
	 * v2 file counters, a v4 file reset_mark; state.c prepares the counters query apart
	 * for a v3 file) */
	S_JOURNAL_GET, S_JOURNAL_SET, S_COUNTER_ADD, S_COUNTER_ALL,
	S_USAGE_RESET, S_USAGE_DROP_EMPTY, S_RESET_GET, S_RESET_SET,
	/* PostgreSQL only (admit.c and prune): placeholders on SQLite, never run there */
	S_PRUNE_RESV,
	S_A_LOCK, S_A_SUMS, S_A_RESERVED, S_A_ROWS, S_A_INSERT, S_A_UPDATE, S_A_DELETE, S_A_COUNT,
	S_COUNT_
};

/* The handle's core (never NULL on an open handle). */
struct rdb_conn *rdb_state_conn(struct rdb_state *st);

#endif
