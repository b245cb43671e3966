/*
 * scratch.h — the private temporary folder of a data-layer test (test-mlt-sql,
 * test-mlt-journal): made under $TMPDIR (else /tmp), paths in it, and its removal. One
 * copy, so the tests agree on where they write and what they leave behind (nothing).
 */
#ifndef RELAY_TESTS_SCRATCH_H
#define RELAY_TESTS_SCRATCH_H

#include <limits.h>
#include <stddef.h>

/* The folder, once scratch_make() succeeded. */
extern char scratch_dir[PATH_MAX];

/* Makes "$TMPDIR/<name>.XXXXXX": 0, or -1 after perror(). */
int scratch_make(const char *name);
/* "<scratch_dir>/<file>" in one of two static buffers, so two can be used in one call. */
char *scratch_path(const char *file);
/* Unlinks the n files named (those that exist), then removes the folder. */
void scratch_remove(const char *const *files, size_t n);

#endif
