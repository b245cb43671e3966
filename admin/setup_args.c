/*
 * setup_args.c — pure option checks for `relay-admin setup`; see setup_args.h.
 */
#include "setup_args.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Characters that can go into a master.cf -o value or a main.cf value unchanged: no
 * whitespace, no commas or '$' (Postfix would split or expand them), no braces or '='. */
bool adm_setup_plain_value(const char *s)
{
	if (s == NULL || *s == '\0')
		return false;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p <= 0x20 || *p >= 0x7f || strchr(",${}=\"'\\#", *p))
			return false;
	return true;
}

/* A postgresql:// URI's userinfo ("user:password@") holds a password when a ':' comes
 * before the '@' that ends the authority's userinfo. */
static bool uri_has_password(const char *rest)
{
	size_t auth = strcspn(rest, "/?#");
	const char *at = memchr(rest, '@', auth);

	return at && memchr(rest, ':', (size_t)(at - rest)) != NULL;
}

bool adm_setup_db_name(const char *s, bool *pg, char *why, size_t whylen)
{
	static const char *const schemes[] = { "postgresql://", "postgres://" };

	*pg = false;
	why[0] = '\0';
	if (s == NULL || *s == '\0') {
		snprintf(why, whylen, "--db is empty");
		return false;
	}
	for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
		size_t n = strlen(schemes[i]);

		if (strncmp(s, schemes[i], n) != 0)
			continue;
		*pg = true;
		for (const unsigned char *p = (const unsigned char *)s; *p; p++)
			if (*p <= 0x20 || *p >= 0x7f) {
				snprintf(why, whylen, "--db: a PostgreSQL URI without spaces or control "
				         "characters");
				return false;
			}
		if (uri_has_password(s + n)) {
			snprintf(why, whylen, "--db: the URI holds a password, which would be in argv "
			         "and in smtpd.conf; give it in a pg:/path file (0600, owned by the "
			         "postfix user) or in ~postfix/.pgpass");
			return false;
		}
		return true;
	}
	if (strncmp(s, "pg:", 3) == 0) {
		*pg = true;
		if (!adm_setup_plain_value(s + 3) || s[3] != '/') {
			snprintf(why, whylen, "--db pg:FILE needs an absolute path without spaces: %s", s);
			return false;
		}
		return true;
	}
	if (!adm_setup_plain_value(s) || s[0] != '/') {
		snprintf(why, whylen, "--db must be an absolute path without spaces (or a "
		         "postgresql:// URI, or pg:/path): %s", s);
		return false;
	}
	return true;
}

static bool parse_port(const char *s, long *port)
{
	char *end;
	long v;

	if (*s == '\0' || strspn(s, "0123456789") != strlen(s))
		return false;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || v < 1 || v > 65535)
		return false;
	*port = v;
	return true;
}

static bool host_char(char c)
{
	return c == '.' || c == '-' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	       (c >= 'A' && c <= 'Z');
}

/* "[ADDR:]PORT" for a listening service. */
bool adm_setup_listen(const char *spec, long *port, char *why, size_t whylen)
{
	const char *colon = strrchr(spec, ':');
	const char *p = colon ? colon + 1 : spec;
	bool ok = adm_setup_plain_value(spec) && parse_port(p, port);

	if (ok && colon) {
		/* an address: a host name, IPv4, or a bracketed IPv6 literal */
		ok = colon > spec;
		for (const char *c = spec; ok && c < colon; c++)
			ok = host_char(*c) || *c == ':' || *c == '[' || *c == ']';
	}
	if (!ok) {
		snprintf(why, whylen, "'%s' is not [ADDRESS:]PORT", spec);
		return false;
	}
	if (*port == 25) {
		snprintf(why, whylen, "port 25 is the machine's own mail service, which setup "
		         "leaves as it is; choose another port (443, 465, 587 ...)");
		return false;
	}
	return true;
}

bool adm_setup_size(const char *s, long *bytes, char *why, size_t whylen)
{
	size_t digits = strspn(s, "0123456789");
	long mult = 1, v;

	if (digits > 0 && digits <= 10 && s[digits] != '\0' && s[digits + 1] == '\0') {
		switch (s[digits]) {
		case 'k': case 'K': mult = 1024; break;
		case 'm': case 'M': mult = 1024L * 1024; break;
		case 'g': case 'G': mult = 1024L * 1024 * 1024; break;
		default: mult = 0; break;
		}
	} else if (digits == 0 || digits > 10 || s[digits] != '\0') {
		mult = 0;
	}
	v = mult ? strtol(s, NULL, 10) : 0;
	if (mult == 0 || v <= 0 || v > (1L << 30) / mult) {
		snprintf(why, whylen, "--message-size '%s' is not a size between 1K and 1G "
		         "(bytes, or a number with K, M or G)", s);
		return false;
	}
	*bytes = v * mult;
	if (*bytes < 1024) {
		snprintf(why, whylen, "--message-size '%s' is below 1K: no real message fits", s);
		return false;
	}
	return true;
}

/* "HOST", "HOST:PORT", "[HOST]:PORT" -> nexthop "[HOST]:PORT" (brackets: no MX lookup). */
bool adm_setup_upstream(const char *s, char *nexthop, size_t len, long *port,
                           char *why, size_t whylen)
{
	char host[256];
	const char *p;
	size_t hl;

	*port = 587;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (close == NULL)
			goto bad;
		hl = (size_t)(close - s - 1);
		if (hl == 0 || hl >= sizeof host)
			goto bad;
		memcpy(host, s + 1, hl);
		host[hl] = '\0';
		p = close + 1;
		if (*p == ':') {
			if (!parse_port(p + 1, port))
				goto bad;
		} else if (*p != '\0') {
			goto bad;
		}
	} else {
		const char *colon = strchr(s, ':');

		hl = colon ? (size_t)(colon - s) : strlen(s);
		if (hl == 0 || hl >= sizeof host)
			goto bad;
		memcpy(host, s, hl);
		host[hl] = '\0';
		if (colon && !parse_port(colon + 1, port))
			goto bad;
	}
	for (const char *c = host; *c; c++)
		if (!host_char(*c))
			goto bad;
	snprintf(nexthop, len, "[%s]:%ld", host, *port);
	return true;
bad:
	snprintf(why, whylen, "--upstream '%s' is not HOST[:PORT] (a host name or IPv4 address)",
	         s);
	return false;
}


/* ---- the old, global upstream layout ------------------------------------------------- */

const char *const adm_setup_legacy_names[] = {
	"relayhost", "smtp_tls_wrappermode", "smtp_tls_security_level", "smtp_tls_CAfile",
	"smtp_tls_protocols", "smtp_tls_mandatory_protocols", "smtp_sasl_auth_enable",
	"smtp_sasl_password_maps", "smtp_sasl_security_options",
	"smtp_sasl_tls_security_options", NULL,
};

bool adm_setup_legacy_layout(const char *relayhost, const char *maps, const char *map,
                             const char *nexthop)
{
	if (maps && map && maps[0] && strcmp(maps, map) == 0)
		return true;
	return relayhost && nexthop && relayhost[0] && strcmp(relayhost, nexthop) == 0;
}

static bool is(const char *a, const char *b)
{
	return strcmp(a, b) == 0;
}

enum adm_setup_legacy adm_setup_legacy(const char *name, const char *value, const char *map)
{
	if (name == NULL || value == NULL || value[0] == '\0')
		return ADM_LEGACY_KEEP;
	if (is(name, "relayhost"))
		/* setup always wrote "[HOST]:PORT" */
		return value[0] == '[' && strstr(value, "]:") ? ADM_LEGACY_REMOVE : ADM_LEGACY_KEEP;
	if (is(name, "smtp_tls_wrappermode"))
		return is(value, "yes") || is(value, "no") ? ADM_LEGACY_REMOVE : ADM_LEGACY_KEEP;
	if (is(name, "smtp_tls_security_level"))
		/* not removed: Debian's main.cf ships "may", and no TLS at all would be worse for
		 * the machine's own mail than what it had before setup */
		return is(value, "secure") || is(value, "encrypt") ? ADM_LEGACY_MAY : ADM_LEGACY_KEEP;
	if (is(name, "smtp_tls_CAfile"))
		return ADM_LEGACY_REMOVE;   /* setup overwrote whatever was there */
	if (is(name, "smtp_tls_protocols") || is(name, "smtp_tls_mandatory_protocols"))
		return is(value, ">=TLSv1.2") ? ADM_LEGACY_REMOVE : ADM_LEGACY_KEEP;
	if (is(name, "smtp_sasl_auth_enable"))
		return is(value, "yes") ? ADM_LEGACY_REMOVE : ADM_LEGACY_KEEP;
	if (is(name, "smtp_sasl_password_maps"))
		return map && is(value, map) ? ADM_LEGACY_REMOVE : ADM_LEGACY_KEEP;
	if (is(name, "smtp_sasl_security_options") || is(name, "smtp_sasl_tls_security_options"))
		return is(value, "noanonymous") ? ADM_LEGACY_REMOVE : ADM_LEGACY_KEEP;
	return ADM_LEGACY_KEEP;
}
