/*
 * test-safefs.c — sql/safefs.c: folder walks that refuse symbolic links other users could
 * have planted (and follow trusted ones), owner/mode changes that refuse links, FIFOs, hard
 * links and foreign owners, atomic writes and identity-checked removal. Hermetic (a temp
 * folder); runs as any user, the owner checks that need root are skipped otherwise.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "safefs.h"
#include "scratch.h"
#include "tap.h"

static char err[512];

/* scratch_dir/name; four buffers in turn, so that one call may take two of them */
static const char *at(const char *name)
{
	static char buf[4][PATH_MAX + 256];
	static unsigned next;
	char *b = buf[next++ % 4];

	snprintf(b, PATH_MAX + 256, "%s/%s", scratch_dir, name);
	return b;
}

static void touch(const char *name, mode_t mode)
{
	int fd = open(at(name), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

	if (fd >= 0) {
		if (write(fd, "x\n", 2) != 2)
			diag("short write");
		close(fd);
	}
	chmod(at(name), mode);
}

static mode_t mode_of(const char *name)
{
	struct stat st;

	return lstat(at(name), &st) == 0 ? st.st_mode & 07777 : (mode_t)-1;
}

/* Same folder (device and inode) as path? */
static bool is_dir(int fd, const char *path)
{
	struct stat a, b;

	return fd >= 0 && fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev &&
	       a.st_ino == b.st_ino;
}

static void test_walk(void)
{
	bool created = true;
	int fd;
	char name[NAME_MAX + 1];

	mkdir(at("a"), 0700);
	mkdir(at("a/b"), 0700);
	fd = sfs_open_dir(at("a/b"), 0, &created, err, sizeof err);
	ok(is_dir(fd, at("a/b")) && !created, "walks to an existing folder");
	close(fd);
	fd = sfs_open_dir(at("a/./b//"), 0, NULL, err, sizeof err);
	ok(is_dir(fd, at("a/b")), "'.', doubled and trailing slashes are harmless");
	close(fd);
	fd = sfs_open_dir(at("a/new/deeper"), 0750, &created, err, sizeof err);
	ok(is_dir(fd, at("a/new/deeper")) && created, "creates missing folders (mkdir -p)");
	ok((mode_of("a/new/deeper") & 0777) == (0750 & ~(mode_t)022) ||
	   (mode_of("a/new/deeper") & 0700) == 0700, "with the mode asked for (umask applies)");
	close(fd);
	fd = sfs_open_dir(at("a/missing"), 0, NULL, err, sizeof err);
	ok(fd < 0 && strstr(err, "missing") != NULL, "a missing folder is an error without "
	   "mkdir: %s", err);
	touch("a/file", 0600);
	fd = sfs_open_dir(at("a/file/x"), 0750, NULL, err, sizeof err);
	ok(fd < 0, "a file on the way is refused: %s", err);

	/* our own folder, writable by nobody else: a link in it is ours and is followed */
	symlink("a/b", at("trusted-link"));
	chmod(scratch_dir, 0700);
	fd = sfs_open_dir(at("trusted-link"), 0, NULL, err, sizeof err);
	ok(is_dir(fd, at("a/b")), "a relative link in a trusted folder is followed");
	close(fd);
	symlink(at("a"), at("abs-link"));
	fd = sfs_open_dir(at("abs-link/b"), 0, NULL, err, sizeof err);
	ok(is_dir(fd, at("a/b")), "an absolute link in a trusted folder is followed");
	close(fd);

	/* a folder others can write: a link there could be anyone's */
	mkdir(at("open"), 0700);
	chmod(at("open"), 0777);
	symlink(at("a"), at("open/evil"));
	fd = sfs_open_dir(at("open/evil/b"), 0, NULL, err, sizeof err);
	ok(fd < 0 && strstr(err, "symbolic link") != NULL,
	   "a link in a folder others can write is refused: %s", err);
	fd = sfs_open_dir(at("open/evil/new"), 0750, NULL, err, sizeof err);
	ok(fd < 0 && access(at("a/new"), F_OK) == 0 && access(at("a/b/new"), F_OK) != 0,
	   "and nothing is created through it");
	symlink("loop", at("loop"));
	fd = sfs_open_dir(at("loop"), 0, NULL, err, sizeof err);
	ok(fd < 0, "a link loop ends: %s", err);

	fd = sfs_open_parent(at("a/b/file.db"), 0, &created, name, sizeof name, err, sizeof err);
	ok(is_dir(fd, at("a/b")) && strcmp(name, "file.db") == 0, "open_parent splits the name");
	close(fd);
	fd = sfs_open_parent("relative.db", 0, NULL, name, sizeof name, err, sizeof err);
	ok(is_dir(fd, ".") && strcmp(name, "relative.db") == 0, "a bare name is in the cwd");
	close(fd);
	fd = sfs_open_parent(at("a/b/"), 0, NULL, name, sizeof name, err, sizeof err);
	ok(fd < 0, "a path ending in / names no file: %s", err);
	fd = sfs_open_parent(at("a/.."), 0, NULL, name, sizeof name, err, sizeof err);
	ok(fd < 0, "nor one ending in ..");
}

static void test_set_owner(void)
{
	uid_t me = geteuid();
	gid_t g = getegid();
	int d = sfs_open_dir(scratch_dir, 0, NULL, err, sizeof err);
	int rc;

	touch("f", 0600);
	rc = sfs_set_owner_at(d, "f", "f", me, g, 0640, false, err, sizeof err);
	ok(rc == 0 && mode_of("f") == 0640, "sets the mode of a plain file");
	touch("victim", 0600);
	symlink(at("victim"), at("lnk"));
	rc = sfs_set_owner_at(d, "lnk", "lnk", me, g, 0666, false, err, sizeof err);
	ok(rc < 0 && strstr(err, "symbolic link") && mode_of("victim") == 0600,
	   "a symbolic link is refused, its target untouched: %s", err);
	link(at("victim"), at("hard"));
	rc = sfs_set_owner_at(d, "hard", "hard", me, g, 0666, false, err, sizeof err);
	ok(rc < 0 && strstr(err, "hard link") && mode_of("victim") == 0600,
	   "a hard link is refused: %s", err);
	mkfifo(at("fifo"), 0600);
	rc = sfs_set_owner_at(d, "fifo", "fifo", me, g, 0666, false, err, sizeof err);
	ok(rc < 0 && strstr(err, "regular") && mode_of("fifo") == 0600,
	   "a FIFO is refused without blocking: %s", err);
	is_int(sfs_set_owner_at(d, "absent", "absent", me, g, 0640, true, err, sizeof err), 1,
	       "a missing file is 1 when missing_ok");
	is_int(sfs_set_owner_at(d, "absent", "absent", me, g, 0640, false, err, sizeof err), -1,
	       "and an error otherwise");
	if (me == 0) {
		/* a file of another user (not the target) is not ours to give away */
		chown(at("f"), 4242, 4242);
		rc = sfs_set_owner_at(d, "f", "f", 65534, 65534, 0640, false, err, sizeof err);
		ok(rc < 0 && strstr(err, "uid 4242"), "a foreign owner is refused: %s", err);
		rc = sfs_set_owner_at(d, "f", "f", 4242, 4242, 0600, false, err, sizeof err);
		ok(rc == 0, "the target's own file is fine");
		rc = sfs_set_owner_at(d, "f", "f", 0, 0, 0600, false, err, sizeof err);
		ok(rc < 0, "but a third user's file is not taken for root either: %s", err);
		mkdir(at("sd"), 0700);
		{
			int s = sfs_open_dir(at("sd"), 0, NULL, err, sizeof err);
			struct stat st;

			rc = sfs_set_dir_owner(s, "sd", 65534, 65534, 0750, err, sizeof err);
			ok(rc == 0 && stat(at("sd"), &st) == 0 && st.st_uid == 65534 &&
			   (st.st_mode & 07777) == 0750, "gives a folder away through its descriptor");
			chown(at("sd"), 4242, 4242);
			rc = sfs_set_dir_owner(s, "sd", 65534, 65534, 0750, err, sizeof err);
			ok(rc < 0, "not a folder of a third user: %s", err);
			close(s);
		}
	} else {
		diag("not root: skipping the owner checks");
	}
	close(d);
}

static void test_write_and_unlink(void)
{
	int d = sfs_open_dir(scratch_dir, 0, NULL, err, sizeof err), fd;
	struct stat st, st2;
	char buf[16] = { 0 };
	FILE *f;

	touch("victim2", 0600);
	symlink(at("victim2"), at("out.tmp"));
	ok(sfs_write_atomic_at(d, "out", "out", "hello\n", 6, 0640, (uid_t)-1, 0, err,
	                       sizeof err) == 0, "atomic write");
	f = fopen(at("out"), "r");
	ok(f && fgets(buf, sizeof buf, f) && strcmp(buf, "hello\n") == 0 &&
	   mode_of("out") == 0640, "the file holds the data with the mode");
	if (f)
		fclose(f);
	ok(access(at("out.tmp"), F_OK) != 0 && mode_of("victim2") == 0600,
	   "a link planted at the temporary name is removed, not written through");

	symlink(at("victim2"), at("pid-link"));
	fd = sfs_open_write_at(d, "pid-link", 0644, &st, err, sizeof err);
	ok(fd < 0 && strstr(err, "symbolic link"), "open_write refuses a link: %s", err);
	fd = sfs_open_write_at(d, "pid", 0644, &st, err, sizeof err);
	ok(fd >= 0, "open_write creates a file");
	if (fd >= 0)
		close(fd);
	rename(at("pid"), at("pid-moved"));
	touch("pid", 0644);
	ok(sfs_unlink_same_at(d, "pid", &st) < 0 && access(at("pid"), F_OK) == 0,
	   "unlink_same leaves another file that took the name");
	ok(stat(at("pid-moved"), &st2) == 0 && rename(at("pid-moved"), at("pid")) == 0 &&
	   sfs_unlink_same_at(d, "pid", &st) == 0 && access(at("pid"), F_OK) != 0,
	   "and removes our own");
	close(d);
}

static void test_private_dir(void)
{
	int d = sfs_open_dir(scratch_dir, 0, NULL, err, sizeof err), p;

	p = sfs_mkdir_private_at(d, "priv", 0700, err, sizeof err);
	ok(p >= 0 && mode_of("priv") == 0700, "makes a private folder");
	if (p >= 0)
		close(p);
	p = sfs_mkdir_private_at(d, "priv", 0700, err, sizeof err);
	ok(p >= 0, "and reuses it");
	if (p >= 0)
		close(p);
	symlink(at("a"), at("priv-link"));
	p = sfs_mkdir_private_at(d, "priv-link", 0700, err, sizeof err);
	ok(p < 0, "a link in its place is refused: %s", err);
	chmod(at("priv"), 0777);
	p = sfs_mkdir_private_at(d, "priv", 0700, err, sizeof err);
	ok(p < 0, "a folder others can write is refused: %s", err);
	close(d);
}

int main(void)
{
	if (scratch_make("test-safefs") != 0)
		return 1;
	test_walk();
	test_set_owner();
	test_write_and_unlink();
	test_private_dir();
	if (scratch_remove_tree() != 0)
		diag("could not remove the temporary folder");
	return tap_done();
}
