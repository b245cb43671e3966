/*
 * render.h — relay-admin's one renderer: a command describes its result once, field by
 * field, and the renderer writes it either as one JSON document (--json) or as the
 * command's text, so no command tests ctx->json or writes its output twice.
 *
 * Every field has a JSON key (NULL inside an array) and a text template (NULL: the field
 * is JSON only). A template is printed with the field's value in place of its single
 * conversion: %s for strings, times and booleans ("yes"/"no"), %lld for integers.
 * adm_out_text() is text only (lines that join several fields). Objects and arrays nest
 * as in adm_json; in text they print nothing themselves.
 *
 *     struct adm_out o;
 *     adm_out_begin(&o, ctx);
 *     adm_out_obj(&o, NULL);
 *     adm_out_str(&o, "name", name, NULL);
 *     adm_out_bool(&o, "deleted", true, NULL);
 *     adm_out_text(&o, "deleted %s\n", name);
 *     adm_out_finish(&o);
 *
 * Output goes to ctx->out (wrap the command in adm_run_buffered() so that a failure
 * half-way leaves nothing). Strings given to adm_out_safe() are escaped in text as by
 * adm_print_safe() (data from a database or log); JSON escapes every string anyway.
 * Single-threaded; struct adm_out lives on the caller's stack and owns nothing.
 */
#ifndef RELAY_ADM_RENDER_H
#define RELAY_ADM_RENDER_H

#include <stdbool.h>
#include <stdint.h>

#include "adm.h"

struct adm_out {
	FILE *f;
	bool json;
	struct adm_json j;
};

void adm_out_begin(struct adm_out *o, const struct adm_ctx *ctx);
void adm_out_obj(struct adm_out *o, const char *key);
void adm_out_arr(struct adm_out *o, const char *key);
void adm_out_end(struct adm_out *o);
void adm_out_str(struct adm_out *o, const char *key, const char *v, const char *text);
void adm_out_safe(struct adm_out *o, const char *key, const char *v, const char *text);
void adm_out_int(struct adm_out *o, const char *key, int64_t v, const char *text);
void adm_out_bool(struct adm_out *o, const char *key, bool v, const char *text);
/* An RFC 3339 UTC time ("2026-11-26T10:00:00Z") in both forms. */
void adm_out_time(struct adm_out *o, const char *key, int64_t t, const char *text);
/* null in JSON; `text` printed as it is. */
void adm_out_null(struct adm_out *o, const char *key, const char *text);
__attribute__((format(printf, 2, 3)))
void adm_out_text(struct adm_out *o, const char *fmt, ...);
/* Text only, v escaped as by adm_print_safe(). */
void adm_out_text_safe(struct adm_out *o, const char *text, const char *v);
/* Closes what is open and ends the JSON document with a newline (text: nothing). */
void adm_out_finish(struct adm_out *o);

#endif
