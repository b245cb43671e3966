/*
 * test-relaydb-pg.c — the relaydb plugin on PostgreSQL, inside the real libsasl2 (suites
 * 'sasl' and 'pg'), driven by test_relaydb_pg.py, which runs a pglab server with TLS.
 *
 * Usage:
 *   test-relaydb-pg fixture ADMIN_NAME
 *       creates the schema (rdb_init) and the logins through the rdb API as relay-admin
 *       would (the plugin's role gets its grants from the wrapper afterwards);
 *   test-relaydb-pg run LIBRELAYDB.so SYSTEM_SASL2_DIR PLUGIN_NAME ADMIN_NAME BADCA_NAME
 *       sasl_server_init with relaydb_path: PLUGIN_NAME (a pg: file whose conninfo says
 *       sslmode=verify-full against the lab's CA, with the reader role's password), then
 *       PLAIN, LOGIN and SCRAM-SHA-256 through libsasl2, one sasl_conn per attempt as
 *       smtpd does; the SCRAM decoy for unknown logins; a change made by relay-admin (the
 *       admin name) counts at once; the server stopped ("# stop" on stdout, then the
 *       wrapper writes "down") → SASL_UNAVAIL (Postfix 454), never SASL_NOUSER; started
 *       again ("# start", "up") → works in the same process; and, in forked children,
 *       a pg: file whose CA did not sign the server's certificate, one of mode 0644, a
 *       relative one → SASL_UNAVAIL with the reason logged; app credentials (users schema
 *       3 on PostgreSQL): a credential's own name and secret through PLAIN, LOGIN and
 *       SCRAM-SHA-256 with the plugin role's grants, its secret for its name only, a
 *       revoked one like a wrong password (SCRAM included), the login disabled → its
 *       credentials too.
 * TAP on stdout.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sasl/sasl.h>

#include "rdb.h"
#include "rig.h"
#include "scratch.h"
#include "tap.h"

#define PW_ALICE "correct horse battery staple"
#define PW_DAVE "dave-pw-43"
#define PW_GINA "gina-pw-5"

static int plain(const char *user, const char *pass)
{
	return rig_plain(NULL, user, strlen(user), pass, strlen(pass));
}

static bool add(struct rdb *db, const char *name, const char *pw, bool enabled)
{
	unsigned char secret[RDB_PLAIN_SECRET_LEN];
	char scram[RDB_SCRAM_MAX];
	struct rdb_login_new n = { .name = name, .plain = secret, .scram = scram,
	                           .now = (int64_t)time(NULL) };

	if (rdb_secret_plain(pw, strlen(pw), NULL, secret) != RDB_OK ||
	    rdb_secret_scram_sha256(pw, strlen(pw), RDB_SCRAM_ITERATIONS, NULL, 0, scram) != RDB_OK)
		return false;
	if (rdb_login_add(db, &n) != RDB_OK) {
		fprintf(stderr, "add %s: %s\n", name, rdb_errmsg(db));
		return false;
	}
	return enabled || rdb_login_set_enabled(db, name, false, n.now) == RDB_OK;
}

static void scram_salt(const char *name, char *salt, size_t saltlen);

#define PW_PHONE "phone-credential-pw-1"
#define PW_PRINTER "printer-credential-pw-2"

/* relay-admin user credential add (password) / revoke (NULL), through the data layer. */
static bool cred_change(struct rdb *db, const char *name, const char *label,
                        const char *password)
{
	unsigned char secret[RDB_PLAIN_SECRET_LEN];
	char scram[RDB_SCRAM_MAX];
	enum rdb_result r = RDB_ERROR;

	if (password == NULL)
		r = rdb_credential_revoke(db, name, label);
	else if (rdb_secret_plain(password, strlen(password), NULL, secret) == RDB_OK &&
	         rdb_secret_scram_sha256(password, strlen(password), RDB_SCRAM_ITERATIONS, NULL, 0,
	                                 scram) == RDB_OK)
		r = rdb_credential_add(db, name, label, secret, scram, (int64_t)time(NULL), NULL);
	if (r != RDB_OK)
		printf("# credential %s %s: %s\n", name, label, rdb_errmsg(db));
	return r == RDB_OK;
}

/* App credentials on PostgreSQL: the plugin's one lookup finds a credential's own
 * secrets (through the grants `relay-admin grants --plugin` prints) and its login's
 * state; a revoked or unknown one fails exactly like a wrong password. */
static void test_credentials(const char *admin)
{
	struct rdb *db = NULL;
	char err[512], salt[64], salt2[64], msg[512];
	int r, start, wrong;

	if (!ok(rdb_open(admin, RDB_READWRITE, &db, err, sizeof err) == RDB_OK, "admin open: %s",
	        err))
		return;
	ok(cred_change(db, "alice", "phone", PW_PHONE), "alice gets credential phone");
	ok(cred_change(db, "alice", "printer", PW_PRINTER), "and credential printer");
	is_int(plain("alice+phone", PW_PHONE), SASL_OK, "PLAIN with a credential on PostgreSQL: OK");
	is_int(plain("ALICE+Phone", PW_PHONE), SASL_OK, "in any case");
	is_int(rig_login(NULL, "alice+phone", PW_PHONE), SASL_OK, "LOGIN with a credential: OK");
	is_int(rig_scram(NULL, "alice+phone", PW_PHONE), SASL_OK,
	       "SCRAM-SHA-256 with a credential: OK");
	is_int(plain("alice", PW_ALICE), SASL_OK, "the login's own password still: OK");
	is_int(plain("alice+phone", PW_ALICE), SASL_BADAUTH, "the login's password as a credential");
	is_int(plain("alice", PW_PHONE), SASL_BADAUTH, "a credential's secret as the login's");
	is_int(plain("alice+printer", PW_PHONE), SASL_BADAUTH, "one credential's for another");
	wrong = rig_scram_trace(NULL, "alice+printer", "wrong", &start, msg, sizeof msg);
	is_int(wrong, SASL_BADAUTH, "SCRAM with a credential, wrong secret: BADAUTH at the proof");

	ok(cred_change(db, "alice", "phone", NULL), "relay-admin revokes phone");
	r = plain("alice+phone", PW_PHONE);
	ok(r != SASL_OK && rig_smtp_code(r) == 535,
	   "revoked credential, PLAIN, its right secret: 535 like a wrong password (sasl %d)", r);
	r = rig_login(NULL, "alice+phone", PW_PHONE);
	ok(r != SASL_OK && rig_smtp_code(r) == 535, "revoked credential, LOGIN: 535 (sasl %d)", r);
	scram_salt("alice+phone", salt, sizeof salt);
	ok(strlen(salt) == 24, "SCRAM first step for the revoked credential: 334 with a salt "
	   "(the decoy, %s)", salt);
	scram_salt("alice+phone", salt2, sizeof salt2);
	is_str(salt2, salt, "the same salt every time");
	r = rig_scram_trace(NULL, "alice+phone", PW_PHONE, &start, msg, sizeof msg);
	is_int(start, SASL_CONTINUE, "SCRAM revoked credential: the first step continues");
	is_int(r, wrong, "SCRAM revoked credential, its right secret: fails at the proof like a "
	       "wrong password (sasl %d)", r);
	is_int(plain("alice+printer", PW_PRINTER), SASL_OK, "the other credential still works");
	is_int(rig_scram(NULL, "alice+printer", PW_PRINTER), SASL_OK, "also with SCRAM");

	is_int(rdb_login_set_enabled(db, "alice", false, (int64_t)time(NULL)), RDB_OK,
	       "relay-admin disables alice");
	r = plain("alice+printer", PW_PRINTER);
	ok(r != SASL_OK && rig_smtp_code(r) == 535, "a disabled login's credential: 535 (sasl %d)",
	   r);
	is_int(rig_scram(NULL, "alice+printer", PW_PRINTER), wrong,
	       "SCRAM, a disabled login's credential: fails at the proof like a wrong password");
	is_int(rdb_login_set_enabled(db, "alice", true, (int64_t)time(NULL)), RDB_OK,
	       "enabled again");
	is_int(plain("alice+printer", PW_PRINTER), SASL_OK, "the credential works again");
	ok(rig_log_lacks_bytes(PW_PRINTER, strlen(PW_PRINTER)), "no secret in the log");
	ok(cred_change(db, "alice", "printer", NULL), "revoke printer (clean up)");
	rdb_close(db);
}

static int fixture(const char *admin)
{
	char err[512];
	struct rdb *db = NULL;

	if (rdb_init(admin, err, sizeof err) != RDB_OK ||
	    rdb_open(admin, RDB_READWRITE, &db, err, sizeof err) != RDB_OK) {
		fprintf(stderr, "fixture: %s\n", err);
		return 1;
	}
	if (!add(db, "alice", PW_ALICE, true) || !add(db, "dave", PW_DAVE, false)) {
		rdb_close(db);
		return 1;
	}
	rdb_close(db);
	return 0;
}

static bool write_conf(const char *dir, const char *name)
{
	char path[4300], text[8192];

	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return false;
	snprintf(path, sizeof path, "%s/smtpd.conf", dir);
	snprintf(text, sizeof text, "relaydb_path: %s\npwcheck_method: auxprop\n"
	         "auxprop_plugin: relaydb\nmech_list: plain login scram-sha-256\n", name);
	return rig_write_file(path, text, strlen(text));
}

/* The server's first SCRAM message for a client-first of our own, as an attacker sends it
 * (no password): its salt, or "" when the step did not continue. */
static void scram_salt(const char *name, char *salt, size_t saltlen)
{
	char first[300], msg[512];
	const char *s, *i;

	salt[0] = '\0';
	snprintf(first, sizeof first, "n,,n=%s,r=abc", name);
	if (rig_scram_first(NULL, first, msg, sizeof msg) != SASL_CONTINUE)
		return;
	s = strstr(msg, ",s=");
	i = s ? strstr(s, ",i=4096") : NULL;
	if (s != NULL && i != NULL && (size_t)(i - s - 3) < saltlen) {
		memcpy(salt, s + 3, (size_t)(i - s - 3));
		salt[i - s - 3] = '\0';
	}
}

/* A copy of a file with another mode (the pg: file others may read). */
static bool copy_mode(const char *from, const char *to, mode_t mode)
{
	char buf[4096];
	size_t n;
	FILE *in = fopen(from, "r");

	if (in == NULL)
		return false;
	n = fread(buf, 1, sizeof buf, in);
	fclose(in);
	return rig_write_file(to, buf, n) && chmod(to, mode) == 0;
}

/* In a child with relaydb_path: NAME, alice's right password must be SASL_UNAVAIL with
 * `needle` in the log. */
static void unavailable_child(const char *tmp, const char *plugindir, const char *tag,
                              const char *name, const char *needle, const char *what)
{
	char dir[4300];
	pid_t pid;
	int status = -1, r;

	snprintf(dir, sizeof dir, "%s/conf-%s", tmp, tag);
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		if (!write_conf(dir, name) || rig_init(dir, plugindir) != SASL_OK)
			_exit(90);
		r = plain("alice", PW_ALICE);
		if (!rig_log_has(needle)) {
			rig_log_dump();
			_exit(91);
		}
		_exit(r == SASL_UNAVAIL ? 0 : 92);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		status = -1;
	else
		status = WEXITSTATUS(status);
	ok(status == 0, "%s: SASL_UNAVAIL (454), the log says '%s' (child status %d)", what,
	   needle, status);
}

static bool handshake(const char *say, const char *expect)
{
	char line[64];

	printf("# %s\n", say);
	fflush(stdout);
	return fgets(line, sizeof line, stdin) != NULL && strncmp(line, expect, strlen(expect)) == 0;
}

static int run_in(char **argv, const char *tmp)
{
	const char *plugin_so = argv[2], *sysdir = argv[3], *name = argv[4], *admin = argv[5],
	           *badca = argv[6];
	char plugindir[4200], confdir[4200], lib[3][4300], salt[64], salt2[64];
	const char *links[5];
	struct rdb *db = NULL;
	char err[512], loose[4300], loose_name[4400];
	int r, start;
	char msg[512];

	snprintf(plugindir, sizeof plugindir, "%s/plugins", tmp);
	snprintf(confdir, sizeof confdir, "%s/conf", tmp);
	snprintf(lib[0], sizeof lib[0], "%s/libplain.so", sysdir);
	snprintf(lib[1], sizeof lib[1], "%s/liblogin.so", sysdir);
	snprintf(lib[2], sizeof lib[2], "%s/libscram.so", sysdir);
	links[0] = plugin_so;
	links[1] = lib[0];
	links[2] = lib[1];
	links[3] = lib[2];
	links[4] = NULL;
	if (mkdir(plugindir, 0700) != 0 || !rig_link_plugins(plugindir, links))
		return 2;

	/* Names that cannot work: each must read as "unavailable" (454), never as "no such
	 * user", with the reason in the log. Forked: libsasl2 reads its config once per
	 * process. A pg: file whose CA did not sign the server's certificate (verify-full
	 * refuses the server); one others may read (it may hold a password); a relative one
	 * (smtpd resolves it inside the chroot or the queue folder: never what was meant). */
	snprintf(loose, sizeof loose, "%s/loose.conf", tmp);
	if (!copy_mode(name + 3, loose, 0644))
		return 2;
	snprintf(loose_name, sizeof loose_name, "pg:%s", loose);
	unavailable_child(tmp, plugindir, "badca", badca, "certificate verify failed",
	                  "verify-full with a CA that did not sign the server");
	unavailable_child(tmp, plugindir, "loose", loose_name, "readable or writable by group "
	                  "or others", "a pg: file of mode 0644");
	unavailable_child(tmp, plugindir, "relative", "pg:relaydb.conf", "must name an absolute "
	                  "path", "a relative pg: file");

	if (!write_conf(confdir, name))
		return 2;
	if (!is_int(rig_init(confdir, plugindir), SASL_OK, "sasl_server_init with relaydb on PostgreSQL"))
		return tap_done();

	rig_log_clear();
	is_int(plain("alice", PW_ALICE), SASL_OK, "PLAIN right password over verify-full TLS: OK");
	if (!rig_log_printable())
		rig_log_dump();
	is_int(plain("ALICE", PW_ALICE), SASL_OK, "names match case-insensitively");
	is_int(plain("alice", "wrong"), SASL_BADAUTH, "PLAIN wrong password: BADAUTH (535)");
	is_int(rig_login(NULL, "alice", PW_ALICE), SASL_OK, "LOGIN right password: OK");
	is_int(rig_login(NULL, "alice", "wrong"), SASL_BADAUTH, "LOGIN wrong password: BADAUTH");
	is_int(rig_scram(NULL, "alice", PW_ALICE), SASL_OK, "SCRAM-SHA-256 right password: OK");
	is_int(rig_scram(NULL, "alice", "wrong"), SASL_BADAUTH, "SCRAM wrong password: BADAUTH");
	is_int(plain("nosuchuser", "x"), SASL_NOUSER, "PLAIN unknown login: NOUSER (535)");
	is_int(rig_smtp_code(plain("dave", PW_DAVE)), 535, "PLAIN disabled login: 535");

	/* SCRAM decoy: the first step of an unknown login looks like a real login's. */
	scram_salt("alice", salt, sizeof salt);
	ok(strlen(salt) == 24, "SCRAM first step for alice: 334 with a 16-byte salt (%s)", salt);
	scram_salt("kim", salt2, sizeof salt2);
	ok(strlen(salt2) == 24, "SCRAM first step for unknown kim: also 334 with a salt (%s)", salt2);
	scram_salt("KIM", salt, sizeof salt);
	is_str(salt, salt2, "the decoy is stable (and case-insensitive)");
	r = rig_scram_trace(NULL, "kim", "whatever", &start, msg, sizeof msg);
	is_int(start, SASL_CONTINUE, "SCRAM unknown login: the first step continues");
	is_int(r, SASL_BADAUTH, "SCRAM unknown login fails at the proof, like a wrong password");
	is_int(rig_scram(NULL, "dave", PW_DAVE), SASL_BADAUTH,
	       "SCRAM disabled login with its right password: like a wrong password");

	test_credentials(admin);

	/* relay-admin's change counts at once: nothing is cached on PostgreSQL */
	if (ok(rdb_open(admin, RDB_READWRITE, &db, err, sizeof err) == RDB_OK, "admin open: %s", err)) {
		is_int(plain("gina", PW_GINA), SASL_NOUSER, "gina does not exist yet");
		ok(add(db, "gina", PW_GINA, true), "relay-admin adds gina");
		is_int(plain("gina", PW_GINA), SASL_OK, "gina authenticates at once");
		is_int(rdb_login_set_enabled(db, "gina", false, (int64_t)time(NULL)), RDB_OK,
		       "relay-admin disables gina");
		is_int(rig_smtp_code(plain("gina", PW_GINA)), 535, "refused at once");
		rdb_close(db);
	}

	/* The server goes away under the running process. */
	if (!ok(handshake("stop", "down"), "the wrapper stopped PostgreSQL"))
		return tap_done();
	rig_log_clear();
	r = plain("alice", PW_ALICE);
	is_int(r, SASL_UNAVAIL, "server stopped: PLAIN is SASL_UNAVAIL");
	is_int(rig_smtp_code(r), 454, "which Postfix answers 454 (temporary)");
	is_int(plain("nosuchuser", "x"), SASL_UNAVAIL, "an unknown login too: never NOUSER");
	is_int(rig_login(NULL, "alice", PW_ALICE), SASL_UNAVAIL, "LOGIN: SASL_UNAVAIL");
	r = rig_scram_trace(NULL, "alice", PW_ALICE, &start, msg, sizeof msg);
	ok(r == SASL_UNAVAIL || start == SASL_UNAVAIL, "SCRAM: SASL_UNAVAIL (start %d, end %d)",
	   start, r);
	ok(rig_log_has("relaydb: users database") && rig_log_has("unavailable"),
	   "the log says the users database is unavailable");
	ok(rig_log_lacks_bytes("reader-pw", 9), "no password in the log");
	if (!ok(handshake("start", "up"), "the wrapper started PostgreSQL again"))
		return tap_done();
	is_int(plain("alice", PW_ALICE), SASL_OK, "back: PLAIN works in the same process");
	is_int(rig_scram(NULL, "alice", PW_ALICE), SASL_OK, "back: SCRAM works");
	is_int(plain("nosuchuser", "x"), SASL_NOUSER, "back: unknown is unknown again");
	return tap_done();
}

/* The run in a private folder under $TMPDIR (tests/lib/scratch.h), removed afterwards. */
static int run(char **argv)
{
	int rc;

	if (scratch_make("relaydb-pg") != 0)
		return 2;
	rc = run_in(argv, scratch_dir);
	if (scratch_remove_tree() != 0)
		fprintf(stderr, "could not remove %s\n", scratch_dir);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "fixture") == 0)
		return fixture(argv[2]);
	if (argc == 7 && strcmp(argv[1], "run") == 0)
		return run(argv);
	fprintf(stderr, "usage: test-relaydb-pg fixture ADMIN | run SO SYSDIR NAME ADMIN BADCA\n");
	return 2;
}
