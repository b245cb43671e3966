/*
 * scratch.h — the private temporary folder of a C test (tests/lib, beside tap.h): made
 * under $TMPDIR (else /tmp), paths in it, and its removal. One copy, so every test agrees
 * on where it writes and what it leaves behind (nothing).
 */
#ifndef RELAY_TESTS_SCRATCH_H
#define RELAY_TESTS_SCRATCH_H

#include <limits.h>
#include <stddef.h>

/* The folder, once scratch_make() succeeded. */
extern char scratch_dir[PATH_MAX];

/* Makes "$TMPDIR/<name>.XXXXXX" (/tmp when TMPDIR is unset or empty, as mkstemp(3)'s
 * callers expect): 0, or -1 after perror(). */
int scratch_make(const char *name);
/* "<scratch_dir>/<file>" in one of two static buffers, so two can be used in one call. */
char *scratch_path(const char *file);
/* Unlinks the n files named (those that exist), then removes the folder: rmdir()'s
 * result, so a test can assert that it left nothing else behind. */
int scratch_remove(const char *const *files, size_t n);
/* Removes the folder and everything in it, links as links (never followed): for tests
 * that build trees of links and folders. 0, or -1. */
int scratch_remove_tree(void);

#endif
