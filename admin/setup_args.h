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

/* "HOST", "HOST:PORT" or "[HOST]:PORT" (host name or IPv4 address; port 587 if omitted)
 * -> nexthop "[HOST]:PORT" as relayhost and the password map key want it. */
bool adm_setup_upstream(const char *s, char *nexthop, size_t len, long *port,
                        char *why, size_t whylen);

#endif
