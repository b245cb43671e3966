/*
 * bench-auth.c — AUTH PLAIN attempts per second through the real libsasl2, for relaydb,
 * sasldb and Debian's `sql` plugin on SQLite: same login, same password, same run; with
 * --pg-relaydb and --pg-sql also relaydb and Debian's `sql` plugin (sql_engine: pgsql) on
 * one PostgreSQL server, in the same rounds (bench/auth/pg.py starts that server).
 *
 * Usage: relay-bench-auth LIBRELAYDB.so SYSTEM_SASL2_DIR [--seconds S] [--rounds N]
 *                         [--saslpasswd2 PATH] [--only relaydb|relaydb-cold|sasldb|sql|...]
 *                         [--pg-relaydb NAME --pg-sql FILE]
 * (--only runs one backend and prints its rate: for profiling.)
 * --pg-relaydb NAME: relaydb_path of a PostgreSQL users database (pg:/file or a URI without
 * a password) holding the login "alice"; --pg-sql FILE: the sql plugin's settings for the
 * same server (sql_engine, sql_hostnames, sql_user, sql_passwd, sql_database, sql_select),
 * a table with alice's password in cleartext, as that plugin needs. alice's password is
 * read from stdin (one line), never from argv.
 *
 * Each attempt is what Postfix's smtpd does for one AUTH: sasl_server_new, sasl_server_start
 * with the PLAIN initial response, sasl_dispose (a new sasl_conn per attempt). Each backend
 * runs in its own forked process with its own smtpd.conf and a plugin folder holding only
 * libplain.so and that backend, because libsasl2 reads its config once per process. Rounds
 * alternate the backends so that a noisy neighbour on the machine hits all of them; the
 * table shows each backend's median.
 *
 * Setup, all in a private temp folder removed at the end: a users database made with the
 * rdb API, a sasldb made by saslpasswd2 (password on its stdin), and an SQLite table for the
 * sql plugin with the password in cleartext (which is what that plugin needs). The password
 * is generated, never on a command line.
 *
 * It also shows the SQL injection: login `' UNION SELECT 123 --` with password `123` against
 * the sql plugin and against relaydb.
 *
 * Exit status: 0 if relaydb meets its budget (>= 3x sasldb and >= 15x sql, DESIGN.md;
 * on PostgreSQL >= 10x sql with pgsql, issue 10), 1 if it misses it, 2 on a setup error.
 */
#include <errno.h>
#include <ftw.h>
#include <stdint.h>
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

#define LOGIN "alice"
#define REALM "relay.test" /* the rig's server name: sasldb's realm for bare names */
#define INJECTION_NAME "' UNION SELECT 123 --"
#define INJECTION_PW "123"

enum backend { B_RELAYDB, B_RELAYDB_COLD, B_SASLDB, B_SQL, B_RELAYDB_PG, B_SQL_PG, B_COUNT };

static const char *const backend_name[B_COUNT] = {
	"relaydb", "relaydb-cold", "sasldb", "sql (Debian)", "relaydb (pg)", "sql pgsql (Debian)",
};
/* the PostgreSQL pair runs only with --pg-relaydb and --pg-sql */
static bool enabled[B_COUNT] = { true, true, true, true, false, false };

/* relaydb-cold rotates over more logins than the plugin keeps answers for, so every
 * lookup goes to SQLite: the worst case, shown for honesty (same config as relaydb). */
#define COLD_LOGINS 5
static const char *const cold_login[COLD_LOGINS] = { LOGIN, "cold1", "cold2", "cold3", "cold4" };

static char tmp[4096];
static char password[64];
static char pg_password[256];   /* alice's on PostgreSQL (stdin) */

static const char *password_of(enum backend b)
{
	return b == B_RELAYDB_PG || b == B_SQL_PG ? pg_password : password;
}
static char confdir[B_COUNT][4200];
static char plugdir[B_COUNT][4200];

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- setup -------------------------------------------------------------------------- */

static bool write_conf(enum backend b, const char *lines)
{
	char path[4300];

	if (mkdir(confdir[b], 0700) != 0)
		return false;
	snprintf(path, sizeof path, "%s/smtpd.conf", confdir[b]);
	return rig_write_file(path, lines, strlen(lines));
}

static bool link_plugins(enum backend b, const char *sysdir, const char *lib)
{
	char plain[4300];
	const char *links[3] = { plain, lib, NULL };

	snprintf(plain, sizeof plain, "%s/libplain.so", sysdir);
	return mkdir(plugdir[b], 0700) == 0 && rig_link_plugins(plugdir[b], links);
}

static bool setup_relaydb(const char *plugin_so, const char *sysdir)
{
	char db[4300], conf[8800];

	snprintf(db, sizeof db, "%s/users.db", tmp);
	snprintf(conf, sizeof conf,
	         "pwcheck_method: auxprop\nauxprop_plugin: relaydb\nmech_list: plain\n"
	         "relaydb_path: %s\n", db);
	if (!fx_create(db))
		return false;
	for (int i = 0; i < COLD_LOGINS; i++) {
		struct fx_login login = { cold_login[i], password, true, 0, true };

		if (!fx_add(db, &login))
			return false;
	}
	return write_conf(B_RELAYDB, conf) && link_plugins(B_RELAYDB, sysdir, plugin_so) &&
	       write_conf(B_RELAYDB_COLD, conf) && link_plugins(B_RELAYDB_COLD, sysdir, plugin_so);
}

/* saslpasswd2 -p reads the password from stdin; SASL_PATH limits it to the sasldb plugin. */
static bool setup_sasldb(const char *sysdir, const char *saslpasswd2)
{
	char db[4300], lib[4300], conf[8800], env[4300];
	int fds[2], status;
	pid_t pid;

	snprintf(db, sizeof db, "%s/sasldb2", tmp);
	snprintf(lib, sizeof lib, "%s/libsasldb.so", sysdir);
	if (!link_plugins(B_SASLDB, sysdir, lib) || pipe(fds) != 0)
		return false;
	snprintf(env, sizeof env, "SASL_PATH=%s", plugdir[B_SASLDB]);
	pid = fork();
	if (pid < 0)
		return false;
	if (pid == 0) {
		char *const argv[] = { (char *)(uintptr_t)saslpasswd2, (char *)(uintptr_t)"-p",
		                       (char *)(uintptr_t)"-c", (char *)(uintptr_t)"-f", db,
		                       (char *)(uintptr_t)"-u", (char *)(uintptr_t)REALM,
		                       (char *)(uintptr_t)"-a", (char *)(uintptr_t)"relay-bench",
		                       (char *)(uintptr_t)LOGIN, NULL };
		char *const envp[] = { env, NULL };

		dup2(fds[0], 0);
		close(fds[0]);
		close(fds[1]);
		execve(saslpasswd2, argv, envp);
		_exit(127);
	}
	close(fds[0]);
	if (write(fds[1], password, strlen(password)) != (ssize_t)strlen(password)) {
		close(fds[1]);
		waitpid(pid, &status, 0);
		return false;
	}
	close(fds[1]);
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "bench: %s failed\n", saslpasswd2);
		return false;
	}
	snprintf(conf, sizeof conf,
	         "pwcheck_method: auxprop\nauxprop_plugin: sasldb\nmech_list: plain\n"
	         "sasldb_path: %s\n", db);
	return write_conf(B_SASLDB, conf);
}

/* The sql plugin as the how-tos set it up: cleartext password column, '%u' in the query. */
static bool setup_sql(const char *sysdir)
{
	char db[4300], lib[4300], conf[8800];
	sqlite3 *h = NULL;
	sqlite3_stmt *st = NULL;
	bool ok;

	snprintf(db, sizeof db, "%s/sql.db", tmp);
	snprintf(lib, sizeof lib, "%s/libsql.so", sysdir);
	if (access(lib, R_OK) != 0) {
		fprintf(stderr, "bench: %s missing: apt-get install libsasl2-modules-sql\n", lib);
		return false;
	}
	ok = sqlite3_open(db, &h) == SQLITE_OK &&
	     sqlite3_exec(h, "CREATE TABLE users (username TEXT PRIMARY KEY, password TEXT)",
	                  NULL, NULL, NULL) == SQLITE_OK &&
	     sqlite3_prepare_v2(h, "INSERT INTO users VALUES (?1, ?2)", -1, &st, NULL) == SQLITE_OK &&
	     sqlite3_bind_text(st, 1, LOGIN, -1, SQLITE_STATIC) == SQLITE_OK &&
	     sqlite3_bind_text(st, 2, password, -1, SQLITE_STATIC) == SQLITE_OK &&
	     sqlite3_step(st) == SQLITE_DONE;
	sqlite3_finalize(st);
	sqlite3_close(h);
	snprintf(conf, sizeof conf,
	         "pwcheck_method: auxprop\nauxprop_plugin: sql\nmech_list: plain\n"
	         "sql_engine: sqlite3\nsql_database: %s\n"
	         "sql_select: SELECT password FROM users WHERE username = '%%u'\n", db);
	return ok && write_conf(B_SQL, conf) && link_plugins(B_SQL, sysdir, lib);
}

/* relaydb on PostgreSQL: the same plugin, relaydb_path naming the server (the login is
 * made by relay-admin there). The sql plugin: its settings file appended to the same
 * header the SQLite case writes. */
static bool setup_pg(const char *plugin_so, const char *sysdir, const char *relaydb,
                     const char *sqlconf)
{
	char conf[8800], lib[4300];
	char sql[4096];
	FILE *f;
	size_t n;
	bool ok;

	snprintf(conf, sizeof conf,
	         "pwcheck_method: auxprop\nauxprop_plugin: relaydb\nmech_list: plain\n"
	         "relaydb_path: %s\n", relaydb);
	if (!write_conf(B_RELAYDB_PG, conf) || !link_plugins(B_RELAYDB_PG, sysdir, plugin_so))
		return false;
	f = fopen(sqlconf, "r");
	if (f == NULL) {
		perror(sqlconf);
		return false;
	}
	n = fread(sql, 1, sizeof sql - 1, f);
	fclose(f);
	sql[n] = '\0';
	snprintf(conf, sizeof conf, "pwcheck_method: auxprop\nauxprop_plugin: sql\n"
	         "mech_list: plain\n%s", sql);
	explicit_bzero(sql, sizeof sql);   /* it holds sql_passwd */
	snprintf(lib, sizeof lib, "%s/libsql.so", sysdir);
	ok = write_conf(B_SQL_PG, conf) && link_plugins(B_SQL_PG, sysdir, lib);
	explicit_bzero(conf, sizeof conf);
	return ok;
}

/* alice's PostgreSQL password: one line on stdin */
static bool read_pg_password(void)
{
	size_t n;

	if (fgets(pg_password, sizeof pg_password, stdin) == NULL)
		return false;
	n = strcspn(pg_password, "\r\n");
	pg_password[n] = '\0';
	return n > 0;
}

/* ---- measuring ---------------------------------------------------------------------- */

struct result {
	double per_second;   /* < 0: the backend failed */
	int injection;       /* sasl result of the injection attempt */
};

/* In a child: init libsasl2 for this backend, check the login works, try the injection,
 * then count attempts for `seconds`. */
static struct result run_backend(enum backend b, double seconds)
{
	struct result res = { -1, SASL_FAIL };
	int fds[2], status;
	pid_t pid;

	fflush(stdout);
	if (pipe(fds) != 0)
		return res;
	pid = fork();
	if (pid < 0)
		return res;
	if (pid == 0) {
		const char *pw = password_of(b);
		size_t plen = strlen(pw);
		struct result out = { -1, SASL_FAIL };
		long n = 0;
		double start, elapsed = 0;
		int r;

		close(fds[0]);
		r = rig_init(confdir[b], plugdir[b]);
		if (r == SASL_OK)
			r = rig_plain(NULL, LOGIN, strlen(LOGIN), pw, plen);
		if (r != SASL_OK) {
			fprintf(stderr, "bench: %s: the right password fails (sasl %d)\n",
			        backend_name[b], r);
			rig_log_dump();
		} else {
			out.injection = rig_plain(NULL, INJECTION_NAME, strlen(INJECTION_NAME),
			                          INJECTION_PW, strlen(INJECTION_PW));
			for (int i = 0; i < 200; i++) /* warm up caches and the connection */
				rig_plain(NULL, LOGIN, strlen(LOGIN), pw, plen);
			start = now_s();
			do {
				for (int i = 0; i < 100; i++) {
					const char *user = b == B_RELAYDB_COLD ? cold_login[i % COLD_LOGINS]
					                                       : LOGIN;

					if (rig_plain(NULL, user, strlen(user), pw, plen) == SASL_OK)
						n++;
					else
						n = -1000000000L;
				}
				elapsed = now_s() - start;
			} while (elapsed < seconds);
			out.per_second = n > 0 ? (double)n / elapsed : -1;
		}
		if (write(fds[1], &out, sizeof out) != (ssize_t)sizeof out)
			_exit(1);
		_exit(0);
	}
	close(fds[1]);
	if (read(fds[0], &res, sizeof res) != (ssize_t)sizeof res)
		res.per_second = -1;
	close(fds[0]);
	waitpid(pid, &status, 0);
	return res;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	return remove(path);
}

static void usage(const char *argv0)
{
	fprintf(stderr, "usage: %s LIBRELAYDB.so SYSTEM_SASL2_DIR [--seconds S] [--rounds N] "
	        "[--saslpasswd2 PATH] [--only relaydb|relaydb-cold|sasldb|sql|relaydb (pg)|"
	        "sql pgsql] [--pg-relaydb NAME --pg-sql FILE]   (PostgreSQL: alice's password "
	        "on stdin)\n", argv0);
}

int main(int argc, char **argv)
{
	const char *saslpasswd2 = "/usr/sbin/saslpasswd2";
	const char *pg_relaydb = NULL, *pg_sql = NULL;
	const char *base = getenv("TMPDIR");
	double seconds = 2.0;
	int rounds = 3;
	char *plugin_so;
	double rates[B_COUNT][16];
	double median[B_COUNT];
	int injection[B_COUNT];
	int status = 2;
	int only = -1;

	if (argc < 3) {
		usage(argv[0]);
		return 2;
	}
	for (int i = 3; i < argc; i++) {
		if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
			seconds = atof(argv[++i]);
		} else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) {
			rounds = atoi(argv[++i]);
		} else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
			i++;
			for (int b = 0; b < B_COUNT; b++)
				if (strncmp(argv[i], backend_name[b], strlen(argv[i])) == 0 && only < 0)
					only = b;
			if (only < 0) {
				usage(argv[0]);
				return 2;
			}
		} else if (strcmp(argv[i], "--saslpasswd2") == 0 && i + 1 < argc) {
			saslpasswd2 = argv[++i];
		} else if (strcmp(argv[i], "--pg-relaydb") == 0 && i + 1 < argc) {
			pg_relaydb = argv[++i];
		} else if (strcmp(argv[i], "--pg-sql") == 0 && i + 1 < argc) {
			pg_sql = argv[++i];
		} else {
			usage(argv[0]);
			return 2;
		}
	}
	if ((pg_relaydb == NULL) != (pg_sql == NULL)) {
		fprintf(stderr, "bench: --pg-relaydb and --pg-sql go together\n");
		return 2;
	}
	if (pg_relaydb && !read_pg_password()) {
		fprintf(stderr, "bench: with --pg-relaydb, alice's password on stdin (one line)\n");
		return 2;
	}
	enabled[B_RELAYDB_PG] = enabled[B_SQL_PG] = pg_relaydb != NULL;
	if (only >= 0 && !enabled[only]) {
		usage(argv[0]);
		return 2;
	}
	if (seconds <= 0 || seconds > 600 || rounds < 1 || rounds > 16) {
		fprintf(stderr, "bench: --seconds 0..600, --rounds 1..16\n");
		return 2;
	}
	plugin_so = realpath(argv[1], NULL);
	if (plugin_so == NULL) {
		perror(argv[1]);
		return 2;
	}
	snprintf(tmp, sizeof tmp, "%s/relay-bench-auth-XXXXXX", base && *base ? base : "/tmp");
	if (mkdtemp(tmp) == NULL) {
		perror("mkdtemp");
		free(plugin_so);
		return 2;
	}
	for (int b = 0; b < B_COUNT; b++) {
		snprintf(confdir[b], sizeof confdir[b], "%s/conf-%d", tmp, b);
		snprintf(plugdir[b], sizeof plugdir[b], "%s/plugins-%d", tmp, b);
	}
	if (rdb_generate_password(password, sizeof password) != RDB_OK ||
	    !setup_relaydb(plugin_so, argv[2]) || !setup_sasldb(argv[2], saslpasswd2) ||
	    !setup_sql(argv[2]) || (pg_relaydb && !setup_pg(plugin_so, argv[2], pg_relaydb, pg_sql))) {
		fprintf(stderr, "bench: setup failed (kept in %s)\n", tmp);
		goto out;
	}

	printf("AUTH PLAIN through libsasl2, new sasl_conn per attempt; %d round(s) of %.1f s "
	       "per backend\n", rounds, seconds);
	for (int r = 0; r < rounds; r++) {
		for (int b = 0; b < B_COUNT; b++) {
			struct result res;

			if ((only >= 0 && b != only) || !enabled[b])
				continue;
			res = run_backend((enum backend)b, seconds);

			if (res.per_second < 0) {
				fprintf(stderr, "bench: %s failed\n", backend_name[b]);
				goto out;
			}
			rates[b][r] = res.per_second;
			injection[b] = res.injection;
			printf("  round %d  %-13s %10.0f /s\n", r + 1, backend_name[b], res.per_second);
			fflush(stdout);
		}
	}
	if (only >= 0) {
		status = 0;
		goto clean;
	}
	for (int b = 0; b < B_COUNT; b++) {
		if (!enabled[b])
			continue;
		qsort(rates[b], (size_t)rounds, sizeof rates[b][0], cmp_double);
		median[b] = rates[b][rounds / 2];
	}

	printf("\n| backend | attempts/s (median) | relaydb is |\n|---|---:|---:|\n");
	/* relaydb-cold is the worst case: every lookup a SQLite read transaction */
	for (int b = 0; b <= B_SQL; b++)
		printf("| %s | %.0f | %.1fx |\n", backend_name[b], median[b],
		       median[B_RELAYDB] / median[b]);
	if (enabled[B_RELAYDB_PG]) {
		/* the same server for both: a persistent connection with prepared statements
		 * against a new connection and a substituted query per lookup */
		printf("\n| on PostgreSQL | attempts/s (median) | relaydb (pg) is |\n|---|---:|---:|\n");
		for (int b = B_RELAYDB_PG; b <= B_SQL_PG; b++)
			printf("| %s | %.0f | %.1fx |\n", backend_name[b], median[b],
			       median[B_RELAYDB_PG] / median[b]);
	}
	{
		double vs_sasldb = median[B_RELAYDB] / median[B_SASLDB];
		double vs_sql = median[B_RELAYDB] / median[B_SQL];
		bool met = vs_sasldb >= 3.0 && vs_sql >= 15.0;

		printf("\nbudget: relaydb >= 3x sasldb (%.1fx) and >= 15x sql (%.1fx): %s\n",
		       vs_sasldb, vs_sql, met ? "met" : "MISSED");
		if (enabled[B_RELAYDB_PG]) {
			double vs_pg = median[B_RELAYDB_PG] / median[B_SQL_PG];

			printf("budget on PostgreSQL: relaydb >= 10x sql pgsql (%.1fx): %s\n", vs_pg,
			       vs_pg >= 10.0 ? "met" : "MISSED");
			met = met && vs_pg >= 10.0;
		}
		status = met ? 0 : 1;
	}
	printf("login \"%s\" with password \"%s\": sql %s, relaydb %s, sasldb %s\n",
	       INJECTION_NAME, INJECTION_PW,
	       injection[B_SQL] == SASL_OK ? "AUTHENTICATED (SQL injection)" : "refused",
	       injection[B_RELAYDB] == SASL_OK ? "AUTHENTICATED (bug!)" : "refused",
	       injection[B_SASLDB] == SASL_OK ? "AUTHENTICATED (bug!)" : "refused");
	if (injection[B_RELAYDB] == SASL_OK)
		status = 1;
clean:
	if (nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
		fprintf(stderr, "bench: could not remove %s\n", tmp);
out:
	explicit_bzero(password, sizeof password);
	explicit_bzero(pg_password, sizeof pg_password);
	free(plugin_so);
	return status;
}
