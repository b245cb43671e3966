/*
 * safefs.h — file operations that stay safe when a folder on the way belongs to another
 * user (the milter's state folder, a pid file folder, a Postfix folder someone loosened).
 *
 * Why: root calling chown/chmod/rename/unlink by path inside a folder another user can
 * write lets that user swap the name for a symbolic link between our check and our call,
 * and the call lands on any file it points at (issue 8: `relay-admin init --milter-user`
 * handed /etc/shadow to the milter's user). So every change goes through descriptors:
 * folders are walked from "/" one component at a time with openat(O_NOFOLLOW), files are
 * opened with O_NOFOLLOW|O_NONBLOCK, checked with fstat (regular file, one link, an
 * expected owner) and then changed with fchown/fchmod; names are created, renamed and
 * removed relative to the folder's descriptor (openat/renameat/unlinkat).
 *
 * A symbolic link on the way to a folder is followed only where it lives in a trusted
 * folder (owned by root or by us, writable by nobody else; e.g. /var/run -> /run):
 * nobody else could have put it there. Elsewhere it is refused. The last component of a
 * file name is never followed.
 *
 * Ownership: descriptors returned are the caller's to close (all O_CLOEXEC). Thread
 * safety: none needed beyond the kernel's (no shared state). Errors: -1 with the reason
 * in err (see errbuf.h), naming the path as the caller gave it.
 */
#ifndef RELAY_SAFEFS_H
#define RELAY_SAFEFS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

/* For *_may_own arguments: the current owner does not matter. */
#define SFS_ANY_OWNER ((uid_t)-1)

/* Opens the folder `path` (an O_PATH descriptor, usable as the dirfd of *at calls), walking
 * as described above. mkdir_mode != 0 creates missing folders with that mode (umask
 * applies); *created (may be NULL) then says whether the last folder was made by this call. */
int sfs_open_dir(const char *path, mode_t mkdir_mode, bool *created, char *err, size_t errlen);

/* Opens the folder that holds `path` as sfs_open_dir does and copies the last component
 * into name[namelen]. Refuses a path ending in '/', ".", "..". */
int sfs_open_parent(const char *path, mode_t mkdir_mode, bool *created, char *name,
                    size_t namelen, char *err, size_t errlen);

/* mkdir `name` in `dirfd` unless it exists, and opens it (O_PATH). The folder must be a
 * real folder (not a link) owned by root or by us and writable by nobody else: what goes
 * inside stays ours (backups of secrets). */
int sfs_mkdir_private_at(int dirfd, const char *name, mode_t mode, char *err, size_t errlen);

/* Checks what fstat said about a file we are about to change: a regular file with one
 * link (a hard link would make us change another name too), owned by root, by us or by
 * may_own (SFS_ANY_OWNER: anyone). `shown` names it in the message. */
int sfs_check_file(const struct stat *st, uid_t may_own, const char *shown, char *err,
                   size_t errlen);

/* Gives the regular file `name` in `dirfd` owner uid:gid and `mode`, through a descriptor
 * (see sfs_check_file; may_own is uid). Returns 0, 1 when it does not exist and missing_ok,
 * -1 on error (a symbolic link, a FIFO, a hard link, a foreign owner: nothing changed). */
int sfs_set_owner_at(int dirfd, const char *name, const char *shown, uid_t uid, gid_t gid,
                     mode_t mode, bool missing_ok, char *err, size_t errlen);

/* The same for the folder `dirfd` itself (from sfs_open_dir): it must belong to root, to
 * us or to uid already. uid (uid_t)-1 and gid (gid_t)-1 leave the owner as it is. */
int sfs_set_dir_owner(int dirfd, const char *shown, uid_t uid, gid_t gid, mode_t mode,
                      char *err, size_t errlen);

/* Opens `name` in `dirfd` for writing, creating it with `mode` if absent, never following a
 * link; refuses anything but a regular file with one link, then truncates it. *st gets its
 * identity (for sfs_unlink_same_at). Returns the descriptor or -1. */
int sfs_open_write_at(int dirfd, const char *name, mode_t mode, struct stat *st, char *err,
                      size_t errlen);

/* Removes `name` from `dirfd` only if it is still the file described by `was` (same device
 * and inode, not a link): never someone else's file that took the name. 0 or -1. */
int sfs_unlink_same_at(int dirfd, const char *name, const struct stat *was);

/* Writing a file beside its target, then renaming it into place:
 * sfs_tmp_create makes `name`.tmp in dirfd (an old one is removed; O_CREAT|O_EXCL, so never
 * through a link) with `mode` and, when uid is not (uid_t)-1, owner uid:gid; it returns the
 * descriptor and the temporary name in tmp[tmplen]. sfs_tmp_commit renames it over `name`;
 * sfs_tmp_discard removes it. */
int sfs_tmp_create(int dirfd, const char *name, mode_t mode, uid_t uid, gid_t gid, char *tmp,
                   size_t tmplen, char *err, size_t errlen);
int sfs_tmp_commit(int dirfd, const char *tmp, const char *name, char *err, size_t errlen);
void sfs_tmp_discard(int dirfd, const char *tmp);

/* All of the above for a buffer: write, fsync, rename. `shown` names the target. */
int sfs_write_atomic_at(int dirfd, const char *name, const char *shown, const void *data,
                        size_t len, mode_t mode, uid_t uid, gid_t gid, char *err,
                        size_t errlen);

#endif
