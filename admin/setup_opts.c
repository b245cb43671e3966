/*
 * setup_opts.c — `relay-admin setup`, step 1: the command line, its validation (anything
 * contradictory, insecure or malformed is refused before the instance is even read) and
 * the upstream password (RELAY_UPSTREAM_PASSWORD or stdin, never argv). See setup.h.
 */
#include "setup.h"
#include "setup_args.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* "refused: <why>" and "nothing was changed", as one diagnostic. Returns 1. */
__attribute__((format(printf, 2, 3)))
static int refuse(const struct adm_ctx *ctx, const char *fmt, ...)
{
	char why[PATH_MAX + 256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	adm_err(ctx, "refused: %s\nnothing was changed", why);
	return 1;
}

int setup_validate(const struct setup_opts *o, struct plan *pl)
{
	char why[300];
	long port = 0, tport = 0, uport = 0;

	if (!adm_setup_plain_value(o->config_dir) || o->config_dir[0] != '/' ||
	    strlen(o->config_dir) > PATH_MAX / 2)
		return refuse(pl->ctx, "--postfix-config must be an absolute path without spaces, commas "
		              "or '$': %s", o->config_dir);
	if (!adm_setup_listen(o->port, &port, why, sizeof why))
		return refuse(pl->ctx, "--port: %s", why);
	if (o->tls_port) {
		if (!adm_setup_listen(o->tls_port, &tport, why, sizeof why))
			return refuse(pl->ctx, "--tls-port: %s", why);
		if (strcmp(o->tls_port, o->port) == 0 || tport == port)
			return refuse(pl->ctx, "--port and --tls-port are both %ld: one port cannot speak "
			              "STARTTLS and implicit TLS", port);
	}
	if ((o->cert == NULL) != (o->key == NULL))
		return refuse(pl->ctx, "--cert and --key go together");
	if (o->cert && (!adm_setup_plain_value(o->cert) || !adm_setup_plain_value(o->key) || o->cert[0] != '/' ||
	                o->key[0] != '/'))
		return refuse(pl->ctx, "--cert/--key must be absolute paths without spaces, commas or "
		              "'$': %s %s", o->cert, o->key);
	if (o->hostname && !adm_setup_plain_value(o->hostname))
		return refuse(pl->ctx, "--hostname '%s' is not a host name", o->hostname);
	if (!adm_setup_db_name(o->db, &(bool){ false }, why, sizeof why))
		return refuse(pl->ctx, "%s", why);
	if (o->plugin_dir && (!adm_setup_plain_value(o->plugin_dir) || o->plugin_dir[0] != '/' ||
	                      strchr(o->plugin_dir, ':')))
		return refuse(pl->ctx, "--sasl-plugin-dir must be an absolute path without spaces or "
		              "colons: %s", o->plugin_dir);
	if (o->rate_limit < 0)
		return refuse(pl->ctx, "--rate-limit must be 0 or more");
	if (o->milter && o->no_milter)
		return refuse(pl->ctx, "--milter and --no-milter contradict each other");
	if (o->milter && (!adm_setup_plain_value(o->milter) ||
	                  (strncmp(o->milter, "unix:", 5) != 0 &&
	                   strncmp(o->milter, "inet:", 5) != 0)))
		return refuse(pl->ctx, "--milter '%s' is not unix:/path or inet:HOST:PORT", o->milter);
	if (o->upstream == NULL) {
		if (o->upstream_user || o->upstream_ca || o->upstream_tls || o->upstream_insecure)
			return refuse(pl->ctx, "--upstream-* options need --upstream HOST[:PORT]");
		return 0;
	}
	if (!adm_setup_upstream(o->upstream, pl->nexthop, sizeof pl->nexthop, &uport, why,
	                    sizeof why))
		return refuse(pl->ctx, "%s", why);
	if (o->upstream_tls && strcmp(o->upstream_tls, "starttls") != 0 &&
	    strcmp(o->upstream_tls, "implicit") != 0)
		return refuse(pl->ctx, "--upstream-tls must be starttls or implicit, not '%s'",
		              o->upstream_tls);
	if (o->upstream_tls && uport == 465 && strcmp(o->upstream_tls, "starttls") == 0)
		return refuse(pl->ctx, "port 465 speaks implicit TLS; --upstream-tls starttls contradicts it");
	if (o->upstream_tls && uport == 587 && strcmp(o->upstream_tls, "implicit") == 0)
		return refuse(pl->ctx, "port 587 speaks STARTTLS; --upstream-tls implicit contradicts it");
	if (o->upstream_insecure && o->upstream_ca)
		return refuse(pl->ctx, "--upstream-ca and --upstream-insecure contradict each other: either "
		              "verify against a CA or do not verify");
	if (o->upstream_ca && (!adm_setup_plain_value(o->upstream_ca) || o->upstream_ca[0] != '/'))
		return refuse(pl->ctx, "--upstream-ca must be an absolute path without spaces: %s",
		              o->upstream_ca);
	if (o->upstream_user && (o->upstream_user[0] == '\0' ||
	                         strpbrk(o->upstream_user, " \t\r\n:") != NULL))
		return refuse(pl->ctx, "--upstream-user '%s' may not be empty or contain spaces or ':'",
		              o->upstream_user);
	return 0;
}

/* The upstream password: RELAY_UPSTREAM_PASSWORD, else stdin (one line from a pipe; a
 * prompt with echo off on a terminal). Never argv. */
int setup_read_password(const struct adm_ctx *ctx, char *out, size_t len)
{
	char *env = getenv("RELAY_UPSTREAM_PASSWORD");
	size_t n;
	int rc;

	if (env && env[0]) {
		if (strlen(env) >= len) {
			adm_err(ctx, "refused: RELAY_UPSTREAM_PASSWORD is too long");
			return ADM_EXIT_USAGE;
		}
		strcpy(out, env);
		/* postconf and postmap run as children: they must not inherit the password. */
		explicit_bzero(env, strlen(env));
		unsetenv("RELAY_UPSTREAM_PASSWORD");
	} else {
		rc = adm_read_secret(ctx, "upstream password: ", false, out, len);
		if (rc != ADM_EXIT_OK) {
			adm_note(ctx, "--upstream-user needs the password on stdin or in "
			         "RELAY_UPSTREAM_PASSWORD\nnothing was changed");
			return rc;
		}
	}
	n = strlen(out);
	if (n > 0 && (out[n - 1] == ' ' || out[n - 1] == '\t')) {
		/* postmap trims the end of a map line: the upstream would see another password */
		explicit_bzero(out, len);
		adm_err(ctx, "refused: the upstream password ends with a space, which Postfix's "
		        "password map cannot keep\nnothing was changed");
		return ADM_EXIT_USAGE;
	}
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f) {
			explicit_bzero(out, len);
			adm_err(ctx, "refused: the upstream password contains control characters\n"
			        "nothing was changed");
			return ADM_EXIT_USAGE;
		}
	return ADM_EXIT_OK;
}

/* ---- the command line ----------------------------------------------------------------- */

enum {
	OPT_CONFIG = 256, OPT_PORT, OPT_TLS_PORT, OPT_CERT, OPT_KEY, OPT_HOSTNAME, OPT_DB,
	OPT_PLUGIN, OPT_RATE, OPT_UP, OPT_UP_TLS, OPT_UP_USER, OPT_UP_CA, OPT_UP_INSECURE,
	OPT_MILTER, OPT_NO_MILTER, OPT_NO_RELOAD, OPT_DRY_RUN, OPT_MSG_SIZE, OPT_KEEP_RECEIVED,
	OPT_PROXY,
};

int setup_parse_options(const struct adm_ctx *ctx, int argc, char **argv,
                        struct setup_opts *o)
{
	static const struct option longopts[] = {
		{ "postfix-config", required_argument, NULL, OPT_CONFIG },
		{ "port", required_argument, NULL, OPT_PORT },
		{ "tls-port", required_argument, NULL, OPT_TLS_PORT },
		{ "cert", required_argument, NULL, OPT_CERT },
		{ "key", required_argument, NULL, OPT_KEY },
		{ "hostname", required_argument, NULL, OPT_HOSTNAME },
		{ "db", required_argument, NULL, OPT_DB },
		{ "sasl-plugin-dir", required_argument, NULL, OPT_PLUGIN },
		{ "rate-limit", required_argument, NULL, OPT_RATE },
		{ "upstream", required_argument, NULL, OPT_UP },
		{ "upstream-tls", required_argument, NULL, OPT_UP_TLS },
		{ "upstream-user", required_argument, NULL, OPT_UP_USER },
		{ "upstream-ca", required_argument, NULL, OPT_UP_CA },
		{ "upstream-insecure", no_argument, NULL, OPT_UP_INSECURE },
		{ "milter", required_argument, NULL, OPT_MILTER },
		{ "no-milter", no_argument, NULL, OPT_NO_MILTER },
		{ "no-reload", no_argument, NULL, OPT_NO_RELOAD },
		{ "dry-run", no_argument, NULL, OPT_DRY_RUN },
		{ "message-size", required_argument, NULL, OPT_MSG_SIZE },
		{ "keep-client-received", no_argument, NULL, OPT_KEEP_RECEIVED },
		{ "proxy-protocol", no_argument, NULL, OPT_PROXY },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	*o = (struct setup_opts){
		.ctx = ctx,
		.config_dir = "/etc/postfix",
		.port = "443",
		.db = ctx->db_path,
		.rate_limit = DEFAULT_RATE_LIMIT,
	};
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_CONFIG: o->config_dir = optarg; break;
		case OPT_PORT: o->port = optarg; break;
		case OPT_TLS_PORT: o->tls_port = optarg; break;
		case OPT_CERT: o->cert = optarg; break;
		case OPT_KEY: o->key = optarg; break;
		case OPT_HOSTNAME: o->hostname = optarg; break;
		case OPT_DB: o->db = optarg; break;
		case OPT_PLUGIN: o->plugin_dir = optarg; break;
		case OPT_RATE: {
			char *end;

			o->rate_limit = strtol(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || o->rate_limit > 100000) {
				return adm_usage(ctx, "--rate-limit '%s' is not a number of AUTH "
				                 "commands per minute", optarg);
			}
			break;
		}
		case OPT_UP: o->upstream = optarg; break;
		case OPT_UP_TLS: o->upstream_tls = optarg; break;
		case OPT_UP_USER: o->upstream_user = optarg; break;
		case OPT_UP_CA: o->upstream_ca = optarg; break;
		case OPT_UP_INSECURE: o->upstream_insecure = true; break;
		case OPT_MILTER: o->milter = optarg; break;
		case OPT_NO_MILTER: o->no_milter = true; break;
		case OPT_NO_RELOAD: o->no_reload = true; break;
		case OPT_DRY_RUN: o->dry_run = true; break;
		case OPT_KEEP_RECEIVED: o->keep_received = true; break;
		case OPT_PROXY: o->proxy_protocol = true; break;
		case OPT_MSG_SIZE: {
			char why[200];

			if (!adm_setup_size(optarg, &o->message_size, why, sizeof why))
				return adm_usage(ctx, "%s", why);
			break;
		}
		default:
			return adm_usage(ctx, "unknown option or missing value: %s", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return adm_usage(ctx, "unexpected argument: %s", argv[optind]);
	return ADM_EXIT_OK;
}

/* ---- --proxy-protocol ------------------------------------------------------------------ */

/* Postfix takes the client address from the PROXY header of whoever connects and has no
 * list of trusted proxies (DESIGN.md, "Several relays"): the one protection is that
 * nothing but the proxy can connect. Said on every run with the option, with the ports. */
void setup_warn_proxy(const struct setup_opts *o)
{
	char ports[64], why[200];
	long port = 0, tport = 0;

	if (!o->proxy_protocol)
		return;
	(void)adm_setup_listen(o->port, &port, why, sizeof why);
	if (o->tls_port && adm_setup_listen(o->tls_port, &tport, why, sizeof why))
		snprintf(ports, sizeof ports, "%ld, %ld", port, tport);
	else
		snprintf(ports, sizeof ports, "%ld", port);
	adm_warn(o->ctx, "--proxy-protocol: the relay services (port %s) expect a PROXY "
	         "protocol header (HAProxy: send-proxy-v2) on every connection and take the "
	         "client's address from it; a client that connects directly is refused.\n"
	         "  Postfix has no list of trusted proxies: whoever reaches these ports can claim "
	         "any client address,\n"
	         "  and the AUTH rate limit, relay-milter's audit log and Postfix's log believe "
	         "it. ONLY THE PROXY MAY REACH PORT %s.\n"
	         "  With the proxy on this machine, listen on loopback (--port 127.0.0.1:PORT); "
	         "otherwise firewall them,\n"
	         "  e.g. with nftables (PROXY_IP: the address the proxy connects from):\n"
	         "      nft add rule inet filter input tcp dport { %s } ip saddr != PROXY_IP drop\n"
	         "      nft add rule inet filter input meta nfproto ipv6 tcp dport { %s } drop",
	         ports, ports, ports, ports);
}
