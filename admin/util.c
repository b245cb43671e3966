/*
 * util.c — relay-admin's shared helpers: messages, exit-code mapping, opening the users
 * database, safe printing, reading a secret, dates. See adm.h for the contracts.
 *
 * Thread safety: none needed (relay-admin is single-threaded). adm_read_secret() changes
 * and restores the terminal's echo flag.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "adm.h"

/* The sink of every diagnostic: "prog: [kind: ]message\n" on stderr, after flushing
 * ctx->out so that the two streams interleave in the order they were written. */
__attribute__((format(printf, 3, 0)))
static void vmessage(const struct adm_ctx *ctx, enum adm_diag kind, const char *fmt,
                     va_list ap)
{
	static const char *const kinds[] = { "", "warning: ", "note: " };

	fflush(ctx->out);
	fprintf(stderr, "%s: %s", ctx->prog, kinds[kind]);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void adm_diag(const struct adm_ctx *ctx, enum adm_diag kind, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmessage(ctx, kind, fmt, ap);
	va_end(ap);
}

int adm_usage(const struct adm_ctx *ctx, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmessage(ctx, ADM_DIAG_ERROR, fmt, ap);
	va_end(ap);
	if (ctx->cmd != NULL)
		adm_usage_line(stderr, ctx, ctx->cmd);
	return ADM_EXIT_USAGE;
}

int adm_run_buffered(struct adm_ctx *ctx, int (*run)(struct adm_ctx *, int, char **),
                     int argc, char **argv)
{
	FILE *real = ctx->out, *mem;
	char *data = NULL;
	size_t len = 0;
	int rc;

	mem = open_memstream(&data, &len);
	if (mem == NULL) {
		adm_err(ctx, "out of memory");
		return ADM_EXIT_FAIL;
	}
	ctx->out = mem;
	rc = run(ctx, argc, argv);
	ctx->out = real;
	if (fclose(mem) != 0 && rc == ADM_EXIT_OK) {
		adm_err(ctx, "out of memory");
		rc = ADM_EXIT_FAIL;
	}
	if (rc == ADM_EXIT_OK && len > 0)
		fwrite(data, 1, len, real);
	free(data);
	return rc;
}

int adm_exit_for(enum rdb_result r)
{
	switch (r) {
	case RDB_OK: return ADM_EXIT_OK;
	case RDB_NOTFOUND: return ADM_EXIT_NOTFOUND;
	case RDB_EXISTS: return ADM_EXIT_EXISTS;
	case RDB_INVALID: return ADM_EXIT_USAGE;
	case RDB_ERROR: return ADM_EXIT_DB;
	}
	return ADM_EXIT_FAIL;
}

int adm_rdb_fail(const struct adm_ctx *ctx, const struct rdb *db, enum rdb_result r)
{
	adm_err(ctx, "%s", rdb_errmsg(db));
	return adm_exit_for(r);
}

int adm_in_transaction(const struct adm_ctx *ctx, struct rdb *db,
                       enum rdb_result (*write)(struct rdb *db, void *arg),
                       void *arg)
{
	enum rdb_result r = rdb_begin(db);

	if (r == RDB_OK)
		r = write(db, arg);
	if (r == RDB_OK)
		r = rdb_commit(db);
	if (r != RDB_OK) {
		rdb_rollback(db);
		return adm_rdb_fail(ctx, db, r);
	}
	return ADM_EXIT_OK;
}

int adm_db_open(const struct adm_ctx *ctx, enum rdb_mode mode, struct rdb **db)
{
	char err[512];

	if (rdb_open(ctx->db_path, mode, db, err, sizeof err) != RDB_OK) {
		adm_err(ctx, "%s", err);
		return ADM_EXIT_DB;
	}
	return ADM_EXIT_OK;
}

int adm_check_name(const struct adm_ctx *ctx, const char *name)
{
	char why[128];

	if (!rdb_name_valid(name, why, sizeof why))
		return adm_usage(ctx, "invalid login name: %s", why);
	return ADM_EXIT_OK;
}

int adm_operands(const struct adm_ctx *ctx, int argc, char **argv, int n, const char *expected)
{
	static const struct option none[] = { { NULL, 0, NULL, 0 } };

	if (getopt_long(argc, argv, "", none, NULL) != -1)
		return adm_usage(ctx, "unknown option: %s", argv[optind - 1]);
	if (argc - optind != n)
		return adm_usage(ctx, "%s", expected);
	return ADM_EXIT_OK;
}

int adm_name_arg(const struct adm_ctx *ctx, int argc, char **argv, const char **name)
{
	int rc = adm_operands(ctx, argc, argv, 1, "expected one login name");

	if (rc != ADM_EXIT_OK)
		return rc;
	*name = argv[optind];
	return adm_check_name(ctx, *name);
}

void adm_print_safe(FILE *f, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p < 0x20 || *p > 0x7e || *p == '\\')
			fprintf(f, "\\x%02x", *p);
		else
			fputc(*p, f);
	}
}

const char *adm_safe(const char *s, char *buf, size_t len)
{
	size_t n = 0;

	if (len == 0)
		return buf;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		bool esc = *p < 0x20 || *p > 0x7e || *p == '\\';

		if (n + (esc ? 4 : 1) >= len)
			break;
		if (esc)
			n += (size_t)snprintf(buf + n, len - n, "\\x%02x", *p);
		else
			buf[n++] = (char)*p;
	}
	buf[n] = '\0';
	return buf;
}

/* ---- secrets from stdin ----------------------------------------------------------------- */

/* Reads one line from fd 0 byte by byte (no stdio buffer keeps a copy of the secret).
 * Returns the length, -1 on I/O error, -2 if it does not fit or holds a NUL. */
static ssize_t read_line(char *buf, size_t buflen)
{
	size_t n = 0;
	bool bad = false;

	for (;;) {
		char c;
		ssize_t r = read(STDIN_FILENO, &c, 1);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0 || c == '\n')
			break;
		if (c == '\0' || n + 1 >= buflen)
			bad = true;
		else
			buf[n++] = c;
	}
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	buf[n] = '\0';
	return bad ? -2 : (ssize_t)n;
}

/* A signal while echo is off must not leave the terminal silent: restore it, then die of
 * the signal as if we had no handler (tcsetattr and raise are async-signal-safe). */
static struct termios saved_tty;
static const int tty_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP };

static void restore_tty(int sig)
{
	tcsetattr(STDIN_FILENO, TCSANOW, &saved_tty);
	signal(sig, SIG_DFL);
	raise(sig);
}

static int prompt_read(const struct adm_ctx *ctx, const char *prompt, char *buf, size_t buflen)
{
	struct sigaction sa, prev[sizeof tty_signals / sizeof tty_signals[0]];
	struct termios quiet;
	bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved_tty) == 0;
	ssize_t n;

	if (tty) {
		quiet = saved_tty;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		quiet.c_lflag |= ECHONL;
		memset(&sa, 0, sizeof sa);
		sa.sa_handler = restore_tty;
		sigemptyset(&sa.sa_mask);
		for (size_t i = 0; i < sizeof tty_signals / sizeof tty_signals[0]; i++)
			sigaction(tty_signals[i], &sa, &prev[i]);
		/* Echo off first, prompt second: whatever is typed after the prompt is kept. */
		if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) != 0) {
			adm_err(ctx, "cannot turn off echo: %s", strerror(errno));
			n = -3;
			goto restore;
		}
		fprintf(stderr, "%s", prompt);
		fflush(stderr);
	}
	n = read_line(buf, buflen);
restore:
	if (tty) {
		tcsetattr(STDIN_FILENO, TCSANOW, &saved_tty);
		for (size_t i = 0; i < sizeof tty_signals / sizeof tty_signals[0]; i++)
			sigaction(tty_signals[i], &prev[i], NULL);
	}
	if (n == -3)
		return ADM_EXIT_IO;
	if (n == -1) {
		adm_err(ctx, "cannot read the password from stdin: %s", strerror(errno));
		return ADM_EXIT_IO;
	}
	if (n == -2) {
		adm_err(ctx, "password on stdin is too long (max %zu bytes) or contains a NUL byte",
		        buflen - 1);
		return ADM_EXIT_USAGE;
	}
	if (n == 0) {
		adm_err(ctx, "empty password on stdin");
		return ADM_EXIT_USAGE;
	}
	return ADM_EXIT_OK;
}

int adm_read_secret(const struct adm_ctx *ctx, const char *prompt, bool confirm,
                    char *buf, size_t buflen)
{
	char *again;
	int rc;

	if (buflen < 2)
		return ADM_EXIT_USAGE;
	rc = prompt_read(ctx, prompt ? prompt : "Password: ", buf, buflen);
	if (rc != ADM_EXIT_OK || !confirm || !isatty(STDIN_FILENO))
		goto out;
	again = malloc(buflen);
	if (again == NULL) {
		rc = ADM_EXIT_IO;
		goto out;
	}
	rc = prompt_read(ctx, "Again: ", again, buflen);
	if (rc == ADM_EXIT_OK && strcmp(buf, again) != 0) {
		adm_err(ctx, "the passwords do not match");
		rc = ADM_EXIT_USAGE;
	}
	explicit_bzero(again, buflen);
	free(again);
out:
	if (rc != ADM_EXIT_OK)
		explicit_bzero(buf, buflen);
	return rc;
}

/* ---- time ------------------------------------------------------------------------------ */

static bool digits(const char *s, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (H. Hinnant's
 * days_from_civil), so no time zone or libc state is involved. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

bool adm_parse_time(const char *s, int64_t *out)
{
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int y, m, d, hh = 0, mm = 0, ss = 0;
	size_t len;

	if (s == NULL)
		return false;
	len = strlen(s);
	if ((len != 10 && len != 20) || !digits(s, 4, &y) || s[4] != '-' ||
	    !digits(s + 5, 2, &m) || s[7] != '-' || !digits(s + 8, 2, &d))
		return false;
	if (len == 20 && (s[10] != 'T' || !digits(s + 11, 2, &hh) || s[13] != ':' ||
	                  !digits(s + 14, 2, &mm) || s[16] != ':' || !digits(s + 17, 2, &ss) ||
	                  s[19] != 'Z'))
		return false;
	if (y < 1970 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1] || hh > 23 || mm > 59 || ss > 59)
		return false;
	if (m == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
		return false;
	*out = days_from_civil(y, m, d) * 86400 + hh * 3600 + mm * 60 + ss;
	return true;
}

void adm_format_time(int64_t t, char out[ADM_TIME_LEN])
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL ||
	    strftime(out, ADM_TIME_LEN, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, ADM_TIME_LEN, "@%lld", (long long)t);
}
