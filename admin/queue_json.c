/*
 * queue_json.c — the pure half of queue.h, no I/O (also built alone by tests/fuzz/run):
 * the queue-id check and one line of `postqueue -j` into struct adm_qmsg.
 *
 * Postfix writes one JSON object per queued message:
 *   {"queue_name": "hold", "queue_id": "4F1C21C0A3", "arrival_time": 1764500000,
 *    "message_size": 512, "forced_expire": false, "sender": "a@example.org",
 *    "recipients": [{"address": "b@example.net", "delay_reason": "..."}]}
 * This is a small strict reader for that: RFC 8259 syntax (strings with every escape,
 * \u included, decoded to UTF-8), members we do not use skipped whatever their type,
 * nesting bounded. Anything else is an error, never a guess: the ids read here decide
 * what postsuper is asked to do.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queue.h"

#define DEPTH_MAX 8

bool adm_queue_id_valid(const char *id)
{
	size_t n = strlen(id);

	/* short ids are 6+ hex digits, long ids (enable_long_queue_ids) letters and digits
	 * without vowels; "ALL" (postsuper -d ALL) is neither, and checked by name anyway */
	if (n < 6 || n > ADM_QUEUE_ID_MAX || strcmp(id, "ALL") == 0)
		return false;
	for (size_t k = 0; k < n; k++) {
		char c = id[k];

		if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')))
			return false;
	}
	return true;
}

struct rd {
	const char *s;
	const char *start;
	char *err;
	size_t errlen;
};

static int bad(struct rd *r, const char *what)
{
	snprintf(r->err, r->errlen, "postqueue -j: %s at offset %zu", what,
	         (size_t)(r->s - r->start));
	return -1;
}

static void ws(struct rd *r)
{
	while (*r->s == ' ' || *r->s == '\t' || *r->s == '\n' || *r->s == '\r')
		r->s++;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int hex4(struct rd *r, unsigned *out)
{
	unsigned v = 0;

	for (int k = 0; k < 4; k++) {
		int h = hexval(r->s[k]);

		if (h < 0)
			return bad(r, "bad \\u escape");
		v = v * 16 + (unsigned)h;
	}
	r->s += 4;
	*out = v;
	return 0;
}

static size_t utf8(unsigned cp, char *o)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xC0 | (cp >> 6));
		o[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xE0 | (cp >> 12));
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		o[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	o[0] = (char)(0xF0 | (cp >> 18));
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
	o[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

/* A string at r->s (the opening quote); *out malloc'd if out != NULL. A decoded string is
 * never longer than its encoding, so the encoding's length bounds the buffer. */
static int string(struct rd *r, char **out)
{
	const char *end;
	char *buf, *o;

	if (*r->s != '"')
		return bad(r, "expected a string");
	r->s++;
	for (end = r->s; *end && *end != '"'; end++)
		if (*end == '\\' && end[1] != '\0')
			end++;
	if (*end != '"')
		return bad(r, "unterminated string");
	o = buf = malloc((size_t)(end - r->s) + 1);
	if (buf == NULL)
		return bad(r, "out of memory");
	while (*r->s != '"') {
		unsigned char c = (unsigned char)*r->s++;
		unsigned cp, lo;

		if (c < 0x20)
			goto fail_ctl;
		if (c != '\\') {
			*o++ = (char)c;
			continue;
		}
		c = (unsigned char)*r->s++;
		switch (c) {
		case '"': case '\\': case '/': *o++ = (char)c; break;
		case 'b': *o++ = '\b'; break;
		case 'f': *o++ = '\f'; break;
		case 'n': *o++ = '\n'; break;
		case 'r': *o++ = '\r'; break;
		case 't': *o++ = '\t'; break;
		case 'u':
			if (hex4(r, &cp) != 0)
				goto fail;
			if (cp >= 0xD800 && cp <= 0xDBFF && r->s[0] == '\\' && r->s[1] == 'u') {
				r->s += 2;
				if (hex4(r, &lo) != 0)
					goto fail;
				if (lo < 0xDC00 || lo > 0xDFFF) {
					bad(r, "unpaired surrogate");
					goto fail;
				}
				cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
			} else if (cp >= 0xD800 && cp <= 0xDFFF) {
				cp = 0xFFFD;
			}
			/* "\u0000" would cut the string short: refuse it */
			if (cp == 0) {
				bad(r, "NUL in a string");
				goto fail;
			}
			o += utf8(cp, o);
			break;
		default:
			bad(r, "bad escape");
			goto fail;
		}
	}
	r->s++;
	*o = '\0';
	if (out)
		*out = buf;
	else
		free(buf);
	return 0;
fail_ctl:
	bad(r, "control character in a string");
fail:
	free(buf);
	return -1;
}

/* A non-negative integer (all postqueue prints for times and sizes). */
static int integer(struct rd *r, int64_t *out)
{
	int64_t v = 0;

	if (*r->s < '0' || *r->s > '9')
		return bad(r, "expected a number");
	while (*r->s >= '0' && *r->s <= '9') {
		if (v > (INT64_MAX - 9) / 10)
			return bad(r, "number too large");
		v = v * 10 + (*r->s++ - '0');
	}
	if (*r->s == '.' || *r->s == 'e' || *r->s == 'E')
		return bad(r, "expected an integer");
	*out = v;
	return 0;
}

static int value_skip(struct rd *r, int depth);

/* Walks an object or array (r->s at '{' or '['), calling member() for each object member
 * with r->s at its value (member must consume it) or skipping array elements. */
static int container(struct rd *r, int depth, int (*member)(struct rd *, const char *, void *),
                     void *arg)
{
	char open = *r->s, close = open == '{' ? '}' : ']';

	if (depth > DEPTH_MAX)
		return bad(r, "nested too deep");
	r->s++;
	ws(r);
	if (*r->s == close) {
		r->s++;
		return 0;
	}
	for (;;) {
		ws(r);
		if (open == '{') {
			char *key = NULL;
			int rc;

			if (string(r, &key) != 0)
				return -1;
			ws(r);
			if (*r->s != ':') {
				free(key);
				return bad(r, "expected ':'");
			}
			r->s++;
			ws(r);
			rc = member ? member(r, key, arg) : value_skip(r, depth + 1);
			free(key);
			if (rc != 0)
				return -1;
		} else if ((member ? member(r, NULL, arg) : value_skip(r, depth + 1)) != 0) {
			return -1;
		}
		ws(r);
		if (*r->s == ',') {
			r->s++;
			continue;
		}
		if (*r->s == close) {
			r->s++;
			return 0;
		}
		return bad(r, "expected ',' or the end of a container");
	}
}

static int value_skip(struct rd *r, int depth)
{
	static const char *const words[] = { "true", "false", "null" };

	ws(r);
	if (*r->s == '"')
		return string(r, NULL);
	if (*r->s == '{' || *r->s == '[')
		return container(r, depth, NULL, NULL);
	if (*r->s == '-')
		r->s++;
	if (*r->s >= '0' && *r->s <= '9') {
		while ((*r->s >= '0' && *r->s <= '9') || *r->s == '.' || *r->s == 'e' ||
		       *r->s == 'E' || *r->s == '+' || *r->s == '-')
			r->s++;
		return 0;
	}
	for (size_t k = 0; k < sizeof words / sizeof words[0]; k++) {
		size_t len = strlen(words[k]);

		if (strncmp(r->s, words[k], len) == 0) {
			r->s += len;
			return 0;
		}
	}
	return bad(r, "expected a value");
}

/* One recipient object: its "address". */
static int rcpt_member(struct rd *r, const char *key, void *arg)
{
	char **addr = arg;

	if (strcmp(key, "address") != 0)
		return value_skip(r, 2);
	free(*addr);
	*addr = NULL;
	return string(r, addr);
}

static int rcpt_element(struct rd *r, const char *key, void *arg)
{
	struct adm_qmsg *m = arg;
	char *addr = NULL;
	char **v;

	(void)key;
	if (*r->s != '{')
		return bad(r, "a recipient is not an object");
	if (container(r, 2, rcpt_member, &addr) != 0) {
		free(addr);
		return -1;
	}
	if (addr == NULL)
		return bad(r, "a recipient without an address");
	v = realloc(m->rcpt, (m->nrcpt + 1) * sizeof *v);
	if (v == NULL) {
		free(addr);
		return bad(r, "out of memory");
	}
	m->rcpt = v;
	m->rcpt[m->nrcpt++] = addr;
	return 0;
}

struct msg_rd {
	struct adm_qmsg *m;
	char *queue_name;
	bool have_id, have_time, have_size;
};

static int msg_member(struct rd *r, const char *key, void *arg)
{
	struct msg_rd *mr = arg;
	char *id = NULL;

	if (strcmp(key, "queue_name") == 0) {
		free(mr->queue_name);
		mr->queue_name = NULL;
		return string(r, &mr->queue_name);
	}
	if (strcmp(key, "queue_id") == 0) {
		if (string(r, &id) != 0)
			return -1;
		if (!adm_queue_id_valid(id)) {
			free(id);
			return bad(r, "not a queue id");
		}
		snprintf(mr->m->queue_id, sizeof mr->m->queue_id, "%s", id);
		free(id);
		mr->have_id = true;
		return 0;
	}
	if (strcmp(key, "arrival_time") == 0) {
		mr->have_time = true;
		return integer(r, &mr->m->arrival_time);
	}
	if (strcmp(key, "message_size") == 0) {
		mr->have_size = true;
		return integer(r, &mr->m->size);
	}
	if (strcmp(key, "sender") == 0) {
		free(mr->m->sender);
		mr->m->sender = NULL;
		return string(r, &mr->m->sender);
	}
	if (strcmp(key, "recipients") == 0) {
		if (*r->s != '[')
			return bad(r, "recipients is not an array");
		return container(r, 1, rcpt_element, mr->m);
	}
	return value_skip(r, 1);
}

void adm_qmsg_clear(struct adm_qmsg *m)
{
	for (size_t k = 0; k < m->nrcpt; k++)
		free(m->rcpt[k]);
	free(m->rcpt);
	free(m->sender);
	memset(m, 0, sizeof *m);
}

int adm_queue_parse_line(const char *line, struct adm_qmsg *out, char *err, size_t errlen)
{
	struct adm_qmsg m = { 0 };
	struct msg_rd mr = { .m = &m };
	struct rd r = { line, line, err, errlen };
	int rc = -1;

	ws(&r);
	if (*r.s != '{') {
		bad(&r, "a line is not an object");
		goto out;
	}
	if (container(&r, 0, msg_member, &mr) != 0)
		goto out;
	ws(&r);
	if (*r.s != '\0') {
		bad(&r, "text after the object");
		goto out;
	}
	if (mr.queue_name == NULL || !mr.have_id || !mr.have_time || !mr.have_size ||
	    m.sender == NULL) {
		bad(&r, "a message without queue_name, queue_id, arrival_time, message_size "
		        "or sender");
		goto out;
	}
	if (strcmp(mr.queue_name, "hold") != 0) {
		rc = 0;
		goto out;
	}
	*out = m;
	memset(&m, 0, sizeof m);
	rc = 1;
out:
	adm_qmsg_clear(&m);
	free(mr.queue_name);
	return rc;
}
