/*
 * checklist.h — the OK/WARN/FAIL/SKIP report shared by `relay-admin selftest` and
 * `relay-admin check`: a list of named checks, each with a status, a one-line detail, a fix
 * hint and evidence lines (e.g. the server's replies), printed as text or as JSON.
 *
 * Ownership: struct adm_checklist owns every check and string in it; adm_checklist_free()
 * (NULL-safe) releases all. struct adm_check pointers stay valid until then. Strings passed
 * in are copied (clamped and sanitised to printable ASCII). Not thread safe.
 *
 * Errors: allocation failure is remembered and reported by adm_checklist_print() (returns
 * false) rather than at every call, so callers stay linear; a check that could not be
 * allocated is replaced by a static sink that ignores updates.
 */
#ifndef RELAY_ADM_CHECKLIST_H
#define RELAY_ADM_CHECKLIST_H

#include <stdbool.h>
#include <stdio.h>

enum adm_check_status { ADM_CHECK_SKIP, ADM_CHECK_OK, ADM_CHECK_WARN, ADM_CHECK_FAIL };

struct adm_checklist;
struct adm_check;

/* title: a one-line heading ("selftest of 127.0.0.1 port 587"). */
struct adm_checklist *adm_checklist_new(const char *command, const char *title);
void adm_checklist_free(struct adm_checklist *cl);

/* Adds a check (status SKIP, detail "not run") and returns it. id: a stable machine name
 * ("plaintext-mail-refused"), title: what it verifies. */
struct adm_check *adm_checklist_add(struct adm_checklist *cl, const char *id, const char *title);

__attribute__((format(printf, 3, 4)))
void adm_check_set(struct adm_check *ck, enum adm_check_status st, const char *fmt, ...);
__attribute__((format(printf, 2, 3)))
void adm_check_fix(struct adm_check *ck, const char *fmt, ...);
/* Evidence: always shown (certificate subject, the offending parameter …). */
__attribute__((format(printf, 2, 3)))
void adm_check_line(struct adm_check *ck, const char *fmt, ...);
/* Transcript ("C: EHLO x", "S: 250 ok"): in text output shown for WARN/FAIL checks or when
 * verbose; in JSON always, as "transcript". */
__attribute__((format(printf, 2, 3)))
void adm_check_trace(struct adm_check *ck, const char *fmt, ...);

enum adm_check_status adm_check_status(const struct adm_check *ck);

/* A key/value pair for the JSON "info" object and the text heading (e.g. "tls": "TLSv1.3"). */
void adm_checklist_info(struct adm_checklist *cl, const char *key, const char *value);

unsigned adm_checklist_count(const struct adm_checklist *cl, enum adm_check_status st);

/* Prints the report. Text: one line per check, evidence (and transcript, see above)
 * indented, fix hints for WARN/FAIL, a summary line. JSON: one object (adm.h's writer):
 * {"command","title","info":{},"checks":[{"id","status":"ok|warn|fail|skip","title",
 * "detail","fix","lines":[],"transcript":[],"lines_dropped"}],"ok","warnings","failures",
 * "skipped"}. false on an allocation failure earlier or a write error. */
bool adm_checklist_print(const struct adm_checklist *cl, FILE *out, bool json, bool verbose);

#endif
