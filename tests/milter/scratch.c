/*
 * scratch.c — the private temporary folder of a data-layer test (see scratch.h).
 */
#include "scratch.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

char scratch_dir[PATH_MAX];

int scratch_make(const char *name)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(scratch_dir, sizeof scratch_dir, "%s/%s.XXXXXX", tmp && *tmp ? tmp : "/tmp", name);
	if (mkdtemp(scratch_dir) == NULL) {
		perror("mkdtemp");
		return -1;
	}
	return 0;
}

char *scratch_path(const char *file)
{
	static char p[2][PATH_MAX + 64];
	static int k;

	k ^= 1;
	snprintf(p[k], sizeof p[k], "%s/%s", scratch_dir, file);
	return p[k];
}

void scratch_remove(const char *const *files, size_t n)
{
	for (size_t k = 0; k < n; k++)
		unlink(scratch_path(files[k]));
	rmdir(scratch_dir);
}
