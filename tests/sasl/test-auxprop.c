/*
 * test-auxprop.c — the relaydb plugin's auxprop contract, called directly (suite 'sasl').
 *
 * Usage: test-auxprop <built librelaydb.so>
 *
 * dlopens the plugin as libsasl2 would and calls its entry point and functions with a
 * hand-made sasl_utils_t whose property functions are libsasl2's own (prop_new, prop_set …)
 * — so the propctx conventions are checked exactly: `*` names are the authid's and are
 * filled only without SASL_AUXPROP_AUTHZID, plain names only with it; values already
 * present stay unless SASL_AUXPROP_OVERRIDE; userPassword is never set; ulen is honoured;
 * lookups that want nothing never touch the database; the store and its probe are refused.
 * The fake log checks that every format uses only what libsasl2's formatter knows.
 */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sasl/sasl.h>
#include <sasl/saslplug.h>

#include "fixture.h"
#include "tap.h"

static char log_text[8192];
static int log_lines;
static int log_bad_formats;
static const char *opt_path;
static const char *opt_plugins;

/* libsasl2's _sasl_log knows %s %d %i %u %o %x %X %c %% %m %z, no flags or lengths. */
static bool format_ok(const char *fmt)
{
	for (const char *p = fmt; (p = strchr(p, '%')) != NULL; p += 2)
		if (p[1] == '\0' || strchr("sdiuoxXc%mz", p[1]) == NULL)
			return false;
	return true;
}

/* Declared printf-like so the compiler knows `fmt` is a format it was handed, not one this
 * file built; format_ok() is what checks it against libsasl2's narrower set. */
__attribute__((format(printf, 3, 4)))
static void fake_log(sasl_conn_t *conn, int level, const char *fmt, ...)
{
	size_t used = strlen(log_text);
	va_list ap;

	if (!format_ok(fmt))
		log_bad_formats++;
	va_start(ap, fmt);
	vsnprintf(log_text + used, sizeof log_text - used, fmt, ap);
	va_end(ap);
	used = strlen(log_text);
	snprintf(log_text + used, sizeof log_text - used, "\n");
	log_lines++;
}

static int fake_getopt(void *context, const char *plugin, const char *option,
                       const char **result, unsigned *len)
{
	const char *v = NULL;

	if (strcmp(option, "relaydb_path") == 0)
		v = opt_path;
	else if (strcmp(option, "auxprop_plugin") == 0)
		v = opt_plugins;
	if (v == NULL)
		return SASL_FAIL;
	*result = v;
	if (len != NULL)
		*len = (unsigned)strlen(v);
	return SASL_OK;
}

static sasl_utils_t utils;
static sasl_server_params_t sparams;
static sasl_auxprop_plug_t *plug;

/* Runs one lookup with a fresh propctx requesting `names`; `pre` optionally pre-sets one
 * property to "x". Returns the result; *ctxp keeps the context for inspection. */
static int lookup(const char **names, const char *pre, unsigned flags, const char *user,
                  unsigned ulen, struct propctx **ctxp)
{
	struct propctx *ctx = prop_new(0);

	prop_request(ctx, names);
	if (pre != NULL)
		prop_set(ctx, pre, "x", 1);
	sparams.propctx = ctx;
	*ctxp = ctx;
	return plug->auxprop_lookup(plug->glob_context, &sparams, flags, user, ulen);
}

static const struct propval *find(struct propctx *ctx, const char *name)
{
	for (const struct propval *pv = prop_get(ctx); pv->name != NULL; pv++)
		if (strcmp(pv->name, name) == 0)
			return pv;
	return NULL;
}

static bool has_value(struct propctx *ctx, const char *name)
{
	const struct propval *pv = find(ctx, name);

	return pv != NULL && pv->values != NULL && pv->values[0] != NULL;
}

int main(int argc, char **argv)
{
	static const char *authid_props[] = { "*userPassword", "*cmusaslsecretPLAIN",
	                                      "*authPassword", NULL };
	static const char *authzid_props[] = { "cmusaslsecretPLAIN", NULL };
	static const char *plain_props[] = { "*userPassword", "*cmusaslsecretPLAIN", NULL };
	static const char *nothing[] = { "*userPassword", NULL };
	char tmp[] = "/tmp/relaydb-auxprop-XXXXXX";
	char db[sizeof tmp + 16], missing[sizeof tmp + 16];
	sasl_auxprop_init_t *init;
	struct propctx *ctx = NULL;
	const struct propval *pv;
	void *lib;
	int version = 0, r;

	if (argc != 2) {
		fprintf(stderr, "usage: %s LIBRELAYDB.so\n", argv[0]);
		return 2;
	}
	if (mkdtemp(tmp) == NULL)
		return 2;
	snprintf(db, sizeof db, "%s/users.db", tmp);
	snprintf(missing, sizeof missing, "%s/missing.db", tmp);
	{
		const struct fx_login alice = { "alice", "pw-alice-1", true, 0, true };
		const struct fx_login nos = { "noscram", "pw-noscram-1", true, 0, false };

		if (!fx_create(db) || !fx_add(db, &alice) || !fx_add(db, &nos))
			return 2;
	}

	lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
	if (!ok(lib != NULL, "dlopen the plugin")) {
		printf("# %s\n", dlerror());
		return tap_done();
	}
	*(void **)&init = dlsym(lib, "sasl_auxprop_plug_init");
	if (!ok(init != NULL, "sasl_auxprop_plug_init is exported"))
		return tap_done();

	utils.version = SASL_UTILS_VERSION;
	utils.getopt = fake_getopt;
	utils.log = fake_log;
	utils.prop_get = prop_get;
	utils.prop_set = prop_set;
	utils.prop_erase = prop_erase;
	sparams.utils = &utils;
	sparams.ipremoteport = "198.51.100.9;4242";

	is_int(init(&utils, SASL_AUXPROP_PLUG_VERSION - 1, &version, &plug, "relaydb"), SASL_BADVERS,
	       "an older libsasl2 (auxprop version 7) is refused");

	/* ---- not selected, not configured: stay out of the way ---- */
	opt_path = NULL;
	opt_plugins = NULL;
	is_int(init(&utils, SASL_AUXPROP_PLUG_VERSION, &version, &plug, "relaydb"), SASL_OK, "init");
	log_text[0] = '\0';
	r = lookup(authid_props, NULL, 0, "alice", 5, &ctx);
	is_int(r, SASL_NOMECH, "not asked for (no auxprop_plugin, no relaydb_path): NOMECH");
	ok(log_text[0] == '\0', "and silent");
	prop_dispose(&ctx);
	is_int(plug->auxprop_store(plug->glob_context, NULL, NULL, NULL, 0), SASL_CONSTRAINT_VIOLAT,
	       "not asked for: the store probe is declined without a veto");
	plug->auxprop_free(plug->glob_context, &utils);

	/* ---- selected, no path ---- */
	opt_plugins = "sasldb RelayDB";
	is_int(init(&utils, SASL_AUXPROP_PLUG_VERSION, &version, &plug, "relaydb"), SASL_OK, "init");
	r = lookup(authid_props, NULL, 0, "alice", 5, &ctx);
	is_int(r, SASL_UNAVAIL, "named in auxprop_plugin (any case) without relaydb_path: UNAVAIL");
	ok(strstr(log_text, "relaydb_path is not set") != NULL, "logged");
	prop_dispose(&ctx);
	plug->auxprop_free(plug->glob_context, &utils);

	/* ---- a missing database is not touched when nothing is wanted ---- */
	opt_path = missing;
	is_int(init(&utils, SASL_AUXPROP_PLUG_VERSION, &version, &plug, "relaydb"), SASL_OK, "init");
	is_int(version, SASL_AUXPROP_PLUG_VERSION, "out_version is 8");
	ok(plug->name != NULL && strcmp(plug->name, "relaydb") == 0, "the auxprop name is relaydb");
	ok(plug->features == 0 && plug->spare_int1 == 0, "features and spare are 0");
	r = lookup(nothing, NULL, 0, "alice", 5, &ctx);
	is_int(r, SASL_OK, "only *userPassword wanted: OK without opening the database");
	ok(!has_value(ctx, "*userPassword"), "userPassword stays empty");
	prop_dispose(&ctx);
	r = lookup(authid_props, NULL, SASL_AUXPROP_AUTHZID, "alice", 5, &ctx);
	is_int(r, SASL_OK, "AUTHZID call with only * names: nothing to do, OK");
	prop_dispose(&ctx);
	r = lookup(authid_props, NULL, 0, "alice", 5, &ctx);
	is_int(r, SASL_UNAVAIL, "something wanted, database missing: UNAVAIL");
	prop_dispose(&ctx);
	plug->auxprop_free(plug->glob_context, &utils);

	/* ---- the real thing ---- */
	opt_path = db;
	log_text[0] = '\0';
	is_int(init(&utils, SASL_AUXPROP_PLUG_VERSION, &version, &plug, "relaydb"), SASL_OK, "init");
	r = lookup(authid_props, NULL, 0, "alice", 5, &ctx);
	is_int(r, SASL_OK, "authid lookup for alice: OK");
	pv = find(ctx, "*cmusaslsecretPLAIN");
	ok(pv != NULL && pv->values != NULL && pv->values[0] != NULL && pv->valsize == 33,
	   "*cmusaslsecretPLAIN is 33 bytes");
	pv = find(ctx, "*authPassword");
	ok(pv != NULL && pv->values != NULL && pv->values[0] != NULL &&
	   strncmp(pv->values[0], "SCRAM-SHA-256$4096:", 19) == 0,
	   "*authPassword is the SCRAM-SHA-256 verifier");
	ok(!has_value(ctx, "*userPassword"), "*userPassword is never set");
	prop_dispose(&ctx);

	r = lookup(authid_props, NULL, 0, "ALICE", 5, &ctx);
	ok(r == SASL_OK && has_value(ctx, "*cmusaslsecretPLAIN"), "ALICE finds alice");
	prop_dispose(&ctx);
	r = lookup(authid_props, NULL, 0, "alicexyz", 5, &ctx);
	ok(r == SASL_OK && has_value(ctx, "*cmusaslsecretPLAIN"),
	   "ulen is honoured: the first 5 bytes of \"alicexyz\" are alice");
	prop_dispose(&ctx);
	{
		static const char embedded[5] = { 'a', 'l', 'i', '\0', 'z' };

		r = lookup(authid_props, NULL, 0, embedded, sizeof embedded, &ctx);
	}
	ok(r != SASL_OK || !has_value(ctx, "*cmusaslsecretPLAIN"), "a NUL inside ulen finds nothing");
	prop_dispose(&ctx);

	r = lookup(authzid_props, NULL, SASL_AUXPROP_AUTHZID, "alice", 5, &ctx);
	ok(r == SASL_OK && has_value(ctx, "cmusaslsecretPLAIN"),
	   "AUTHZID call fills plain names (the authzid's)");
	prop_dispose(&ctx);
	r = lookup(authzid_props, NULL, 0, "alice", 5, &ctx);
	ok(r == SASL_OK && !has_value(ctx, "cmusaslsecretPLAIN"), "authid call leaves plain names alone");
	prop_dispose(&ctx);

	r = lookup(authid_props, "*cmusaslsecretPLAIN", 0, "alice", 5, &ctx);
	pv = find(ctx, "*cmusaslsecretPLAIN");
	ok(r == SASL_OK && pv != NULL && pv->values != NULL && pv->valsize == 1,
	   "a value set by another plugin stays without OVERRIDE");
	ok(has_value(ctx, "*authPassword"), "while the other property is still filled");
	prop_dispose(&ctx);
	r = lookup(authid_props, "*cmusaslsecretPLAIN", SASL_AUXPROP_OVERRIDE, "alice", 5, &ctx);
	pv = find(ctx, "*cmusaslsecretPLAIN");
	ok(r == SASL_OK && pv != NULL && pv->values != NULL && pv->values[1] == NULL &&
	   pv->valsize == 33, "with OVERRIDE it is replaced (one 33-byte value)");
	prop_dispose(&ctx);

	r = lookup(authid_props, NULL, 0, "noscram", 7, &ctx);
	ok(r == SASL_OK && has_value(ctx, "*cmusaslsecretPLAIN") && has_value(ctx, "*authPassword"),
	   "a login without a SCRAM verifier: its PLAIN secret and a SCRAM decoy");
	prop_dispose(&ctx);

	log_text[0] = '\0';
	r = lookup(authid_props, NULL, 0, "nobody", 6, &ctx);
	ok(r == SASL_OK && !has_value(ctx, "*cmusaslsecretPLAIN") && has_value(ctx, "*authPassword"),
	   "unknown login, SCRAM asked too: a decoy verifier, never a PLAIN secret");
	ok(strstr(log_text, "login 'nobody' does not exist") != NULL &&
	   strstr(log_text, "198.51.100.9;4242") != NULL, "logged with the client address");
	prop_dispose(&ctx);
	r = lookup(plain_props, NULL, 0, "nobody", 6, &ctx);
	ok(r == SASL_NOUSER && !has_value(ctx, "*cmusaslsecretPLAIN"),
	   "unknown login, PLAIN only: NOUSER, nothing set");
	prop_dispose(&ctx);

	log_text[0] = '\0';
	is_int(plug->auxprop_store(plug->glob_context, NULL, NULL, NULL, 0), SASL_CONSTRAINT_VIOLAT,
	       "the store probe is refused");
	ok(strstr(log_text, "managed with relay-admin") != NULL, "pointing at relay-admin");
	ctx = prop_new(0);
	prop_set(ctx, "userPassword", "cleartext", 9);
	is_int(plug->auxprop_store(plug->glob_context, &sparams, ctx, "mallory", 7),
	       SASL_CONSTRAINT_VIOLAT, "a real store is refused");
	ok(strstr(log_text, "cleartext") == NULL, "the offered password is not logged");
	prop_dispose(&ctx);

	is_int(log_bad_formats, 0, "every log format is in libsasl2's subset (%d lines)", log_lines);
	plug->auxprop_free(plug->glob_context, &utils);
	dlclose(lib);

	unlink(db);
	rmdir(tmp);
	return tap_done();
}
