/*
 * setup_args.h — the pure checks behind `relay-admin setup`'s options (unit tested).
 *
 * What it is: validation of the values setup writes into main.cf, master.cf and
 * smtpd.conf, so that nothing Postfix would split, expand or misread ever gets there.
 * No state, no allocation: thread safe. Each function returns true if the input is
 * acceptable; otherwise false with a one-line reason in `why` (where there is one).
 */
#ifndef RELAY_ADM_SETUP_ARGS_H
#define RELAY_ADM_SETUP_ARGS_H

#include <stdbool.h>
#include <stddef.h>

/* A value that can go into a master.cf -o override or main.cf unchanged: printable ASCII,
 * no whitespace, and none of , $ { } = " ' \ # (Postfix would split, expand or misparse). */
bool adm_setup_plain_value(const char *s);

/* "[ADDRESS:]PORT" of a listening service (ADDRESS: an IPv4/IPv6 literal or a host name);
 * refuses port 25, the machine's own mail service, which setup leaves alone. */
bool adm_setup_listen(const char *spec, long *port, char *why, size_t whylen);

/* --db: the users database as smtpd.conf's relaydb_path gets it. A SQLite file: an absolute
 * path (a plain value). PostgreSQL (the engine rule of sql/): "pg:/abs/path" of a file with
 * a libpq conninfo string (a plain value after "pg:"), or a postgresql:// / postgres:// URI
 * of printable ASCII without spaces — and without a password: --db is argv, and the URI goes
 * into smtpd.conf, which group postfix reads (a pg: file or ~/.pgpass holds the password).
 * *pg says which engine the name selects. */
bool adm_setup_db_name(const char *s, bool *pg, char *why, size_t whylen);

/* "HOST", "HOST:PORT" or "[HOST]:PORT" (host name or IPv4 address; port 587 if omitted)
 * -> nexthop "[HOST]:PORT" as relayhost and the password map key want it. */
bool adm_setup_upstream(const char *s, char *nexthop, size_t len, long *port,
                        char *why, size_t whylen);

/* --message-size: a number of bytes, or with K, M or G (KiB, MiB, GiB), between 1 KiB and
 * 1 GiB (0 = unlimited is refused: a relay's clients should not fill the queue's disk). */
bool adm_setup_size(const char *s, long *bytes, char *why, size_t whylen);

/* The master.cf transport that carries the relay services' mail to the upstream, with the
 * upstream's TLS settings and login as its own -o overrides; the relay services name it in
 * content_filter ("relay-upstream:[HOST]:PORT"). Nothing else routes mail to it. */
#define ADM_SETUP_TRANSPORT "relay-upstream"

/* The upstream layout of earlier versions of setup: relayhost, smtp_tls_* and smtp_sasl_*
 * in main.cf, where every delivery (sendmail, port 25) used them. A re-run moves them onto
 * ADM_SETUP_TRANSPORT and undoes the main.cf values that setup itself wrote. */
enum adm_setup_legacy {
	ADM_LEGACY_KEEP,     /* not what setup wrote (or not set): leave it */
	ADM_LEGACY_REMOVE,   /* setup's value: remove it from main.cf (postconf -X) */
	ADM_LEGACY_MAY,      /* smtp_tls_security_level setup raised: back to "may" */
};

/* The main.cf names an earlier setup wrote, NULL-terminated, in the order it wrote them. */
extern const char *const adm_setup_legacy_names[];

/* True when main.cf holds the old layout: smtp_sasl_password_maps is setup's own map
 * (`map`, "hash:DIR/relay_upstream_passwd"), or relayhost is the upstream being set up
 * (`nexthop`, may be NULL). Values are main.cf's explicit ones ("" when not set). */
bool adm_setup_legacy_layout(const char *relayhost, const char *maps, const char *map,
                             const char *nexthop);

/* What a re-run does with main.cf's explicit `name = value` once the old layout is found:
 * only the exact values setup wrote are undone, so an admin's own settings stay. */
enum adm_setup_legacy adm_setup_legacy(const char *name, const char *value, const char *map);

#endif
