/*
 * check_milter.c — `relay-admin check`: a registered milter. milter_default_action,
 * the macros relay-milter needs, and the socket answering a connect.
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

static bool milter_reachable(const char *spec, char *why, size_t whylen)
{
	int fd = -1;
	bool ok = false;

	if (strncmp(spec, "unix:", 5) == 0 || strncmp(spec, "local:", 6) == 0) {
		struct sockaddr_un sun = { .sun_family = AF_UNIX };
		const char *p = strchr(spec, ':') + 1;

		if (strlen(p) >= sizeof(sun.sun_path)) {
			snprintf(why, whylen, "socket path too long");
			return false;
		}
		memcpy(sun.sun_path, p, strlen(p) + 1);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		ok = fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0;
		if (!ok)
			snprintf(why, whylen, "%.200s: %s", p, strerror(errno));
	} else if (strncmp(spec, "inet:", 5) == 0) {
		char host[256], *colon;
		struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;

		snprintf(host, sizeof(host), "%.255s", spec + 5);
		colon = strrchr(host, ':');
		if (!colon) {
			snprintf(why, whylen, "no port in %.200s", spec);
			return false;
		}
		*colon = '\0';
		/* Postfix writes inet:host:port; libmilter's own form is inet:port@host. */
		int gr = getaddrinfo(host[0] == '[' ? host + 1 : host, colon + 1, &hints, &res);

		if (gr != 0) {
			snprintf(why, whylen, "%.200s: %s", spec, gai_strerror(gr));
			return false;
		}
		fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd >= 0 && (connect(fd, res->ai_addr, res->ai_addrlen) == 0 || errno == EINPROGRESS)) {
			struct pollfd pfd = { .fd = fd, .events = POLLOUT };
			int soerr = 0;
			socklen_t sl = sizeof(soerr);

			if (poll(&pfd, 1, 3000) == 1 &&
			    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0)
				ok = true;
			else
				snprintf(why, whylen, "%.200s: %s", spec, soerr ? strerror(soerr) : "no answer");
		} else {
			snprintf(why, whylen, "%.200s: %s", spec, strerror(errno));
		}
		freeaddrinfo(res);
	} else {
		snprintf(why, whylen, "unknown socket type in %.200s", spec);
	}
	if (fd >= 0)
		close(fd);
	return ok;
}

/* The macros relay-milter needs at MAIL (DESIGN: TLS and AUTH are re-checked there). */
static bool macros_ok(const struct check *c, char *missing, size_t len)
{
	static const char *const need[] = { "{auth_authen}", "{tls_version}" };
	char err[256];
	char *m = chk_pf_main(c, "milter_mail_macros", err, sizeof(err));
	bool ok = true;

	missing[0] = '\0';
	for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++)
		if (!m || !strstr(m, need[i])) {
			size_t o = strlen(missing);

			snprintf(missing + o, len - o, "%s%s", o ? " " : "", need[i]);
			ok = false;
		}
	free(m);
	return ok;
}

bool chk_milter(struct check *c, const struct service *s)
{
	char cid[320], ctitle[400], why[512];
	char *spec = chk_pf_service(c, s, "smtpd_milters");
	char *action = chk_pf_service(c, s, "milter_default_action");
	bool have = spec && spec[0];

	snprintf(cid, sizeof(cid), "milter@%s", s->name);
	snprintf(ctitle, sizeof(ctitle), "relay-milter (%s)", s->name);
	struct adm_check *ck = adm_checklist_add(c->cl, cid, ctitle);

	if (!have) {
		adm_check_set(ck, ADM_CHECK_SKIP, "no milter registered on this service");
		goto out;
	}
	char first[512];

	chk_normalize_list(spec, first, sizeof(first));
	char *comma = strchr(first, ',');

	if (comma)
		*comma = '\0';
	adm_check_line(ck, "smtpd_milters = %s", spec);
	adm_check_line(ck, "milter_default_action = %s", action ? action : "");
	if (!action || strcmp(action, "tempfail") != 0) {
		adm_check_set(ck, ADM_CHECK_FAIL, "milter_default_action = %s: with the milter down, "
		              "mail would %s", action && action[0] ? action : "(empty)",
		              action && strcmp(action, "accept") == 0 ? "pass unchecked" :
		              "not wait for it");
		adm_check_fix(ck, "postconf -c %s -P '%s/milter_default_action=tempfail'", c->dir,
		              s->name);
	} else if (!macros_ok(c, why, sizeof(why))) {
		adm_check_set(ck, ADM_CHECK_FAIL, "milter_mail_macros lacks %s: relay-milter cannot "
		              "see the login or the TLS version at MAIL and refuses the mail", why);
		adm_check_fix(ck, "rerun relay-admin setup --milter ... (it sets milter_mail_macros)");
	} else if (!milter_reachable(first, why, sizeof(why))) {
		adm_check_set(ck, ADM_CHECK_FAIL, "milter socket not reachable: %s (mail is "
		              "tempfailed until it is)", why);
		adm_check_fix(ck, "start relay-milter (systemctl start relay-milter) and check its "
		              "socket setting");
	} else {
		adm_check_set(ck, ADM_CHECK_OK, "%s reachable; milter_default_action = tempfail", first);
	}
out:
	free(spec);
	free(action);
	return have;
}
