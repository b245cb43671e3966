/*
 * addr.c — envelope and From: address parsing (see addr.h).
 *
 * Two passes: a tokenizer turns the text into words (atoms, quoted strings, domain
 * literals) and specials, dropping whitespace, folding and comments; a small
 * recursive-descent parser then walks RFC 5322's address-list over the tokens.
 * Obsolete forms handled: CFWS around dots in a local part or domain (`a . b@c`), empty
 * list elements (`a@b,,c@d`), source routes in angle addresses (`<@x,@y:a@b>`), dots in
 * display names (`J. Smith <j@x>`).
 */
#include "addr.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum tok_type { T_ATOM, T_QSTR, T_DLIT, T_SPECIAL };

struct tok {
	enum tok_type type;
	char ch;             /* for T_SPECIAL: one of < > @ , ; : . */
	const char *s;       /* for words: the raw bytes (quoted strings without the quotes) */
	size_t len;
};

struct parser {
	struct tok *t;
	size_t n, i;
	mlt_addr_cb cb;
	void *arg;
	size_t count;
	bool stopped;
	char *why;
	size_t whylen;
};

static enum mlt_addr_result fail(char *why, size_t whylen, const char *msg)
{
	if (why != NULL && whylen > 0)
		snprintf(why, whylen, "%s", msg);
	return MLT_ADDR_INVALID;
}

static bool is_special(unsigned char c)
{
	return c != '\0' && strchr("()<>[]:;@\\,.\"", c) != NULL;
}

static bool is_ws(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool is_ctl(unsigned char c)
{
	return (c < 0x20 && !is_ws(c)) || c == 0x7f;
}

/* RFC 5322 atext, plus 8-bit bytes (UTF-8 in SMTPUTF8 mail). */
static bool is_atext(unsigned char c)
{
	return c >= 0x80 || (c > 0x20 && c < 0x7f && !is_special(c));
}

/* The scanners below each read one token that starts at s[*pi], leave *pi just after it,
 * and return NULL, or why the text is not an address. */

/* A comment, nested up to MLT_COMMENT_DEPTH_MAX deep; dropped. */
static const char *skip_comment(const char *s, size_t len, size_t *pi)
{
	size_t i = *pi;
	int depth = 0;

	do {
		unsigned char c = (unsigned char)s[i];

		if (c == '\\' && i + 1 < len)
			i++;
		else if (c == '(' && ++depth > MLT_COMMENT_DEPTH_MAX)
			return "comments nested too deeply";
		else if (c == ')')
			depth--;
		else if (c == '\0')
			return "NUL in comment";
		i++;
	} while (depth > 0 && i < len);
	*pi = i;
	return depth > 0 ? "unterminated comment" : NULL;
}

/* A quoted string; the token holds its bytes without the quotes. */
static const char *scan_quoted(const char *s, size_t len, size_t *pi, struct tok *t)
{
	size_t start = *pi + 1, i = start;

	while (i < len && s[i] != '"') {
		if (s[i] == '\0' || is_ctl((unsigned char)s[i]))
			return "control character in quoted string";
		if (s[i] == '\\') {
			/* quoted-pair: the escaped byte must be printable too */
			i++;
			if (i < len && (s[i] == '\0' || is_ctl((unsigned char)s[i]) ||
			                s[i] == '\r' || s[i] == '\n'))
				return "control character in quoted string";
		}
		i++;
	}
	if (i >= len)
		return "unterminated quoted string";
	*t = (struct tok){ .type = T_QSTR, .s = s + start, .len = i - start };
	*pi = i + 1;
	return NULL;
}

/* A domain literal; the token holds it with its brackets. */
static const char *scan_literal(const char *s, size_t len, size_t *pi, struct tok *t)
{
	size_t start = *pi, i = start + 1;

	while (i < len && s[i] != ']') {
		if (s[i] == '[' || s[i] == '\\' || s[i] == '\0' || is_ctl((unsigned char)s[i]))
			return "bad domain literal";
		i++;
	}
	if (i >= len)
		return "unterminated domain literal";
	i++;
	*t = (struct tok){ .type = T_DLIT, .s = s + start, .len = i - start };
	*pi = i;
	return NULL;
}

static enum mlt_addr_result tokenize(const char *s, size_t len, struct tok **out, size_t *nout,
                                     char *why, size_t whylen)
{
	struct tok *t = calloc(len + 1, sizeof *t);
	size_t n = 0, i = 0;
	const char *bad = NULL;

	if (t == NULL)
		return fail(why, whylen, "out of memory");
	while (i < len && bad == NULL) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\0' || is_ctl(c)) {
			bad = "control character in address";
		} else if (is_ws(c)) {
			i++;
		} else if (c == '(') {
			bad = skip_comment(s, len, &i);
		} else if (c == ')') {
			bad = "unbalanced parenthesis";
		} else if (c == '"') {
			bad = scan_quoted(s, len, &i, &t[n++]);
		} else if (c == '[') {
			bad = scan_literal(s, len, &i, &t[n++]);
		} else if (strchr("<>@,;:.", c) != NULL) {
			t[n++] = (struct tok){ .type = T_SPECIAL, .ch = (char)c, .s = s + i, .len = 1 };
			i++;
		} else if (is_atext(c)) {
			size_t start = i;

			while (i < len && is_atext((unsigned char)s[i]))
				i++;
			t[n++] = (struct tok){ .type = T_ATOM, .s = s + start, .len = i - start };
		} else {
			bad = "unexpected character in address";
		}
	}
	if (bad != NULL) {
		free(t);
		return fail(why, whylen, bad);
	}
	*out = t;
	*nout = n;
	return MLT_ADDR_OK;
}

static bool at_special(const struct parser *p, char ch)
{
	return p->i < p->n && p->t[p->i].type == T_SPECIAL && p->t[p->i].ch == ch;
}

static bool is_word(const struct tok *t)
{
	return t->type == T_ATOM || t->type == T_QSTR;
}

/* Appends bytes to the output, lowercasing ASCII; false if it would not fit. */
static bool put(char *out, size_t *o, const char *s, size_t len)
{
	if (*o + len > MLT_ADDR_MAX)
		return false;
	for (size_t k = 0; k < len; k++) {
		char c = s[k];

		out[(*o)++] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
	}
	out[*o] = '\0';
	return true;
}

/* A quoted-string local-part word: written bare when its unescaped content is a valid
 * atom (so "alice"@x and alice@x compare equal), else re-quoted with minimal escapes. */
static bool put_qstr(char *out, size_t *o, const struct tok *t)
{
	char buf[MLT_ADDR_MAX + 1];
	size_t b = 0;
	bool bare = t->len > 0;

	for (size_t k = 0; k < t->len; k++) {
		char c = t->s[k];

		if (c == '\\' && k + 1 < t->len)
			c = t->s[++k];
		if (c == '\r' || c == '\n') /* folding inside the quotes: unfold */
			continue;
		if (c == '\t')
			c = ' ';
		if (b >= MLT_ADDR_MAX)
			return false;
		buf[b++] = c;
		if (!is_atext((unsigned char)c))
			bare = false;
	}
	if (bare)
		return put(out, o, buf, b);
	if (!put(out, o, "\"", 1))
		return false;
	for (size_t k = 0; k < b; k++) {
		if ((buf[k] == '"' || buf[k] == '\\') && !put(out, o, "\\", 1))
			return false;
		if (!put(out, o, &buf[k], 1))
			return false;
	}
	return put(out, o, "\"", 1);
}

/* A dot-atom or its obsolete form: word *("." word) for a local part (words = true), atom
 * *("." atom) for a domain. Appends it, dots included, to out at *o; `missing` is the
 * reason when no word starts it. */
static enum mlt_addr_result dotted(struct parser *p, char out[MLT_ADDR_MAX + 1], size_t *o,
                                   bool words, const char *missing)
{
	for (;;) {
		if (p->i >= p->n || !(words ? is_word(&p->t[p->i]) : p->t[p->i].type == T_ATOM))
			return fail(p->why, p->whylen, missing);
		const struct tok *w = &p->t[p->i++];
		bool fits = w->type == T_ATOM ? put(out, o, w->s, w->len) : put_qstr(out, o, w);

		if (!fits)
			return fail(p->why, p->whylen, "address too long");
		if (!at_special(p, '.'))
			return MLT_ADDR_OK;
		p->i++;
		if (!put(out, o, ".", 1))
			return fail(p->why, p->whylen, "address too long");
	}
}

/* addr-spec = local-part "@" domain, tokens from p->i; stops at the first token that
 * cannot continue it. Writes the canonical form to out. */
static enum mlt_addr_result addr_spec(struct parser *p, char out[MLT_ADDR_MAX + 1])
{
	enum mlt_addr_result r;
	size_t o = 0;

	out[0] = '\0';
	r = dotted(p, out, &o, true, "missing local part");
	if (r != MLT_ADDR_OK)
		return r;
	if (!at_special(p, '@'))
		return fail(p->why, p->whylen, "missing @domain");
	p->i++;
	if (!put(out, &o, "@", 1))
		return fail(p->why, p->whylen, "address too long");
	/* domain: atom *("." atom) / domain-literal */
	if (p->i < p->n && p->t[p->i].type == T_DLIT) {
		const struct tok *d = &p->t[p->i++];

		/* [ dtext with folding whitespace ]: the whitespace carries no meaning */
		for (size_t k = 0; k < d->len; k++)
			if (!is_ws((unsigned char)d->s[k]) && !put(out, &o, &d->s[k], 1))
				return fail(p->why, p->whylen, "address too long");
		return MLT_ADDR_OK;
	}
	return dotted(p, out, &o, false, "missing or bad domain");
}

/* obs-route = obs-domain-list ":" where obs-domain-list is "@" domain *("," ["@" domain]). */
static enum mlt_addr_result skip_route(struct parser *p)
{
	if (!at_special(p, '@'))
		return MLT_ADDR_OK;
	while (p->i < p->n && !at_special(p, ':')) {
		const struct tok *t = &p->t[p->i];

		if (t->type == T_SPECIAL && t->ch != '@' && t->ch != ',' && t->ch != '.')
			return fail(p->why, p->whylen, "bad source route");
		p->i++;
	}
	if (!at_special(p, ':'))
		return fail(p->why, p->whylen, "bad source route");
	p->i++;
	return MLT_ADDR_OK;
}

static enum mlt_addr_result emit(struct parser *p, const char *addr)
{
	if (p->count >= MLT_FROM_ADDRS_MAX)
		return fail(p->why, p->whylen, "too many addresses");
	p->count++;
	if (!p->stopped && !p->cb(p->arg, addr))
		p->stopped = true;
	return MLT_ADDR_OK;
}

/* angle-addr = "<" [obs-route] addr-spec ">" */
static enum mlt_addr_result angle_addr(struct parser *p)
{
	char addr[MLT_ADDR_MAX + 1];
	enum mlt_addr_result r;

	p->i++; /* '<' */
	if ((r = skip_route(p)) != MLT_ADDR_OK || (r = addr_spec(p, addr)) != MLT_ADDR_OK)
		return r;
	if (!at_special(p, '>'))
		return fail(p->why, p->whylen, "missing >");
	p->i++;
	return emit(p, addr);
}

/* Finds, from p->i, the first '<' ':' ',' ';' '>' token of this list element. */
static size_t scan_element(const struct parser *p)
{
	size_t k = p->i;

	while (k < p->n && !(p->t[k].type == T_SPECIAL && strchr("<:,;>", p->t[k].ch) != NULL))
		k++;
	return k;
}

/* mailbox = name-addr / addr-spec */
static enum mlt_addr_result mailbox(struct parser *p)
{
	size_t k = scan_element(p);

	if (k < p->n && p->t[k].ch == '<') {
		/* display-name: words and (obsolete) dots; anything else is garbage */
		for (size_t j = p->i; j < k; j++)
			if (!is_word(&p->t[j]) && !(p->t[j].type == T_SPECIAL && p->t[j].ch == '.'))
				return fail(p->why, p->whylen, "bad display name");
		p->i = k;
		return angle_addr(p);
	}
	char addr[MLT_ADDR_MAX + 1];
	enum mlt_addr_result r = addr_spec(p, addr);

	return r != MLT_ADDR_OK ? r : emit(p, addr);
}

/* After an element: end, ',' (consumed) or — inside a group — ';' (left for the caller). */
static enum mlt_addr_result element_end(struct parser *p, bool in_group)
{
	if (p->i >= p->n)
		return MLT_ADDR_OK;
	if (at_special(p, ',')) {
		p->i++;
		return MLT_ADDR_OK;
	}
	if (in_group && at_special(p, ';'))
		return MLT_ADDR_OK;
	return fail(p->why, p->whylen, "unexpected text after address");
}

static enum mlt_addr_result group(struct parser *p, size_t colon)
{
	enum mlt_addr_result r;

	for (size_t j = p->i; j < colon; j++)
		if (!is_word(&p->t[j]) && !(p->t[j].type == T_SPECIAL && p->t[j].ch == '.'))
			return fail(p->why, p->whylen, "bad group name");
	p->i = colon + 1;
	while (p->i < p->n && !at_special(p, ';')) {
		if (at_special(p, ',')) { /* obs-mbox-list: empty elements */
			p->i++;
			continue;
		}
		size_t k = scan_element(p);

		if (k < p->n && p->t[k].ch == ':')
			return fail(p->why, p->whylen, "nested group");
		if ((r = mailbox(p)) != MLT_ADDR_OK || (r = element_end(p, true)) != MLT_ADDR_OK)
			return r;
	}
	if (!at_special(p, ';'))
		return fail(p->why, p->whylen, "unterminated group");
	p->i++;
	return element_end(p, false);
}

enum mlt_addr_result mlt_from_parse(const char *value, size_t len, mlt_addr_cb cb, void *arg,
                                    size_t *count, char *why, size_t whylen)
{
	struct parser p = { .cb = cb, .arg = arg, .why = why, .whylen = whylen };
	enum mlt_addr_result r;

	if (count != NULL)
		*count = 0;
	if (len > MLT_HEADER_MAX)
		return fail(why, whylen, "header too long");
	if ((r = tokenize(value, len, &p.t, &p.n, why, whylen)) != MLT_ADDR_OK)
		return r;
	while (p.i < p.n) {
		if (at_special(&p, ',')) { /* obs-addr-list: empty elements */
			p.i++;
			continue;
		}
		size_t k = scan_element(&p);

		if (k < p.n && p.t[k].ch == ':')
			r = group(&p, k);
		else if ((r = mailbox(&p)) == MLT_ADDR_OK)
			r = element_end(&p, false);
		if (r != MLT_ADDR_OK)
			break;
	}
	free(p.t);
	if (count != NULL)
		*count = p.count;
	return r;
}

static bool take_one(void *arg, const char *addr)
{
	snprintf((char *)arg, MLT_ADDR_MAX + 1, "%s", addr);
	return true;
}

enum mlt_addr_result mlt_envaddr_parse(const char *arg, char out[MLT_ADDR_MAX + 1],
                                       char *why, size_t whylen)
{
	struct parser p = { .cb = take_one, .arg = out, .why = why, .whylen = whylen };
	enum mlt_addr_result r;
	size_t len = strlen(arg);

	out[0] = '\0';
	while (len > 0 && is_ws((unsigned char)arg[len - 1]))
		len--;
	while (len > 0 && is_ws((unsigned char)*arg)) {
		arg++;
		len--;
	}
	if (len == 0 || (len == 2 && arg[0] == '<' && arg[1] == '>'))
		return MLT_ADDR_NULL;
	if (len > MLT_ADDR_MAX + 2 + 1024) /* room for a source route, no more */
		return fail(why, whylen, "address too long");
	if ((r = tokenize(arg, len, &p.t, &p.n, why, whylen)) != MLT_ADDR_OK)
		return r;
	if (at_special(&p, '<')) {
		r = angle_addr(&p);
	} else if ((r = addr_spec(&p, out)) == MLT_ADDR_OK) {
		char copy[MLT_ADDR_MAX + 1];

		memcpy(copy, out, sizeof copy);
		r = emit(&p, copy);
	}
	if (r == MLT_ADDR_OK && p.i != p.n)
		r = fail(why, whylen, "unexpected text after address");
	free(p.t);
	return r;
}
