/*
 * setup.h — the modules of `relay-admin setup` (internal to admin/): the options and their
 * validation (setup_opts.c), the plan — the wanted state compared with what is there —
 * and its rendering (setup_plan.c, master.cf entries in setup_services.c), applying a plan (setup_apply.c), and the command that
 * runs them in that order (cmd_setup.c). Pure parsing helpers live in setup_args.h.
 *
 * Ownership: struct setup_opts borrows argv and the context; struct plan owns its strings
 * (setup_plan_free() releases them and wipes the one holding the upstream password).
 * Errors: every function that fails has printed why through adm_err(); the return value
 * only says that it failed (an ADM_EXIT_* code where noted, else -1).
 */
#ifndef RELAY_ADM_SETUP_H
#define RELAY_ADM_SETUP_H

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

#include "adm.h"

#ifndef RELAY_SASL_PLUGINDIR
#define RELAY_SASL_PLUGINDIR "/usr/lib/x86_64-linux-gnu/sasl2"
#endif
#define SYSTEM_CA_FILE "/etc/ssl/certs/ca-certificates.crt"
#define MILTER_MACROS "i {auth_type} {auth_authen} {auth_author} {mail_addr} {mail_host} " \
	"{mail_mailer} {tls_version} {cipher} {cipher_bits} {client_addr} {client_name} " \
	"{daemon_name}"
#define DEFAULT_RATE_LIMIT 20   /* AUTH commands per client IP per minute */
#define PASSWORD_MAX 1024
#define MAX_MAIN 40
#define MAX_DEL 16
#define MAX_SVC 3      /* the upstream transport and up to two relay services */
#define MAX_WORDS 64
#define MAX_STALE 8
#define PRIVACY_TABLE "relay_received_privacy.regexp"   /* in the Postfix folder */
#define SYSLOG_MARK "syslog_name=postfix/relay"   /* how setup's services are recognised */

struct setup_opts {
	const struct adm_ctx *ctx;  /* for messages */
	const char *config_dir;
	const char *port;
	const char *tls_port;
	const char *cert, *key, *hostname;
	const char *db;
	const char *plugin_dir;
	const char *upstream, *upstream_tls, *upstream_user, *upstream_ca;
	bool upstream_insecure;
	const char *milter;
	bool no_milter;
	bool dry_run, no_reload;
	long rate_limit;
	long message_size;          /* --message-size in bytes; 0: main.cf's message_size_limit */
	bool keep_received;         /* --keep-client-received: no privacy header check */
	bool proxy_protocol;        /* --proxy-protocol: services behind HAProxy (PROXY header) */
};

/* Everything computed before touching anything. Strings are owned (malloc'd). */
struct plan {
	const struct adm_ctx *ctx;  /* for messages */
	char *main_kv[MAX_MAIN];       /* "name=value" to set */
	char *main_old[MAX_MAIN];      /* the value before, for the report */
	size_t nmain;
	char *main_del[MAX_DEL];       /* names to remove from main.cf (an earlier layout) */
	char *main_del_old[MAX_DEL];
	size_t ndel;
	struct {
		char name[300];            /* "443/inet", "relay-upstream/unix" */
		char *words[MAX_WORDS];
		size_t nwords;
		bool change;
		bool exists;
	} svc[MAX_SVC];
	size_t nsvc;
	char *stale[MAX_STALE];         /* "name/inet" of an earlier setup's services to remove */
	size_t nstale;
	char sasl_dir[PATH_MAX], sasl_conf[PATH_MAX + 16];
	char *sasl_conf_text;
	bool sasl_change;
	char map[PATH_MAX];
	char *map_text;                 /* holds the password: wiped on free */
	bool map_change;
	char cert[PATH_MAX], key[PATH_MAX];
	bool gen_cert;
	char nexthop[300];
	char filter[400];               /* content_filter of the relay services, or "" */
	char privacy[PATH_MAX];         /* the header check that hides the client (privacy) */
	char *privacy_text;
	bool privacy_change;
	gid_t postfix_gid;
};

/* setup_opts.c: the command line into *o (defaults filled in). Returns ADM_EXIT_OK, or
 * the usage error having printed it. */
int setup_parse_options(const struct adm_ctx *ctx, int argc, char **argv,
                        struct setup_opts *o);
/* Refuses contradictory, insecure or malformed options before anything is read; fills
 * pl->nexthop. Returns 0 or ADM_EXIT_USAGE ("nothing was changed" printed). */
int setup_validate(const struct setup_opts *o, struct plan *pl);
/* The upstream password from RELAY_UPSTREAM_PASSWORD or stdin, never argv. */
int setup_read_password(const struct adm_ctx *ctx, char *out, size_t len);
/* Whether relay-milter is installed in one of the usual places. */
bool setup_milter_installed(void);
/* --proxy-protocol: says loudly that only the proxy may reach the relay ports, and how to
 * firewall them (Postfix believes any PROXY header). Nothing without the option. */
void setup_warn_proxy(const struct setup_opts *o);

/* setup_plan.c: reads the instance and plans every change; 0 or -1. */
int setup_build_plan(const struct setup_opts *o, struct plan *p, const char *password);
bool setup_plan_empty(const struct plan *p);
/* The renderer: one line per change, each starting with `verb` ("would", "done:"). */
void setup_plan_print(FILE *f, const struct plan *p, const char *verb);
void setup_plan_free(struct plan *p);

/* setup_services.c: master.cf entries into p->svc (and p->stale); 0 or -1. */
int setup_plan_transport(struct plan *p, const struct setup_opts *o, bool implicit,
                         const char *mapref);
int setup_keep_filter(struct plan *p, const char *dir);
int setup_plan_service(struct plan *p, const struct setup_opts *o, const char *listen,
                       bool wrapper);
int setup_plan_stale(struct plan *p, const char *dir);

/* setup_apply.c: backs up, applies, checks and reloads; ADM_EXIT_OK or ADM_EXIT_FAIL. */
int setup_apply(const struct setup_opts *o, struct plan *p);

#endif
