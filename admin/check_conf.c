/*
 * check_conf.c — `relay-admin check`: reading the Postfix configuration. main.cf
 * through one `postconf -c DIR -x` (defaults included, $names expanded), master.cf
 * through `postconf -M -x`: the relay services (inet smtpd with syslog_name
 * postfix/relay* or SASL on) and the unix smtp transports (upstream candidates).
 * See check.h.
 */
#include "check.h"
#include "cert.h"
#include "policy.h"
#include "postconf.h"

#include "relay-config.h"

#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* Loads every main.cf parameter once (`postconf -c DIR -x`: defaults included, $names and
 * compatibility-level expressions expanded as Postfix uses them): one program run instead
 * of one per parameter. */
bool chk_load_main(struct check *c, char *err, size_t errlen)
{
	const char *argv[] = { "postconf", "-c", c->dir, "-x", NULL };
	int status = 0;

	if (adm_run(argv, NULL, &c->main_cf, &status, err, errlen) < 0)
		return false;
	if (status != 0) {
		snprintf(err, errlen, "postconf -c %s -x exited with %d", c->dir, status);
		free(c->main_cf);
		c->main_cf = NULL;
		return false;
	}
	return true;
}

/* main.cf's effective value; NULL with *err set when main.cf could not be read or the
 * parameter is unknown. Caller frees. */
char *chk_pf_main(const struct check *c, const char *name, char *err, size_t errlen)
{
	size_t nl = strlen(name);

	if (!c->main_cf) {
		snprintf(err, errlen, "the Postfix configuration could not be read");
		return NULL;
	}
	for (const char *l = c->main_cf; *l;) {
		const char *end = strchr(l, '\n');
		size_t len = end ? (size_t)(end - l) : strlen(l);

		/* "name = value", or "name =" for an empty value */
		if (len >= nl + 2 && strncmp(l, name, nl) == 0 && l[nl] == ' ' && l[nl + 1] == '=') {
			const char *v = l + nl + 2;

			if (*v == ' ')
				v++;
			return strndup(v, len - (size_t)(v - l));
		}
		l = end ? end + 1 : l + len;
	}
	snprintf(err, errlen, "no parameter %s", name);
	return NULL;
}

/* A service's effective value: its -o override, else main.cf's. Caller frees. */
char *chk_pf_service(const struct check *c, const struct service *s, const char *name)
{
	size_t nl = strlen(name);
	char err[256];

	for (size_t i = s->nwords; i-- > 0;)   /* the last -o wins, as in Postfix */
		if (strncmp(s->words[i], name, nl) == 0 && s->words[i][nl] == '=')
			return strdup(s->words[i] + nl + 1);
	char *v = chk_pf_main(c, name, err, sizeof(err));

	return v ? v : strdup("");
}

/* "a, b  c" -> "a,b,c": restriction lists compared by their words. */
void chk_normalize_list(const char *in, char *out, size_t outlen)
{
	size_t o = 0;
	bool sep = false;

	for (const char *p = in; *p && o + 2 < outlen; p++) {
		if (*p == ',' || *p == ' ' || *p == '\t' || *p == '\n') {
			sep = o > 0;
			continue;
		}
		if (sep) {
			out[o++] = ',';
			sep = false;
		}
		out[o++] = *p;
	}
	out[o] = '\0';
}

/* Strips "{ name = value }" braces (Postfix 3.0+ syntax) to "name=value". */
static void unbrace(char *s)
{
	char *r = s, *w = s;
	size_t n;

	while (*r == '{' || *r == ' ')
		r++;
	for (; *r; r++)
		if (!(*r == ' ' && (r[1] == '=' || (r > s && r[-1] == '='))))
			*w++ = *r;
	*w = '\0';
	n = strlen(s);
	while (n > 0 && (s[n - 1] == '}' || s[n - 1] == ' '))
		s[--n] = '\0';
}

void chk_service_free(struct service *s)
{
	for (size_t i = 0; i < s->nwords; i++)
		free(s->words[i]);
	s->nwords = 0;
}

/* Parses one `postconf -M` line; keeps it if it is an inet smtpd service that is ours
 * (syslog_name postfix/relay*) or has SASL switched on, or a unix smtp client (a transport
 * the relay services may hand their mail to). */
static void consider_service(struct check *c, char *line)
{
	char *save = NULL, *w[MAX_WORDS + 8];
	size_t n = 0;

	for (char *t = strtok_r(line, " \t", &save); t && n < sizeof(w) / sizeof(w[0]);
	     t = strtok_r(NULL, " \t", &save))
		w[n++] = t;
	if (n < 8)
		return;
	bool transport = strcmp(w[1], "unix") == 0 && strcmp(w[7], "smtp") == 0;

	if (transport ? c->ntransports >= MAX_SERVICES :
	    (strcmp(w[1], "inet") != 0 || strcmp(w[7], "smtpd") != 0 || c->nsvc >= MAX_SERVICES))
		return;
	struct service *s = transport ? &c->transports[c->ntransports] : &c->svc[c->nsvc];
	bool ours = false, sasl = false;

	snprintf(s->name, sizeof(s->name), "%s/%s", w[0], w[1]);
	for (size_t i = 8; i < n && s->nwords < MAX_WORDS; i++) {
		char buf[1024];

		if (strcmp(w[i], "-o") == 0 && i + 1 < n) {
			i++;
			if (w[i][0] == '{') {   /* -o { name = value with spaces } */
				size_t o = 0;

				buf[0] = '\0';
				for (; i < n; i++) {
					o += (size_t)snprintf(buf + o, o < sizeof(buf) ? sizeof(buf) - o : 0,
					                      "%s%s", o ? " " : "", w[i]);
					if (o >= sizeof(buf) || strchr(w[i], '}'))
						break;
				}
			} else {
				snprintf(buf, sizeof(buf), "%s", w[i]);
			}
		} else if (strncmp(w[i], "-o", 2) == 0 && w[i][2]) {
			snprintf(buf, sizeof(buf), "%s", w[i] + 2);
		} else {
			continue;
		}
		unbrace(buf);
		if (strncmp(buf, "syslog_name=postfix/relay", 25) == 0)
			ours = true;
		if (strcmp(buf, "smtpd_sasl_auth_enable=yes") == 0)
			sasl = true;
		s->words[s->nwords] = strdup(buf);
		if (s->words[s->nwords])
			s->nwords++;
	}
	if (transport)
		c->ntransports++;
	else if (ours || sasl)
		c->nsvc++;
	else
		chk_service_free(s);
}

bool chk_load_services(struct check *c, char *err, size_t errlen)
{
	const char *argv[] = { "postconf", "-c", c->dir, "-M", "-x", NULL };
	char *out = NULL, *save = NULL;
	int status = 0;

	if (adm_run(argv, NULL, &out, &status, err, errlen) < 0)
		return false;
	if (status != 0) {
		snprintf(err, errlen, "postconf -M exited with %d", status);
		free(out);
		return false;
	}
	for (char *l = strtok_r(out, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
		consider_service(c, l);
	free(out);
	return true;
}
