/*
 * rig.c — see rig.h. Test-support code around the real libsasl2.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sasl/sasl.h>

#include "rig.h"

#define SERVER_FQDN "relay.test"
#define LOCAL_IPPORT "127.0.0.1;2525"
#define REMOTE_IPPORT "192.0.2.7;54321"

static char rig_confdir[4096];
static char rig_plugindir[4096];

static char log_lines[RIG_LOG_LINES][RIG_LOG_LINE_MAX];
static size_t log_count; /* lines ever captured; the ring holds the last RIG_LOG_LINES */

/* ---- global callbacks --------------------------------------------------------------- */

static int cb_log(void *context, int level, const char *message)
{
	if (message == NULL)
		return SASL_OK;
	snprintf(log_lines[log_count % RIG_LOG_LINES], RIG_LOG_LINE_MAX, "%d %s", level, message);
	log_count++;
	return SASL_OK;
}

static int cb_confpath(void *context, const char **path)
{
	*path = rig_confdir;
	return SASL_OK;
}

static int cb_path(void *context, const char **path)
{
	*path = rig_plugindir;
	return SASL_OK;
}

typedef int (*rig_cb_fn)(void);

static sasl_callback_t global_cbs[] = {
	{ SASL_CB_LOG, (rig_cb_fn)(void (*)(void))cb_log, NULL },
	{ SASL_CB_GETCONFPATH, (rig_cb_fn)(void (*)(void))cb_confpath, NULL },
	{ SASL_CB_GETPATH, (rig_cb_fn)(void (*)(void))cb_path, NULL },
	{ SASL_CB_LIST_END, NULL, NULL },
};

int rig_init(const char *confdir, const char *plugindir)
{
	int r;

	snprintf(rig_confdir, sizeof rig_confdir, "%s", confdir);
	snprintf(rig_plugindir, sizeof rig_plugindir, "%s", plugindir);
	r = sasl_server_init(global_cbs, "smtpd");
	if (r != SASL_OK)
		return r;
	return sasl_client_init(global_cbs);
}

/* ---- server attempts ---------------------------------------------------------------- */

static int server_new(const char *realm, sasl_conn_t **conn)
{
	return sasl_server_new("smtp", SERVER_FQDN, realm, LOCAL_IPPORT, REMOTE_IPPORT, NULL, 0,
	                       conn);
}

int rig_plain(const char *realm, const char *user, size_t ulen, const char *pass, size_t plen)
{
	sasl_conn_t *conn = NULL;
	const char *out = NULL;
	unsigned outlen = 0;
	size_t len = 1 + ulen + 1 + plen;
	char *buf = malloc(len);
	int r;

	if (buf == NULL)
		return SASL_NOMEM;
	buf[0] = '\0'; /* empty authzid, as mail clients send it */
	memcpy(buf + 1, user, ulen);
	buf[1 + ulen] = '\0';
	memcpy(buf + 2 + ulen, pass, plen);
	r = server_new(realm, &conn);
	if (r == SASL_OK)
		r = sasl_server_start(conn, "PLAIN", buf, (unsigned)len, &out, &outlen);
	sasl_dispose(&conn);
	explicit_bzero(buf, len);
	free(buf);
	return r;
}

int rig_login(const char *realm, const char *user, const char *pass)
{
	sasl_conn_t *conn = NULL;
	const char *out = NULL;
	unsigned outlen = 0;
	int r;

	r = server_new(realm, &conn);
	if (r == SASL_OK)
		r = sasl_server_start(conn, "LOGIN", NULL, 0, &out, &outlen);
	if (r == SASL_CONTINUE)
		r = sasl_server_step(conn, user, (unsigned)strlen(user), &out, &outlen);
	if (r == SASL_CONTINUE)
		r = sasl_server_step(conn, pass, (unsigned)strlen(pass), &out, &outlen);
	sasl_dispose(&conn);
	return r;
}

/* ---- SCRAM: libsasl2's client against its server ------------------------------------ */

static const char *client_user;
static union {
	sasl_secret_t s;
	unsigned char raw[sizeof(sasl_secret_t) + 256];
} client_secret;

static int cb_simple(void *context, int id, const char **result, unsigned *len)
{
	if (id != SASL_CB_AUTHNAME && id != SASL_CB_USER)
		return SASL_BADPARAM;
	/* authzid empty: log in as ourselves, as mail clients do */
	*result = id == SASL_CB_AUTHNAME ? client_user : "";
	if (len != NULL)
		*len = (unsigned)strlen(*result);
	return SASL_OK;
}

static int cb_secret(sasl_conn_t *conn, void *context, int id, sasl_secret_t **psecret)
{
	*psecret = &client_secret.s;
	return SASL_OK;
}

static sasl_callback_t client_cbs[] = {
	{ SASL_CB_AUTHNAME, (rig_cb_fn)(void (*)(void))cb_simple, NULL },
	{ SASL_CB_USER, (rig_cb_fn)(void (*)(void))cb_simple, NULL },
	{ SASL_CB_PASS, (rig_cb_fn)(void (*)(void))cb_secret, NULL },
	{ SASL_CB_LIST_END, NULL, NULL },
};

int rig_scram(const char *realm, const char *user, const char *pass)
{
	return rig_scram_trace(realm, user, pass, NULL, NULL, 0);
}

/* Copies the server's message for the test to look at (NUL-terminated, clamped). */
static void keep_message(const char *msg, unsigned len, char *out, size_t outlen)
{
	size_t n = msg != NULL ? len : 0;

	if (out == NULL || outlen == 0)
		return;
	if (n >= outlen)
		n = outlen - 1;
	if (msg != NULL && n > 0)
		memcpy(out, msg, n);
	out[n] = '\0';
}

int rig_scram_first(const char *realm, const char *client_first, char *out, size_t outlen)
{
	sasl_conn_t *sc = NULL;
	const char *sout = NULL;
	unsigned soutlen = 0;
	int r = server_new(realm, &sc);

	keep_message(NULL, 0, out, outlen);
	if (r == SASL_OK)
		r = sasl_server_start(sc, "SCRAM-SHA-256", client_first, (unsigned)strlen(client_first),
		                      &sout, &soutlen);
	if (r == SASL_CONTINUE)
		keep_message(sout, soutlen, out, outlen);
	sasl_dispose(&sc);
	return r;
}

int rig_scram_trace(const char *realm, const char *user, const char *pass, int *start_result,
                    char *first, size_t firstlen)
{
	sasl_conn_t *cc = NULL, *sc = NULL;
	const char *cout = NULL, *sout = NULL, *mech = NULL;
	unsigned coutlen = 0, soutlen = 0;
	size_t plen = strlen(pass);
	int cr, sr;

	if (start_result != NULL)
		*start_result = SASL_FAIL;
	keep_message(NULL, 0, first, firstlen);

	if (plen > sizeof client_secret.raw - sizeof(sasl_secret_t))
		return SASL_BADPARAM;
	client_user = user;
	client_secret.s.len = plen;
	memcpy(client_secret.s.data, pass, plen);

	cr = sasl_client_new("smtp", SERVER_FQDN, LOCAL_IPPORT, REMOTE_IPPORT, client_cbs, 0, &cc);
	if (cr == SASL_OK)
		cr = sasl_client_start(cc, "SCRAM-SHA-256", NULL, &cout, &coutlen, &mech);
	if (cr != SASL_OK && cr != SASL_CONTINUE) {
		sr = cr;
		goto out;
	}
	sr = server_new(realm, &sc);
	if (sr == SASL_OK)
		sr = sasl_server_start(sc, "SCRAM-SHA-256", cout, coutlen, &sout, &soutlen);
	if (start_result != NULL)
		*start_result = sr;
	keep_message(sr == SASL_CONTINUE ? sout : NULL, soutlen, first, firstlen);
	while (sr == SASL_CONTINUE) {
		cr = sasl_client_step(cc, sout, soutlen, NULL, &cout, &coutlen);
		if (cr != SASL_OK && cr != SASL_CONTINUE) {
			sr = cr;
			goto out;
		}
		sr = sasl_server_step(sc, cout, coutlen, &sout, &soutlen);
	}
	/* The server is done; unless the client already checked the server's signature
	 * (server-final sent as a challenge), it must accept it now as additional data. */
	if (sr == SASL_OK && cr == SASL_CONTINUE) {
		cr = sasl_client_step(cc, sout, soutlen, NULL, &cout, &coutlen);
		if (cr != SASL_OK)
			sr = cr;
	}
out:
	sasl_dispose(&sc);
	sasl_dispose(&cc);
	explicit_bzero(&client_secret, sizeof client_secret);
	return sr;
}

int rig_setpass(const char *user, const char *pass)
{
	sasl_conn_t *conn = NULL;
	int r = server_new(NULL, &conn);

	if (r == SASL_OK)
		r = sasl_setpass(conn, user, pass, (unsigned)strlen(pass), NULL, 0, SASL_SET_CREATE);
	sasl_dispose(&conn);
	return r;
}

int rig_smtp_code(int r)
{
	switch (r) {
	case SASL_OK:
		return 235;
	case SASL_FAIL:
	case SASL_NOMEM:
	case SASL_TRYAGAIN:
	case SASL_UNAVAIL:
		return 454;
	default:
		return 535;
	}
}

/* ---- captured log ------------------------------------------------------------------- */

static size_t log_first(void)
{
	return log_count > RIG_LOG_LINES ? log_count - RIG_LOG_LINES : 0;
}

void rig_log_clear(void)
{
	log_count = 0;
	memset(log_lines, 0, sizeof log_lines);
}

bool rig_log_has(const char *needle)
{
	for (size_t i = log_first(); i < log_count; i++)
		if (strstr(log_lines[i % RIG_LOG_LINES], needle) != NULL)
			return true;
	return false;
}

bool rig_log_printable(void)
{
	for (size_t i = log_first(); i < log_count; i++)
		for (const unsigned char *p = (const unsigned char *)log_lines[i % RIG_LOG_LINES]; *p; p++)
			if (*p < 0x20 || *p > 0x7e)
				return false;
	return true;
}

bool rig_log_lacks_bytes(const char *needle, size_t len)
{
	for (size_t i = log_first(); i < log_count; i++)
		if (memmem(log_lines[i % RIG_LOG_LINES], strlen(log_lines[i % RIG_LOG_LINES]),
		           needle, len) != NULL)
			return false;
	return true;
}

void rig_log_dump(void)
{
	for (size_t i = log_first(); i < log_count; i++) {
		printf("# log: ");
		for (const unsigned char *p = (const unsigned char *)log_lines[i % RIG_LOG_LINES]; *p; p++)
			putchar(*p >= 0x20 && *p < 0x7f ? *p : '?');
		putchar('\n');
	}
}

/* ---- files -------------------------------------------------------------------------- */

bool rig_write_file(const char *path, const char *content, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd < 0 || write(fd, content, len) != (ssize_t)len) {
		fprintf(stderr, "rig: %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return false;
	}
	return close(fd) == 0;
}

bool rig_link_plugins(const char *dir, const char *const *targets)
{
	for (; *targets != NULL; targets++) {
		char copy[4096], link[4096];

		snprintf(copy, sizeof copy, "%s", *targets);
		snprintf(link, sizeof link, "%s/%s", dir, basename(copy));
		if (symlink(*targets, link) != 0 && errno != EEXIST) {
			fprintf(stderr, "rig: symlink %s: %s\n", link, strerror(errno));
			return false;
		}
	}
	return true;
}
