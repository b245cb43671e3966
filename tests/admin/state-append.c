/*
 * state-append.c — a test helper for tests/admin/test_log_follow.py: writes audit records
 * into a state database through the data layer (sql/state.h), as relay-milter's writer
 * does, so a test can make records appear without running the milter.
 *
 *     state-append DB LOGIN VERDICT REASON [N [AGE]]
 *
 * creates DB if needed (rdb_state_init) and commits N (default 1) records dated AGE
 * seconds ago (default 0) in one transaction. Exit 0, or 1 with the reason on stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "state.h"

int main(int argc, char **argv)
{
	struct rdb_state *st = NULL;
	char err[512];
	long n = argc > 5 ? strtol(argv[5], NULL, 10) : 1;
	long age = argc > 6 ? strtol(argv[6], NULL, 10) : 0;

	if (argc < 5 || argc > 7 || n < 1 || age < 0) {
		fprintf(stderr, "usage: state-append DB LOGIN VERDICT REASON [N [AGE]]\n");
		return 2;
	}
	if (rdb_state_init(argv[1], err, sizeof err) != RDB_OK ||
	    rdb_state_open(argv[1], RDB_READWRITE, &st, err, sizeof err) != RDB_OK) {
		fprintf(stderr, "state-append: %s\n", err);
		return 1;
	}
	if (rdb_state_begin(st) != RDB_OK)
		goto fail;
	for (long k = 0; k < n; k++) {
		struct rdb_audit a = {
			.ts = (int64_t)time(NULL) - age, .login = argv[2], .client_addr = "127.0.0.2",
			.tls_version = "TLSv1.3", .cipher = "TLS_AES_256_GCM_SHA384",
			.env_from = "sender@example.org", .header_from = "sender@example.org",
			.rcpt_count = 1, .size = 1234, .queue_id = "", .verdict = argv[3],
			.reason = argv[4],
		};

		if (rdb_state_audit_add(st, &a) != RDB_OK)
			goto fail;
	}
	if (rdb_state_commit(st) != RDB_OK)
		goto fail;
	rdb_state_close(st);
	return 0;
fail:
	fprintf(stderr, "state-append: %s\n", rdb_state_errmsg(st));
	rdb_state_close(st);
	return 1;
}
