/*
 * postconf.c — fork/exec of Postfix's tools with an argv array; see postconf.h.
 *
 * Why no popen(): it goes through /bin/sh, and values we pass (paths, parameter values)
 * must never be parsed by a shell. Why stdin from a pipe: postmap and friends read nothing,
 * but the caller may feed a program input without it ever appearing in argv.
 */
#include "postconf.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "errbuf.h"

#define ERR_KEEP 600  /* bytes of a program's stderr quoted in an error message */

/* The program's path: absolute as given, else the first of the usual system folders
 * that holds it (root's PATH is not always complete under sudo or cron). */
static const char *resolve(const char *name, char *buf, size_t len)
{
	static const char *const dirs[] = { "/usr/sbin", "/usr/bin", "/sbin", "/bin" };

	if (strchr(name, '/') != NULL)
		return name;
	for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
		snprintf(buf, len, "%s/%s", dirs[i], name);
		if (access(buf, X_OK) == 0)
			return buf;
	}
	return NULL;
}

struct sink {
	char *buf;
	size_t len;
	size_t max;
};

static void sink_add(struct sink *s, const char *data, size_t n)
{
	if (s->len + n > s->max)
		n = s->max - s->len;
	if (n == 0)
		return;
	memcpy(s->buf + s->len, data, n);
	s->len += n;
	s->buf[s->len] = '\0';
}

/* Makes a program's stderr fit on one line of an error message. */
static void flatten(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
		s[--n] = '\0';
	for (char *p = s; *p; p++)
		if (*p == '\n' || *p == '\t')
			*p = ' ';
		else if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f)
			*p = '?';
}

/* Feeds stdin and drains stdout/stderr together so neither side can block the other;
 * closes the three descriptors (set to -1) as each side finishes. */
static void pump(int *in, const char *input, int *out, int *err,
                 struct sink *so, struct sink *se)
{
	size_t inlen = input ? strlen(input) : 0, inoff = 0;
	struct pollfd fds[3];
	void (*old)(int) = signal(SIGPIPE, SIG_IGN);

	if (inlen == 0) {
		close(*in);
		*in = -1;
	}
	for (;;) {
		nfds_t n = 0;
		int iw = -1, io = -1, ie = -1;

		if (*in >= 0) {
			fds[n] = (struct pollfd){ .fd = *in, .events = POLLOUT };
			iw = (int)n++;
		}
		if (*out >= 0) {
			fds[n] = (struct pollfd){ .fd = *out, .events = POLLIN };
			io = (int)n++;
		}
		if (*err >= 0) {
			fds[n] = (struct pollfd){ .fd = *err, .events = POLLIN };
			ie = (int)n++;
		}
		if (n == 0)
			break;
		if (poll(fds, n, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (iw >= 0 && fds[iw].revents) {
			ssize_t w = write(*in, input + inoff, inlen - inoff);

			if (w > 0)
				inoff += (size_t)w;
			if (w <= 0 || inoff == inlen) {
				close(*in);
				*in = -1;
			}
		}
		for (int k = 0; k < 2; k++) {
			int idx = k == 0 ? io : ie;
			int *fd = k == 0 ? out : err;
			char chunk[4096];
			ssize_t r;

			if (idx < 0 || fds[idx].revents == 0)
				continue;
			r = read(*fd, chunk, sizeof chunk);
			if (r > 0) {
				sink_add(k == 0 ? so : se, chunk, (size_t)r);
			} else if (r == 0 || errno != EINTR) {
				close(*fd);
				*fd = -1;
			}
		}
	}
	signal(SIGPIPE, old);
}

/* In the child: the pipes onto 0, 1 and 2, then the program. Never returns. */
__attribute__((noreturn))
static void exec_child(const char *path, const char *const argv[], int in, int out, int err)
{
	dup2(in, 0);
	dup2(out, 1);
	dup2(err, 2);
	signal(SIGPIPE, SIG_DFL);
	execv(path, (char *const *)(uintptr_t)argv);
	dprintf(2, "exec %s: %s\n", path, strerror(errno));
	_exit(127);
}

int adm_run(const char *const argv[], const char *input, char **out, int *status,
            char *err, size_t errlen)
{
	char pathbuf[256];
	const char *path = resolve(argv[0], pathbuf, sizeof pathbuf);
	int pin[2] = { -1, -1 }, pout[2] = { -1, -1 }, perr[2] = { -1, -1 };
	struct sink so = { 0 }, se = { 0 };
	char errbuf[ERR_KEEP + 1];
	int rc = -1, wst = 0;
	pid_t pid;

	if (out)
		*out = NULL;
	if (path == NULL) {
		rdb_seterr(err, errlen, "%s: not found (is Postfix installed?)", argv[0]);
		return -1;
	}
	so.max = ADM_RUN_OUT_MAX;
	so.buf = malloc(so.max + 1);
	se.buf = errbuf;
	se.max = ERR_KEEP;
	errbuf[0] = '\0';
	if (so.buf == NULL) {
		rdb_seterr(err, errlen, "out of memory");
		return -1;
	}
	so.buf[0] = '\0';
	if (pipe2(pin, O_CLOEXEC) < 0 || pipe2(pout, O_CLOEXEC) < 0 || pipe2(perr, O_CLOEXEC) < 0) {
		rdb_seterr(err, errlen, "pipe: %s", strerror(errno));
		goto out;
	}
	pid = fork();
	if (pid < 0) {
		rdb_seterr(err, errlen, "fork: %s", strerror(errno));
		goto out;
	}
	if (pid == 0)
		exec_child(path, argv, pin[0], pout[1], perr[1]);
	close(pin[0]);
	pin[0] = -1;
	close(pout[1]);
	pout[1] = -1;
	close(perr[1]);
	perr[1] = -1;

	pump(&pin[1], input, &pout[0], &perr[0], &so, &se);
	while (waitpid(pid, &wst, 0) < 0 && errno == EINTR)
		;
	flatten(errbuf);
	if (!WIFEXITED(wst)) {
		rdb_seterr(err, errlen, "%s was killed by signal %d", argv[0],
		       WIFSIGNALED(wst) ? WTERMSIG(wst) : 0);
		goto out;
	}
	if (status)
		*status = WEXITSTATUS(wst);
	if (WEXITSTATUS(wst) != 0)
		rdb_seterr(err, errlen, "%s exited with status %d%s%s", argv[0], WEXITSTATUS(wst),
		       errbuf[0] ? ": " : "", errbuf);
	rc = 0;
	if (out) {
		*out = so.buf;
		so.buf = NULL;
	}
out:
	for (int i = 0; i < 2; i++) {
		if (pin[i] >= 0)
			close(pin[i]);
		if (pout[i] >= 0)
			close(pout[i]);
		if (perr[i] >= 0)
			close(perr[i]);
	}
	free(so.buf);
	return rc;
}

/* adm_run that also treats a non-zero exit as failure. */
static int run_ok(const char *const argv[], char **out, char *err, size_t errlen)
{
	int st = 0;

	if (adm_run(argv, NULL, out, &st, err, errlen) < 0)
		return -1;
	if (st != 0) {
		if (out) {
			free(*out);
			*out = NULL;
		}
		return -1;
	}
	return 0;
}

static void chomp(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
		s[--n] = '\0';
}

int adm_pf_get(const char *dir, const char *name, char **value, char *err, size_t errlen)
{
	const char *argv[] = { "postconf", "-c", dir, "-h", name, NULL };

	if (run_ok(argv, value, err, errlen) < 0)
		return -1;
	chomp(*value);
	return 0;
}

int adm_pf_get_explicit(const char *dir, const char *name, char **value, char *err,
                        size_t errlen)
{
	const char *argv[] = { "postconf", "-c", dir, "-n", "-h", name, NULL };

	if (run_ok(argv, value, err, errlen) < 0)
		return -1;
	chomp(*value);
	return 0;
}

/* postconf with `flag` and one argument per name: -e name=value, -X name. */
static int pf_many(const char *dir, const char *flag, const char *const args[], size_t n,
                   char *err, size_t errlen)
{
	const char **argv;
	int rc;

	if (n == 0)
		return 0;
	argv = calloc(n + 5, sizeof *argv);
	if (argv == NULL) {
		rdb_seterr(err, errlen, "out of memory");
		return -1;
	}
	argv[0] = "postconf";
	argv[1] = "-c";
	argv[2] = dir;
	argv[3] = flag;
	for (size_t i = 0; i < n; i++)
		argv[4 + i] = args[i];
	rc = run_ok(argv, NULL, err, errlen);
	free(argv);
	return rc;
}

int adm_pf_set(const char *dir, const char *const kv[], size_t n, char *err, size_t errlen)
{
	return pf_many(dir, "-e", kv, n, err, errlen);
}

int adm_pf_unset(const char *dir, const char *const names[], size_t n, char *err,
                 size_t errlen)
{
	return pf_many(dir, "-X", names, n, err, errlen);
}

int adm_pf_service_get(const char *dir, const char *service_type, char **entry,
                       char *err, size_t errlen)
{
	const char *argv[] = { "postconf", "-c", dir, "-M", service_type, NULL };

	if (run_ok(argv, entry, err, errlen) < 0)
		return -1;
	chomp(*entry);
	return 0;
}

int adm_pf_service_set(const char *dir, const char *service_type, const char *entry,
                       char *err, size_t errlen)
{
	size_t len = strlen(service_type) + strlen(entry) + 2;
	char *arg = malloc(len);
	const char *argv[] = { "postconf", "-c", dir, "-M", arg, NULL };
	int rc;

	if (arg == NULL) {
		rdb_seterr(err, errlen, "out of memory");
		return -1;
	}
	snprintf(arg, len, "%s=%s", service_type, entry);
	rc = run_ok(argv, NULL, err, errlen);
	free(arg);
	return rc;
}

int adm_pf_services(const char *dir, char **all, char *err, size_t errlen)
{
	const char *argv[] = { "postconf", "-c", dir, "-M", NULL };

	return run_ok(argv, all, err, errlen);
}

int adm_pf_service_delete(const char *dir, const char *service_type, char *err,
                          size_t errlen)
{
	const char *argv[] = { "postconf", "-c", dir, "-MX", service_type, NULL };

	return run_ok(argv, NULL, err, errlen);
}

int adm_pf_postmap(const char *dir, const char *file, char *err, size_t errlen)
{
	size_t len = strlen(file) + sizeof "hash:";
	char *arg = malloc(len);
	const char *argv[] = { "postmap", "-c", dir, arg, NULL };
	int rc;

	if (arg == NULL) {
		rdb_seterr(err, errlen, "out of memory");
		return -1;
	}
	snprintf(arg, len, "hash:%s", file);
	rc = run_ok(argv, NULL, err, errlen);
	free(arg);
	return rc;
}

bool adm_pf_running(const char *dir)
{
	const char *argv[] = { "postfix", "-c", dir, "status", NULL };
	char err[64];
	int st = 1;

	return adm_run(argv, NULL, NULL, &st, err, sizeof err) == 0 && st == 0;
}

int adm_pf_reload(const char *dir, char *err, size_t errlen)
{
	const char *argv[] = { "postfix", "-c", dir, "reload", NULL };

	return run_ok(argv, NULL, err, errlen);
}

int adm_pf_check(const char *dir, char *err, size_t errlen)
{
	const char *argv[] = { "postfix", "-c", dir, "check", NULL };

	return run_ok(argv, NULL, err, errlen);
}

bool adm_pf_entry_equal(const char *entry, const char *const want[], size_t n)
{
	const char *p = entry;
	size_t i = 0;

	for (;;) {
		size_t len;

		while (*p == ' ' || *p == '\t' || *p == '\n')
			p++;
		if (*p == '\0')
			break;
		len = strcspn(p, " \t\n");
		if (i >= n || strlen(want[i]) != len || strncmp(p, want[i], len) != 0)
			return false;
		i++;
		p += len;
	}
	return i == n;
}
