/*
 * rig.h — drives the real libsasl2 in-process the way Postfix's smtpd does, for the
 * relaydb tests and the auth benchmark.
 *
 * What it is: sasl_server_init() with only a log callback plus private config and plugin
 * folders (SASL_CB_GETCONFPATH, SASL_CB_GETPATH — nothing from /etc is read), then one
 * fresh sasl_conn_t per attempt (smtpd never reuses a handle after a failed AUTH), created
 * like xsasl_cyrus_server_create does: service "smtp", the server name, the local realm
 * (smtpd_sasl_local_domain, NULL when empty) and "ip;port" for both ends.
 *
 * Log lines from libsasl2 and the plugins are captured (the last RIG_LOG_LINES of them) so
 * tests can check what an admin would read.
 *
 * Process-global and single-threaded, like libsasl2's init: call rig_init() once per
 * process (fork for another configuration).
 */
#ifndef RELAY_TEST_RIG_H
#define RELAY_TEST_RIG_H

#include <stdbool.h>
#include <stddef.h>

#define RIG_LOG_LINES 64
#define RIG_LOG_LINE_MAX 1024

/* Initialises libsasl2's server and client sides with appname "smtpd": config from
 * <confdir>/smtpd.conf, plugins only from plugindir. Returns the sasl result. */
int rig_init(const char *confdir, const char *plugindir);

/* One AUTH PLAIN with an initial response authzid\0user\0pass, on a new connection.
 * realm NULL = smtpd_sasl_local_domain empty. Returns the sasl result. */
int rig_plain(const char *realm, const char *user, size_t ulen, const char *pass, size_t plen);

/* One AUTH LOGIN (Username:, Password: challenges) on a new connection. */
int rig_login(const char *realm, const char *user, const char *pass);

/* One SCRAM-SHA-256 exchange between libsasl2's own client and server sides. Returns the
 * server's final result (SASL_OK only if the client also accepted the server's proof). */
int rig_scram(const char *realm, const char *user, const char *pass);

/* rig_scram() that also reports what the server did at the first step: *start_result (the
 * sasl_server_start result; SASL_CONTINUE means Postfix sent 334) and its message (the
 * server-first-message "r=...,s=...,i=...", empty unless SASL_CONTINUE). */
int rig_scram_trace(const char *realm, const char *user, const char *pass, int *start_result,
                    char *first, size_t firstlen);

/* The first step only, with a client-first-message of our own (e.g. "n,,n=kim,r=abc", as an
 * attacker would send it without any password): returns the sasl_server_start result and
 * the server's message in out (empty unless SASL_CONTINUE). */
int rig_scram_first(const char *realm, const char *client_first, char *out, size_t outlen);

/* sasl_setpass on a new server connection: what saslpasswd2 would do. */
int rig_setpass(const char *user, const char *pass);

/* What Postfix 3.7 answers for a final sasl result (xsasl_cyrus_server_auth_response):
 * 235 for OK, 454 for the temporary ones, 535 for everything else (NOUSER is shown as
 * BADAUTH "for privacy"). */
int rig_smtp_code(int sasl_result);

/* Captured log lines. */
void rig_log_clear(void);
bool rig_log_has(const char *needle);
/* true if every captured byte is printable ASCII */
bool rig_log_printable(void);
/* true if needle (of len bytes) occurs in no captured line */
bool rig_log_lacks_bytes(const char *needle, size_t len);
void rig_log_dump(void); /* as TAP comments */

/* Small file helpers for fixtures; false (with a message on stderr) on error. */
bool rig_write_file(const char *path, const char *content, size_t len);
bool rig_link_plugins(const char *dir, const char *const *targets);

#endif
