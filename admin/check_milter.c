/*
 * check_milter.c — `relay-admin check`: a registered milter. milter_default_action,
 * the macros relay-milter needs, and the socket answering a connect.
 * See check.h.
 */
#include "check.h"
#include "cert.h"
#include "policy.h"
#include "postconf.h"
#include "milter_probe.h"

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
	} else if (!adm_milter_answers(first, why, sizeof(why))) {
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
