/*
 * safefs.c — descriptor-based folder walks and file changes; see safefs.h for the why.
 *
 * The walk keeps the rest of the path in a buffer; a trusted symbolic link replaces the
 * component that named it with its target (restarting from "/" for an absolute target),
 * up to SFS_MAX_LINKS links, as the kernel would. Folders are opened with O_PATH so that a
 * folder we may only search (mode 0711) can still be walked; a folder whose owner we change
 * is reopened for real through "." of that descriptor.
 */
#include "safefs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "errbuf.h"

#define SFS_MAX_LINKS 32
#define DIR_FLAGS (O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)

/* Nobody but root or us can add or change a name in this folder. */
static bool trusted_dir(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 && S_ISDIR(st.st_mode) &&
	       (st.st_uid == 0 || st.st_uid == geteuid()) &&
	       (st.st_mode & (S_IWGRP | S_IWOTH)) == 0;
}

/* Replaces the walk's remaining path `rest` (which starts after the link's name) by
 * target + "/" + rest, in buf. */
static int splice_link(char *buf, size_t buflen, const char *target, const char *rest)
{
	char tmp[PATH_MAX * 2];
	int n = snprintf(tmp, sizeof tmp, "%s/%s", target, rest);

	if (n < 0 || (size_t)n >= sizeof tmp || (size_t)n >= buflen)
		return -1;
	memcpy(buf, tmp, (size_t)n + 1);
	return 0;
}

/* Follows the symbolic link `comp` in *fd if the folder is trusted: *fd becomes the folder
 * to continue from, buf the rest of the walk. */
static int follow_link(int *fd, const char *comp, char *buf, size_t buflen, const char *rest,
                       const char *path, int *links, char *err, size_t errlen)
{
	char target[PATH_MAX];
	ssize_t n;

	if (!trusted_dir(*fd)) {
		rdb_seterr(err, errlen, "%s: %s is a symbolic link in a folder other users can "
		           "write; refusing to follow it", path, comp);
		return -1;
	}
	if (++*links > SFS_MAX_LINKS) {
		rdb_seterr(err, errlen, "%s: %s", path, strerror(ELOOP));
		return -1;
	}
	n = readlinkat(*fd, comp, target, sizeof target - 1);
	if (n < 0 || n == 0) {
		rdb_seterr(err, errlen, "%s: %s: %s", path, comp, n < 0 ? strerror(errno) :
		           "empty symbolic link");
		return -1;
	}
	target[n] = '\0';
	if (splice_link(buf, buflen, target, rest) < 0) {
		rdb_seterr(err, errlen, "%s: path too long", path);
		return -1;
	}
	if (target[0] == '/') {
		int root = open("/", DIR_FLAGS);

		if (root < 0) {
			rdb_seterr(err, errlen, "/: %s", strerror(errno));
			return -1;
		}
		close(*fd);
		*fd = root;
	}
	return 0;
}

int sfs_open_dir(const char *path, mode_t mkdir_mode, bool *created, char *err, size_t errlen)
{
	char buf[PATH_MAX * 2];
	int fd, links = 0;
	char *p;

	if (created)
		*created = false;
	if (path == NULL || path[0] == '\0' || strlen(path) >= PATH_MAX) {
		rdb_seterr(err, errlen, "%s: no folder name, or too long", path ? path : "(null)");
		return -1;
	}
	memcpy(buf, path, strlen(path) + 1);
	fd = open(path[0] == '/' ? "/" : ".", DIR_FLAGS);
	if (fd < 0) {
		rdb_seterr(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	p = buf;
	while (*p) {
		char *comp, *rest;
		int next;

		while (*p == '/')
			p++;
		if (*p == '\0')
			break;
		comp = p;
		rest = strchr(p, '/');
		if (rest)
			*rest++ = '\0';
		else
			rest = comp + strlen(comp);
		if (strcmp(comp, ".") == 0) {
			p = rest;
			continue;
		}
		next = openat(fd, comp, DIR_FLAGS);
		if (next < 0 && errno == ENOENT && mkdir_mode != 0) {
			bool made = mkdirat(fd, comp, mkdir_mode) == 0;

			if (!made && errno != EEXIST) {
				rdb_seterr(err, errlen, "cannot create folder %s in %s: %s", comp, path,
				           strerror(errno));
				close(fd);
				return -1;
			}
			if (created)
				*created = made;
			next = openat(fd, comp, DIR_FLAGS);
		} else if (next >= 0 && created) {
			*created = false;
		}
		if (next < 0 && (errno == ENOTDIR || errno == ELOOP)) {
			struct stat st;

			if (fstatat(fd, comp, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) {
				/* rest lives in buf too: splice through a copy */
				char restcopy[PATH_MAX * 2];

				snprintf(restcopy, sizeof restcopy, "%s", rest);
				if (follow_link(&fd, comp, buf, sizeof buf, restcopy, path, &links, err,
				                errlen) < 0) {
					close(fd);
					return -1;
				}
				p = buf;
				continue;
			}
			errno = ENOTDIR;
		}
		if (next < 0) {
			rdb_seterr(err, errlen, "%s: %s: %s", path, comp, strerror(errno));
			close(fd);
			return -1;
		}
		close(fd);
		fd = next;
		p = rest;
	}
	return fd;
}

int sfs_open_parent(const char *path, mode_t mkdir_mode, bool *created, char *name,
                    size_t namelen, char *err, size_t errlen)
{
	char dir[PATH_MAX];
	const char *slash, *base;
	size_t dlen;

	if (created)
		*created = false;
	if (path == NULL || path[0] == '\0' || strlen(path) >= sizeof dir) {
		rdb_seterr(err, errlen, "%s: no file name, or too long", path ? path : "(null)");
		return -1;
	}
	slash = strrchr(path, '/');
	base = slash ? slash + 1 : path;
	if (base[0] == '\0' || strcmp(base, ".") == 0 || strcmp(base, "..") == 0 ||
	    strlen(base) >= namelen) {
		rdb_seterr(err, errlen, "%s: does not name a file", path);
		return -1;
	}
	dlen = slash == NULL ? 0 : slash == path ? 1 : (size_t)(slash - path);
	if (dlen == 0)
		strcpy(dir, ".");
	else {
		memcpy(dir, path, dlen);
		dir[dlen] = '\0';
	}
	memcpy(name, base, strlen(base) + 1);
	return sfs_open_dir(dir, mkdir_mode, created, err, errlen);
}

int sfs_mkdir_private_at(int dirfd, const char *name, mode_t mode, char *err, size_t errlen)
{
	struct stat st;
	int fd;

	if (mkdirat(dirfd, name, mode) < 0 && errno != EEXIST) {
		rdb_seterr(err, errlen, "cannot create folder %s: %s", name, strerror(errno));
		return -1;
	}
	fd = openat(dirfd, name, DIR_FLAGS);
	if (fd < 0) {
		rdb_seterr(err, errlen, "%s: %s", name, errno == ENOTDIR || errno == ELOOP ?
		           "not a folder (a symbolic link?); refusing it" : strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || (st.st_uid != 0 && st.st_uid != geteuid()) ||
	    (st.st_mode & (S_IWGRP | S_IWOTH))) {
		rdb_seterr(err, errlen, "%s: the folder belongs to another user or others may "
		           "write it; refusing to put files in it", name);
		close(fd);
		return -1;
	}
	return fd;
}

int sfs_check_file(const struct stat *st, uid_t may_own, const char *shown, char *err,
                   size_t errlen)
{
	if (!S_ISREG(st->st_mode)) {
		rdb_seterr(err, errlen, "%s: not a regular file; refusing to change it", shown);
		return -1;
	}
	if (st->st_nlink != 1) {
		rdb_seterr(err, errlen, "%s: has %lu hard links (another name for the same file); "
		           "refusing to change it", shown, (unsigned long)st->st_nlink);
		return -1;
	}
	if (may_own != SFS_ANY_OWNER && st->st_uid != 0 && st->st_uid != geteuid() &&
	    st->st_uid != may_own) {
		rdb_seterr(err, errlen, "%s: belongs to uid %u, which is unexpected; refusing to "
		           "change it", shown, (unsigned)st->st_uid);
		return -1;
	}
	return 0;
}

/* fchown when needed (a non-root caller may "set" the owner it already has), then always
 * fchmod: chown clears set-id bits, and the mode must be exactly `mode`. */
static int set_owner_fd(int fd, const struct stat *st, const char *shown, uid_t uid,
                        gid_t gid, mode_t mode, char *err, size_t errlen)
{
	if ((st->st_uid != uid || st->st_gid != gid) && fchown(fd, uid, gid) < 0) {
		rdb_seterr(err, errlen, "cannot set the owner of %s: %s", shown, strerror(errno));
		return -1;
	}
	if (fchmod(fd, mode) < 0) {
		rdb_seterr(err, errlen, "cannot set the mode of %s: %s", shown, strerror(errno));
		return -1;
	}
	return 0;
}

int sfs_set_owner_at(int dirfd, const char *name, const char *shown, uid_t uid, gid_t gid,
                     mode_t mode, bool missing_ok, char *err, size_t errlen)
{
	struct stat st;
	int fd, rc;

	/* O_NONBLOCK: a FIFO planted under the name must not hang us before fstat refuses it */
	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT && missing_ok)
			return 1;
		rdb_seterr(err, errlen, "%s: %s", shown, errno == ELOOP ?
		           "is a symbolic link; refusing to change it" : strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		rdb_seterr(err, errlen, "%s: %s", shown, strerror(errno));
		close(fd);
		return -1;
	}
	rc = sfs_check_file(&st, uid, shown, err, errlen);
	if (rc == 0)
		rc = set_owner_fd(fd, &st, shown, uid, gid, mode, err, errlen);
	close(fd);
	return rc;
}

int sfs_set_dir_owner(int dirfd, const char *shown, uid_t uid, gid_t gid, mode_t mode,
                      char *err, size_t errlen)
{
	struct stat st;
	int fd, rc = -1;

	/* an O_PATH descriptor cannot be fchown'ed: reopen the same folder for real */
	fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		rdb_seterr(err, errlen, "%s: %s", shown, strerror(errno));
		goto out;
	}
	if (st.st_uid != 0 && st.st_uid != geteuid() && st.st_uid != uid) {
		rdb_seterr(err, errlen, "%s: belongs to uid %u, which is unexpected; refusing to "
		           "change it", shown, (unsigned)st.st_uid);
		goto out;
	}
	rc = set_owner_fd(fd, &st, shown, uid, gid, mode, err, errlen);
out:
	if (fd >= 0)
		close(fd);
	return rc;
}

int sfs_open_write_at(int dirfd, const char *name, mode_t mode, struct stat *st, char *err,
                      size_t errlen)
{
	/* no O_TRUNC: truncate only once we know it is our kind of file */
	int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY |
	                O_CLOEXEC, mode);

	if (fd < 0) {
		/* ENXIO: a FIFO nobody reads (O_NONBLOCK), or a socket */
		rdb_seterr(err, errlen, "%s: %s", name, errno == ELOOP ?
		           "is a symbolic link; refusing to write through it" : errno == ENXIO ?
		           "is a FIFO or a socket; refusing to write to it" : strerror(errno));
		return -1;
	}
	if (fstat(fd, st) < 0) {
		rdb_seterr(err, errlen, "%s: %s", name, strerror(errno));
		close(fd);
		return -1;
	}
	if (sfs_check_file(st, SFS_ANY_OWNER, name, err, errlen) < 0) {
		close(fd);
		return -1;
	}
	if (ftruncate(fd, 0) < 0) {
		rdb_seterr(err, errlen, "%s: %s", name, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

int sfs_unlink_same_at(int dirfd, const char *name, const struct stat *was)
{
	struct stat st;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -1;
	if (!S_ISREG(st.st_mode) || st.st_dev != was->st_dev || st.st_ino != was->st_ino) {
		errno = ESTALE;
		return -1;
	}
	return unlinkat(dirfd, name, 0);
}

int sfs_tmp_create(int dirfd, const char *name, mode_t mode, uid_t uid, gid_t gid, char *tmp,
                   size_t tmplen, char *err, size_t errlen)
{
	int fd, n = snprintf(tmp, tmplen, "%s.tmp", name);

	if (n < 0 || (size_t)n >= tmplen) {
		rdb_seterr(err, errlen, "%s: name too long", name);
		return -1;
	}
	/* a leftover (or a planted link) under the name goes; O_EXCL never follows a link */
	if (unlinkat(dirfd, tmp, 0) < 0 && errno != ENOENT) {
		rdb_seterr(err, errlen, "%s: %s", tmp, strerror(errno));
		return -1;
	}
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0) {
		rdb_seterr(err, errlen, "%s: %s", tmp, strerror(errno));
		return -1;
	}
	if ((uid != (uid_t)-1 && fchown(fd, uid, gid) < 0) || fchmod(fd, mode) < 0) {
		rdb_seterr(err, errlen, "%s: %s", tmp, strerror(errno));
		close(fd);
		unlinkat(dirfd, tmp, 0);
		return -1;
	}
	return fd;
}

int sfs_tmp_commit(int dirfd, const char *tmp, const char *name, char *err, size_t errlen)
{
	if (renameat(dirfd, tmp, dirfd, name) < 0) {
		rdb_seterr(err, errlen, "%s: %s", name, strerror(errno));
		unlinkat(dirfd, tmp, 0);
		return -1;
	}
	return 0;
}

void sfs_tmp_discard(int dirfd, const char *tmp)
{
	unlinkat(dirfd, tmp, 0);
}

int sfs_write_atomic_at(int dirfd, const char *name, const char *shown, const void *data,
                        size_t len, mode_t mode, uid_t uid, gid_t gid, char *err,
                        size_t errlen)
{
	char tmp[NAME_MAX + 1];
	const char *p = data;
	int fd = sfs_tmp_create(dirfd, name, mode, uid, gid, tmp, sizeof tmp, err, errlen);

	if (fd < 0)
		return -1;
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rdb_seterr(err, errlen, "%s: %s", shown, n < 0 ? strerror(errno) : "short write");
			close(fd);
			sfs_tmp_discard(dirfd, tmp);
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	if (fsync(fd) < 0 || close(fd) < 0) {
		rdb_seterr(err, errlen, "%s: %s", shown, strerror(errno));
		sfs_tmp_discard(dirfd, tmp);
		return -1;
	}
	return sfs_tmp_commit(dirfd, tmp, name, err, errlen);
}
