/*
 * cmd_selftest.c — `relay-admin selftest`: the how-to's "Local Relay Testing", automated and
 * run live against a relay (and optionally its upstream).
 *
 * Checks, in order (each prints the server's actual replies):
 *   plaintext session  connect · STARTTLS offered · AUTH not offered before TLS ·
 *                      MAIL refused with 530 before TLS
 *   TLS session 1      TLS handshake · certificate (subject, issuer, expiry, verified) ·
 *                      AUTH offered after TLS · RCPT refused without AUTH (else: open relay) ·
 *                      a random wrong password refused (535)
 *   TLS session 2      the right password accepted (235) · MAIL and RCPT accepted · RSET, or
 *                      with --send TO a real test message (DATA)
 *   upstream           connect · TLS · certificate verified (strict) · AUTH (235), no MAIL;
 *                      no AUTH (the password is not sent) unless the certificate verified
 * With --tls implicit the plaintext checks are skipped (the port has no plaintext phase).
 *
 * No AUTH — the right password, the deliberately wrong one, the upstream's — goes over a
 * session whose certificate did not verify, chain and name, against --ca (--upstream-ca) or
 * the system CAs: whoever answers on that address would receive the password (AUTH PLAIN
 * and LOGIN send it as it is). smtp_client enforces it for every AUTH; the relay's checks
 * then fail with the reason. Only --insecure lifts it, for the relay alone, and every
 * report made so says INSECURE.
 *
 * Secrets: the relay password comes from RELAY_PASSWORD or the first line of stdin, the
 * upstream password from RELAY_UPSTREAM_PASSWORD or the next stdin line; both live in buffers
 * wiped before exit and never reach argv, the report or the trace (smtp_client redacts AUTH).
 *
 * Exit status: the number of failed checks (capped at 100); usage errors exit ADM_EXIT_USAGE.
 *
 * Modules (selftest.h): selftest_session.c, selftest_relay.c; this file reads the options
 * and secrets, runs the checks into one checklist and renders it.
 */
#include "selftest.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

static bool take_secret(const struct adm_ctx *ctx, struct endpoint *e, const char *env,
                        const char *prompt, const char *what)
{
	const char *v = getenv(env);

	if (v) {
		size_t len = strlen(v);

		if (len == 0 || len >= sizeof(e->pass)) {
			adm_err(ctx, "the %s in %s is empty or too long", what, env);
			return false;
		}
		memcpy(e->pass, v, len + 1);
	} else if (adm_read_secret(ctx, prompt, false, e->pass, sizeof(e->pass)) != ADM_EXIT_OK) {
		adm_err(ctx, "no %s: set %s or give it on stdin", what, env);
		return false;
	}
	e->passlen = strlen(e->pass);
	e->have_pass = true;
	return true;
}

/* "host:port", "[v6]:port" or "[name]:port" (Postfix's relayhost spelling). */
static bool split_hostport(const char *s, struct endpoint *e)
{
	const char *colon = strrchr(s, ':');
	size_t hl;

	if (!colon || colon == s || colon[1] == '\0' || strlen(colon + 1) >= sizeof(e->port))
		return false;
	hl = (size_t)(colon - s);
	if (s[0] == '[') {
		if (hl < 3 || s[hl - 1] != ']')
			return false;
		s++;
		hl -= 2;
	} else if (memchr(s, ':', hl)) {
		return false;   /* a bare IPv6 address needs brackets */
	}
	if (hl >= sizeof(e->host))
		return false;
	memcpy(e->host, s, hl);
	e->host[hl] = '\0';
	snprintf(e->port, sizeof(e->port), "%s", colon + 1);
	for (const char *p = e->port; *p; p++)
		if (*p < '0' || *p > '9')
			return false;
	return atoi(e->port) > 0 && atoi(e->port) < 65536;
}

static bool parse_tls(const char *s, enum tls_mode *m)
{
	if (strcmp(s, "starttls") == 0)
		*m = TLS_STARTTLS;
	else if (strcmp(s, "implicit") == 0)
		*m = TLS_IMPLICIT;
	else
		return false;
	return true;
}


static void default_names(struct selftest *t)
{
	char h[256];

	if (gethostname(h, sizeof(h)) != 0 || h[0] == '\0' || strchr(h, '.') == NULL)
		snprintf(h, sizeof(h), "selftest.invalid");
	h[sizeof(h) - 1] = '\0';
	for (char *p = h; *p; p++)   /* EHLO wants a plain domain */
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '.'))
			*p = '-';
	snprintf(t->helo, sizeof(t->helo), "%s", h);
	if (t->from[0] == '\0') {
		if (strchr(t->relay.user, '@'))
			snprintf(t->from, sizeof(t->from), "%s", t->relay.user);
		else
			snprintf(t->from, sizeof(t->from), "%s@%s", t->relay.user, h);
	}
	t->rcpt = t->send_to ? t->send_to : DEFAULT_RCPT;
}

static bool address_ok(const char *a)
{
	const char *at = strchr(a, '@');

	if (!at || at == a || at[1] == '\0' || strlen(a) > 254)
		return false;
	for (const char *p = a; *p; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || strchr("<>()[]\\,;:\"", *p))
			return false;
	return true;
}

enum { OPT_CA = 256, OPT_TLS_NAME, OPT_SEND, OPT_FROM, OPT_UP, OPT_UP_TLS, OPT_UP_USER,
       OPT_UP_CA, OPT_TIMEOUT, OPT_JSON, OPT_INSECURE };

static const struct option longopts[] = {
	{ "host", required_argument, NULL, 'H' },
	{ "port", required_argument, NULL, 'p' },
	{ "tls", required_argument, NULL, 't' },
	{ "user", required_argument, NULL, 'u' },
	{ "ca", required_argument, NULL, OPT_CA },
	{ "tls-name", required_argument, NULL, OPT_TLS_NAME },
	{ "send", required_argument, NULL, OPT_SEND },
	{ "from", required_argument, NULL, OPT_FROM },
	{ "upstream", required_argument, NULL, OPT_UP },
	{ "upstream-tls", required_argument, NULL, OPT_UP_TLS },
	{ "upstream-user", required_argument, NULL, OPT_UP_USER },
	{ "upstream-ca", required_argument, NULL, OPT_UP_CA },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "insecure", no_argument, NULL, OPT_INSECURE },
	{ "verbose", no_argument, NULL, 'v' },
	{ NULL, 0, NULL, 0 },
};

/* Parses argv into t; returns -1 when fine, else the exit status to return. */
static int parse_args(const struct adm_ctx *ctx, struct selftest *t, int argc, char **argv)
{
	const char *host = NULL, *port = NULL, *up = NULL, *up_tls = NULL, *tls = NULL;
	int ch;

	while ((ch = getopt_long(argc, argv, "v", longopts, NULL)) != -1) {
		switch (ch) {
		case 'H': host = optarg; break;
		case 'p': port = optarg; break;
		case 't': tls = optarg; break;
		case 'u': t->relay.user = optarg; break;
		case OPT_CA: t->relay.ca = optarg; break;
		case OPT_TLS_NAME: t->relay.tls_name = optarg; break;
		case OPT_SEND: t->send_to = optarg; break;
		case OPT_FROM: snprintf(t->from, sizeof(t->from), "%s", optarg); break;
		case OPT_UP: up = optarg; break;
		case OPT_UP_TLS: up_tls = optarg; break;
		case OPT_UP_USER: t->up.user = optarg; break;
		case OPT_UP_CA: t->up.ca = optarg; break;
		case OPT_TIMEOUT: {
			char *end;
			long v = strtol(optarg, &end, 10);

			if (*end || v < 1 || v > 600)
				return adm_usage(ctx, "--timeout wants 1..600 seconds");
			t->timeout_ms = (int)v * 1000;
			break;
		}
		case OPT_JSON: t->json = true; break;
		case OPT_INSECURE: t->relay.insecure = true; break;
		case 'v': t->verbose = true; break;
		default:
			return adm_usage(ctx, "unknown option or missing value: %s", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return adm_usage(ctx, "unexpected argument: %s", argv[optind]);
	if (!host || !port || !t->relay.user)
		return adm_usage(ctx, "--host, --port and --user are required");
	if (strlen(host) == 0 || strlen(host) >= sizeof(t->relay.host) ||
	    strlen(port) >= sizeof(t->relay.port) || strspn(port, "0123456789") != strlen(port) ||
	    atoi(port) < 1 || atoi(port) > 65535)
		return adm_usage(ctx, "bad --host or --port");
	snprintf(t->relay.host, sizeof(t->relay.host), "%s", host);
	snprintf(t->relay.port, sizeof(t->relay.port), "%s", port);
	t->relay.tls = TLS_STARTTLS;
	if (tls && !parse_tls(tls, &t->relay.tls))
		return adm_usage(ctx, "--tls is starttls or implicit");
	if (!t->relay.tls_name)
		t->relay.tls_name = t->relay.host;
	if (strlen(t->relay.user) == 0 || strlen(t->relay.user) > 255 ||
	    strpbrk(t->relay.user, "\r\n"))
		return adm_usage(ctx, "bad --user");
	if (t->send_to && !address_ok(t->send_to))
		return adm_usage(ctx, "--send wants a plain address user@domain");
	if (t->from[0] && !address_ok(t->from))
		return adm_usage(ctx, "--from wants a plain address user@domain");
	if (!up && (up_tls || t->up.user || t->up.ca))
		return adm_usage(ctx, "--upstream-tls, --upstream-ca and --upstream-user need --upstream");
	if (up) {
		if (!split_hostport(up, &t->up))
			return adm_usage(ctx, "--upstream wants HOST:PORT (IPv6: [ADDR]:PORT)");
		t->have_up = true;
		/* Same defaults as setup: 465 is implicit TLS, anything else STARTTLS. */
		t->up.tls = strcmp(t->up.port, "465") == 0 ? TLS_IMPLICIT : TLS_STARTTLS;
		if (up_tls && !parse_tls(up_tls, &t->up.tls))
			return adm_usage(ctx, "--upstream-tls is starttls or implicit");
		t->up.tls_name = t->up.host;
		if (t->up.user && (strlen(t->up.user) == 0 || strlen(t->up.user) > 255 ||
		                   strpbrk(t->up.user, "\r\n")))
			return adm_usage(ctx, "bad --upstream-user");
	}
	return -1;
}

static int run(const struct adm_ctx *ctx, struct selftest *t)
{
	enum adm_smtp_mech mech = ADM_SMTP_PLAIN;
	bool have_mech = false;
	const char *why = "";
	char title[600];
	unsigned failed;

	snprintf(title, sizeof(title), "relay-admin selftest: %s port %s (%s), login %s",
	         t->relay.host, t->relay.port,
	         t->relay.tls == TLS_IMPLICIT ? "implicit TLS" : "STARTTLS", t->relay.user);
	t->cl = adm_checklist_new("selftest", title);
	if (!t->cl) {
		adm_err(ctx, "out of memory");
		return ADM_EXIT_IO;
	}
	adm_checklist_info(t->cl, "from", t->from);
	adm_checklist_info(t->cl, "rcpt", t->rcpt);
	adm_checklist_info(t->cl, "sending", t->send_to ? "yes" : "no (RSET)");
	if (t->relay.insecure)
		adm_checklist_info(t->cl, "INSECURE", "--insecure: the password is sent to the relay "
		                   "even if its certificate does not verify");
	if (t->have_up) {
		char up[300];

		snprintf(up, sizeof(up), "%s port %s (%s)", t->up.host, t->up.port,
		         t->up.tls == TLS_IMPLICIT ? "implicit TLS" : "STARTTLS");
		adm_checklist_info(t->cl, "upstream", up);
	}
	st_relay_plaintext(t);
	st_relay_tls_unauth(t, &mech, &have_mech, &why);
	st_relay_tls_auth(t, mech, have_mech, why);
	if (t->have_up)
		st_upstream(t);
	failed = adm_checklist_count(t->cl, ADM_CHECK_FAIL);
	if (!adm_checklist_print(t->cl, ctx->out, t->json, t->verbose) && failed == 0)
		failed = 1;   /* an incomplete report must not look like success */
	adm_checklist_free(t->cl);
	return failed > 100 ? 100 : (int)failed;
}

int adm_cmd_selftest(struct adm_ctx *ctx, int argc, char **argv)
{
	struct selftest *t = calloc(1, sizeof(*t));
	int rc;

	if (!t) {
		adm_err(ctx, "out of memory");
		return ADM_EXIT_IO;
	}
	t->timeout_ms = 30000;
	t->json = ctx->json;
	rc = parse_args(ctx, t, argc, argv);
	if (rc >= 0)
		goto out;
	/* Stdin lines are taken in order: the relay password (unless RELAY_PASSWORD is set),
	 * then the upstream password (unless RELAY_UPSTREAM_PASSWORD is set). */
	if (!take_secret(ctx, &t->relay, "RELAY_PASSWORD", "Password: ", "password") ||
	    (t->have_up && t->up.user &&
	     !take_secret(ctx, &t->up, "RELAY_UPSTREAM_PASSWORD", "Upstream password: ",
	                  "upstream password"))) {
		rc = ADM_EXIT_USAGE;
		goto out;
	}
	default_names(t);
	/* OpenSSL writes with write(2): a server that hangs up must not kill us with SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	rc = run(ctx, t);
out:
	explicit_bzero(t, sizeof(*t));
	free(t);
	return rc;
}
