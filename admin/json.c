/*
 * json.c — the small streaming JSON writer of adm.h (RFC 8259 output, compact).
 *
 * Nesting and commas are tracked in struct adm_json; nesting deeper than ADM_JSON_DEPTH
 * is a programming error (no command comes close) and its output is not valid JSON.
 * Strings are escaped; bytes that are not valid UTF-8 are replaced with U+FFFD so the
 * output is always valid JSON, whatever a database or log held.
 */
#include <string.h>

#include "adm.h"

void adm_json_init(struct adm_json *j, FILE *f)
{
	memset(j, 0, sizeof *j);
	j->f = f;
}

/* Separator before a value (not after a key). */
static void pre_value(struct adm_json *j)
{
	if (j->after_key) {
		j->after_key = false;
		return;
	}
	if (j->depth > 0) {
		if (!j->first[j->depth - 1])
			fputc(',', j->f);
		j->first[j->depth - 1] = false;
	}
}

static void json_open(struct adm_json *j, char o, char c)
{
	pre_value(j);
	fputc(o, j->f);
	if (j->depth < ADM_JSON_DEPTH) {
		j->first[j->depth] = true;
		j->close[j->depth] = c;
		j->depth++;
	}
}

void adm_json_obj(struct adm_json *j)
{
	json_open(j, '{', '}');
}

void adm_json_arr(struct adm_json *j)
{
	json_open(j, '[', ']');
}

void adm_json_end(struct adm_json *j)
{
	if (j->depth > 0) {
		j->depth--;
		fputc(j->close[j->depth], j->f);
	}
}

/* Length of a valid UTF-8 sequence at p (1..4), or 0 if invalid. */
static size_t utf8_len(const unsigned char *p)
{
	unsigned c = p[0], need, cp, min;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) { need = 1; cp = c & 0x1f; min = 0x80; }
	else if (c >= 0xe0 && c <= 0xef) { need = 2; cp = c & 0x0f; min = 0x800; }
	else if (c >= 0xf0 && c <= 0xf4) { need = 3; cp = c & 0x07; min = 0x10000; }
	else return 0;
	for (unsigned k = 1; k <= need; k++) {
		if ((p[k] & 0xc0) != 0x80) /* also stops at the NUL terminator */
			return 0;
		cp = (cp << 6) | (p[k] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return need + 1;
}

static void string(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");

	fputc('"', f);
	while (*p) {
		size_t n = utf8_len(p);

		if (n == 0) {
			fputs("\\ufffd", f);
			p++;
		} else if (n == 2 && p[0] == 0xc2 && p[1] < 0xa0) {
			/* U+0080..U+009F are C1 controls (U+009B is CSI): escaped like C0, so
			 * client-supplied text cannot drive the terminal `--json` output lands on */
			fprintf(f, "\\u%04x", (unsigned)(p[1] & 0xff));
			p += 2;
		} else if (n > 1) {
			fwrite(p, 1, n, f);
			p += n;
		} else {
			switch (*p) {
			case '"': fputs("\\\"", f); break;
			case '\\': fputs("\\\\", f); break;
			case '\n': fputs("\\n", f); break;
			case '\r': fputs("\\r", f); break;
			case '\t': fputs("\\t", f); break;
			default:
				if (*p < 0x20 || *p == 0x7f)
					fprintf(f, "\\u%04x", *p);
				else
					fputc(*p, f);
			}
			p++;
		}
	}
	fputc('"', f);
}

void adm_json_key(struct adm_json *j, const char *key)
{
	pre_value(j);
	string(j->f, key);
	fputc(':', j->f);
	j->after_key = true;
}

void adm_json_str(struct adm_json *j, const char *s)
{
	pre_value(j);
	string(j->f, s);
}

void adm_json_int(struct adm_json *j, int64_t v)
{
	pre_value(j);
	fprintf(j->f, "%lld", (long long)v);
}

void adm_json_bool(struct adm_json *j, bool v)
{
	pre_value(j);
	fputs(v ? "true" : "false", j->f);
}

void adm_json_null(struct adm_json *j)
{
	pre_value(j);
	fputs("null", j->f);
}

void adm_json_time(struct adm_json *j, int64_t t)
{
	char buf[ADM_TIME_LEN];

	adm_format_time(t, buf);
	adm_json_str(j, buf);
}

void adm_json_finish(struct adm_json *j)
{
	while (j->depth > 0)
		adm_json_end(j);
	fputc('\n', j->f);
	fflush(j->f);
}
