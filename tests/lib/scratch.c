/*
 * scratch.c — the private temporary folder of a C test (see scratch.h).
 */
#include "scratch.h"

#include <ftw.h>
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

int scratch_remove(const char *const *files, size_t n)
{
	for (size_t k = 0; k < n; k++)
		unlink(scratch_path(files[k]));
	return rmdir(scratch_dir);
}

static int remove_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return type == FTW_DP ? rmdir(path) : unlink(path);
}

int scratch_remove_tree(void)
{
	/* FTW_DEPTH: contents before their folder; FTW_PHYS: a link is removed, not walked */
	return nftw(scratch_dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}
