/*
 * cert.h — the relay's TLS certificate: checks before Postfix is pointed at one, and a
 * self-signed fallback (OpenSSL 3).
 *
 * What it is: `relay-admin setup` refuses a certificate Postfix would fail with or that
 * would leak its key — a key that does not match, a certificate not yet or no longer valid,
 * a key file others can read — and generates a self-signed certificate when none is given.
 *
 * Ownership: strings passed in are borrowed; nothing is allocated for the caller.
 * Thread safety: no global state of our own (OpenSSL 3 is thread safe).
 *
 * Errors: 0 on success; -1 with a one-line reason in `err` that says how to fix it.
 * Warnings (soon expiring, host name not covered) go to `warn` (may be NULL), "" if none.
 */
#ifndef RELAY_ADM_CERT_H
#define RELAY_ADM_CERT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#define ADM_CERT_WARN_DAYS 30   /* warn when a certificate expires sooner than this */
#define ADM_CERT_SELF_DAYS 825  /* validity of a generated self-signed certificate */

/* Checks `cert` (PEM; a chain is allowed, the first certificate is the server's) and `key`
 * (PEM, unencrypted): the key matches the certificate; now lies within its validity; the
 * key file belongs to root, is not readable by others, and readable by its group only if
 * that group is root or `postfix_gid`. `hostname` (may be NULL) is checked against the
 * certificate's names (a warning, not a refusal). */
int adm_cert_check(const char *cert, const char *key, const char *hostname,
                   gid_t postfix_gid, char *warn, size_t warnlen, char *err, size_t errlen);

/* Writes a new RSA-2048 key (mode 0640, owner root, group `gid`) and a self-signed
 * certificate for `hostname` (SAN DNS:hostname, serverAuth, ADM_CERT_SELF_DAYS days).
 * Files are written beside the targets and renamed into place, through the folder's
 * descriptor: a symbolic link on the way that lives in a folder other users can write is
 * refused (sql/safefs.h), so such a user cannot steer the key elsewhere. */
int adm_cert_generate(const char *hostname, const char *cert, const char *key, gid_t gid,
                      char *err, size_t errlen);

/* The first certificate's subject, issuer (one line each) and expiry, for reports. */
int adm_cert_info(const char *cert, char *subject, size_t sublen, char *issuer,
                  size_t isslen, time_t *not_after, char *err, size_t errlen);

/* What a client that verifies will think of the first certificate in `cert`:
 * `*self_signed` when it is its own issuer and its signature verifies with its own key
 * (nothing but that very file can make a client trust it); `*names_host` when `name` (a
 * DNS name, or an IPv4/IPv6 address) is one of its names (subjectAltName, or the CN when
 * it has none — X509_check_host's rules, wildcards included). `names` receives its DNS
 * and IP names, comma-separated, for the report ("" if none). */
int adm_cert_identity(const char *cert, const char *name, bool *self_signed,
                      bool *names_host, char *names, size_t nameslen, char *err,
                      size_t errlen);

#endif
