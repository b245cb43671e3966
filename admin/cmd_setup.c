/*
 * cmd_setup.c — `relay-admin setup`: configures a Postfix instance as the authenticated
 * relay (the how-to's port-443 service, done safely), idempotently, through postconf.
 *
 * What it does, in order: validates every option (contradictory or insecure input is
 * refused before anything is touched); reads the instance's current settings; checks the
 * certificate (or plans a self-signed one), the relaydb plugin and the users database;
 * computes the wanted state — main.cf parameters, the master.cf submission service(s),
 * smtpd.conf, the upstream password map — and compares it with what is there. With
 * --dry-run it prints the differences and stops. Otherwise it backs up the files it is
 * about to change into <config>/relay-admin-backup/<UTC time>/, applies the changes
 * (`postconf -e`, `postconf -M`, files written beside their target and renamed), runs
 * `postfix check` and reloads a running instance. A second run changes nothing.
 *
 * Scope on the instance: main.cf gets only what every part of Postfix should share (the
 * SASL config path and plugin path, the milter macros); everything about the submission
 * service — TLS mandatory, AUTH, restrictions, the certificate, the AUTH rate limit, the
 * milter, bare-newline and VRFY hardening — goes on the service with -o. The upstream —
 * smarthost, verified TLS, login — is a master.cf transport of its own (relay-upstream)
 * that only the relay services name, in content_filter: mail from sendmail or port 25
 * keeps the routing it had and never rides the upstream login past the milter. A main.cf
 * written by an earlier setup (relayhost, smtp_tls_*, smtp_sasl_* global) is moved over:
 * the values setup wrote there are removed, an admin's own are left.
 *
 * relay-milter is registered (auto-detected or --milter) whether or not it answers yet — with
 * milter_default_action = tempfail that fails closed — but a milter that does not answer
 * is reported loudly, with how to start it.
 *
 * --proxy-protocol puts the services behind a TCP load balancer (smtpd reads the client's
 * address from the PROXY header); since Postfix believes any such header, setup says that
 * only the proxy may reach the ports. A run without it takes the setting off again.
 *
 * Secrets: the upstream password comes from RELAY_UPSTREAM_PASSWORD or stdin, never argv;
 * it lives in one buffer that is wiped, and in the 0600 map file postmap reads.
 *
 * Modules (setup.h): setup_opts.c (command line, validation, the password), setup_plan.c
 * and setup_services.c (the plan and its one renderer), setup_apply.c (backup, apply,
 * check, reload); this file runs them: plan, then act, then the result.
 *
 * Errors: exit status 0 done (or nothing to do); 2 (ADM_EXIT_USAGE) for refused input
 * (contradictory, insecure, malformed); 1 (ADM_EXIT_FAIL) when the machine is not ready
 * (plugin missing, bad certificate) or applying failed — always with the reason on stderr,
 * and "nothing was changed" whenever that is true.
 */
#include "setup.h"
#include "milter_probe.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* relay-milter registered but not answering: every client gets 454 at STARTTLS/AUTH and
 * mail clients report a wrong password. It stays registered (with tempfail nothing passes
 * unchecked, and the relay works the moment the milter starts); this says so loudly, with
 * the command that starts it, and `relay-admin check` fails until it answers. */
static void warn_milter_down(const struct adm_ctx *ctx, const char *spec)
{
	char why[600];

	if (adm_milter_answers(spec, why, sizeof why))
		return;
	adm_warn(ctx, "relay-milter does not answer on %s (%s).\n"
	         "  UNTIL IT DOES, THE RELAY REFUSES EVERY CLIENT: 454 4.3.0 at STARTTLS/AUTH,\n"
	         "  which mail programs show as a wrong password. Start it now:\n"
	         "      systemctl enable --now relay-milter\n"
	         "  (or run relay-milter with the socket above), then `relay-admin check`.",
	         spec, why);
}

/* Plan, then act (or not: a dry run, nothing to change), then render the result. */
int adm_cmd_setup(struct adm_ctx *ctx, int argc, char **argv)
{
	struct setup_opts o;
	struct plan p = { .ctx = ctx };
	char password[PASSWORD_MAX];
	int rc;

	if ((rc = setup_parse_options(ctx, argc, argv, &o)) != ADM_EXIT_OK)
		return rc;
	if (geteuid() != 0 && !o.dry_run) {
		adm_err(ctx, "setup must run as root (it writes Postfix's configuration)");
		return ADM_EXIT_FAIL;
	}
	if (setup_validate(&o, &p) != 0)
		return ADM_EXIT_USAGE;
	if (!o.milter && !o.no_milter && setup_milter_installed()) {
		o.milter = ADM_DEFAULT_MILTER;
		fprintf(ctx->out, "relay-milter is installed: registering it (%s); --no-milter to "
		        "skip\n", o.milter);
	}
	if (o.milter)
		warn_milter_down(ctx, o.milter);
	setup_warn_proxy(&o);
	password[0] = '\0';
	if (o.upstream_user && (rc = setup_read_password(ctx, password, sizeof password)) != 0)
		return rc;
	rc = setup_build_plan(&o, &p, password) < 0 ? ADM_EXIT_FAIL : ADM_EXIT_OK;
	explicit_bzero(password, sizeof password);
	if (rc == ADM_EXIT_OK) {
		if (setup_plan_empty(&p)) {
			fprintf(ctx->out, "nothing to change: %s is already set up\n", o.config_dir);
		} else if (o.dry_run) {
			setup_plan_print(ctx->out, &p, "would");
			fprintf(ctx->out, "dry run: nothing was changed\n");
		} else {
			rc = setup_apply(&o, &p);
		}
	}
	setup_plan_free(&p);
	return rc;
}
