/*
 * check_cert.c — `relay-admin check`: a service's certificate and key (readable by
 * Postfix, matching, not expired), each file judged once. See check.h.
 *
 * Warnings, as a client will see the certificate: it expires within CHECK_CERT_WARN_DAYS
 * days; it does not name the host clients connect to (`check --name`, else the
 * service's myhostname, which is what setup's --hostname sets); it is self-signed (said
 * in the summary: fine when every client was given the file, a surprise otherwise).
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

/* certbot renews 30 days before expiry (and retries twice a day): under 21 days left, a
 * renewal has been failing for over a week, which is worth a warning; above it, a warning
 * would fire on every healthy Let's Encrypt certificate for a third of its life. */
#define CHECK_CERT_WARN_DAYS 21

/* The name clients use: --name, else the service's myhostname. Caller frees. */
static char *client_name(const struct check *c, const struct service *s)
{
	return c->name ? strdup(c->name) : chk_pf_service(c, s, "myhostname");
}

/* Self-signed, and whether the certificate names the host: a warning when it does not
 * (clients that verify refuse the relay, and the others learn nothing from it). */
static void judge_identity(const struct check *c, const struct service *s,
                           struct adm_check *ck, const char *file, bool *self_signed)
{
	char names[512], err[512];
	bool names_host = false;
	char *name = client_name(c, s);

	*self_signed = false;
	if (!name || !name[0]) {
		free(name);
		return;
	}
	if (adm_cert_identity(file, name, self_signed, &names_host, names, sizeof(names), err,
	                      sizeof(err)) < 0) {
		adm_check_set(ck, ADM_CHECK_FAIL, "%s", err);
	} else {
		adm_check_line(ck, "names:   %s", names[0] ? names : "(none)");
		if (*self_signed)
			adm_check_line(ck, "self-signed: clients must be given this file to trust "
			               "(or be told not to verify)");
		if (!names_host) {
			adm_check_set(ck, ADM_CHECK_WARN, "%sdoes not name %s, the host clients use "
			              "(it names %s): clients that verify refuse it",
			              *self_signed ? "self-signed, " : "", name,
			              names[0] ? names : "nothing");
			adm_check_fix(ck, "get a certificate for %s (relay-admin setup --cert/--key), "
			              "or tell check the name clients use: check --name NAME", name);
		}
	}
	free(name);
}

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
		goto out;
	}
	bool self_signed;

	/* the name first: an expiry warning below is the more urgent one to show */
	judge_identity(c, s, ck, file, &self_signed);
	if (adm_check_status(ck) == ADM_CHECK_FAIL)
		goto out;
	if (days < CHECK_CERT_WARN_DAYS) {
		adm_check_set(ck, ADM_CHECK_WARN, "%sexpires in %.0f days (%s)",
		              self_signed ? "self-signed, " : "", days, when);
		adm_check_fix(ck, "renew the certificate before %s (certbot renew; see "
		              "relay-admin-check(8), CERTIFICATES)", when);
	} else if (adm_check_status(ck) != ADM_CHECK_WARN) {
		adm_check_set(ck, ADM_CHECK_OK, "%svalid until %s (%.0f days)",
		              self_signed ? "self-signed, " : "", when, days);
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
