/*
 * setup_apply.c — `relay-admin setup`, step 3: applying a plan. Backs up the files about to
 * change into <config>/relay-admin-backup/<UTC time>/, writes files beside their target
 * and renames them, runs postconf -e/-X/-M, postmap, `postfix check` and reloads a running
 * instance. On failure it names the backup. See setup.h.
 */
#include "setup.h"
#include "cert.h"
#include "postconf.h"
#include "safefs.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Files are written through folder descriptors (sql/safefs.h): if a folder on the way
 * (the Postfix folder, sasl/, the backup folder) is writable by another user, a link it
 * plants cannot make root write, rename or remove a file elsewhere. */

/* Copies `from` (relative to the Postfix folder cfd) into a new file `to` in the backup
 * folder wfd. Reading may follow a link (main.cf managed elsewhere is fine; the copy stays
 * in root's 0700 folder), but only a regular file is copied: a FIFO would hang us. */
static int copy_file(int cfd, const char *from, int wfd, const char *to, mode_t mode,
                     char *err, size_t errlen)
{
	char buf[8192];
	int in = openat(cfd, from, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC), out;
	struct stat st;
	ssize_t n;
	int rc = 0;

	if (in < 0) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", from, strerror(errno));
		return -1;
	}
	if (fstat(in, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", from);
		close(in);
		return -1;
	}
	if (unlinkat(wfd, to, 0) < 0 && errno != ENOENT) {
		snprintf(err, errlen, "%s: %s", to, strerror(errno));
		close(in);
		return -1;
	}
	out = openat(wfd, to, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (out < 0) {
		snprintf(err, errlen, "%s: %s", to, strerror(errno));
		close(in);
		return -1;
	}
	while ((n = read(in, buf, sizeof buf)) > 0)
		if (write(out, buf, (size_t)n) != n) {
			rc = -1;
			break;
		}
	if (n < 0)
		rc = -1;
	explicit_bzero(buf, sizeof buf);
	close(in);
	if (close(out) < 0)
		rc = -1;
	if (rc < 0)
		snprintf(err, errlen, "copying %s: %s", from, strerror(errno));
	return rc;
}

/* <dir>/relay-admin-backup/<UTC time>/: both folders must be root's and closed to others
 * (they hold a copy of the upstream password map). */
static int backup(const char *dir, char *where, size_t len, char *err, size_t errlen)
{
	char stamp[96];  /* ints of any size fit, for the compiler's sake */
	time_t now = time(NULL);
	struct tm tm;
	const char *files[] = { "main.cf", "master.cf", "sasl/smtpd.conf",
	                        "relay_upstream_passwd", PRIVACY_TABLE };
	int cfd, bfd = -1, wfd = -1, rc = -1;

	gmtime_r(&now, &tm);
	snprintf(stamp, sizeof stamp, "%04d%02d%02dT%02d%02d%02dZ", tm.tm_year + 1900,
	         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
	snprintf(where, len, "%s/relay-admin-backup/%s", dir, stamp);
	cfd = sfs_open_dir(dir, 0, NULL, err, errlen);
	if (cfd < 0)
		return -1;
	bfd = sfs_mkdir_private_at(cfd, "relay-admin-backup", 0700, err, errlen);
	if (bfd >= 0)
		wfd = sfs_mkdir_private_at(bfd, stamp, 0700, err, errlen);
	if (wfd < 0)
		goto out;
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		const char *name = strrchr(files[i], '/') ? strrchr(files[i], '/') + 1 : files[i];

		if (copy_file(cfd, files[i], wfd, name, 0600, err, errlen) < 0)
			goto out;
	}
	rc = 0;
out:
	if (wfd >= 0)
		close(wfd);
	if (bfd >= 0)
		close(bfd);
	close(cfd);
	return rc;
}

/* Writes `text` beside `path` (owner root:root, `mode`) and renames it into place. */
static int write_atomic(const char *path, const char *text, mode_t mode, char *err,
                        size_t errlen)
{
	char name[NAME_MAX + 1];
	int dirfd = sfs_open_parent(path, 0, NULL, name, sizeof name, err, errlen), rc;

	if (dirfd < 0)
		return -1;
	rc = sfs_write_atomic_at(dirfd, name, path, text, strlen(text), mode, 0, 0, err, errlen);
	close(dirfd);
	return rc;
}

/* mkdir -p of the SASL folder, then mode 0755 through its descriptor (owner unchanged; it
 * must be root's: whoever owns it decides what smtpd.conf says): Postfix's smtpd reads
 * smtpd.conf from it after dropping privileges. */
static int make_sasl_dir(const char *dir, char *err, size_t errlen)
{
	int fd = sfs_open_dir(dir, 0755, NULL, err, errlen), rc;

	if (fd < 0)
		return -1;
	rc = sfs_set_dir_owner(fd, dir, (uid_t)-1, (gid_t)-1, 0755, err, errlen);
	close(fd);
	return rc;
}

/* postmap wrote `map`.db beside the map: root's and 0600, set through a descriptor. */
static int secure_map_db(const char *map, char *err, size_t errlen)
{
	char dbfile[PATH_MAX + 4], name[NAME_MAX + 1];
	int dirfd, rc;

	snprintf(dbfile, sizeof dbfile, "%s.db", map);
	dirfd = sfs_open_parent(dbfile, 0, NULL, name, sizeof name, err, errlen);
	if (dirfd < 0)
		return -1;
	rc = sfs_set_owner_at(dirfd, name, dbfile, 0, 0, 0600, false, err, errlen);
	close(dirfd);
	return rc;
}

/* The master.cf entries that change, each joined into one line for `postconf -M`. */
static int apply_services(const struct setup_opts *o, struct plan *p, char *err, size_t errlen)
{
	for (size_t s = 0; s < p->nsvc; s++) {
		char *entry = NULL;
		size_t len = 0;
		FILE *f;
		int rc;

		if (!p->svc[s].change)
			continue;
		f = open_memstream(&entry, &len);
		if (f == NULL)
			return -1;
		for (size_t i = 0; i < p->svc[s].nwords; i++)
			fprintf(f, "%s%s", i ? " " : "", p->svc[s].words[i]);
		if (fclose(f) != 0) {
			free(entry);
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		rc = adm_pf_service_set(o->config_dir, p->svc[s].name, entry, err, errlen);
		free(entry);
		if (rc < 0)
			return -1;
	}
	return 0;
}

int setup_apply(const struct setup_opts *o, struct plan *p)
{
	const struct adm_ctx *ctx = o->ctx;
	char err[2 * PATH_MAX + 256], where[PATH_MAX + 64];

	if (backup(o->config_dir, where, sizeof where, err, sizeof err) < 0) {
		adm_err(ctx, "cannot back up into %s: %s\nnothing was changed", o->config_dir, err);
		return ADM_EXIT_FAIL;
	}
	fprintf(ctx->out, "backup of the previous configuration: %s\n", where);
	if (p->gen_cert) {
		char *host = NULL;

		if (o->hostname == NULL &&
		    adm_pf_get(o->config_dir, "myhostname", &host, err, sizeof err) < 0)
			goto fail;
		if (adm_cert_generate(o->hostname ? o->hostname : host, p->cert, p->key,
		                      p->postfix_gid, err, sizeof err) < 0) {
			free(host);
			goto fail;
		}
		free(host);
	}
	if (p->sasl_change) {
		if (make_sasl_dir(p->sasl_dir, err, sizeof err) < 0)
			goto fail;
		if (write_atomic(p->sasl_conf, p->sasl_conf_text, 0644, err, sizeof err) < 0)
			goto fail;
	}
	if (p->privacy_change &&
	    write_atomic(p->privacy, p->privacy_text, 0644, err, sizeof err) < 0)
		goto fail;
	if (p->map_change) {
		if (write_atomic(p->map, p->map_text, 0600, err, sizeof err) < 0 ||
		    adm_pf_postmap(o->config_dir, p->map, err, sizeof err) < 0 ||
		    secure_map_db(p->map, err, sizeof err) < 0)
			goto fail;
	}
	if (adm_pf_set(o->config_dir, (const char *const *)p->main_kv, p->nmain, err,
	               sizeof err) < 0 ||
	    adm_pf_unset(o->config_dir, (const char *const *)p->main_del, p->ndel, err,
	                 sizeof err) < 0)
		goto fail;
	if (apply_services(o, p, err, sizeof err) < 0)
		goto fail;
	for (size_t i = 0; i < p->nstale; i++)
		if (adm_pf_service_delete(o->config_dir, p->stale[i], err, sizeof err) < 0)
			goto fail;
	setup_plan_print(ctx->out, p, "done:");
	if (adm_pf_check(o->config_dir, err, sizeof err) < 0)
		adm_warn(ctx, "postfix check complains: %s", err);
	if (!o->no_reload && adm_pf_running(o->config_dir)) {
		bool env_changed = false;

		for (size_t i = 0; i < p->nmain; i++)
			env_changed = env_changed ||
			              strncmp(p->main_kv[i], "import_environment=", 19) == 0;
		if (adm_pf_reload(o->config_dir, err, sizeof err) < 0)
			goto fail;
		fprintf(ctx->out, "reloaded the running Postfix\n");
		/* master applies import_environment only when it starts */
		if (env_changed)
			fprintf(ctx->out, "note: import_environment changed (SASL_PATH): restart "
			        "Postfix for it to take effect (systemctl restart postfix, or "
			        "postfix -c %s stop; postfix -c %s start)\n", o->config_dir,
			        o->config_dir);
	} else if (!o->no_reload) {
		fprintf(ctx->out, "Postfix (%s) is not running: start it with "
		        "`postfix -c %s start`\n", o->config_dir, o->config_dir);
	}
	return ADM_EXIT_OK;
fail:
	adm_err(ctx, "failed: %s\nthe previous files are in %s", err, where);
	return ADM_EXIT_FAIL;
}
