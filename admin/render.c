/*
 * render.c — the one renderer of render.h: JSON through adm_json (json.c), text through
 * each field's template. Text templates are the commands' own format strings, so they are
 * printed with the format attribute switched off locally (they are never user input).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "render.h"

void adm_out_begin(struct adm_out *o, const struct adm_ctx *ctx)
{
	o->f = ctx->out;
	o->json = ctx->json;
	adm_json_init(&o->j, ctx->out);
}

static void key(struct adm_out *o, const char *k)
{
	if (k != NULL)
		adm_json_key(&o->j, k);
}

void adm_out_obj(struct adm_out *o, const char *k)
{
	if (o->json) {
		key(o, k);
		adm_json_obj(&o->j);
	}
}

void adm_out_arr(struct adm_out *o, const char *k)
{
	if (o->json) {
		key(o, k);
		adm_json_arr(&o->j);
	}
}

void adm_out_end(struct adm_out *o)
{
	if (o->json)
		adm_json_end(&o->j);
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
#pragma GCC diagnostic ignored "-Wformat-security"

void adm_out_str(struct adm_out *o, const char *k, const char *v, const char *text)
{
	if (o->json) {
		key(o, k);
		adm_json_str(&o->j, v);
	} else if (text != NULL) {
		fprintf(o->f, text, v);
	}
}

void adm_out_text_safe(struct adm_out *o, const char *text, const char *v)
{
	char *safe = NULL;
	size_t len = 0;
	FILE *m;

	if (o->json)
		return;
	m = open_memstream(&safe, &len);
	if (m == NULL)
		return;
	adm_print_safe(m, v);
	if (fclose(m) == 0)
		fprintf(o->f, text, safe);
	free(safe);
}

void adm_out_safe(struct adm_out *o, const char *k, const char *v, const char *text)
{
	if (o->json)
		adm_out_str(o, k, v, NULL);
	else if (text != NULL)
		adm_out_text_safe(o, text, v);
}

void adm_out_int(struct adm_out *o, const char *k, int64_t v, const char *text)
{
	if (o->json) {
		key(o, k);
		adm_json_int(&o->j, v);
	} else if (text != NULL) {
		fprintf(o->f, text, (long long)v);
	}
}

void adm_out_bool(struct adm_out *o, const char *k, bool v, const char *text)
{
	if (o->json) {
		key(o, k);
		adm_json_bool(&o->j, v);
	} else if (text != NULL) {
		fprintf(o->f, text, v ? "yes" : "no");
	}
}

void adm_out_time(struct adm_out *o, const char *k, int64_t t, const char *text)
{
	char buf[ADM_TIME_LEN];

	if (o->json) {
		key(o, k);
		adm_json_time(&o->j, t);
	} else if (text != NULL) {
		adm_format_time(t, buf);
		fprintf(o->f, text, buf);
	}
}

void adm_out_null(struct adm_out *o, const char *k, const char *text)
{
	if (o->json) {
		key(o, k);
		adm_json_null(&o->j);
	} else if (text != NULL) {
		fputs(text, o->f);
	}
}

void adm_out_text(struct adm_out *o, const char *fmt, ...)
{
	va_list ap;

	if (o->json)
		return;
	va_start(ap, fmt);
	vfprintf(o->f, fmt, ap);
	va_end(ap);
}

#pragma GCC diagnostic pop

void adm_out_finish(struct adm_out *o)
{
	if (o->json)
		adm_json_finish(&o->j);
}
