/*
 * check_cert.c — `relay-admin check`: a service's certificate and key (readable by
 * Postfix, matching, not expired; a warning under 30 days), each file judged once.
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

void chk_certificate(struct check *c, const struct service *s)
{
	char cid[320], ctitle[PATH_MAX + 64], subject[512], issuer[512], err[512];
	char *file = chk_pf_service(c, s, "smtpd_tls_cert_file");
	char *key = chk_pf_service(c, s, "smtpd_tls_key_file");
	time_t not_after = 0;

	if (!file || !file[0]) {
		snprintf(cid, sizeof(cid), "certificate@%s", s->name);
		snprintf(ctitle, sizeof(ctitle), "TLS certificate (%s)", s->name);
		adm_check_set(adm_checklist_add(c->cl, cid, ctitle), ADM_CHECK_FAIL,
		              "no smtpd_tls_cert_file: STARTTLS cannot work");
		goto out;
	}
	for (size_t i = 0; i < c->ncerts; i++)
		if (strcmp(c->certs[i], file) == 0)
			goto out;   /* one verdict per certificate file */
	if (c->ncerts < MAX_SERVICES)
		snprintf(c->certs[c->ncerts++], PATH_MAX, "%s", file);
	snprintf(cid, sizeof(cid), "certificate:%s", file);
	snprintf(ctitle, sizeof(ctitle), "TLS certificate %s", file);
	struct adm_check *ck = adm_checklist_add(c->cl, cid, ctitle);

	if (adm_cert_info(file, subject, sizeof(subject), issuer, sizeof(issuer), &not_after,
	                  err, sizeof(err)) < 0) {
		adm_check_set(ck, ADM_CHECK_FAIL, "%s", err);
		adm_check_fix(ck, "install a readable PEM certificate (relay-admin setup "
		              "--cert FILE --key FILE)");
		goto out;
	}
	double days = difftime(not_after, time(NULL)) / 86400.0;
	char when[ADM_TIME_LEN];

	adm_format_time((int64_t)not_after, when);
	adm_check_line(ck, "subject: %s", subject);
	adm_check_line(ck, "issuer:  %s", issuer);
	adm_check_line(ck, "expires: %s", when);
	if (days < 0) {
		adm_check_set(ck, ADM_CHECK_FAIL, "expired on %s: clients refuse the relay", when);
		adm_check_fix(ck, "renew it and rerun relay-admin setup --cert/--key (or reload "
		              "Postfix after replacing the file)");
	} else if (days < ADM_CERT_WARN_DAYS) {
		adm_check_set(ck, ADM_CHECK_WARN, "expires in %.0f days (%s)", days, when);
		adm_check_fix(ck, "renew the certificate before %s", when);
	} else {
		adm_check_set(ck, ADM_CHECK_OK, "valid until %s (%.0f days)", when, days);
	}
	if (key && key[0] && adm_check_status(ck) != ADM_CHECK_FAIL) {
		char warn[256];

		if (c->have_postfix &&
		    adm_cert_check(file, key, NULL, c->postfix_gid, warn, sizeof(warn), err,
		                   sizeof(err)) < 0) {
			adm_check_set(ck, ADM_CHECK_FAIL, "%s", err);
			adm_check_fix(ck, "see the message; relay-admin setup checks the same");
		}
	}
out:
	free(file);
	free(key);
}
