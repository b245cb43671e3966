/*
 * notify.c — the notifier thread and how it runs sendmail (see notify.h).
 *
 * Why fork + execve by hand: no shell may see a login or an address (they are arguments,
 * and the login is not even among those), the child must not inherit the milter's
 * descriptors (libmilter's sockets, the databases) nor its blocked signals, and a
 * sendmail that hangs must be killed with everything it started (its own process group:
 * Postfix's sendmail runs postdrop).
 */
#include "notify.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "decide.h"
#include "log.h"
#include "rate.h"

/* A queued notification: the event and the configuration it is sent with (a reload in the
 * meantime does not redirect it). */
struct job {
	struct mlt_notice ev;
	char to[MLT_PATH_MAX], from[MLT_PATH_MAX], sendmail[MLT_PATH_MAX], pfconf[MLT_PATH_MAX];
	int64_t period, timeout;
};

struct mlt_notifier {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t thread;
	bool stop;
	struct mlt_gate *gate;
	struct job q[MLT_NOTIFY_QUEUE];
	size_t head, count;
	struct mlt_notify_stats stats;
	char host[128];
};

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The child's side: only async-signal-safe calls between fork and execve. */
static _Noreturn void child(int in, int out, char *const argv[], char *const envp[])
{
	sigset_t none;
	struct sigaction dfl = { .sa_handler = SIG_DFL };

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	sigaction(SIGPIPE, &dfl, NULL);
	setpgid(0, 0);
	if (dup2(in, STDIN_FILENO) < 0 || dup2(out, STDOUT_FILENO) < 0 ||
	    dup2(out, STDERR_FILENO) < 0)
		_exit(126);
	close_range(3, ~0U, 0);
	execve(argv[0], argv, envp);
	_exit(127);
}

/* Reads what sendmail printed (first bytes kept for the log) without blocking. */
static void drain(int fd, char *out, size_t outlen, size_t *got)
{
	char tmp[512];
	ssize_t r;

	while ((r = read(fd, tmp, sizeof tmp)) > 0) {
		size_t take = (size_t)r;

		if (*got + 1 < outlen) {
			if (take > outlen - 1 - *got)
				take = outlen - 1 - *got;
			memcpy(out + *got, tmp, take);
			*got += take;
			out[*got] = '\0';
		}
	}
}

/* Runs sendmail with `msg` on stdin. 0 on exit status 0; else -1 with why in err. */
static int run_sendmail(struct job *j, const char *msg, size_t len, char *err, size_t errlen)
{
	/* execve wants char *: writable copies of the constant words */
	char opt_i[] = "-i", opt_f[] = "-f", opt_c[] = "-C", dashes[] = "--";
	char path_env[] = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";
	char *argv[10];
	char *const envp[] = { path_env, NULL };
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, status = 0, a = 0;
	char said[160] = "", shown[160];
	size_t got = 0;
	int64_t deadline;
	pid_t pid, w = 0;
	bool killed = false;

	argv[a++] = j->sendmail;
	argv[a++] = opt_i;
	argv[a++] = opt_f;
	argv[a++] = j->from;
	if (j->pfconf[0] != '\0') {
		argv[a++] = opt_c;
		argv[a++] = j->pfconf;
	}
	argv[a++] = dashes;
	argv[a++] = j->to;
	argv[a] = NULL;
	if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		goto fail;
	}
	pid = fork();
	if (pid < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		goto fail;
	}
	if (pid == 0)
		child(in[0], out[1], argv, envp);
	close(in[0]);
	close(out[1]);
	in[0] = out[1] = -1;
	/* the message (a few KiB) fits the pipe: a sendmail that reads nothing cannot block us */
	fcntl(in[1], F_SETFL, O_NONBLOCK);
	fcntl(out[0], F_SETFL, O_NONBLOCK);
	if (write(in[1], msg, len) != (ssize_t)len) {
		/* EPIPE: it died before reading; its exit status says more */
		sigset_t pipe_set;
		struct timespec zero = { 0, 0 };

		sigemptyset(&pipe_set);
		sigaddset(&pipe_set, SIGPIPE);
		sigtimedwait(&pipe_set, NULL, &zero);
	}
	close(in[1]);
	in[1] = -1;
	deadline = mono_ms() + j->timeout * 1000;
	for (;;) {
		struct pollfd p = { out[0], POLLIN, 0 };
		int64_t left = deadline - mono_ms();

		w = waitpid(pid, &status, WNOHANG);
		if (w == pid || (w < 0 && errno != EINTR))
			break;
		if (left <= 0) {
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			killed = true;
			while ((w = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
				;
			break;
		}
		if (poll(&p, 1, (int)(left < 100 ? left : 100)) > 0)
			drain(out[0], said, sizeof said, &got);
	}
	drain(out[0], said, sizeof said, &got);
	close(out[0]);
	for (char *nl = said; *nl; nl++)
		if (*nl == '\n') {
			*nl = '\0';
			break;
		}
	mlt_sanitize(shown, sizeof shown, said);
	if (killed) {
		snprintf(err, errlen, "%s did not finish within %llds: killed", j->sendmail,
		         (long long)j->timeout);
		return -1;
	}
	if (w != pid) {
		snprintf(err, errlen, "waiting for %s: %s", j->sendmail, strerror(errno));
		return -1;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
		snprintf(err, errlen, "cannot run %s (missing or not executable)", j->sendmail);
	else if (WIFEXITED(status))
		snprintf(err, errlen, "%s exited with status %d%s%s", j->sendmail,
		         WEXITSTATUS(status), shown[0] ? ": " : "", shown);
	else
		snprintf(err, errlen, "%s killed by signal %d", j->sendmail, WTERMSIG(status));
	return -1;
fail:
	for (int k = 0; k < 2; k++) {
		if (in[k] >= 0)
			close(in[k]);
		if (out[k] >= 0)
			close(out[k]);
	}
	return -1;
}

static void send_one(struct mlt_notifier *n, struct job *j)
{
	char msg[8192], err[768], login[80];
	size_t len = mlt_notice_build(&j->ev, j->from, j->to, n->host, j->period, msg, sizeof msg);
	bool ok;

	mlt_sanitize(login, sizeof login, j->ev.login);
	if (len == 0) {
		snprintf(err, sizeof err, "message too long");
		ok = false;
	} else {
		ok = run_sendmail(j, msg, len, err, sizeof err) == 0;
	}
	pthread_mutex_lock(&n->mu);
	if (ok)
		n->stats.sent++;
	else
		n->stats.failed++;
	pthread_mutex_unlock(&n->mu);
	if (ok)
		mlt_log(LOG_INFO, "notification sent to %s: login=%s event=%s", j->to, login,
		        mlt_notice_kind_name(j->ev.kind));
	else
		mlt_log(LOG_WARNING, "notification to %s failed (login=%s event=%s): %s", j->to,
		        login, mlt_notice_kind_name(j->ev.kind), err);
}

static void *notifier_thread(void *arg)
{
	struct mlt_notifier *n = arg;
	sigset_t set;

	/* a sendmail that dies before reading its message must not kill the milter */
	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	pthread_mutex_lock(&n->mu);
	for (;;) {
		struct job j;

		while (n->count == 0 && !n->stop)
			pthread_cond_wait(&n->cv, &n->mu);
		if (n->stop)
			break;
		j = n->q[n->head];
		n->head = (n->head + 1) % MLT_NOTIFY_QUEUE;
		n->count--;
		pthread_mutex_unlock(&n->mu);
		send_one(n, &j);
		pthread_mutex_lock(&n->mu);
	}
	pthread_mutex_unlock(&n->mu);
	return NULL;
}

struct mlt_notifier *mlt_notifier_start(char *err, size_t errlen)
{
	struct mlt_notifier *n = calloc(1, sizeof *n);

	if (n == NULL || (n->gate = mlt_gate_new()) == NULL) {
		free(n);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (gethostname(n->host, sizeof n->host) != 0)
		n->host[0] = '\0';
	n->host[sizeof n->host - 1] = '\0';
	pthread_mutex_init(&n->mu, NULL);
	pthread_cond_init(&n->cv, NULL);
	if (pthread_create(&n->thread, NULL, notifier_thread, n) != 0) {
		snprintf(err, errlen, "cannot start the notifier thread");
		pthread_cond_destroy(&n->cv);
		pthread_mutex_destroy(&n->mu);
		mlt_gate_free(n->gate);
		free(n);
		return NULL;
	}
	return n;
}

void mlt_notifier_stop(struct mlt_notifier *n)
{
	if (n == NULL)
		return;
	pthread_mutex_lock(&n->mu);
	n->stop = true;
	pthread_cond_signal(&n->cv);
	pthread_mutex_unlock(&n->mu);
	pthread_join(n->thread, NULL);
	if (n->count > 0)
		mlt_log(LOG_WARNING, "stopping: %zu queued notification(s) not sent", n->count);
	if (n->stats.sent + n->stats.failed + n->stats.dropped > 0)
		mlt_log(LOG_INFO, "notifications: %llu sent, %llu failed, %llu dropped",
		        (unsigned long long)n->stats.sent, (unsigned long long)n->stats.failed,
		        (unsigned long long)n->stats.dropped);
	pthread_cond_destroy(&n->cv);
	pthread_mutex_destroy(&n->mu);
	mlt_gate_free(n->gate);
	free(n);
}

void mlt_notify(struct mlt_notifier *n, const struct mlt_config *cfg,
                const struct mlt_notice *ev)
{
	enum mlt_gate_result r;
	uint64_t count = 0;
	struct job *j;
	char login[80];
	const char *dropped = NULL;

	if (n == NULL || cfg == NULL || cfg->notify_to[0] == '\0')
		return;
	pthread_mutex_lock(&n->mu);
	r = mlt_gate_check(n->gate, ev->login, ev->kind, mlt_rate_clock(), cfg->notify_period,
	                   (uint64_t)cfg->notify_refused_senders, &count);
	if (r == MLT_GATE_SEND && n->count == MLT_NOTIFY_QUEUE)
		dropped = "the queue is full";
	else if (r == MLT_GATE_FULL)
		dropped = "too many logins to track";
	else if (r == MLT_GATE_NOMEM)
		dropped = "internal error";
	if (dropped != NULL) {
		n->stats.dropped++;
	} else if (r == MLT_GATE_SEND) {
		j = &n->q[(n->head + n->count) % MLT_NOTIFY_QUEUE];
		j->ev = *ev;
		j->ev.count = count;
		memcpy(j->to, cfg->notify_to, sizeof j->to);
		memcpy(j->from, cfg->notify_from, sizeof j->from);
		memcpy(j->sendmail, cfg->notify_sendmail, sizeof j->sendmail);
		memcpy(j->pfconf, cfg->notify_postfix_config, sizeof j->pfconf);
		j->period = cfg->notify_period;
		j->timeout = cfg->notify_timeout;
		n->count++;
		pthread_cond_signal(&n->cv);
	}
	pthread_mutex_unlock(&n->mu);
	if (dropped != NULL) {
		mlt_sanitize(login, sizeof login, ev->login);
		mlt_log(LOG_WARNING, "notification dropped (login=%s event=%s): %s",
		        login, mlt_notice_kind_name(ev->kind), dropped);
	}
}

void mlt_notifier_stats(struct mlt_notifier *n, struct mlt_notify_stats *out)
{
	memset(out, 0, sizeof *out);
	if (n == NULL)
		return;
	pthread_mutex_lock(&n->mu);
	*out = n->stats;
	pthread_mutex_unlock(&n->mu);
}
