/*
 * names.c — validation of login names and sender patterns.
 *
 * What it is: pure, table-free checks shared by relay-admin (refuse bad input before
 * anything is written) and the readers (a name a client typed that cannot be valid is
 * never looked up). Everything here is byte-oriented ASCII: names and patterns are
 * compared case-insensitively with SQLite's NOCASE, which folds ASCII only, so we accept
 * nothing else.
 *
 * Ownership: no allocation; `why` (optional) receives a short reason. Thread safe.
 */
#include <stdio.h>
#include <string.h>

#include "rdb.h"

static bool fail(char *why, size_t whylen, const char *msg)
{
	if (why != NULL && whylen > 0)
		snprintf(why, whylen, "%s", msg);
	return false;
}

static bool is_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool rdb_name_valid(const char *name, char *why, size_t whylen)
{
	size_t len, ats = 0;

	if (name == NULL || name[0] == '\0')
		return fail(why, whylen, "empty login name");
	len = strnlen(name, RDB_NAME_MAX + 1);
	if (len > RDB_NAME_MAX)
		return fail(why, whylen, "login name longer than 255 bytes");
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c < 0x21 || c > 0x7e)
			return fail(why, whylen, c == ' ' ? "login name contains a space" :
			            "login name contains a control or non-ASCII byte");
		if (strchr("\"'\\`<>(),;:[]", c) != NULL)
			return fail(why, whylen,
			            "login name contains a quote, backslash or one of <>(),;:[]");
		if (c == '@')
			ats++;
	}
	/* libsasl2 splits user@realm at the first '@'; more than one, or an empty user or
	 * realm, cannot round-trip. */
	if (ats > 1)
		return fail(why, whylen, "login name contains more than one '@'");
	if (name[0] == '@' || name[len - 1] == '@')
		return fail(why, whylen, "login name has an empty user or realm around '@'");
	return true;
}

/* A DNS domain: dot-separated labels of letters, digits and '-', no label empty, longer
 * than 63 or starting/ending with '-'; at most 253 bytes; no trailing dot. */
static bool domain_valid(const char *d, size_t len, char *why, size_t whylen)
{
	size_t label = 0;

	if (len == 0)
		return fail(why, whylen, "empty domain");
	if (len > 253)
		return fail(why, whylen, "domain longer than 253 bytes");
	for (size_t i = 0; i <= len; i++) {
		unsigned char c = i < len ? (unsigned char)d[i] : '.';

		if (c == '.') {
			if (label == 0)
				return fail(why, whylen, "domain has an empty label");
			if (label > 63)
				return fail(why, whylen, "domain label longer than 63 bytes");
			if (d[i - 1] == '-')
				return fail(why, whylen, "domain label ends with '-'");
			label = 0;
			continue;
		}
		if (!is_alnum(c) && c != '-')
			return fail(why, whylen, "domain contains a character other than letters, digits, '-' and '.'");
		if (label == 0 && c == '-')
			return fail(why, whylen, "domain label starts with '-'");
		label++;
	}
	return true;
}

/* An RFC 5322 dot-atom local part (atext and single inner dots). Quoted local parts are
 * refused: nobody needs them for a sender allow-list and they invite confusion. */
static bool local_valid(const char *l, size_t len, char *why, size_t whylen)
{
	if (len == 0)
		return fail(why, whylen, "empty local part");
	if (len > 64)
		return fail(why, whylen, "local part longer than 64 bytes");
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)l[i];

		if (c == '.') {
			if (i == 0 || i == len - 1 || l[i - 1] == '.')
				return fail(why, whylen, "local part has a leading, trailing or double dot");
			continue;
		}
		if (!is_alnum(c) && strchr("!#$%&'*+-/=?^_{|}~", c) == NULL)
			return fail(why, whylen, "local part contains a character not allowed in an address");
	}
	return true;
}

bool rdb_pattern_valid(const char *pattern, char *why, size_t whylen)
{
	const char *at;
	size_t len;

	if (pattern == NULL || pattern[0] == '\0')
		return fail(why, whylen, "empty sender pattern");
	len = strnlen(pattern, RDB_PATTERN_MAX + 1);
	if (len > RDB_PATTERN_MAX)
		return fail(why, whylen, "sender pattern longer than 255 bytes");
	if (strcmp(pattern, "<>") == 0)
		return true;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)pattern[i];

		if (c < 0x21 || c > 0x7e)
			return fail(why, whylen, c == ' ' ? "sender pattern contains a space" :
			            "sender pattern contains a control or non-ASCII byte");
	}
	at = strrchr(pattern, '@');
	if (at == NULL)
		return fail(why, whylen, "sender pattern must be local@domain, @domain or <>");
	if (memchr(pattern, '@', (size_t)(at - pattern)) != NULL)
		return fail(why, whylen, "sender pattern contains more than one '@'");
	if (at != pattern && !local_valid(pattern, (size_t)(at - pattern), why, whylen))
		return false;
	return domain_valid(at + 1, len - (size_t)(at - pattern) - 1, why, whylen);
}
