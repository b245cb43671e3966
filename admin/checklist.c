/*
 * checklist.c — OK/WARN/FAIL/SKIP reports for selftest and check (see checklist.h).
 */
#include "checklist.h"

#include "adm.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define DETAIL_MAX 600
#define LINE_MAX_ 600
#define LINES_MAX 400   /* evidence lines kept per check; more are counted, not kept */
#define INFO_MAX 32

struct adm_check {
	char id[64];
	char title[160];
	enum adm_check_status status;
	char detail[DETAIL_MAX];
	char fix[DETAIL_MAX];
	char **lines;
	bool *trace;             /* per line: part of a protocol transcript */
	unsigned nlines, dropped;
};

struct adm_checklist {
	char command[32];
	char title[256];
	struct adm_check **checks;
	unsigned n, cap;
	char *info_key[INFO_MAX], *info_val[INFO_MAX];
	unsigned ninfo;
	bool oom;
};

/* Updates to a check we could not allocate land here and are dropped. */
static struct adm_check sink;

static void copy_clean(char *dst, size_t dstlen, const char *src)
{
	size_t i = 0;

	for (; src[i] && i + 1 < dstlen; i++) {
		unsigned char ch = (unsigned char)src[i];

		dst[i] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
	}
	dst[i] = '\0';
}

__attribute__((format(printf, 3, 0)))
static void vformat(char *dst, size_t dstlen, const char *fmt, va_list ap)
{
	char tmp[LINE_MAX_ * 2];

	vsnprintf(tmp, sizeof(tmp), fmt, ap);
	copy_clean(dst, dstlen, tmp);
}

struct adm_checklist *adm_checklist_new(const char *command, const char *title)
{
	struct adm_checklist *cl = calloc(1, sizeof(*cl));

	if (!cl)
		return NULL;
	copy_clean(cl->command, sizeof(cl->command), command);
	copy_clean(cl->title, sizeof(cl->title), title);
	return cl;
}

void adm_checklist_free(struct adm_checklist *cl)
{
	if (!cl)
		return;
	for (unsigned i = 0; i < cl->n; i++) {
		for (unsigned j = 0; j < cl->checks[i]->nlines; j++)
			free(cl->checks[i]->lines[j]);
		free(cl->checks[i]->lines);
		free(cl->checks[i]->trace);
		free(cl->checks[i]);
	}
	free(cl->checks);
	for (unsigned i = 0; i < cl->ninfo; i++) {
		free(cl->info_key[i]);
		free(cl->info_val[i]);
	}
	free(cl);
}

struct adm_check *adm_checklist_add(struct adm_checklist *cl, const char *id, const char *title)
{
	struct adm_check *ck;

	if (cl->n == cl->cap) {
		unsigned ncap = cl->cap ? cl->cap * 2 : 16;
		struct adm_check **nc = realloc(cl->checks, ncap * sizeof(*nc));

		if (!nc) {
			cl->oom = true;
			return &sink;
		}
		cl->checks = nc;
		cl->cap = ncap;
	}
	ck = calloc(1, sizeof(*ck));
	if (!ck) {
		cl->oom = true;
		return &sink;
	}
	copy_clean(ck->id, sizeof(ck->id), id);
	copy_clean(ck->title, sizeof(ck->title), title);
	ck->status = ADM_CHECK_SKIP;
	snprintf(ck->detail, sizeof(ck->detail), "not run");
	cl->checks[cl->n++] = ck;
	return ck;
}

void adm_check_set(struct adm_check *ck, enum adm_check_status st, const char *fmt, ...)
{
	va_list ap;

	if (ck == &sink)
		return;
	ck->status = st;
	va_start(ap, fmt);
	vformat(ck->detail, sizeof(ck->detail), fmt, ap);
	va_end(ap);
}

void adm_check_fix(struct adm_check *ck, const char *fmt, ...)
{
	va_list ap;

	if (ck == &sink)
		return;
	va_start(ap, fmt);
	vformat(ck->fix, sizeof(ck->fix), fmt, ap);
	va_end(ap);
}

__attribute__((format(printf, 3, 0)))
static void add_line(struct adm_check *ck, bool trace, const char *fmt, va_list ap)
{
	char buf[LINE_MAX_];

	if (ck == &sink)
		return;
	if (ck->nlines >= LINES_MAX) {
		ck->dropped++;
		return;
	}
	vformat(buf, sizeof(buf), fmt, ap);
	char **nl = realloc(ck->lines, (ck->nlines + 1) * sizeof(*nl));

	if (nl)
		ck->lines = nl;
	bool *nt = nl ? realloc(ck->trace, (ck->nlines + 1) * sizeof(*nt)) : NULL;

	if (nt)
		ck->trace = nt;
	char *copy = nt ? strdup(buf) : NULL;

	if (!copy) {
		ck->dropped++;
		return;
	}
	ck->lines[ck->nlines] = copy;
	ck->trace[ck->nlines] = trace;
	ck->nlines++;
}

void adm_check_line(struct adm_check *ck, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	add_line(ck, false, fmt, ap);
	va_end(ap);
}

void adm_check_trace(struct adm_check *ck, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	add_line(ck, true, fmt, ap);
	va_end(ap);
}

enum adm_check_status adm_check_status(const struct adm_check *ck)
{
	return ck->status;
}

void adm_checklist_info(struct adm_checklist *cl, const char *key, const char *value)
{
	char buf[LINE_MAX_];

	if (cl->ninfo >= INFO_MAX) {
		cl->oom = true;
		return;
	}
	copy_clean(buf, sizeof(buf), value ? value : "");
	cl->info_key[cl->ninfo] = strdup(key);
	cl->info_val[cl->ninfo] = strdup(buf);
	if (!cl->info_key[cl->ninfo] || !cl->info_val[cl->ninfo]) {
		free(cl->info_key[cl->ninfo]);
		free(cl->info_val[cl->ninfo]);
		cl->oom = true;
		return;
	}
	cl->ninfo++;
}

unsigned adm_checklist_count(const struct adm_checklist *cl, enum adm_check_status st)
{
	unsigned n = 0;

	for (unsigned i = 0; i < cl->n; i++)
		n += cl->checks[i]->status == st;
	return n;
}

static const char *status_word(enum adm_check_status st)
{
	switch (st) {
	case ADM_CHECK_OK: return "OK";
	case ADM_CHECK_WARN: return "WARN";
	case ADM_CHECK_FAIL: return "FAIL";
	case ADM_CHECK_SKIP: return "SKIP";
	}
	return "?";
}

static const char *status_json(enum adm_check_status st)
{
	switch (st) {
	case ADM_CHECK_OK: return "ok";
	case ADM_CHECK_WARN: return "warn";
	case ADM_CHECK_FAIL: return "fail";
	case ADM_CHECK_SKIP: return "skip";
	}
	return "?";
}

static void print_json(const struct adm_checklist *cl, FILE *out)
{
	struct adm_json j;

	adm_json_init(&j, out);
	adm_json_obj(&j);
	adm_json_key(&j, "command");
	adm_json_str(&j, cl->command);
	adm_json_key(&j, "title");
	adm_json_str(&j, cl->title);
	adm_json_key(&j, "info");
	adm_json_obj(&j);
	for (unsigned i = 0; i < cl->ninfo; i++) {
		adm_json_key(&j, cl->info_key[i]);
		adm_json_str(&j, cl->info_val[i]);
	}
	adm_json_end(&j);
	adm_json_key(&j, "checks");
	adm_json_arr(&j);
	for (unsigned i = 0; i < cl->n; i++) {
		const struct adm_check *ck = cl->checks[i];

		adm_json_obj(&j);
		adm_json_key(&j, "id");
		adm_json_str(&j, ck->id);
		adm_json_key(&j, "status");
		adm_json_str(&j, status_json(ck->status));
		adm_json_key(&j, "title");
		adm_json_str(&j, ck->title);
		adm_json_key(&j, "detail");
		adm_json_str(&j, ck->detail);
		adm_json_key(&j, "fix");
		if (ck->fix[0])
			adm_json_str(&j, ck->fix);
		else
			adm_json_null(&j);
		adm_json_key(&j, "lines");
		adm_json_arr(&j);
		for (unsigned k = 0; k < ck->nlines; k++)
			if (!ck->trace[k])
				adm_json_str(&j, ck->lines[k]);
		adm_json_end(&j);
		adm_json_key(&j, "transcript");
		adm_json_arr(&j);
		for (unsigned k = 0; k < ck->nlines; k++)
			if (ck->trace[k])
				adm_json_str(&j, ck->lines[k]);
		adm_json_end(&j);
		adm_json_key(&j, "lines_dropped");
		adm_json_int(&j, ck->dropped);
		adm_json_end(&j);
	}
	adm_json_end(&j);
	adm_json_key(&j, "ok");
	adm_json_int(&j, adm_checklist_count(cl, ADM_CHECK_OK));
	adm_json_key(&j, "warnings");
	adm_json_int(&j, adm_checklist_count(cl, ADM_CHECK_WARN));
	adm_json_key(&j, "failures");
	adm_json_int(&j, adm_checklist_count(cl, ADM_CHECK_FAIL));
	adm_json_key(&j, "skipped");
	adm_json_int(&j, adm_checklist_count(cl, ADM_CHECK_SKIP));
	adm_json_end(&j);
	adm_json_finish(&j);
}

static void print_text(const struct adm_checklist *cl, FILE *out, bool verbose)
{
	fprintf(out, "%s\n", cl->title);
	for (unsigned i = 0; i < cl->ninfo; i++)
		fprintf(out, "  %-12s %s\n", cl->info_key[i], cl->info_val[i]);
	for (unsigned i = 0; i < cl->n; i++) {
		const struct adm_check *ck = cl->checks[i];

		fprintf(out, "[%-4s] %s: %s\n", status_word(ck->status), ck->title, ck->detail);
		/* A transcript is shown where it explains a problem, or when asked for. */
		bool show_trace = verbose || ck->status == ADM_CHECK_FAIL ||
		                  ck->status == ADM_CHECK_WARN;

		for (unsigned j = 0; j < ck->nlines; j++)
			if (show_trace || !ck->trace[j])
				fprintf(out, "         %s\n", ck->lines[j]);
		if (ck->dropped)
			fprintf(out, "         (%u more lines not shown)\n", ck->dropped);
		if (ck->fix[0] && (ck->status == ADM_CHECK_FAIL || ck->status == ADM_CHECK_WARN))
			fprintf(out, "         fix: %s\n", ck->fix);
	}
	fprintf(out, "%u checks: %u ok, %u warnings, %u failed, %u skipped\n", cl->n,
	        adm_checklist_count(cl, ADM_CHECK_OK), adm_checklist_count(cl, ADM_CHECK_WARN),
	        adm_checklist_count(cl, ADM_CHECK_FAIL), adm_checklist_count(cl, ADM_CHECK_SKIP));
}

bool adm_checklist_print(const struct adm_checklist *cl, FILE *out, bool json, bool verbose)
{
	if (json)
		print_json(cl, out);
	else
		print_text(cl, out, verbose);
	if (cl->oom)
		fprintf(stderr, "warning: out of memory while building the report; it is incomplete\n");
	return fflush(out) == 0 && !ferror(out) && !cl->oom;
}
