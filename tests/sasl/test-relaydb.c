/*
 * test-relaydb.c — the relaydb plugin inside the real libsasl2 (suite 'sasl').
 *
 * Usage: test-relaydb <built librelaydb.so> <system sasl2 plugin folder>
 *
 * Sets up, in a private temp folder, a plugin folder holding the built plugin plus links to
 * Debian's PLAIN, LOGIN and SCRAM mechanisms, an smtpd.conf as the README documents it, and
 * a users database made with the rdb API; then authenticates through libsasl2 with a new
 * sasl_conn_t per attempt, as smtpd does. Configurations that libsasl2 reads only at init
 * (no relaydb_path, a relative one, an empty one) run in forked children.
 *
 * Not valgrind-clean by design (libsasl2 keeps its plugins and config for the process), so
 * it is not in suite 'unit'. It runs under ASan/UBSan: libsasl2 dlopens the sanitized
 * plugin into this sanitized process.
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
#include <sqlite3.h>

#include "fixture.h"
#include "rdb.h"
#include "rig.h"
#include "scratch.h"
#include "tap.h"

#define PW_ALICE "correct horse battery staple"
#define PW_BOB "bob-secret-2931"
#define PW_CAROL "carol-pw-77"
#define PW_DAVE "dave-pw-43"
#define PW_ERIN "erin-pw-12"
#define PW_FRANK "frank-pw-90"

static char tmp[4096];
static char plugindir[4200];
static char shareddir[4200];
static char confdir[4200];
static char dbpath[4200];
static char *plugin_so;
static const char *sysdir;

static int plain(const char *realm, const char *user, const char *pass)
{
	return rig_plain(realm, user, strlen(user), pass, strlen(pass));
}

static bool write_conf(const char *dir, const char *extra, bool select)
{
	char path[4300], text[8192];

	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return false;
	snprintf(path, sizeof path, "%s/smtpd.conf", dir);
	/* extra first: libsasl2 keeps the first occurrence of a key */
	snprintf(text, sizeof text,
	         "%s"
	         "pwcheck_method: auxprop\n"
	         "%s"
	         "mech_list: plain login scram-sha-256\n", extra,
	         select ? "auxprop_plugin: relaydb\n" : "");
	return rig_write_file(path, text, strlen(text));
}

static bool make_fixture(void)
{
	const time_t now = time(NULL);
	const struct fx_login logins[] = {
		{ "alice", PW_ALICE, true, 0, true },
		{ "Bob@Example.ORG", PW_BOB, true, now + 86400, true },
		{ "carol@example.org", PW_CAROL, true, 0, true },
		{ "dave", PW_DAVE, false, 0, true },           /* disabled */
		{ "erin", PW_ERIN, true, now - 60, true },     /* expired */
		{ "frank", PW_FRANK, true, 0, false },         /* no SCRAM verifier */
	};

	if (!fx_create(dbpath))
		return false;
	for (size_t i = 0; i < sizeof logins / sizeof logins[0]; i++)
		if (!fx_add(dbpath, &logins[i]))
			return false;
	return true;
}

/* ---- configurations that need their own sasl_server_init ------------------------------ */

/* Runs one PLAIN attempt for alice (or a sasl_setpass) in a child with its own smtpd.conf,
 * checking that the log has log_needle (unless NULL); returns what it got, or -1000 - the
 * init result if init failed, -2000 on a crash, -4000 if the log line was missing. */
enum child_action {
	ACT_PLAIN,          /* alice with her password */
	ACT_SETPASS,        /* sasl_setpass mallory */
	ACT_SHARED,         /* sasl_setpass mallory, then PLAIN as mallory (sasldb beside us) */
};

static int child_run(const char *name, const char *extra, const char *plugins,
                     enum child_action act, const char *log_needle)
{
	char dir[4300];
	pid_t pid;
	int status;

	snprintf(dir, sizeof dir, "%s/conf-%s", tmp, name);
	if (!write_conf(dir, extra, act != ACT_SHARED))
		return -3000;
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return -3000;
	if (pid == 0) {
		int r = rig_init(dir, plugins);

		if (r != SASL_OK)
			_exit(100 + (-r & 0x3f));
		if (act == ACT_PLAIN) {
			r = plain(NULL, "alice", PW_ALICE);
		} else {
			r = rig_setpass("mallory", "cleartext-pw");
			if (act == ACT_SHARED && r == SASL_OK)
				r = plain(NULL, "mallory", "cleartext-pw");
			if (act == ACT_SHARED && r == SASL_OK && rig_log_has("relaydb"))
				r = SASL_FAIL; /* an unselected relaydb must stay silent */
		}
		if (log_needle != NULL && !rig_log_has(log_needle)) {
			rig_log_dump();
			_exit(99);
		}
		_exit(-r & 0x3f);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -2000;
	status = WEXITSTATUS(status);
	if (status == 99)
		return -4000;
	if (status >= 100)
		return -1000 - (status - 100);
	return -status;
}

static void test_configs(void)
{
	char extra[4400];
	int r;

	r = child_run("nopath", "", plugindir, ACT_PLAIN, "relaydb_path is not set");
	is_int(r, SASL_UNAVAIL, "no relaydb_path: lookups are SASL_UNAVAIL, logged clearly");

	r = child_run("relative", "relaydb_path: users.db\n", plugindir, ACT_PLAIN, "must be an absolute path");
	is_int(r, SASL_UNAVAIL, "relative relaydb_path: SASL_UNAVAIL, logged");

	snprintf(extra, sizeof extra, "relaydb_path: %s\nrelaydb_busy_timeout_ms: soon\n", dbpath);
	r = child_run("badbusy", extra, plugindir, ACT_PLAIN, "relaydb_busy_timeout_ms must be");
	is_int(r, SASL_UNAVAIL, "bad relaydb_busy_timeout_ms: SASL_UNAVAIL, logged");

	r = child_run("empty", "relaydb_path:\n", plugindir, ACT_PLAIN, NULL);
	is_int(r, -1000 - (-SASL_CONFIGERR & 0x3f),
	       "empty relaydb_path: libsasl2 itself refuses the config (documented)");

	snprintf(extra, sizeof extra, "relaydb_path: %s\nrelaydb_busy_timeout_ms: 250\n", dbpath);
	r = child_run("good", extra, plugindir, ACT_PLAIN, NULL);
	is_int(r, SASL_OK, "a fresh process with a good config authenticates");

	/* saslpasswd2's path without SCRAM in mech_list: relaydb refuses the capability
	 * probe, so libsasl2 never hands it the cleartext (and says so; the plugin's own
	 * line has no connection at that point and goes to syslog). */
	snprintf(extra, sizeof extra, "relaydb_path: %s\nmech_list: plain\n", dbpath);
	r = child_run("setpass", extra, plugindir, ACT_SETPASS, "no writable auxprop plugin");
	ok(r > -1000, "sasl_setpass: libsasl2 finds no writable auxprop plugin (sasl %d)", r);

	/* Installed in the system folder, relaydb is loaded by every SASL server on the host.
	 * One that uses sasldb and leaves auxprop_plugin unset (libsasl2 then asks every
	 * plugin) must keep working: its saslpasswd2 stores, its logins authenticate, and
	 * relaydb says nothing. */
	snprintf(extra, sizeof extra, "sasldb_path: %s/sasldb2\nmech_list: plain\n", tmp);
	r = child_run("shared", extra, shareddir, ACT_SHARED, NULL);
	is_int(r, SASL_OK, "beside sasldb in a host that does not select relaydb: sasldb works");
}

/* ---- the main configuration --------------------------------------------------------- */

static void test_plain_login(void)
{
	is_int(plain(NULL, "alice", PW_ALICE), SASL_OK, "PLAIN right password: OK");
	is_int(plain(NULL, "alice", "wrong"), SASL_BADAUTH, "PLAIN wrong password: BADAUTH");
	is_int(plain(NULL, "alice", ""), SASL_BADAUTH, "PLAIN empty password: BADAUTH");
	is_int(plain(NULL, "ALICE", PW_ALICE), SASL_OK, "names match case-insensitively");
	is_int(plain(NULL, "bob@example.org", PW_BOB), SASL_OK,
	       "a login stored as Bob@Example.ORG, typed in lower case: OK (not yet expired)");
	is_int(plain(NULL, "alice", PW_BOB), SASL_BADAUTH, "another login's password: BADAUTH");
	is_int(rig_login(NULL, "alice", PW_ALICE), SASL_OK, "LOGIN right password: OK");
	is_int(rig_login(NULL, "alice", "wrong"), SASL_BADAUTH, "LOGIN wrong password: BADAUTH");
	is_int(rig_login(NULL, "frank", PW_FRANK), SASL_OK, "LOGIN for a login without SCRAM: OK");

	/* A new sasl_conn per attempt, many times: no state leaks between attempts. */
	int good = 0;
	for (int i = 0; i < 200; i++)
		good += plain(NULL, "alice", i % 2 ? PW_ALICE : "nope") == SASL_OK;
	is_int(good, 100, "200 alternating attempts: exactly the 100 right ones succeed");
}

static void check_like_wrong(const char *what, int r, const char *log_needle)
{
	ok(r != SASL_OK && rig_smtp_code(r) == rig_smtp_code(SASL_BADAUTH),
	   "%s: refused like a wrong password (sasl %d, Postfix %d)", what, r, rig_smtp_code(r));
	ok(r != SASL_DISABLED, "%s: not SASL_DISABLED (would show 'account disabled')", what);
	ok(rig_log_has(log_needle), "%s: the log says '%s'", what, log_needle);
}

static void test_refusals(void)
{
	int r;

	rig_log_clear();
	r = plain(NULL, "nosuchuser", "whatever");
	check_like_wrong("unknown login", r, "login 'nosuchuser' does not exist");
	rig_log_clear();
	r = plain(NULL, "dave", PW_DAVE);
	check_like_wrong("disabled login, right password", r, "login 'dave' is disabled");
	rig_log_clear();
	r = plain(NULL, "erin", PW_ERIN);
	check_like_wrong("expired login, right password", r, "login 'erin' has expired");
	ok(rig_log_has("client 192.0.2.7;54321"), "the log names the client address");
	rig_log_clear();
	r = rig_login(NULL, "dave", PW_DAVE);
	check_like_wrong("disabled login via LOGIN", r, "is disabled");
	rig_log_clear();
	r = rig_scram(NULL, "erin", PW_ERIN);
	check_like_wrong("expired login via SCRAM", r, "has expired");
}

static void test_scram(void)
{
	int r;

	is_int(rig_scram(NULL, "alice", PW_ALICE), SASL_OK, "SCRAM-SHA-256 right password: OK");
	r = rig_scram(NULL, "alice", "wrong");
	ok(r != SASL_OK && rig_smtp_code(r) == 535, "SCRAM-SHA-256 wrong password fails (sasl %d)", r);
	is_int(rig_scram(NULL, "ALICE", PW_ALICE), SASL_OK, "SCRAM-SHA-256 name case-insensitive");
	r = rig_scram(NULL, "frank", PW_FRANK);
	ok(r != SASL_OK && rig_smtp_code(r) == 535,
	   "SCRAM-SHA-256 for a login without a verifier fails (sasl %d)", r);
	r = rig_scram(NULL, "nosuchuser", "x");
	ok(r != SASL_OK && rig_smtp_code(r) == 535, "SCRAM-SHA-256 unknown login fails (sasl %d)", r);
}

static void test_realm(void)
{
	/* smtpd_sasl_local_domain = example.org: libsasl2 appends @example.org to bare names. */
	is_int(plain("example.org", "carol", PW_CAROL), SASL_OK,
	       "realm set: 'carol' is looked up as carol@example.org");
	is_int(plain("example.org", "carol@example.org", PW_CAROL), SASL_OK,
	       "realm set: 'carol@example.org' typed in full");
	is_int(plain("example.org", "carol", "wrong"), SASL_BADAUTH, "realm set: wrong password");
	is_int(rig_scram("example.org", "carol", PW_CAROL), SASL_OK, "realm set: SCRAM as carol");
	ok(plain("example.org", "alice", PW_ALICE) != SASL_OK,
	   "realm set: a bare login 'alice' is not found as alice@example.org");
	/* smtpd_sasl_local_domain empty: the name is used exactly as typed. */
	ok(plain(NULL, "carol", PW_CAROL) != SASL_OK, "no realm: 'carol' is not carol@example.org");
	is_int(plain(NULL, "carol@example.org", PW_CAROL), SASL_OK, "no realm: full name works");
}

static void test_hostile(void)
{
	char *big = malloc(4097);
	struct {
		const char *what;
		const char *name;
		size_t len;
		const char *pass;
	} cases[] = {
		{ "SQL injection (Debian sql plugin bypass)", "' UNION SELECT 123 --", 0, "123" },
		{ "injection with a valid name", "alice' --", 0, PW_ALICE },
		{ "injection OR 1=1", "x' OR '1'='1", 0, "x" },
		{ "double quote", "alice\"", 0, PW_ALICE },
		{ "backslash", "alice\\", 0, PW_ALICE },
		{ "percent escapes", "%u%r%p", 0, "x" },
		{ "control bytes", "al\x01" "ice\x1b[31m", 0, PW_ALICE },
		{ "CRLF", "alice\r\nMAIL FROM:<x@y>", 0, PW_ALICE },
		{ "invalid UTF-8", "\xff\xfe\xc3\x28" "alice", 0, PW_ALICE },
		{ "a 4 KiB name", NULL, 4096, "x" },
		{ "a 256-byte name", NULL, 256, "x" },
		{ "a LIKE wildcard", "ali%", 0, PW_ALICE },
		{ "a LIKE underscore", "alic_", 0, PW_ALICE },
		{ "SQL NULL as text", "NULL", 0, "NULL" },
	};

	if (big == NULL) {
		ok(0, "malloc");
		return;
	}
	memset(big, 'a', 4096);
	big[4096] = '\0';
	rig_log_clear();
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const char *name = cases[i].name != NULL ? cases[i].name : big;
		size_t len = cases[i].name != NULL ? strlen(name) : cases[i].len;
		int r = rig_plain(NULL, name, len, cases[i].pass, strlen(cases[i].pass));

		ok(r != SASL_OK && rig_smtp_code(r) == 535, "hostile login, %s: refused (sasl %d)",
		   cases[i].what, r);
		r = rig_login(NULL, cases[i].name != NULL ? name : big, cases[i].pass);
		ok(r != SASL_OK && rig_smtp_code(r) != 235, "hostile login via LOGIN, %s: refused (sasl %d)",
		   cases[i].what, r);
	}
	ok(rig_log_printable(), "every log line is printable ASCII (names were sanitised)");
	ok(rig_log_lacks_bytes(big, 200), "a 4 KiB name is clamped in the log");
	free(big);
	is_int(plain(NULL, "alice", PW_ALICE), SASL_OK, "alice still authenticates afterwards");
}

static void test_no_secrets_logged(void)
{
	static const char *const pws[] = { PW_ALICE, PW_BOB, PW_CAROL, PW_DAVE, PW_ERIN, PW_FRANK };

	/* The ring holds the last lines; run a mix again so it is full of relevant ones. */
	rig_log_clear();
	plain(NULL, "alice", "wrong");
	plain(NULL, "dave", PW_DAVE);
	plain(NULL, "erin", PW_ERIN);
	plain(NULL, "alice", PW_ALICE);
	rig_scram(NULL, "alice", PW_ALICE);
	rig_scram(NULL, "alice", "wrong");
	for (size_t i = 0; i < sizeof pws / sizeof pws[0]; i++)
		ok(rig_log_lacks_bytes(pws[i], strlen(pws[i])), "no log line contains password #%zu", i);
}

static void test_store_refused(void)
{
	int r;

	rig_log_clear();
	r = rig_setpass("mallory", "cleartext-pw");
	ok(r != SASL_OK, "sasl_setpass (what saslpasswd2 does) is refused (sasl %d)", r);
	ok(plain(NULL, "mallory", "cleartext-pw") != SASL_OK, "and nothing was stored");
	ok(rig_log_lacks_bytes("cleartext-pw", 12), "the refused password is not logged");
}

/* ---- relay-admin's changes count from the next attempt on ---------------------------- */

static bool admin_sql(const char *sql, const char *name, const char *password)
{
	unsigned char secret[RDB_PLAIN_SECRET_LEN];
	sqlite3 *h = NULL;
	sqlite3_stmt *st = NULL;
	bool ok = false;

	if (password != NULL &&
	    rdb_secret_plain(password, strlen(password), NULL, secret) != RDB_OK)
		return false;
	if (sqlite3_open_v2(dbpath, &h, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC) == SQLITE_OK &&
	    (password == NULL ||
	     sqlite3_bind_blob(st, 2, secret, sizeof secret, SQLITE_STATIC) == SQLITE_OK))
		ok = sqlite3_step(st) == SQLITE_DONE && sqlite3_changes(h) == 1;
	sqlite3_finalize(st);
	sqlite3_close(h);
	return ok;
}

static void test_changes_apply_at_once(void)
{
	is_int(plain(NULL, "alice", PW_ALICE), SASL_OK, "alice logs in (her answer is now kept)");
	ok(admin_sql("UPDATE logins SET enabled = 0 WHERE name = ?1", "alice", NULL), "disable alice");
	check_like_wrong("alice right after being disabled", plain(NULL, "alice", PW_ALICE),
	                 "login 'alice' is disabled");
	ok(admin_sql("UPDATE logins SET enabled = 1 WHERE name = ?1", "alice", NULL), "enable alice");
	is_int(plain(NULL, "alice", PW_ALICE), SASL_OK, "alice right after being enabled again");
	ok(admin_sql("UPDATE logins SET plain_secret = ?2 WHERE name = ?1", "alice", "new-pw-5521"),
	   "change alice's password");
	is_int(plain(NULL, "alice", PW_ALICE), SASL_BADAUTH, "the old password fails at once");
	is_int(plain(NULL, "alice", "new-pw-5521"), SASL_OK, "the new password works at once");
	ok(admin_sql("UPDATE logins SET plain_secret = ?2 WHERE name = ?1", "alice", PW_ALICE),
	   "change it back");
	is_int(plain(NULL, "nosuch2", "x"), SASL_NOUSER, "an unknown login (answer kept)");
	{
		const struct fx_login add = { "nosuch2", "added-pw-1", true, 0, false };

		ok(fx_add(dbpath, &add), "add it");
	}
	is_int(plain(NULL, "nosuch2", "added-pw-1"), SASL_OK, "the added login works at once");
	ok(admin_sql("DELETE FROM logins WHERE name = ?1", "nosuch2", NULL), "delete it");
	ok(plain(NULL, "nosuch2", "added-pw-1") != SASL_OK, "the deleted login fails at once");
	is_int(plain(NULL, "alice", PW_ALICE), SASL_OK, "alice is back");
}

/* ---- SCRAM must not tell which logins exist (issue 8, item 2) ------------------------ */

/* Checks a server-first-message "r=<nonce>,s=<b64 salt>,i=<iter>" and copies the salt out:
 * the nonce must start with the client's, the salt be 16 bytes in base64 (24 characters),
 * the iteration count 4096 — the shape of every real verifier relay-admin writes. */
static bool first_shape(const char *msg, const char *client_nonce, char *salt, size_t saltlen)
{
	const char *s, *i;
	size_t n;

	salt[0] = '\0';
	if (strncmp(msg, "r=", 2) != 0 || strncmp(msg + 2, client_nonce, strlen(client_nonce)) != 0)
		return false;
	s = strstr(msg, ",s=");
	i = s != NULL ? strstr(s + 3, ",i=") : NULL;
	if (s == NULL || i == NULL || memchr(msg + 2, ',', (size_t)(s - msg - 2)) != NULL)
		return false;
	n = (size_t)(i - (s + 3));
	if (n != 24 || s[3 + 22] != '=' || s[3 + 23] != '=' ||
	    strspn(s + 3, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") != 22)
		return false;
	if (strcmp(i, ",i=4096") != 0 || n >= saltlen)
		return false;
	memcpy(salt, s + 3, n);
	salt[n] = '\0';
	return true;
}

/* The attack as sent by hand: AUTH SCRAM-SHA-256 with "n,,n=NAME,r=abc" and no password.
 * Before the fix an active login got 334 with its salt and an unknown, disabled or expired
 * one 535 at once. */
static void scram_first_as_attacker(const char *what, const char *name, char *salt, size_t saltlen)
{
	char client_first[300], msg[512];
	int r;

	snprintf(client_first, sizeof client_first, "n,,n=%s,r=abc", name);
	r = rig_scram_first(NULL, client_first, msg, sizeof msg);
	is_int(r, SASL_CONTINUE, "SCRAM first step, %s (%s): continues (Postfix 334), sasl %d",
	       what, name, r);
	ok(first_shape(msg, "abc", salt, saltlen),
	   "SCRAM first step, %s: r=abc...,s=<16-byte salt>,i=4096 ('%s')", what, msg);
}

static void test_scram_no_enumeration(void)
{
	static const struct {
		const char *what, *name, *password;
		bool succeeds;
	} kinds[] = {
		{ "active login", "alice", PW_ALICE, true },
		{ "unknown login", "nosuchuser", "whatever-9", false },
		{ "disabled login", "dave", PW_DAVE, false },
		{ "expired login", "erin", PW_ERIN, false },
		{ "active login without a verifier", "frank", PW_FRANK, false },
	};
	char salt[64], salt2[64], msg[512];
	int start, r, wrong;

	for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
		scram_first_as_attacker(kinds[k].what, kinds[k].name, salt, sizeof salt);

	/* The whole exchange, libsasl2's client against its server. A wrong password fails at
	 * the proof; so must every login that may not authenticate, even with its right
	 * password, and with the same result. */
	wrong = rig_scram_trace(NULL, "alice", "wrong", &start, msg, sizeof msg);
	is_int(wrong, SASL_BADAUTH, "SCRAM wrong password: BADAUTH at the proof");
	for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
		rig_log_clear();
		r = rig_scram_trace(NULL, kinds[k].name, kinds[k].password, &start, msg, sizeof msg);
		is_int(start, SASL_CONTINUE, "SCRAM %s: the first step continues", kinds[k].what);
		ok(strncmp(msg, "r=", 2) == 0 && strstr(msg, ",s=") != NULL &&
		   strstr(msg, ",i=4096") != NULL, "SCRAM %s: server-first-message '%s'",
		   kinds[k].what, msg);
		if (kinds[k].succeeds)
			is_int(r, SASL_OK, "SCRAM %s, right password: OK", kinds[k].what);
		else
			is_int(r, wrong, "SCRAM %s, right password: fails at the proof like a wrong "
			       "password (sasl %d)", kinds[k].what, r);
	}
	ok(rig_log_has("login 'frank' has no SCRAM-SHA-256 verifier"),
	   "the log says why frank's SCRAM failed");

	/* A decoy is stable: the same salt on every attempt and for every spelling (names
	 * match case-insensitively), different for different names. */
	scram_first_as_attacker("unknown login", "kim", salt, sizeof salt);
	scram_first_as_attacker("unknown login again", "kim", salt2, sizeof salt2);
	is_str(salt2, salt, "an unknown login shows the same salt every time");
	scram_first_as_attacker("unknown login, other case", "KiM", salt2, sizeof salt2);
	is_str(salt2, salt, "'KiM' and 'kim' show the same salt");
	scram_first_as_attacker("another unknown login", "kim2", salt2, sizeof salt2);
	ok(strcmp(salt, salt2) != 0, "'kim2' shows another salt than 'kim'");

	/* Disabling a login does not change what SCRAM shows for it. */
	scram_first_as_attacker("active login", "alice", salt, sizeof salt);
	ok(admin_sql("UPDATE logins SET enabled = 0 WHERE name = ?1", "alice", NULL), "disable alice");
	scram_first_as_attacker("alice disabled", "alice", salt2, sizeof salt2);
	is_str(salt2, salt, "a disabled login keeps the salt it showed while active");
	rig_log_clear();
	is_int(rig_scram(NULL, "alice", PW_ALICE), wrong,
	       "disabled alice with her right password fails at the proof like a wrong password");
	ok(rig_log_has("login 'alice' is disabled"), "and the log says she is disabled");
	ok(admin_sql("UPDATE logins SET enabled = 1 WHERE name = ?1", "alice", NULL), "enable alice");
	is_int(rig_scram(NULL, "alice", PW_ALICE), SASL_OK, "alice enabled again: SCRAM OK");

	/* PLAIN and LOGIN still hand out nothing for these logins. */
	is_int(plain(NULL, "kim", "x"), SASL_NOUSER, "PLAIN for an unknown login: NOUSER (535)");
	is_int(rig_smtp_code(plain(NULL, "dave", PW_DAVE)), 535, "PLAIN for a disabled login: 535");
}

/* ---- app credentials (issue 12, item 1) ----------------------------------------------- */

#define PW_PHONE "phone-credential-pw-1"
#define PW_PRINTER "printer-credential-pw-2"

/* relay-admin user credential add / revoke, through the data layer it uses. */
static bool cred_change(const char *name, const char *label, const char *password)
{
	unsigned char plain[RDB_PLAIN_SECRET_LEN];
	char scram[RDB_SCRAM_MAX], err[256];
	struct rdb *db = NULL;
	enum rdb_result r = RDB_ERROR;

	if (rdb_open(dbpath, RDB_READWRITE, &db, err, sizeof err) != RDB_OK)
		return false;
	if (password == NULL)
		r = rdb_credential_revoke(db, name, label);
	else if (rdb_secret_plain(password, strlen(password), NULL, plain) == RDB_OK &&
	         rdb_secret_scram_sha256(password, strlen(password), RDB_SCRAM_ITERATIONS, NULL, 0,
	                                 scram) == RDB_OK)
		r = rdb_credential_add(db, name, label, plain, scram, (int64_t)time(NULL), NULL);
	rdb_close(db);
	return r == RDB_OK;
}

static void test_credentials(void)
{
	char salt[64], msg[512];
	int start, r, wrong;

	ok(cred_change("alice", "phone", PW_PHONE), "alice gets credential phone");
	ok(cred_change("alice", "printer", PW_PRINTER), "and credential printer");
	ok(cred_change("Bob@Example.ORG", "cron", PW_PHONE), "bob gets credential cron");

	/* the three mechanisms with a credential's own name and secret */
	is_int(plain(NULL, "alice+phone", PW_PHONE), SASL_OK, "PLAIN with a credential: OK");
	is_int(plain(NULL, "ALICE+Phone", PW_PHONE), SASL_OK, "in any case");
	is_int(rig_login(NULL, "alice+phone", PW_PHONE), SASL_OK, "LOGIN with a credential: OK");
	is_int(rig_scram(NULL, "alice+phone", PW_PHONE), SASL_OK, "SCRAM-SHA-256 with a credential: OK");
	is_int(plain(NULL, "bob+cron@example.org", PW_PHONE), SASL_OK,
	       "local+LABEL@domain for local@domain: OK");
	is_int(plain(NULL, "alice+printer", PW_PRINTER), SASL_OK, "the other credential: OK");
	is_int(plain(NULL, "alice", PW_ALICE), SASL_OK, "the login's own password: OK");
	/* a secret belongs to one name */
	is_int(plain(NULL, "alice+phone", PW_ALICE), SASL_BADAUTH, "the login's password as a credential");
	is_int(plain(NULL, "alice", PW_PHONE), SASL_BADAUTH, "a credential's secret as the login's");
	is_int(plain(NULL, "alice+printer", PW_PHONE), SASL_BADAUTH, "one credential's for another");
	r = rig_scram(NULL, "alice+phone", "wrong");
	ok(r != SASL_OK && rig_smtp_code(r) == 535, "SCRAM with a credential, wrong secret: 535");

	/* revoked and unknown credentials: exactly like a wrong password, SCRAM included */
	wrong = rig_scram_trace(NULL, "alice+printer", "wrong", &start, msg, sizeof msg);
	is_int(wrong, SASL_BADAUTH, "SCRAM wrong secret: BADAUTH at the proof");
	ok(cred_change("alice", "phone", NULL), "revoke phone");
	rig_log_clear();
	check_like_wrong("revoked credential, PLAIN", plain(NULL, "alice+phone", PW_PHONE),
	                 "login 'alice+phone' does not exist");
	check_like_wrong("revoked credential, LOGIN", rig_login(NULL, "alice+phone", PW_PHONE),
	                 "login 'alice+phone' does not exist");
	scram_first_as_attacker("revoked credential", "alice+phone", salt, sizeof salt);
	scram_first_as_attacker("unknown credential", "alice+tablet", salt, sizeof salt);
	r = rig_scram_trace(NULL, "alice+phone", PW_PHONE, &start, msg, sizeof msg);
	is_int(start, SASL_CONTINUE, "SCRAM revoked credential: the first step continues");
	is_int(r, wrong, "SCRAM revoked credential, its right secret: fails at the proof like a "
	       "wrong password (sasl %d)", r);
	r = rig_scram_trace(NULL, "alice+tablet", "x", &start, msg, sizeof msg);
	is_int(start, SASL_CONTINUE, "SCRAM unknown credential: the first step continues");
	is_int(r, wrong, "SCRAM unknown credential: fails at the proof (sasl %d)", r);
	/* revoking one touches nothing else */
	is_int(plain(NULL, "alice+printer", PW_PRINTER), SASL_OK, "the other credential still works");
	is_int(rig_scram(NULL, "alice+printer", PW_PRINTER), SASL_OK, "also with SCRAM");
	is_int(plain(NULL, "alice", PW_ALICE), SASL_OK, "and the login's own password");

	/* the login disabled: its credentials with it */
	ok(admin_sql("UPDATE logins SET enabled = 0 WHERE name = ?1", "alice", NULL), "disable alice");
	rig_log_clear();
	check_like_wrong("credential of a disabled login, PLAIN",
	                 plain(NULL, "alice+printer", PW_PRINTER), "login 'alice+printer' is disabled");
	scram_first_as_attacker("credential of a disabled login", "alice+printer", salt, sizeof salt);
	is_int(rig_scram(NULL, "alice+printer", PW_PRINTER), wrong,
	       "SCRAM, credential of a disabled login: fails at the proof like a wrong password");
	ok(admin_sql("UPDATE logins SET enabled = 1 WHERE name = ?1", "alice", NULL), "enable alice");
	is_int(plain(NULL, "alice+printer", PW_PRINTER), SASL_OK, "enabled again: the credential works");
	ok(rig_log_lacks_bytes(PW_PRINTER, strlen(PW_PRINTER)), "no secret in the log");
	ok(cred_change("alice", "printer", NULL), "revoke printer (clean up)");
}

/* ---- the database going away, breaking, locking -------------------------------------- */

static void test_db_failures(void)
{
	char aside[4300], path[4300];
	sqlite3 *h = NULL;
	int r;

	snprintf(aside, sizeof aside, "%s.aside", dbpath);

	if (rename(dbpath, aside) != 0) {
		ok(0, "rename");
		return;
	}
	rig_log_clear();
	is_int(plain(NULL, "alice", PW_ALICE), SASL_UNAVAIL, "database removed: SASL_UNAVAIL");
	ok(rig_log_has("unavailable"), "database removed: the reason is logged");
	is_int(rig_smtp_code(plain(NULL, "nosuchuser", "x")), 454,
	       "database removed: even an unknown login is temporary (454), not 535");
	r = rig_scram(NULL, "alice", PW_ALICE);
	is_int(rig_smtp_code(r), 454, "database removed: SCRAM is temporary too (sasl %d)", r);

	ok(rig_write_file(dbpath, "this is not a database, just some text\n", 39),
	   "a corrupt file in its place");
	rig_log_clear();
	r = plain(NULL, "alice", PW_ALICE);
	is_int(r, SASL_UNAVAIL, "corrupt database: SASL_UNAVAIL");
	ok(r != SASL_NOUSER && r != SASL_BADAUTH, "corrupt database: never NOUSER/BADAUTH");

	/* Ours, but at schema version 1 (no decoy key): refused until relay-admin init has
	 * migrated it, with the reason in the log. */
	unlink(dbpath);
	ok(fx_create(dbpath), "a current database in its place");
	if (sqlite3_open(dbpath, &h) == SQLITE_OK)
		sqlite3_exec(h, "PRAGMA user_version = 1", NULL, NULL, NULL);
	sqlite3_close(h);
	h = NULL;
	rig_log_clear();
	r = rig_scram(NULL, "alice", PW_ALICE);
	is_int(rig_smtp_code(r), 454, "a schema version 1 file: SCRAM is temporary (sasl %d)", r);
	is_int(plain(NULL, "nosuchuser", "x"), SASL_UNAVAIL, "a schema version 1 file: SASL_UNAVAIL");
	ok(rig_log_has("schema version 1 is older than") &&
	   rig_log_has("run relay-admin init"),
	   "the log says to run relay-admin init");

	/* A real SQLite file that is not ours. */
	unlink(dbpath);
	if (sqlite3_open(dbpath, &h) == SQLITE_OK)
		sqlite3_exec(h, "CREATE TABLE logins (name TEXT, password TEXT);"
		                "INSERT INTO logins VALUES ('alice', 'x');", NULL, NULL, NULL);
	sqlite3_close(h);
	h = NULL;
	is_int(plain(NULL, "alice", PW_ALICE), SASL_UNAVAIL, "a foreign SQLite file: SASL_UNAVAIL");

	/* Truncated to its first page: SQLite sees a damaged file. */
	unlink(dbpath);
	{
		FILE *in = fopen(aside, "rb");
		char page[4096];
		size_t n = in ? fread(page, 1, sizeof page, in) : 0;

		if (in)
			fclose(in);
		ok(n > 100 && rig_write_file(dbpath, page, n), "a truncated copy in its place");
	}
	r = plain(NULL, "alice", PW_ALICE);
	ok(rig_smtp_code(r) == 454, "truncated database: temporary failure (sasl %d)", r);

	/* Put the real one back: the plugin notices the new file and reopens it. */
	unlink(dbpath);
	if (rename(aside, dbpath) != 0) {
		ok(0, "rename back");
		return;
	}
	is_int(plain(NULL, "alice", PW_ALICE), SASL_OK, "database restored: OK again");
	is_int(plain(NULL, "alice", PW_ALICE), SASL_OK, "database restored: OK again");

	/* A writer holding the database past the busy timeout (250 ms here). */
	if (sqlite3_open(dbpath, &h) != SQLITE_OK) {
		ok(0, "open a writer");
		sqlite3_close(h);
		return;
	}
	{
		sqlite3_stmt *st = NULL;
		char mode[16] = "";

		/* The users database keeps a rollback journal: smtpd (user postfix) opens it
		 * read-only and could not create WAL's -shm file beside it. So a writer can
		 * block the plugin, and that path must fail closed: check the mode, then the
		 * lock (no branch that passes without testing anything). */
		if (sqlite3_prepare_v2(h, "PRAGMA journal_mode", -1, &st, NULL) == SQLITE_OK &&
		    sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0) != NULL)
			snprintf(mode, sizeof mode, "%s", (const char *)sqlite3_column_text(st, 0));
		sqlite3_finalize(st);
		is_str(mode, "delete", "the users database keeps a rollback journal, not WAL");
		if (sqlite3_exec(h, "BEGIN EXCLUSIVE", NULL, NULL, NULL) == SQLITE_OK) {
			/* alice's answer was just read under the same change counter: nothing has
			 * been committed since, so it is still the last committed state */
			is_int(plain(NULL, "alice", PW_ALICE), SASL_OK,
			       "locked, no commit since alice's last answer: still OK");
			rig_log_clear();
			/* bob was not asked since the file was reopened: SQLite must answer */
			r = plain(NULL, "bob@example.org", PW_BOB);
			is_int(r, SASL_UNAVAIL, "database locked past the busy timeout: SASL_UNAVAIL");
			ok(rig_log_has("unavailable"), "locked: the reason is logged");
			sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL);
		} else {
			ok(0, "BEGIN EXCLUSIVE: %s", sqlite3_errmsg(h));
		}
	}
	sqlite3_close(h);
	is_int(plain(NULL, "alice", PW_ALICE), SASL_OK, "lock released: OK again");

	/* Replaced by a new file (what a restore does): the new contents count. */
	snprintf(path, sizeof path, "%s.new", dbpath);
	{
		const struct fx_login only = { "newbie", "newbie-pw-1", true, 0, false };

		ok(fx_create(path) && fx_add(path, &only), "a new database");
		ok(rename(path, dbpath) == 0, "renamed over the old one");
	}
	is_int(plain(NULL, "newbie", "newbie-pw-1"), SASL_OK, "replaced database: the new login works");
	ok(plain(NULL, "alice", PW_ALICE) != SASL_OK, "replaced database: the old login is gone");
}

int main(int argc, char **argv)
{
	char extra[4400];
	char lib[4][4300];
	const char *links[5], *shared_links[4];
	int r;

	if (argc != 3) {
		fprintf(stderr, "usage: %s LIBRELAYDB.so SYSTEM_SASL2_DIR\n", argv[0]);
		return 2;
	}
	plugin_so = realpath(argv[1], NULL); /* the symlink must not be relative */
	if (plugin_so == NULL) {
		perror(argv[1]);
		return 2;
	}
	sysdir = argv[2];
	if (scratch_make("relaydb-sasl") != 0)
		return 2;
	snprintf(tmp, sizeof tmp, "%s", scratch_dir);
	snprintf(plugindir, sizeof plugindir, "%s/plugins", tmp);
	snprintf(shareddir, sizeof shareddir, "%s/plugins-shared", tmp);
	snprintf(confdir, sizeof confdir, "%s/conf", tmp);
	snprintf(dbpath, sizeof dbpath, "%s/users.db", tmp);
	snprintf(lib[0], sizeof lib[0], "%s/libplain.so", sysdir);
	snprintf(lib[1], sizeof lib[1], "%s/liblogin.so", sysdir);
	snprintf(lib[2], sizeof lib[2], "%s/libscram.so", sysdir);
	links[0] = plugin_so;
	links[1] = lib[0];
	links[2] = lib[1];
	links[3] = lib[2];
	links[4] = NULL;
	snprintf(lib[3], sizeof lib[3], "%s/libsasldb.so", sysdir);
	shared_links[0] = plugin_so;
	shared_links[1] = lib[0];
	shared_links[2] = lib[3];
	shared_links[3] = NULL;
	if (mkdir(plugindir, 0700) != 0 || !rig_link_plugins(plugindir, links) ||
	    mkdir(shareddir, 0700) != 0 || !rig_link_plugins(shareddir, shared_links) ||
	    !make_fixture()) {
		fprintf(stderr, "setup failed in %s\n", tmp);
		return 2;
	}

	test_configs();

	snprintf(extra, sizeof extra, "relaydb_path: %s\nrelaydb_busy_timeout_ms: 250\n", dbpath);
	if (!write_conf(confdir, extra, true)) {
		fprintf(stderr, "cannot write %s\n", confdir);
		return 2;
	}
	r = rig_init(confdir, plugindir);
	if (!is_int(r, SASL_OK, "sasl_server_init with relaydb"))
		return tap_done();

	test_plain_login();
	test_refusals();
	test_scram();
	test_realm();
	test_hostile();
	test_no_secrets_logged();
	test_store_refused();
	test_changes_apply_at_once();
	test_scram_no_enumeration();
	test_credentials();
	test_db_failures();
	sasl_done();
	free(plugin_so);

	r = tap_done();
	/* Only our own temp folder, only on success (kept for inspection otherwise). */
	if (r == 0) {
		if (scratch_remove_tree() != 0)
			fprintf(stderr, "could not remove %s\n", tmp);
	} else {
		fprintf(stderr, "fixtures kept in %s\n", tmp);
	}
	return r;
}
