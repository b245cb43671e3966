/*
 * cmd_import.c — `relay-admin import-sasldb PATH`: move the logins of a Cyrus sasldb2 file
 * (the classic how-to's store, made by saslpasswd2) into the users database.
 *
 * We never parse the sasldb format ourselves (Berkeley DB on Debian, other backends
 * elsewhere): Cyrus's own code reads it.
 *   1. The names come from `sasldblistusers2 -f PATH` (sasl2-bin), one "user@realm: prop"
 *      line per stored property. It exits 0 even when it fails, so anything on its stderr
 *      is treated as failure.
 *   2. Each password comes from libsasl2 in-process: a server context whose only auxprop
 *      plugin is sasldb with sasldb_path = PATH; sasl_user_exists() makes the library
 *      canonicalise user@realm and fetch *userPassword into the connection's propctx,
 *      where we read it, derive both secrets, and erase it (prop_erase) at once.
 * The logins land in one transaction (all or nothing), marked source 'sasldb'. Names we
 * would refuse, logins that already exist and entries without a cleartext password are
 * skipped and listed with the reason.
 *
 * Exit: 0 when every login was imported or already existed, 1 when some were skipped for
 * another reason, 5 (database) / 6 (reading PATH) with nothing imported.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sasl/sasl.h>
#include <sasl/prop.h>

#include "adm.h"
#include "render.h"

#define LIST_OUTPUT_MAX (16u << 20)  /* bytes of sasldblistusers2 output we accept */
#define PASSWORD_MAX 1024
#define WEAK_BELOW 16

static const char *const listusers_paths[] = {
	"/usr/sbin/sasldblistusers2",
	"/usr/bin/sasldblistusers2",
};

/* ---- 1. names, from sasldblistusers2 ------------------------------------------------- */

struct buf {
	char *data;
	size_t len, cap;
};

static bool buf_add(struct buf *b, const char *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 4096;
		char *d;

		while (cap < b->len + n + 1)
			cap *= 2;
		d = realloc(b->data, cap);
		if (d == NULL)
			return false;
		b->data = d;
		b->cap = cap;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return true;
}

/* Runs sasldblistusers2 -f path; collects stdout and stderr separately. */
/* Reads the child's stdout and stderr until both close; more than LIST_OUTPUT_MAX in all
 * kills it and leaves "output too large" in err. */
static void drain(pid_t pid, int outfd, int errfd, struct buf *out, struct buf *err)
{
	struct pollfd fds[2];

	fds[0] = (struct pollfd){ .fd = outfd, .events = POLLIN };
	fds[1] = (struct pollfd){ .fd = errfd, .events = POLLIN };
	while (fds[0].fd >= 0 || fds[1].fd >= 0) {
		char chunk[4096];

		if (poll(fds, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (int i = 0; i < 2; i++) {
			ssize_t n;

			if (fds[i].fd < 0 || fds[i].revents == 0)
				continue;
			n = read(fds[i].fd, chunk, sizeof chunk);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				fds[i].fd = -1;
				continue;
			}
			if (out->len + err->len + (size_t)n > LIST_OUTPUT_MAX ||
			    !buf_add(i == 0 ? out : err, chunk, (size_t)n)) {
				kill(pid, SIGTERM);
				fds[0].fd = fds[1].fd = -1;
				err->len = 0;
				buf_add(err, "output too large", 16);
			}
		}
	}
}

static int run_listusers(const struct adm_ctx *ctx, const char *path, struct buf *out,
                         struct buf *err)
{
	const char *prog = NULL;
	int po[2] = { -1, -1 }, pe[2] = { -1, -1 }, status = 0, rc = ADM_EXIT_IO;
	pid_t pid;

	for (size_t i = 0; i < sizeof listusers_paths / sizeof listusers_paths[0]; i++)
		if (access(listusers_paths[i], X_OK) == 0) {
			prog = listusers_paths[i];
			break;
		}
	if (prog == NULL) {
		adm_err(ctx, "sasldblistusers2 not found: install the Debian package sasl2-bin");
		return ADM_EXIT_IO;
	}
	if (pipe2(po, O_CLOEXEC) != 0 || pipe2(pe, O_CLOEXEC) != 0) {
		adm_err(ctx, "pipe: %s", strerror(errno));
		goto out;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		adm_err(ctx, "fork: %s", strerror(errno));
		goto out;
	}
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDONLY);

		if (devnull < 0 || dup2(devnull, STDIN_FILENO) < 0 || dup2(po[1], STDOUT_FILENO) < 0 ||
		    dup2(pe[1], STDERR_FILENO) < 0)
			_exit(127);
		execl(prog, "sasldblistusers2", "-f", path, (char *)NULL);
		_exit(127);
	}
	close(po[1]);
	close(pe[1]);
	po[1] = pe[1] = -1;
	drain(pid, po[0], pe[0], out, err);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		adm_err(ctx, "sasldblistusers2 failed on %s", path);
		goto out;
	}
	rc = ADM_EXIT_OK;
out:
	for (int i = 0; i < 2; i++) {
		if (po[i] >= 0)
			close(po[i]);
		if (pe[i] >= 0)
			close(pe[i]);
	}
	return rc;
}

/* First line of a message from another program, made safe for our stderr. */
static void first_line(const char *s, char *out, size_t outlen)
{
	size_t n = 0;

	for (; *s && *s != '\n' && n + 1 < outlen; s++)
		out[n++] = (*s >= 0x20 && *s < 0x7f) ? *s : '?';
	out[n] = '\0';
}

/* ---- 2. passwords, through libsasl2 ---------------------------------------------------- */

struct sasl_env {
	const char *path;
	char last_error[256];
};

static int sasl_getopt_cb(void *context, const char *plugin, const char *option,
                          const char **result, unsigned *len)
{
	struct sasl_env *env = context;
	const char *v = NULL;

	(void)plugin;
	if (strcmp(option, "sasldb_path") == 0)
		v = env->path;
	else if (strcmp(option, "auxprop_plugin") == 0)
		v = "sasldb";
	else if (strcmp(option, "pwcheck_method") == 0)
		v = "auxprop";
	else if (strcmp(option, "mech_list") == 0)
		v = "PLAIN";
	if (v == NULL)
		return SASL_FAIL;
	*result = v;
	if (len != NULL)
		*len = (unsigned)strlen(v);
	return SASL_OK;
}

static int sasl_log_cb(void *context, int level, const char *message)
{
	struct sasl_env *env = context;

	if (level <= SASL_LOG_WARN && message != NULL)
		first_line(message, env->last_error, sizeof env->last_error);
	return SASL_OK;
}

/* Fetches the cleartext userPassword of `name` into pw. Returns SASL_OK, SASL_NOUSER
 * (no such user, or no cleartext password stored), or another SASL error. */
static int sasl_fetch(const char *name, char *pw, size_t pwlen)
{
	static const char *names[] = { "*userPassword", NULL };
	struct propval vals[2];
	struct propctx *props;
	sasl_conn_t *conn = NULL;
	int r;

	pw[0] = '\0';
	r = sasl_server_new("smtp", "localhost", NULL, NULL, NULL, NULL, 0, &conn);
	if (r != SASL_OK)
		return r;
	r = sasl_user_exists(conn, NULL, NULL, name);
	if (r != SASL_OK)
		goto out;
	props = sasl_auxprop_getctx(conn);
	memset(vals, 0, sizeof vals);
	if (props == NULL || prop_getnames(props, names, vals) < 0 || vals[0].values == NULL ||
	    vals[0].values[0] == NULL) {
		r = SASL_NOUSER;
	} else if (strlen(vals[0].values[0]) + 1 > pwlen) {
		r = SASL_BUFOVER;
	} else {
		strcpy(pw, vals[0].values[0]);
	}
	if (props != NULL)
		prop_erase(props, names[0]);
out:
	sasl_dispose(&conn);
	return r;
}

/* ---- the command --------------------------------------------------------------------- */

enum outcome { IMPORTED, EXISTS, SKIPPED };

struct entry {
	char *name;
	enum outcome outcome;
	char reason[320];
	bool weak;
	bool has_secrets;
	unsigned char plain[RDB_PLAIN_SECRET_LEN];
	char scram[RDB_SCRAM_MAX];
};

struct import {
	struct entry *e;
	size_t n, cap;
};

static void import_free(struct import *im)
{
	for (size_t i = 0; i < im->n; i++) {
		explicit_bzero(im->e[i].plain, sizeof im->e[i].plain);
		explicit_bzero(im->e[i].scram, sizeof im->e[i].scram);
		free(im->e[i].name);
	}
	free(im->e);
}

/* Adds a name from a "user@realm: property" line once. */
static bool add_name(struct import *im, const char *name, size_t len)
{
	struct entry *e;

	for (size_t i = 0; i < im->n; i++)
		if (strlen(im->e[i].name) == len && memcmp(im->e[i].name, name, len) == 0)
			return true;
	if (im->n == im->cap) {
		size_t cap = im->cap ? im->cap * 2 : 16;
		struct entry *ne = realloc(im->e, cap * sizeof *ne);

		if (ne == NULL)
			return false;
		im->e = ne;
		im->cap = cap;
	}
	e = &im->e[im->n];
	memset(e, 0, sizeof *e);
	e->name = strndup(name, len);
	if (e->name == NULL)
		return false;
	im->n++;
	return true;
}

static bool parse_list(struct import *im, char *text)
{
	for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n")) {
		char *sep = strstr(line, ": ");

		/* the property name has no ": ", so the last one separates */
		for (char *p = sep; p != NULL; p = strstr(p + 1, ": "))
			sep = p;
		if (sep == NULL || sep == line)
			continue;
		if (!add_name(im, line, (size_t)(sep - line)))
			return false;
	}
	return true;
}

static void derive(struct entry *e, struct sasl_env *env)
{
	char why[128], *pw;
	size_t len;
	int r;

	if (!rdb_name_valid(e->name, why, sizeof why)) {
		e->outcome = SKIPPED;
		snprintf(e->reason, sizeof e->reason, "invalid login name: %s", why);
		return;
	}
	pw = malloc(PASSWORD_MAX + 1);
	if (pw == NULL) {
		e->outcome = SKIPPED;
		snprintf(e->reason, sizeof e->reason, "out of memory");
		return;
	}
	env->last_error[0] = '\0';
	r = sasl_fetch(e->name, pw, PASSWORD_MAX + 1);
	if (r == SASL_NOUSER) {
		e->outcome = SKIPPED;
		snprintf(e->reason, sizeof e->reason, "no cleartext userPassword stored");
	} else if (r == SASL_BUFOVER) {
		e->outcome = SKIPPED;
		snprintf(e->reason, sizeof e->reason, "password longer than %d bytes", PASSWORD_MAX);
	} else if (r != SASL_OK) {
		e->outcome = SKIPPED;
		snprintf(e->reason, sizeof e->reason, "libsasl2 lookup failed: %s",
		         env->last_error[0] ? env->last_error : sasl_errstring(r, NULL, NULL));
	} else {
		len = strlen(pw);
		if (rdb_secret_plain(pw, len, NULL, e->plain) != RDB_OK ||
		    rdb_secret_scram_sha256(pw, len, RDB_SCRAM_ITERATIONS, NULL, 0, e->scram) != RDB_OK) {
			e->outcome = SKIPPED;
			snprintf(e->reason, sizeof e->reason, "cannot compute the secrets");
		} else {
			size_t chars = 0;

			for (const char *p = pw; *p; p++)
				chars += ((unsigned char)*p & 0xc0) != 0x80;
			e->weak = chars < WEAK_BELOW;
			e->has_secrets = true;
			e->outcome = IMPORTED;
		}
	}
	explicit_bzero(pw, PASSWORD_MAX + 1);
	free(pw);
}

static enum rdb_result store(struct rdb *db, struct import *im, int64_t now)
{
	enum rdb_result r = rdb_begin(db);

	for (size_t i = 0; r == RDB_OK && i < im->n; i++) {
		struct entry *e = &im->e[i];
		struct rdb_login_new n = {
			.name = e->name, .plain = e->plain, .scram = e->scram,
			.note = "imported from sasldb", .source = "sasldb", .now = now,
		};

		if (e->outcome != IMPORTED)
			continue;
		r = rdb_login_add(db, &n);
		if (r == RDB_EXISTS) {
			e->outcome = EXISTS;
			/* a login of that name, or an app credential's authentication name: the
			 * data layer's message says which */
			snprintf(e->reason, sizeof e->reason, "%s (left unchanged)", rdb_errmsg(db));
			r = RDB_OK;
		}
	}
	if (r == RDB_OK)
		r = rdb_commit(db);
	if (r != RDB_OK)
		rdb_rollback(db);
	return r;
}

static void report(const struct adm_ctx *ctx, const struct import *im, const char *path)
{
	static const char *const word[] = { "imported", "exists", "skipped" };
	size_t counts[3] = { 0, 0, 0 };
	struct adm_out o;

	adm_out_begin(&o, ctx);
	adm_out_obj(&o, NULL);
	adm_out_str(&o, "sasldb", path, NULL);
	adm_out_arr(&o, "logins");
	for (size_t i = 0; i < im->n; i++) {
		const struct entry *e = &im->e[i];

		counts[e->outcome]++;
		adm_out_obj(&o, NULL);
		adm_out_str(&o, "result", word[e->outcome], "%s ");
		adm_out_safe(&o, "name", e->name, "%s");
		if (e->outcome != IMPORTED) {
			adm_out_str(&o, "reason", e->reason, ": %s");
		} else {
			adm_out_bool(&o, "weak_password", e->weak, NULL);
			if (e->weak)
				adm_out_text(&o, " (warning: password shorter than %d characters; "
				             "consider relay-admin user passwd)", WEAK_BELOW);
		}
		adm_out_text(&o, "\n");
		adm_out_end(&o);
	}
	adm_out_text(&o, "%zu imported, %zu already present, %zu skipped\n", counts[IMPORTED],
	             counts[EXISTS], counts[SKIPPED]);
	adm_out_finish(&o);
}

int adm_cmd_import_sasldb(struct adm_ctx *ctx, int argc, char **argv)
{
	struct sasl_env env = { 0 };
	sasl_callback_t callbacks[] = {
		{ SASL_CB_GETOPT, (int (*)(void))(void (*)(void))sasl_getopt_cb, &env },
		{ SASL_CB_LOG, (int (*)(void))(void (*)(void))sasl_log_cb, &env },
		{ SASL_CB_LIST_END, NULL, NULL },
	};
	struct buf out = { 0 }, err = { 0 };
	struct import im = { 0 };
	struct rdb *db = NULL;
	struct stat st;
	char msg[256];
	enum rdb_result r;
	int rc;

	if ((rc = adm_operands(ctx, argc, argv, 1, "expected the path of a sasldb2 file")) !=
	    ADM_EXIT_OK)
		return rc;
	env.path = argv[optind];
	if (stat(env.path, &st) != 0 || access(env.path, R_OK) != 0) {
		adm_err(ctx, "%s: %s", env.path, strerror(errno));
		return ADM_EXIT_IO;
	}
	if (!S_ISREG(st.st_mode)) {
		adm_err(ctx, "%s: not a regular file", env.path);
		return ADM_EXIT_IO;
	}
	/* Open our database first: no point reading passwords we cannot store. */
	rc = adm_db_open(ctx, RDB_READWRITE, &db);
	if (rc != ADM_EXIT_OK)
		return rc;

	rc = run_listusers(ctx, env.path, &out, &err);
	if (rc == ADM_EXIT_OK && err.len > 0) {
		first_line(err.data, msg, sizeof msg);
		adm_err(ctx, "cannot read %s as a sasldb2 file: %s", env.path, msg);
		rc = ADM_EXIT_IO;
	}
	if (rc == ADM_EXIT_OK && out.len > 0 && !parse_list(&im, out.data)) {
		adm_err(ctx, "out of memory");
		rc = ADM_EXIT_FAIL;
	}
	if (rc != ADM_EXIT_OK)
		goto out;

	if (im.n > 0) {
		r = sasl_server_init(callbacks, "relay-admin-import");
		if (r != SASL_OK) {
			adm_err(ctx, "cannot initialise libsasl2: %s", sasl_errstring(r, NULL, NULL));
			rc = ADM_EXIT_FAIL;
			goto out;
		}
		for (size_t i = 0; i < im.n; i++)
			derive(&im.e[i], &env);
		sasl_done();
	}
	r = store(db, &im, ctx->now);
	if (r != RDB_OK) {
		rc = adm_rdb_fail(ctx, db, r);
		goto out;
	}
	report(ctx, &im, env.path);
	for (size_t i = 0; i < im.n; i++)
		if (im.e[i].outcome == SKIPPED)
			rc = ADM_EXIT_FAIL;
out:
	import_free(&im);
	free(out.data);
	free(err.data);
	rdb_close(db);
	return rc;
}
