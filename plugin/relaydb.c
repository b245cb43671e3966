/*
 * relaydb.c — the `relaydb` Cyrus SASL auxprop plugin (librelaydb.so).
 *
 * What it is: the glue between libsasl2 (2.1.28) and the users database. Postfix's smtpd
 * loads it in place of sasldb; for a login it hands libsasl2 the two verifiers we store:
 *   cmusaslsecretPLAIN  33 bytes, salt[16] || 0x00 || MD5(salt || "sasldb" || password),
 *                       which libsasl2 checks for PLAIN and LOGIN;
 *   authPassword        the SCRAM-SHA-256 verifier, for SCRAM-SHA-256.
 * Never userPassword: we hold no cleartext. Unknown, disabled and expired logins fail
 * exactly like a wrong password (535); the log says which it was:
 *   - PLAIN/LOGIN: they get no cmusaslsecretPLAIN (SASL_NOUSER, which Postfix shows as
 *     535 "for privacy"), so nothing can match;
 *   - SCRAM-SHA-256: they get a decoy authPassword (rdb_secret_scram_decoy: the same
 *     shape as a real verifier, derived from a per-database key and the name, matching no
 *     password), so the server's first message (salt, iterations) looks the same for every
 *     name and the exchange fails at the client's proof. Without it, SCRAM answered 535 at
 *     the first step for such logins and 334 for active ones: a free test of which logins
 *     exist. An active login without a SCRAM verifier gets the decoy too.
 * A database that cannot answer is SASL_UNAVAIL (Postfix: 454), never "no such user".
 *
 * The database: relaydb_path is an SQLite file (an absolute path), or a PostgreSQL
 * database — a postgresql:// URI or pg:/path/to/file holding a libpq conninfo string
 * (mode 0600, owned by postfix: how a password is given without putting it in smtpd.conf;
 * libpq's PGPASSFILE / ~/.pgpass work too). The plugin cannot tell the two apart beyond
 * this: the data layer (sql/) speaks either.
 *
 * A guest in someone else's process (STYLE rule 9): the only exported symbol is
 * sasl_auxprop_plug_init; options come from utils->getopt, logs go to utils->log (whose
 * formatter knows only %s %d %u %x %c %m %z — no %.*s, no %ld); no exit, abort or signals;
 * secret buffers are wiped with explicit_bzero.
 *
 * Lifetime: init (as root, before smtpd's chroot) only reads options. The database is
 * opened read-only on the first lookup that needs it — i.e. inside the chroot, as user
 * postfix — and kept for the life of the process, with its statements prepared once by
 * the rdb layer. Each such lookup stat()s the path first: a removed file turns into
 * SASL_UNAVAIL at once and a replaced file (new inode) is reopened. The last few answers
 * are reused while SQLite's file change counter says nothing was committed (see
 * "answers"), so relay-admin's changes count from the next attempt on.
 * On PostgreSQL: one connection per smtpd process, opened on the first lookup (after the
 * chroot: a pg: file or a unix socket path is looked up inside it), read-only, kept for
 * the life of the process. While the server is unreachable every lookup is SASL_UNAVAIL;
 * the data layer reconnects on the next lookup after a failure, so smtpd need not be
 * restarted. No answers are kept (there is no file counter to trust): every lookup asks.
 *
 * Thread safety: smtpd is single-threaded, but other hosts of libsasl2 are not; the one
 * cached connection is guarded by a mutex.
 *
 * This translation unit must not include OpenSSL headers: <sasl/saslplug.h> pulls in
 * <sasl/md5.h>, whose MD5_CTX clashes with OpenSSL's.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sasl/sasl.h>
#include <sasl/saslplug.h>

#include "rdb.h"

#define PLUGIN_NAME "relaydb"
#define OPT_PATH "relaydb_path"
#define OPT_BUSY "relaydb_busy_timeout_ms"

#define PROP_PLAIN "cmusaslsecretPLAIN"
#define PROP_SCRAM "authPassword"

#define BUSY_DEFAULT_MS 2000
#define BUSY_MAX_MS 60000

/* How much of a client-supplied string goes into a log line. */
#define LOGNAME_MAX 64

/* Recent answers kept per process (see "answers" below), and for how long at most: the
 * login state depends on the clock (expiry), so an answer is re-asked after this long even
 * if the file did not change. */
#define ANSWER_SLOTS 4
#define ANSWER_TTL_MS 1000

struct answer {
	bool used;
	uint32_t counter;            /* the file change counter it was read under */
	int64_t at_ms;               /* CLOCK_MONOTONIC_COARSE when it was read */
	enum rdb_result r;           /* RDB_OK or RDB_NOTFOUND */
	char name[RDB_NAME_MAX + 1]; /* as asked (matching is ASCII case-insensitive) */
	struct rdb_secrets sec;
};

/* The plugin's global context: one per sasl_server_init. */
struct relaydb {
	sasl_auxprop_plug_t plug;   /* handed to libsasl2; glob_context points back here */
	const sasl_utils_t *utils;  /* the global utils from init: logging when no sparams */
	char *path;                 /* relaydb_path; NULL if unusable (see config_error) */
	char shown[PATH_MAX];       /* relaydb_path as logs show it (a URI without password) */
	bool pg;                    /* relaydb_path names a PostgreSQL database */
	const char *config_error;   /* why the configuration is unusable, or NULL */
	bool active;                /* this host selected or configured relaydb */
	int busy_ms;

	pthread_mutex_t lock;       /* guards everything below */
	struct rdb *db;             /* opened lazily; NULL until then or after an error */
	int fd;                     /* our own read-only fd on the same file, for the header */
	dev_t dev;                  /* identity of the file db was opened from */
	ino_t ino;
	struct answer answers[ANSWER_SLOTS];
	unsigned next_slot;
};

int sasl_auxprop_plug_init(const sasl_utils_t *utils, int max_version, int *out_version,
                           sasl_auxprop_plug_t **plug, const char *plugname)
	__attribute__((visibility("default")));

/* ---- logging helpers ---------------------------------------------------------------- */

/* Copies at most LOGNAME_MAX bytes of an untrusted string, replacing anything outside
 * printable ASCII (and the quote and backslash we would otherwise have to escape) by '?',
 * and marks truncation with "...". Always NUL-terminates. */
static void printable(char *out, size_t outlen, const char *in, size_t inlen)
{
	size_t n = 0;
	size_t max = outlen - 4; /* room for "..." and NUL */

	if (max > LOGNAME_MAX)
		max = LOGNAME_MAX;
	for (size_t i = 0; i < inlen && n < max; i++) {
		unsigned char c = (unsigned char)in[i];
		out[n++] = (c >= 0x20 && c < 0x7f && c != '\'' && c != '\\') ? (char)c : '?';
	}
	if (inlen > max) {
		memcpy(out + n, "...", 3);
		n += 3;
	}
	out[n] = '\0';
}

/* The client's address as Postfix passed it ("ip;port"), made printable, or "unknown". */
static void client_of(const sasl_server_params_t *sparams, char *out, size_t outlen)
{
	const char *ip = sparams->ipremoteport;

	if (ip == NULL || *ip == '\0') {
		printable(out, outlen, "unknown", 7);
		return;
	}
	printable(out, outlen, ip, strnlen(ip, 256));
}

/* ---- options ------------------------------------------------------------------------ */

static const char *getopt_str(const sasl_utils_t *utils, const char *key)
{
	const char *value = NULL;
	unsigned len = 0;

	if (utils->getopt == NULL ||
	    utils->getopt(utils->getopt_context, "RELAYDB", key, &value, &len) != SASL_OK)
		return NULL;
	return value;
}

/* Whether the whitespace-separated auxprop_plugin list names us (libsasl2 compares the
 * names case-insensitively). */
static bool names_us(const char *list)
{
	const size_t len = sizeof PLUGIN_NAME - 1;

	while (list != NULL && *list != '\0') {
		size_t n;

		list += strspn(list, " \t");
		n = strcspn(list, " \t");
		if (n == len && strncasecmp(list, PLUGIN_NAME, len) == 0)
			return true;
		list += n;
	}
	return false;
}

/* Reads the options once, at init. Problems are remembered, not logged here: every auxprop
 * plugin in libsasl2's folder is initialised in every SASL server on the machine, selected
 * or not, and only the hosts that actually ask relaydb should hear about its config.
 *
 * A host that neither names relaydb in auxprop_plugin nor sets relaydb_path (say, an IMAP
 * server using sasldb with auxprop_plugin unset, so libsasl2 calls every plugin) has not
 * asked for us: there we stay out of the way instead of failing its logins. */
static void read_options(struct relaydb *rp, const sasl_utils_t *utils)
{
	const char *path = getopt_str(utils, OPT_PATH);
	const char *busy = getopt_str(utils, OPT_BUSY);

	rp->active = path != NULL || names_us(getopt_str(utils, "auxprop_plugin"));

	rp->busy_ms = BUSY_DEFAULT_MS;
	if (busy != NULL) {
		char *end = NULL;
		unsigned long ms;

		errno = 0;
		ms = strtoul(busy, &end, 10);
		if (errno != 0 || end == busy || *end != '\0' || busy[0] == '-' || ms > BUSY_MAX_MS) {
			rp->config_error = OPT_BUSY " must be a number of milliseconds from 0 to 60000";
			return;
		}
		rp->busy_ms = (int)ms;
	}
	if (path == NULL) {
		rp->config_error = OPT_PATH " is not set in the SASL config file "
		                   "(e.g. /etc/postfix/sasl/smtpd.conf)";
		return;
	}
	if (rdb_is_postgresql(path)) {
		rp->pg = true;
		if (strncmp(path, "pg:", 3) == 0 && path[3] != '/') {
			rp->config_error = OPT_PATH " pg: must name an absolute path (pg:/etc/...)";
			return;
		}
	} else if (path[0] != '/') {
		/* smtpd resolves relative paths in the queue directory before the chroot and
		 * from the chroot's root after it: never what the admin meant. */
		rp->config_error = OPT_PATH " must be an absolute path";
		return;
	}
	rp->path = strdup(path);
	if (rp->path == NULL)
		rp->config_error = "out of memory reading " OPT_PATH;
	rdb_name_display(path, rp->shown, sizeof rp->shown);
}

/* ---- the cached database ------------------------------------------------------------ */

static void db_drop(struct relaydb *rp)
{
	/* SQLite first: closing our fd drops every POSIX lock this process holds on the file,
	 * so it must never happen while SQLite might hold one. Between lookups it holds none
	 * (every statement is reset), and we are under rp->lock. */
	rdb_close(rp->db);
	rp->db = NULL;
	if (rp->fd >= 0)
		close(rp->fd);
	rp->fd = -1;
	explicit_bzero(rp->answers, sizeof rp->answers);
	rp->next_slot = 0;
}

/* Why a stat()/open failed, with the hint an admin needs inside smtpd. */
static const char *stat_hint(int err)
{
	switch (err) {
	case ENOENT:
		return "; with chroot=y in master.cf the path is looked up inside the chroot "
		       "(/var/spool/postfix)";
	case EACCES:
		return "; smtpd runs as user postfix: the file needs root:postfix 0640 and "
		       "its folder 0750";
	default:
		return "";
	}
}

/* Returns the open database in *out, opening or reopening it as needed. Called with
 * rp->lock held. Anything but SASL_OK has been logged. */
/* PostgreSQL: one connection, opened on first use and kept; the data layer reconnects
 * it after a failure. Called with rp->lock held. */
static int db_get_pg(struct relaydb *rp, const sasl_utils_t *utils, struct rdb **out)
{
	char err[512];

	if (rp->db == NULL) {
		struct rdb *db = NULL;

		err[0] = '\0';
		if (rdb_open(rp->path, RDB_READONLY, &db, err, sizeof err) != RDB_OK) {
			rdb_close(db);
			utils->log(utils->conn, SASL_LOG_ERR,
			           PLUGIN_NAME ": users database %s unavailable: %s",
			           rp->shown, err[0] ? err : "cannot open");
			return SASL_UNAVAIL;
		}
		rp->db = db;
	}
	*out = rp->db;
	return SASL_OK;
}

static int db_get(struct relaydb *rp, const sasl_utils_t *utils, struct rdb **out)
{
	struct stat st;
	char err[256];

	if (rp->pg)
		return db_get_pg(rp, utils, out);

	if (stat(rp->path, &st) != 0) {
		int e = errno;

		db_drop(rp);
		utils->log(utils->conn, SASL_LOG_ERR,
		           PLUGIN_NAME ": users database %s unavailable: %s%s",
		           rp->path, strerror(e), stat_hint(e));
		return SASL_UNAVAIL;
	}
	if (rp->db != NULL && (st.st_dev != rp->dev || st.st_ino != rp->ino)) {
		utils->log(utils->conn, SASL_LOG_NOTE,
		           PLUGIN_NAME ": users database %s was replaced; reopening", rp->path);
		db_drop(rp);
	}
	if (rp->db == NULL) {
		struct rdb *db = NULL;
		int fd = open(rp->path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

		if (fd < 0 || fstat(fd, &st) != 0) {
			int e = errno;

			if (fd >= 0)
				close(fd);
			utils->log(utils->conn, SASL_LOG_ERR,
			           PLUGIN_NAME ": users database %s unavailable: %s%s",
			           rp->path, strerror(e), stat_hint(e));
			return SASL_UNAVAIL;
		}
		err[0] = '\0';
		if (rdb_open(rp->path, RDB_READONLY, &db, err, sizeof err) != RDB_OK) {
			close(fd);
			rdb_close(db);
			utils->log(utils->conn, SASL_LOG_ERR,
			           PLUGIN_NAME ": users database %s unavailable: %s",
			           rp->path, err[0] ? err : "cannot open");
			return SASL_UNAVAIL;
		}
		/* Wait this long for relay-admin's short write transactions before giving a
		 * temporary failure. */
		rdb_set_busy_timeout(db, rp->busy_ms);
		rp->db = db;
		rp->fd = fd;
		rp->dev = st.st_dev;
		rp->ino = st.st_ino;
	}
	*out = rp->db;
	return SASL_OK;
}

/* ---- answers -----------------------------------------------------------------------
 *
 * A PLAIN attempt costs libsasl2 about 2.5 us; one SQLite read transaction on a
 * rollback-journal file costs more (shared lock and unlock with fcntl, a stat of the
 * journal, a header read, the query). smtpd processes see the same few logins again and
 * again, so the last answers are kept, keyed by name and by the commit counter of the
 * file (rdb_commit_counter(): one pread on our own fd, without a lock; see rdb.h). A
 * commit in progress either shows the new counter (we then ask the database, which waits
 * for the commit) or the old one (we answer with the last committed state, which is what
 * a reader inside a transaction would see too). When the layer cannot tell (a WAL file),
 * nothing is kept. Entries also expire after ANSWER_TTL_MS, as the
 * disabled/expired state depends on the clock. Secrets kept here are wiped on eviction
 * and when the database is dropped.
 */

static bool change_counter(const struct relaydb *rp, uint32_t *out)
{
	return rp->fd >= 0 && rdb_commit_counter(rp->fd, out);
}

static int64_t monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The login's secrets, from a fresh enough answer or from the database. Called with
 * rp->lock held and the database open. */
static enum rdb_result find_secrets(struct relaydb *rp, struct rdb *db, const char *name,
                                    struct rdb_secrets *sec)
{
	uint32_t counter = 0;
	bool cacheable = change_counter(rp, &counter);
	int64_t now_ms = monotonic_ms();
	struct answer *a;
	enum rdb_result r;

	for (size_t i = 0; cacheable && i < ANSWER_SLOTS; i++) {
		a = &rp->answers[i];
		if (a->used && a->counter == counter && now_ms - a->at_ms < ANSWER_TTL_MS &&
		    strcasecmp(a->name, name) == 0) {
			*sec = a->sec;
			return a->r;
		}
	}
	r = rdb_lookup_secrets(db, name, (int64_t)time(NULL), sec);
	if (cacheable && (r == RDB_OK || r == RDB_NOTFOUND)) {
		/* Read under the counter seen before the query: if a commit slipped in
		 * between, the next call sees a newer counter and asks again. */
		a = &rp->answers[rp->next_slot++ % ANSWER_SLOTS];
		explicit_bzero(a, sizeof *a);
		a->used = true;
		a->counter = counter;
		a->at_ms = now_ms;
		a->r = r;
		memcpy(a->name, name, strnlen(name, RDB_NAME_MAX)); /* NUL from the bzero */
		a->sec = *sec;
	}
	return r;
}

/* ---- lookup ------------------------------------------------------------------------- */

/* Which of our properties this call should fill: the propctx names (with their `*` if
 * any), NULL where nothing is wanted. Follows the auxprop conventions: without
 * SASL_AUXPROP_AUTHZID only `*`-prefixed (authid) names apply, with it only the others;
 * a property that already has values is left alone unless SASL_AUXPROP_OVERRIDE. */
struct wanted {
	const char *plain;
	const char *scram;
	bool erase_plain;
	bool erase_scram;
};

static bool wanted_props(const struct propval *pv, unsigned flags, struct wanted *w)
{
	memset(w, 0, sizeof *w);
	for (; pv != NULL && pv->name != NULL; pv++) {
		const char *real = pv->name;
		bool has_values = pv->values != NULL;

		if (flags & SASL_AUXPROP_AUTHZID) {
			if (real[0] == '*')
				continue;
		} else {
			if (real[0] != '*')
				continue;
			real++;
		}
		if (has_values && !(flags & SASL_AUXPROP_OVERRIDE))
			continue;
		if (strcmp(real, PROP_PLAIN) == 0) {
			w->plain = pv->name;
			w->erase_plain = has_values;
		} else if (strcmp(real, PROP_SCRAM) == 0) {
			w->scram = pv->name;
			w->erase_scram = has_values;
		}
	}
	return w->plain != NULL || w->scram != NULL;
}

/* Logs why a login gets nothing; the client only ever sees "authentication failure". */
static void log_refused(const sasl_server_params_t *sparams, const char *user, unsigned ulen,
                        const char *why)
{
	char name[LOGNAME_MAX + 4];
	char client[LOGNAME_MAX + 4];

	printable(name, sizeof name, user, ulen);
	client_of(sparams, client, sizeof client);
	sparams->utils->log(sparams->utils->conn, SASL_LOG_FAIL,
	                    PLUGIN_NAME ": login '%s' %s; answering as for a wrong password "
	                    "(client %s)", name, why, client);
}

/* Hands libsasl2 what it may verify against: `plain` (or nothing) for PLAIN/LOGIN and
 * `scram` (a real verifier or the decoy, or nothing) for SCRAM-SHA-256. */
static int set_secrets(const sasl_server_params_t *sparams, const struct wanted *w,
                       const unsigned char *plain, const char *scram)
{
	const sasl_utils_t *utils = sparams->utils;
	int ret = SASL_OK;

	if (w->plain != NULL && plain != NULL) {
		if (w->erase_plain)
			utils->prop_erase(sparams->propctx, w->plain);
		ret = utils->prop_set(sparams->propctx, w->plain, (const char *)plain,
		                      RDB_PLAIN_SECRET_LEN);
	}
	if (ret == SASL_OK && w->scram != NULL && scram != NULL && scram[0] != '\0') {
		if (w->erase_scram)
			utils->prop_erase(sparams->propctx, w->scram);
		ret = utils->prop_set(sparams->propctx, w->scram, scram,
		                      (unsigned)strnlen(scram, RDB_SCRAM_MAX));
	}
	return ret;
}

/* A login that must not authenticate: nothing for PLAIN/LOGIN, the decoy for SCRAM. When
 * SCRAM asked, the lookup succeeds (with a verifier no password matches) so that the
 * exchange goes on to fail at the proof; otherwise SASL_NOUSER, which libsasl2 and Postfix
 * report exactly like a wrong password. */
static int refuse(const sasl_server_params_t *sparams, const struct wanted *w,
                  const char *decoy, const char *user, unsigned ulen, const char *why)
{
	log_refused(sparams, user, ulen, why);
	if (w->scram == NULL || decoy[0] == '\0')
		return SASL_NOUSER;
	return set_secrets(sparams, w, NULL, decoy);
}

static int relaydb_lookup(void *glob, sasl_server_params_t *sparams, unsigned flags,
                          const char *user, unsigned ulen)
{
	struct relaydb *rp = glob;
	const sasl_utils_t *utils;
	struct wanted w;
	char name[RDB_NAME_MAX + 1];
	struct rdb_secrets sec;
	char decoy[RDB_SCRAM_MAX];
	struct rdb *db = NULL;
	enum rdb_result r;
	int ret;

	if (rp == NULL || sparams == NULL || sparams->utils == NULL || user == NULL)
		return SASL_BADPARAM;
	utils = sparams->utils;

	/* Most calls (PLAIN makes four per attempt) want nothing we have: answer them
	 * without touching the database. */
	if (!wanted_props(utils->prop_get(sparams->propctx), flags, &w))
		return SASL_OK;

	/* Not ours to answer: NOMECH is the one result libsasl2 ignores when merging. */
	if (!rp->active)
		return SASL_NOMECH;

	if (rp->config_error != NULL) {
		utils->log(utils->conn, SASL_LOG_ERR, PLUGIN_NAME ": not usable: %s",
		           rp->config_error);
		return SASL_UNAVAIL;
	}

	/* A name that cannot be stored cannot exist: no need to ask the database. */
	if (ulen == 0 || ulen > RDB_NAME_MAX || memchr(user, '\0', ulen) != NULL) {
		log_refused(sparams, user, ulen, "is not a valid login name");
		return SASL_NOUSER;
	}
	memcpy(name, user, ulen);
	name[ulen] = '\0';
	if (!rdb_name_valid(name, NULL, 0)) {
		log_refused(sparams, user, ulen, "is not a valid login name");
		return SASL_NOUSER;
	}

	pthread_mutex_lock(&rp->lock);
	ret = db_get(rp, utils, &db);
	if (ret != SASL_OK) {
		pthread_mutex_unlock(&rp->lock);
		return ret;
	}
	r = find_secrets(rp, db, name, &sec);
	if (r == RDB_ERROR) {
		utils->log(utils->conn, SASL_LOG_ERR,
		           PLUGIN_NAME ": users database %s unavailable: %s",
		           rp->shown, rdb_errmsg(db));
		/* Start afresh next time: the file may be mid-replacement or repaired. A
		 * PostgreSQL handle is kept: it reconnects by itself on the next lookup. */
		if (!rp->pg)
			db_drop(rp);
	}
	pthread_mutex_unlock(&rp->lock);

	/* Every lookup SCRAM makes computes the decoy, whatever the login's state, so that
	 * active, unknown, disabled and expired logins cost the same; PLAIN/LOGIN lookups never
	 * hand it out and skip it. A login's real salt is kept (see rdb.h). */
	decoy[0] = '\0';
	if (w.scram != NULL && (r == RDB_OK || r == RDB_NOTFOUND) && sec.has_decoy_key &&
	    rdb_secret_scram_decoy(sec.decoy_key, name, sec.has_scram ? sec.scram : NULL,
	                           decoy) != RDB_OK) {
		utils->log(utils->conn, SASL_LOG_ERR,
		           PLUGIN_NAME ": cannot compute a SCRAM decoy (OpenSSL failed)");
		r = RDB_ERROR;
	}

	switch (r) {
	case RDB_OK:
		if (sec.state == RDB_LOGIN_ACTIVE) {
			/* No verifier (an old import): SCRAM gets the decoy, so that this login
			 * does not stand out from the rest at the first step either. */
			if (!sec.has_scram && w.scram != NULL)
				log_refused(sparams, user, ulen, "has no SCRAM-SHA-256 verifier "
				            "(relay-admin user passwd makes one)");
			ret = set_secrets(sparams, &w, sec.plain, sec.has_scram ? sec.scram : decoy);
		} else {
			ret = refuse(sparams, &w, decoy, user, ulen,
			             sec.state == RDB_LOGIN_DISABLED ? "is disabled" : "has expired");
		}
		break;
	case RDB_NOTFOUND:
		ret = refuse(sparams, &w, decoy, user, ulen, "does not exist");
		break;
	case RDB_INVALID:
		log_refused(sparams, user, ulen, "does not exist");
		ret = SASL_NOUSER;
		break;
	case RDB_EXISTS:
	case RDB_ERROR:
	default:
		ret = SASL_UNAVAIL;
		break;
	}
	explicit_bzero(&sec, sizeof sec);
	explicit_bzero(decoy, sizeof decoy);
	return ret;
}

/* ---- store: refused ----------------------------------------------------------------- */

/* saslpasswd2 would write a cleartext userPassword; logins are relay-admin's job. Both the
 * capability probe (ctx == NULL) and real stores are refused with SASL_CONSTRAINT_VIOLAT:
 * libsasl2 treats that as "this plugin cannot store it" and fails the store only when every
 * plugin says so. With auxprop_plugin: relaydb that is always (sasl_setpass then reports
 * "no writable auxprop plugin" and nothing is written); a host that merely has relaydb
 * installed beside sasldb keeps its saslpasswd2 working. The probe has no connection, so
 * its line goes to syslog (auth facility). */
static int relaydb_store(void *glob, sasl_server_params_t *sparams, struct propctx *ctx,
                         const char *user, unsigned ulen)
{
	const struct relaydb *rp = glob;
	const sasl_utils_t *utils = sparams != NULL ? sparams->utils : rp != NULL ? rp->utils : NULL;

	if (utils != NULL && rp != NULL && rp->active)
		utils->log(utils->conn, SASL_LOG_WARN,
		           PLUGIN_NAME ": refusing to store SASL properties: logins are managed "
		           "with relay-admin (relay-admin user add/passwd), not saslpasswd2");
	return SASL_CONSTRAINT_VIOLAT;
}

static void relaydb_free(void *glob, const sasl_utils_t *utils)
{
	struct relaydb *rp = glob;

	if (rp == NULL)
		return;
	db_drop(rp);
	pthread_mutex_destroy(&rp->lock);
	free(rp->path);
	free(rp);
}

/* ---- entry point -------------------------------------------------------------------- */

int sasl_auxprop_plug_init(const sasl_utils_t *utils, int max_version, int *out_version,
                           sasl_auxprop_plug_t **plug, const char *plugname)
{
	static const sasl_auxprop_plug_t proto = {
		.features = 0,
		.spare_int1 = 0,
		.auxprop_free = relaydb_free,
		.auxprop_lookup = relaydb_lookup,
		.name = (char *)(uintptr_t)PLUGIN_NAME,
		.auxprop_store = relaydb_store,
	};
	struct relaydb *rp;

	if (utils == NULL || out_version == NULL || plug == NULL)
		return SASL_BADPARAM;
	if (max_version < SASL_AUXPROP_PLUG_VERSION) {
		utils->log(NULL, SASL_LOG_ERR, PLUGIN_NAME ": libsasl2 too old (auxprop "
		           "version %d, need %d)", max_version, SASL_AUXPROP_PLUG_VERSION);
		return SASL_BADVERS;
	}
	rp = calloc(1, sizeof *rp);
	if (rp == NULL)
		return SASL_NOMEM;
	if (pthread_mutex_init(&rp->lock, NULL) != 0) {
		free(rp);
		return SASL_NOMEM;
	}
	rp->utils = utils;
	rp->fd = -1;
	read_options(rp, utils);
	rp->plug = proto;
	rp->plug.glob_context = rp;
	*out_version = SASL_AUXPROP_PLUG_VERSION;
	*plug = &rp->plug;
	return SASL_OK;
}
