/*
 * copy-state-tool.c — runs admin/copy_state.c's adm_copy_state() FROM TO, for
 * tests/pg/test_copy_state.py, until `relay-admin copy` (pg-engine) calls it itself.
 * Prints "usage=N last_use=N audit=N" and exits 0, or the error and exits 1.
 */
#include <stdio.h>

#include "copy_state.h"

int main(int argc, char **argv)
{
	struct adm_copy_state_counts n;
	char err[1024];

	if (argc != 3) {
		fprintf(stderr, "usage: copy-state-tool FROM TO\n");
		return 2;
	}
	if (adm_copy_state(argv[1], argv[2], &n, err, sizeof err) != 0) {
		fprintf(stderr, "copy-state-tool: %s\n", err);
		return 1;
	}
	printf("usage=%zu last_use=%zu audit=%zu\n", n.usage, n.last_use, n.audit);
	return 0;
}
