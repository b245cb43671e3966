/*
 * postconf.h — running Postfix's own tools (postconf, postmap, postfix) for one instance.
 *
 * What it is: the only place relay-admin starts external programs. Every program runs with
 * an argv array (fork + execv, never a shell), stdin from a buffer we give or /dev/null,
 * stdout captured, stderr captured for error messages. Every call names the instance by its
 * config directory (`-c DIR`), so the system instance and private ones are handled alike.
 *
 * Ownership: strings handed out (*out) are malloc'd and owned by the caller (free()).
 * Strings passed in are borrowed. No global state: thread safe as far as fork/exec is.
 *
 * Errors: functions return 0 on success and -1 on failure with a one-line reason in `err`
 * (the program's stderr, clamped, or the system error). A program that ran and exited
 * non-zero is a failure.
 */
#ifndef RELAY_ADM_POSTCONF_H
#define RELAY_ADM_POSTCONF_H

#include <stdbool.h>
#include <stddef.h>

#define ADM_RUN_OUT_MAX (1024 * 1024)  /* bytes of stdout we keep from one program */

/* Runs argv[0] (an absolute path, or a name looked up in /usr/sbin, /usr/bin, /sbin, /bin)
 * with `input` (may be NULL) on stdin. On success *out (if out != NULL) holds its stdout,
 * NUL-terminated, and *status its exit status (0..255). Returns -1 only if it could not
 * run or was killed by a signal. */
int adm_run(const char *const argv[], const char *input, char **out, int *status,
            char *err, size_t errlen);

/* `postconf -c dir -h name`: the effective value (default included), trailing newline cut. */
int adm_pf_get(const char *dir, const char *name, char **value, char *err, size_t errlen);

/* `postconf -c dir -n -h name`: the value main.cf itself sets, "" when it leaves the
 * parameter at its default (so a default is never mistaken for something setup wrote). */
int adm_pf_get_explicit(const char *dir, const char *name, char **value, char *err,
                        size_t errlen);

/* `postconf -c dir -X name[0] name[1] ...`: removes main.cf parameters; n == 0 does nothing. */
int adm_pf_unset(const char *dir, const char *const names[], size_t n, char *err,
                 size_t errlen);

/* `postconf -c dir -e kv[0] kv[1] ...` with "name=value" strings; n == 0 does nothing. */
int adm_pf_set(const char *dir, const char *const kv[], size_t n, char *err, size_t errlen);

/* `postconf -c dir -M service/type`: the master.cf entry on one line, "" if there is none. */
int adm_pf_service_get(const char *dir, const char *service_type, char **entry,
                       char *err, size_t errlen);

/* `postconf -c dir -M service/type=entry`: adds or replaces one master.cf entry. */
int adm_pf_service_set(const char *dir, const char *service_type, const char *entry,
                       char *err, size_t errlen);

/* `postconf -c dir -M`: every master.cf entry, one per line ("" if none). */
int adm_pf_services(const char *dir, char **all, char *err, size_t errlen);

/* `postconf -c dir -MX service/type`: removes one master.cf entry. */
int adm_pf_service_delete(const char *dir, const char *service_type, char *err,
                          size_t errlen);

/* `postmap -c dir hash:file`. */
int adm_pf_postmap(const char *dir, const char *file, char *err, size_t errlen);

/* `postfix -c dir status` == 0. */
bool adm_pf_running(const char *dir);

/* `postfix -c dir reload`. */
int adm_pf_reload(const char *dir, char *err, size_t errlen);

/* `postfix -c dir check`: Postfix's own consistency check of the configuration. */
int adm_pf_check(const char *dir, char *err, size_t errlen);

/* Splits a master.cf entry (as printed by `postconf -M`) into whitespace-separated words
 * and compares with `want` (n words). True when they are the same words in order. */
bool adm_pf_entry_equal(const char *entry, const char *const want[], size_t n);

#endif
