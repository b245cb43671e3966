/*
 * main.c — relay-milter: command line, start-up order, signals, shutdown.
 *
 * Start-up order (why): parse and validate the configuration; fork (before any thread
 * exists); block the signals in every future thread; write the PID file while still root;
 * drop privileges; open the databases (a SQLite connection must not cross fork()), the
 * state writer first applying what a killed milter left in its crash journal, so counters
 * and audit log are whole before anyone is answered; load the counters and apply the
 * counter resets of relay-admin (reset.h) over them, so none of that brings reset counts
 * back (a PostgreSQL state database instead gets its admission pool: the counters stay in
 * the database, where a reset clears them); start the notifier (notify.h: after the drop,
 * so sendmail runs as the milter's user); start the metrics file thread when metrics_file
 * is set (metrics.h; as the milter's user, after the state writer, so the first file
 * already counts from a whole state); create the socket as the milter's user; start the
 * SIGUSR1 reload thread; run libmilter's loop
 * (seam.c, the only module that calls smfi_*). At stop the metrics file is written last,
 * after the writer flushed, so it shows the final counts.
 * libmilter's own signal thread turns SIGHUP, SIGTERM and SIGINT into a stop; afterwards
 * the state writer flushes so that counters survive the restart, retrying for up to
 * stop_flush_timeout seconds; records it still cannot write make the exit status 1.
 *
 * Exit codes: 0 stopped cleanly (everything flushed) or -n found the configuration valid;
 * 1 runtime failure, including state records lost at stop; 2 usage or configuration error.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "callbacks.h"
#include "log.h"
#include "metrics.h"
#include "relay-config.h"
#include "reset.h"
#include "safefs.h"
#include "seam.h"
#include "state.h"

struct reload_ctx {
	const char *path;
	struct mlt_config current;
	struct mlt_daemon *d;
	atomic_bool stop;
};

static void usage(FILE *to)
{
	fprintf(to,
	        "usage: relay-milter [-c FILE] [-f] [-n] [-h] [-V]\n"
	        "  -c FILE  configuration file (default %s)\n"
	        "  -f       stay in the foreground (for systemd)\n"
	        "  -n       check the configuration and exit\n"
	        "  -V       print the version\n", RELAY_DEFAULT_MILTER_CONF);
}

static bool restart_needed(const struct mlt_config *a, const struct mlt_config *b)
{
	return strcmp(a->socket, b->socket) != 0 || a->socket_mode != b->socket_mode ||
	       strcmp(a->user, b->user) != 0 || strcmp(a->pid_file, b->pid_file) != 0 ||
	       strcmp(a->users_db, b->users_db) != 0 || strcmp(a->state_db, b->state_db) != 0 ||
	       a->log != b->log || a->log_facility != b->log_facility || a->timeout != b->timeout ||
	       strcmp(a->metrics_file, b->metrics_file) != 0 ||
	       a->metrics_interval != b->metrics_interval;
}

/* SIGUSR1: build a new configuration and swap it in; sessions keep the one they began with. */
static void *reload_thread(void *arg)
{
	struct reload_ctx *r = arg;
	sigset_t set;
	int sig;

	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	for (;;) {
		struct mlt_config next;
		char err[512];

		if (sigwait(&set, &sig) != 0 || atomic_load(&r->stop))
			break;
		if (!mlt_config_load(r->path, &next, err, sizeof err)) {
			mlt_log(LOG_ERR, "reload refused, keeping the running configuration: %s", err);
			continue;
		}
		if (restart_needed(&r->current, &next))
			mlt_log(LOG_WARNING, "reload: socket, user, pid_file, databases, log sink,"
			        " timeout and metrics changes take effect only after a restart");
		if (mlt_config_publish(&next) != 0) {
			mlt_log(LOG_ERR, "reload failed: out of memory");
			continue;
		}
		mlt_log_level(next.log_level);
		mlt_store_set_refresh(r->d->store, next.policy_refresh_ms);
		mlt_writer_set(r->d->writer, next.state_flush_ms, next.audit_retention,
		               mlt_store_horizon(r->d->store));
		r->current = next;
		mlt_metrics_config_reload();
		mlt_log(LOG_NOTICE, "configuration reloaded from %s", r->path);
	}
	return NULL;
}

/* Start-up: persisted usage rows (wall-clock times) onto the limiter's clock (rate.h). */
struct load_ctx {
	struct mlt_rate *rate;
	int64_t wall_now, now;
	const struct mlt_reset_list *resets;   /* less what counter resets cleared (reset.h) */
};

static int load_row(const char *login, int64_t ts, const uint64_t v[3], void *arg)
{
	const struct load_ctx *l = arg;
	uint64_t left[RDB_METRICS] = { v[0], v[1], v[2] };

	mlt_reset_filter(l->resets, login, ts, left);
	return mlt_rate_load(l->rate, login, ts, left, l->wall_now, l->now) ? 0 : 1;
}

/* The PID file, written while still root, usually in a folder that belongs to the milter's
 * user (/run/relay-milter). Through descriptors (sql/safefs.h): a link, a FIFO (an open for
 * writing would hang the start) or a hard link planted under the name is refused, a link on
 * the way is followed only inside folders nobody else can write, and at exit we remove the
 * name only while it is still our file. */
struct pid_file {
	int dirfd;
	char name[NAME_MAX + 1];
	struct stat st;
};

static int write_pid(const char *path, struct pid_file *pf, char *err, size_t errlen)
{
	char buf[32];
	int fd, n;

	pf->dirfd = sfs_open_parent(path, 0, NULL, pf->name, sizeof pf->name, err, errlen);
	if (pf->dirfd < 0)
		return -1;
	fd = sfs_open_write_at(pf->dirfd, pf->name, 0644, &pf->st, err, errlen);
	if (fd < 0) {
		close(pf->dirfd);
		pf->dirfd = -1;
		return -1;
	}
	n = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
	if (write(fd, buf, (size_t)n) != n || close(fd) != 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

static void remove_pid(struct pid_file *pf)
{
	if (pf->dirfd < 0)
		return;
	if (sfs_unlink_same_at(pf->dirfd, pf->name, &pf->st) != 0 && errno != ENOENT)
		mlt_log(LOG_WARNING, "PID file %s not removed: %s", pf->name,
		        errno == ESTALE ? "it is no longer ours" : strerror(errno));
	close(pf->dirfd);
	pf->dirfd = -1;
}

static int drop_privileges(const char *user, char *err, size_t errlen)
{
	struct passwd *pw;

	if (user[0] == '\0')
		return 0;
	pw = getpwnam(user);
	if (pw == NULL) {
		snprintf(err, errlen, "user \"%s\" does not exist", user);
		return -1;
	}
	if (getuid() != 0 && geteuid() != 0) {
		if (getuid() == pw->pw_uid)
			return 0;
		snprintf(err, errlen, "must start as root to become \"%s\"", user);
		return -1;
	}
	if (initgroups(pw->pw_name, pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 ||
	    setuid(pw->pw_uid) != 0) {
		snprintf(err, errlen, "dropping privileges to %s: %s", user, strerror(errno));
		return -1;
	}
	if (setuid(0) == 0) {
		snprintf(err, errlen, "privileges could be regained after dropping them");
		return -1;
	}
	return 0;
}

/* Forks into the background. The parent waits on a pipe until the child reports that it
 * listens (exit 0) or dies trying (exit 1), so `relay-milter` started by hand or by an init
 * script fails visibly; the child's start-up errors still reach stderr until then.
 * Returns the write end of that pipe in the child. */
static int daemonize(void)
{
	int fds[2];
	pid_t pid;
	char c;

	if (pipe2(fds, O_CLOEXEC) != 0)
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid > 0) {
		close(fds[1]);
		_exit(read(fds[0], &c, 1) == 1 ? 0 : 1);
	}
	close(fds[0]);
	if (setsid() < 0 || chdir("/") != 0)
		return -1;
	return fds[1];
}

/* Start-up is over: detach stdio (stderr stays if it is the log sink). */
static void detach_stdio(int ready_fd, bool keep_stderr)
{
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC);

	if (fd >= 0) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		if (!keep_stderr)
			dup2(fd, STDERR_FILENO);
		if (fd > STDERR_FILENO)
			close(fd);
	}
	if (ready_fd >= 0) {
		if (write(ready_fd, "R", 1) != 1)
			mlt_log(LOG_WARNING, "could not tell the parent process that we are ready");
		close(ready_fd);
	}
}

int main(int argc, char **argv)
{
	const char *path = RELAY_DEFAULT_MILTER_CONF;
	bool foreground = false, check_only = false;
	struct mlt_config cfg;
	struct mlt_daemon d = { 0 };
	struct mlt_reset_ctx resets_ctx = { 0 };
	struct reload_ctx rc = { 0 };
	struct pid_file pid = { .dirfd = -1 };
	struct mlt_metrics_file *metrics = NULL;
	pthread_t reloader;
	bool reloader_started = false;
	int ready_fd = -1;
	sigset_t set;
	char err[512];
	int opt, status = 1;

	while ((opt = getopt(argc, argv, "c:fnhV")) != -1) {
		switch (opt) {
		case 'c': path = optarg; break;
		case 'f': foreground = true; break;
		case 'n': check_only = true; break;
		case 'V': printf("relay-milter %s\n", RELAY_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (!mlt_config_load(path, &cfg, err, sizeof err)) {
		fprintf(stderr, "relay-milter: %s\n", err);
		return 2;
	}
	if (cfg.user[0] != '\0' && getpwnam(cfg.user) == NULL) {
		fprintf(stderr, "relay-milter: %s: user \"%s\" does not exist\n", path, cfg.user);
		return 2;
	}
	if (check_only) {
		if (cfg.notify_to[0] != '\0' && access(cfg.notify_sendmail, X_OK) != 0)
			fprintf(stderr, "relay-milter: %s: warning: notify_sendmail %s: %s "
			        "(notifications would fail)\n", path, cfg.notify_sendmail, strerror(errno));
		printf("relay-milter: %s: configuration OK\n", path);
		return 0;
	}
	mlt_log_open(cfg.log, cfg.log_facility, cfg.log_level);
	mlt_log_startup(true);
	if (!foreground && (ready_fd = daemonize()) < 0) {
		fprintf(stderr, "relay-milter: cannot become a daemon: %s\n", strerror(errno));
		return 1;
	}
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (cfg.pid_file[0] != '\0' && write_pid(cfg.pid_file, &pid, err, sizeof err) != 0) {
		mlt_log(LOG_ERR, "PID file %s: %s", cfg.pid_file, err);
		remove_pid(&pid);
		return 1;
	}
	if (drop_privileges(cfg.user, err, sizeof err) != 0) {
		mlt_log(LOG_ERR, "%s", err);
		goto out;
	}
	if (geteuid() == 0)
		mlt_log(LOG_WARNING, "running as root: set `user` in the configuration (or User= in "
		        "the systemd unit) so that a flaw in the milter cannot become root");
	umask(077);
	if (mlt_store_open(cfg.users_db, cfg.policy_refresh_ms, &d.store, err, sizeof err) != 0) {
		mlt_log(LOG_ERR, "users database: %s", err);
		goto out;
	}
	d.rate = mlt_rate_new();
	if (d.rate == NULL ||
	    mlt_writer_start(cfg.state_db, cfg.state_flush_ms, cfg.audit_retention, &d.writer, err,
	                     sizeof err) != 0) {
		mlt_log(LOG_ERR, "state database: %s", d.rate ? err : "out of memory");
		goto out;
	}
	/* a shared (PostgreSQL) state database: admission happens in it, nothing to load;
	 * counter resets zero its usage rows (the writer's records, audited once across the
	 * nodes by the shared reset mark), pushed again at each start like on SQLite */
	if (rdb_is_postgresql(cfg.state_db)) {
		struct mlt_reset_list resets;

		if (mlt_admit_new(cfg.state_db, &d.admit, err, sizeof err) != 0) {
			mlt_log(LOG_ERR, "state database (admission): %s", err);
			goto out;
		}
		if (mlt_reset_list_load(d.store, mlt_store_horizon(d.store), &resets, err,
		                        sizeof err) != 0) {
			mlt_log(LOG_ERR, "users database: %s", err);
			goto out;
		}
		mlt_writer_set(d.writer, cfg.state_flush_ms, cfg.audit_retention,
		               mlt_store_horizon(d.store));
		resets_ctx.rate = d.rate;
		resets_ctx.writer = d.writer;
		mlt_reset_start(d.store, &resets_ctx, &resets);
		mlt_reset_list_free(&resets);
	} else {
		int64_t keep = mlt_store_horizon(d.store);
		struct mlt_reset_list resets;
		struct load_ctx l = { d.rate, (int64_t)time(NULL), mlt_rate_clock(), &resets };

		/* counters less what relay-admin's counter resets cleared (reset.h), after the
		 * journal's records are in: a reset clears what they would bring back; then new
		 * resets arrive with each policy refresh */
		if (mlt_reset_list_load(d.store, keep, &resets, err, sizeof err) != 0) {
			mlt_log(LOG_ERR, "users database: %s", err);
			goto out;
		}
		if (mlt_writer_load_usage(cfg.state_db, l.wall_now, keep, load_row, &l, err,
		                          sizeof err) != 0) {
			mlt_log(LOG_ERR, "loading rate counters: %s", err);
			mlt_reset_list_free(&resets);
			goto out;
		}
		mlt_writer_set(d.writer, cfg.state_flush_ms, cfg.audit_retention, keep);
		resets_ctx.rate = d.rate;
		resets_ctx.writer = d.writer;
		mlt_reset_start(d.store, &resets_ctx, &resets);
		mlt_reset_list_free(&resets);
	}
	if (mlt_config_publish(&cfg) != 0) {
		mlt_log(LOG_ERR, "out of memory");
		goto out;
	}
	d.notifier = mlt_notifier_start(err, sizeof err);
	if (d.notifier == NULL)
		mlt_log(LOG_WARNING, "no limit-hit notifications: %s", err);
	else if (cfg.notify_to[0] != '\0' && access(cfg.notify_sendmail, X_OK) != 0)
		mlt_log(LOG_WARNING, "notify_sendmail %s: %s: notifications to %s will fail",
		        cfg.notify_sendmail, strerror(errno), cfg.notify_to);
	mlt_callbacks_init(&d);
	/* after the counters are loaded and before anyone is answered; as the milter's user,
	 * so the folder must let that user write (e.g. node_exporter's textfile folder) */
	if (mlt_metrics_file_start(cfg.metrics_file, cfg.metrics_interval, &metrics, err,
	                           sizeof err) != 0) {
		mlt_log(LOG_ERR, "metrics file: %s", err);
		goto out;
	}
	umask(~cfg.socket_mode & 0777);
	if (mlt_seam_listen(&cfg, err, sizeof err) != 0) {
		mlt_log(LOG_ERR, "%s", err);
		goto out;
	}
	umask(077);
	rc.path = path;
	rc.current = cfg;
	rc.d = &d;
	if (pthread_create(&reloader, NULL, reload_thread, &rc) == 0)
		reloader_started = true;
	else
		mlt_log(LOG_WARNING, "no reload thread: SIGUSR1 will be ignored");
	mlt_log(LOG_NOTICE, "relay-milter %s listening on %s", RELAY_VERSION, cfg.socket);
	mlt_log_startup(false);
	if (!foreground)
		detach_stdio(ready_fd, cfg.log == MLT_LOG_STDERR);
	status = mlt_seam_run() == 0 ? 0 : 1;
	mlt_log(LOG_NOTICE, "stopping");
out:
	if (reloader_started) {
		atomic_store(&rc.stop, true);
		pthread_kill(reloader, SIGUSR1);
		pthread_join(reloader, NULL);
	}
	/* the latest reloaded configuration says how long the stop may retry */
	if (mlt_writer_stop(d.writer, (reloader_started ? &rc.current : &cfg)->stop_flush_timeout)
	    != 0) {
		mlt_log(LOG_ERR, "exiting with status 1: state records were lost at stop (listed above)");
		status = 1;
	}
	mlt_metrics_file_stop(metrics);   /* after the writer: the file shows the final counts */
	mlt_notifier_stop(d.notifier);
	mlt_store_close(d.store);
	mlt_rate_free(d.rate);
	mlt_admit_free(d.admit);
	mlt_config_unpublish();
	remove_pid(&pid);
	return status;
}
