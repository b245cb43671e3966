/*
 * check.h — the modules of `relay-admin check` (internal to admin/): reading the Postfix
 * configuration once (check_conf.c), the files — users and state databases, limits, the
 * SASL plugin, smtpd.conf (check_files.c) —, each relay service's parameters and the
 * upstream (check_postfix.c), certificates (check_cert.c), the milter (check_milter.c),
 * and the command that runs them into one checklist (cmd_check.c).
 *
 * Every chk_* check adds its findings to c->cl (checklist.h: OK/WARN/FAIL with a fix);
 * the checklist is the result, and adm_checklist_print() its one renderer (text or JSON).
 * Ownership: struct check owns the service words and main_cf (freed by cmd_check.c).
 * Single-threaded, like the rest of relay-admin.
 */
#ifndef RELAY_ADM_CHECK_H
#define RELAY_ADM_CHECK_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "adm.h"
#include "checklist.h"

#ifndef RELAY_SASL_PLUGINDIR
#define RELAY_SASL_PLUGINDIR "/usr/lib/x86_64-linux-gnu/sasl2"
#endif
#define RESTRICTIONS_WANT "permit_sasl_authenticated,reject"
#define MAX_SERVICES 16
#define MAX_WORDS 128

struct service {
	char name[256];          /* "127.0.0.1:10587/inet" */
	char *words[MAX_WORDS];  /* the -o name=value overrides, as "name=value" */
	size_t nwords;
};

struct check {
	const struct adm_ctx *ctx;
	const char *dir;          /* Postfix config directory */
	const char *name;         /* --name: the host clients use (NULL: each service's myhostname) */
	struct adm_checklist *cl;
	gid_t postfix_gid;
	uid_t postfix_uid;
	bool have_postfix;
	struct service svc[MAX_SERVICES];
	size_t nsvc;
	struct service transports[MAX_SERVICES];   /* unix smtp services (upstream candidates) */
	size_t ntransports;
	char certs[MAX_SERVICES][PATH_MAX];   /* certificate files already judged */
	char *main_cf;                        /* `postconf -x` output: every parameter */
	size_t ncerts;
};

/* check_conf.c: `postconf -x` and `postconf -M -x` read once; values as Postfix uses them. */
bool chk_load_main(struct check *c, char *err, size_t errlen);
bool chk_load_services(struct check *c, char *err, size_t errlen);
char *chk_pf_main(const struct check *c, const char *name, char *err, size_t errlen);
char *chk_pf_service(const struct check *c, const struct service *s, const char *name);
void chk_normalize_list(const char *in, char *out, size_t outlen);
void chk_service_free(struct service *s);

/* check_files.c */
void chk_limits(struct check *c);
void chk_plugin(struct check *c);
void chk_smtpd_conf(struct check *c);
void chk_state_db(struct check *c, bool milter);
void chk_users_db(struct check *c);

/* check_postfix.c */
void chk_postfix(struct check *c);
void chk_service(struct check *c, const struct service *s, bool *milter);
void chk_upstream(struct check *c);
/* the services behind a proxy (smtpd_upstream_proxy_protocol), named in one item */
void chk_proxy(struct check *c);

/* check_cert.c: each certificate file once, however many services name it. */
void chk_certificate(struct check *c, const struct service *s);

/* check_milter.c: returns whether a milter is registered on the service. */
bool chk_milter(struct check *c, const struct service *s);

#endif
