/*
 * cmd_check.c — `relay-admin check`: static health of an installed relay, without sending a
 * byte of SMTP. Each finding is OK, WARN or FAIL with a fix hint; the exit status is the
 * number of failures (capped at 100).
 *
 * What it looks at, and what it expects — exactly what `relay-admin setup` leaves (read
 * with `postconf -c DIR -x` / `postconf -M -x`, values expanded as Postfix uses them,
 * never by parsing main.cf ourselves):
 *   users database   opens read-only with the current schema; root:postfix 0640, folder 0750;
 *                    no login with more rate limits in effect than relay-milter reads
 *   state database   a SQLite file the milter owns, in a folder of the same owner (WAL)
 *   SASL plugin      librelaydb.so in SASL_PATH (import_environment) or libsasl2's folder,
 *                    not writable by anyone but root
 *   smtpd.conf       <cyrus_sasl_config_path or DIR/sasl>/<smtpd_sasl_path>.conf:
 *                    auxprop + relaydb, relaydb_path = --db, no empty values, PLAIN/LOGIN
 *   each relay service (master.cf inet smtpd with syslog_name postfix/relay*, or SASL on):
 *                    smtpd_tls_security_level=encrypt, smtpd_tls_auth_only=yes,
 *                    smtpd_sasl_auth_enable=yes, smtpd_sasl_security_options=noanonymous,
 *                    client/relay/recipient restrictions
 *                    permit_sasl_authenticated,reject, TLS >= 1.2, an AUTH rate limit,
 *                    smtpd_forbid_bare_newline on and not excused for any client,
 *                    disable_vrfy_command=yes,
 *                    certificate readable and not expired (warn < 21 days), naming
 *                    the host clients use (--name, else myhostname), self-signed said
 *   proxy            the services with smtpd_upstream_proxy_protocol = haproxy (behind a
 *                    load balancer), named in one item with whether they listen on loopback
 *   milter           if registered: milter_default_action=tempfail, milter_mail_macros with
 *                    {auth_authen} and {tls_version}, socket reachable
 *   upstream         the relay services' content_filter names a master.cf smtp transport
 *                    (setup's relay-upstream) that carries smtp_tls_security_level=secure,
 *                    a readable CA file and a 0600 root password map; the upstream login
 *                    is not in main.cf, where sendmail and port-25 mail would use it too
 *                    (the layout of earlier setups: judged, and flagged)
 *   Postfix          `postfix check` clean; instance running
 *
 * Modules (check.h): check_conf.c reads Postfix, check_files.c, check_postfix.c,
 * check_cert.c and check_milter.c judge; this file runs them into one checklist, the
 * result, which adm_checklist_print() renders as text or JSON.
 *
 * Errors: a check that cannot read something fails with the reason; the command itself
 * only fails early on usage errors (ADM_EXIT_USAGE).
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

/* ---- the command ---------------------------------------------------------------------- */

/* The Postfix configuration itself: main.cf readable, mail_owner a user, relay services in
 * master.cf. Sets c->have_postfix and the postfix uid/gid; returns whether Postfix's
 * own checks can run (mail_owner known). */
static bool check_config(struct check *c)
{
	struct adm_check *pf = adm_checklist_add(c->cl, "postfix-config", "Postfix configuration");
	char err[700];
	char *owner = chk_load_main(c, err, sizeof(err)) ? chk_pf_main(c, "mail_owner", err,
	                                                                sizeof(err)) : NULL;
	struct passwd *pw = owner ? getpwnam(owner) : NULL;

	if (pw) {
		c->postfix_uid = pw->pw_uid;
		c->postfix_gid = pw->pw_gid;
		c->have_postfix = true;
	}
	if (!owner) {
		adm_check_set(pf, ADM_CHECK_FAIL, "cannot read %s: %s", c->dir, err);
		adm_check_fix(pf, "is Postfix installed, and is --postfix-config the folder with "
		              "main.cf?");
	} else if (!chk_load_services(c, err, sizeof(err))) {
		adm_check_set(pf, ADM_CHECK_FAIL, "cannot list master.cf services: %s", err);
	} else if (c->nsvc == 0) {
		adm_check_set(pf, ADM_CHECK_FAIL, "no relay submission service in %s/master.cf",
		              c->dir);
		adm_check_fix(pf, "relay-admin setup --postfix-config %s", c->dir);
	} else {
		adm_check_set(pf, ADM_CHECK_OK, "%zu relay service%s", c->nsvc,
		              c->nsvc == 1 ? "" : "s");
		for (size_t i = 0; i < c->nsvc; i++)
			adm_check_line(pf, "service %s", c->svc[i].name);
	}
	if (!pw && owner)
		adm_check_set(pf, ADM_CHECK_FAIL, "mail_owner %s is not a user here", owner);
	free(owner);
	return pw != NULL;
}

/* Every check, in the order the report lists them. */
static void run_checks(struct check *c)
{
	bool milter = false, postfix = check_config(c);

	chk_users_db(c);
	chk_limits(c);
	chk_plugin(c);
	chk_smtpd_conf(c);
	for (size_t i = 0; i < c->nsvc; i++)
		chk_service(c, &c->svc[i], &milter);
	chk_proxy(c);
	chk_state_db(c, milter);
	if (postfix) {
		chk_upstream(c);
		chk_postfix(c);
	}
}

/* Plan (the options), act (the checks into one checklist), render the checklist. */
int adm_cmd_check(struct adm_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "postfix-config", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "name", required_argument, NULL, 'n' },
		{ "verbose", no_argument, NULL, 'v' },
		{ NULL, 0, NULL, 0 },
	};
	struct check c = { .ctx = ctx, .dir = "/etc/postfix" };
	bool json = ctx->json, verbose = false;
	char title[PATH_MAX + 64], dir[PATH_MAX], shown[PATH_MAX];
	unsigned failed;
	int ch;

	while ((ch = getopt_long(argc, argv, "v", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c': c.dir = optarg; break;
		case 'j': json = true; break;
		case 'n':
			if (!optarg[0])
				return adm_usage(ctx, "--name needs a host name or address");
			c.name = optarg;
			break;
		case 'v': verbose = true; break;
		default:
			return adm_usage(ctx, "unknown option or missing value: %s", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return adm_usage(ctx, "unexpected argument: %s", argv[optind]);
	/* `postfix -c` wants an absolute path: a relative one would fail postfix-check and
	 * report a running instance as stopped */
	if (c.dir[0] != '/' && realpath(c.dir, dir))
		c.dir = dir;

	snprintf(title, sizeof(title), "relay-admin check: Postfix configuration %s", c.dir);
	c.cl = adm_checklist_new("check", title);
	if (!c.cl) {
		adm_err(ctx, "out of memory");
		return ADM_EXIT_IO;
	}
	/* a PostgreSQL URI may hold a password: shown without it */
	rdb_name_display(ctx->db_path, shown, sizeof shown);
	adm_checklist_info(c.cl, "users db", shown);
	rdb_name_display(ctx->state_db_path, shown, sizeof shown);
	adm_checklist_info(c.cl, "state db", shown);
	run_checks(&c);

	failed = adm_checklist_count(c.cl, ADM_CHECK_FAIL);
	if (!adm_checklist_print(c.cl, ctx->out, json, verbose) && failed == 0)
		failed = 1;
	adm_checklist_free(c.cl);
	for (size_t i = 0; i < c.nsvc; i++)
		chk_service_free(&c.svc[i]);
	for (size_t i = 0; i < c.ntransports; i++)
		chk_service_free(&c.transports[i]);
	free(c.main_cf);
	return failed > 100 ? 100 : (int)failed;
}
