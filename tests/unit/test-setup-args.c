/*
 * test-setup-args.c — relay-admin setup's pure option checks (admin/setup_args.c) and the
 * master.cf entry comparison that makes setup idempotent (adm_pf_entry_equal).
 */
#include <stdbool.h>
#include <string.h>

#include "postconf.h"
#include "setup_args.h"
#include "tap.h"

static void plain_values(void)
{
	static const struct { const char *s; bool want; } cases[] = {
		{ "/etc/postfix", true },
		{ "unix:/run/relay-milter/milter.sock", true },
		{ "TLSv1.2", true },
		{ "permit_sasl_authenticated", true },
		{ "", false },
		{ "a b", false },           /* master.cf would split it */
		{ "a,b", false },
		{ "$myhostname", false },   /* Postfix would expand it */
		{ "x=y", false },
		{ "{x}", false },
		{ "a\tb", false },
		{ "a\nb", false },
		{ "caf\xc3\xa9", false },   /* non-ASCII */
		{ "quote\"", false },
		{ "back\\slash", false },
		{ "hash#", false },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		ok(adm_setup_plain_value(cases[i].s) == cases[i].want, "plain value %zu", i);
	ok(!adm_setup_plain_value(NULL), "NULL is not a value");
}

/* --db: a SQLite path, pg:/file or a postgresql:// URI without a password (issue 10) */
static void db_names(void)
{
	static const struct { const char *s; bool ok, pg; } cases[] = {
		{ "/var/lib/relay/users.db", true, false },
		{ "pg:/etc/relay/users.pg", true, true },
		{ "postgresql://relay@db.example.org:5432/relay?sslmode=verify-full", true, true },
		{ "postgres://db.example.org/relay", true, true },
		{ "postgresql:///relay?host=/run/postgresql", true, true },
		{ "postgresql://user@host/db?application_name=a:b", true, true },
		{ "relative.db", false, false },
		{ "", false, false },
		{ "/a b.db", false, false },
		{ "pg:relative", false, true },
		{ "pg:/a b", false, true },
		{ "postgresql://relay:s3cret@db/relay", false, true },   /* password in argv */
		{ "postgres://:s3cret@db/relay", false, true },
		{ "postgresql://relay@db/relay x", false, true },
		{ "postgresql://relay@db/re\nlay", false, true },
	};
	char why[300];

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		bool pg = !cases[i].pg;

		ok(adm_setup_db_name(cases[i].s, &pg, why, sizeof why) == cases[i].ok &&
		   pg == cases[i].pg && (cases[i].ok || why[0] != '\0'), "db name '%.*s'%s",
		   (int)strcspn(cases[i].s, "\n"), cases[i].s,
		   strchr(cases[i].s, '\n') != NULL ? " + a newline" : "");
	}
	adm_setup_db_name("postgresql://relay:s3cret@db/relay", &(bool){ false }, why, sizeof why);
	ok(strstr(why, "password") != NULL && strstr(why, "s3cret") == NULL,
	   "a URI with a password is refused without echoing it");
}

static void listen_specs(void)
{
	static const struct { const char *s; long port; } good[] = {
		{ "443", 443 }, { "127.0.0.1:2525", 2525 }, { "[::1]:465", 465 },
		{ "relay.example.org:587", 587 }, { "65535", 65535 },
	};
	static const char *const bad[] = {
		"", "0", "65536", "25", "127.0.0.1:25", "abc", ":443", "443x", "-1",
		"1.2.3.4:", "a b:443", "x$y:443", "99999999999999999999",
	};
	char why[200];
	long port;

	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		port = 0;
		ok(adm_setup_listen(good[i].s, &port, why, sizeof why) && port == good[i].port,
		   "listen '%s'", good[i].s);
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ok(!adm_setup_listen(bad[i], &port, why, sizeof why) && why[0] != '\0',
		   "refuse listen '%s'", bad[i]);
	adm_setup_listen("25", &port, why, sizeof why);
	ok(strstr(why, "port 25") != NULL, "port 25 refusal says why");
}

static void upstreams(void)
{
	static const struct { const char *s, *nexthop; long port; } good[] = {
		{ "smtp.mailgun.org", "[smtp.mailgun.org]:587", 587 },
		{ "smtp.mailgun.org:465", "[smtp.mailgun.org]:465", 465 },
		{ "[localhost]:2525", "[localhost]:2525", 2525 },
		{ "192.0.2.7:587", "[192.0.2.7]:587", 587 },
	};
	static const char *const bad[] = {
		"", ":587", "[]:587", "[host", "[host]x", "host:", "host:0", "host:70000",
		"host;rm -rf /", "host name", "h$st", "[h]:5:5", "host:587:1",
		"\xff\xfe", "a,b:587",
	};
	char nexthop[300], why[300];
	long port;

	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		ok(adm_setup_upstream(good[i].s, nexthop, sizeof nexthop, &port, why, sizeof why),
		   "upstream '%s' accepted", good[i].s);
		is_str(nexthop, good[i].nexthop, "upstream '%s' nexthop", good[i].s);
		is_int(port, good[i].port, "upstream '%s' port", good[i].s);
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ok(!adm_setup_upstream(bad[i], nexthop, sizeof nexthop, &port, why, sizeof why),
		   "refuse upstream %zu", i);
	{
		char longhost[400];

		memset(longhost, 'a', sizeof longhost - 1);
		longhost[sizeof longhost - 1] = '\0';
		ok(!adm_setup_upstream(longhost, nexthop, sizeof nexthop, &port, why, sizeof why),
		   "refuse a 399-byte host name");
	}
}

static void entries(void)
{
	const char *const want[] = { "443", "inet", "n", "-", "n", "-", "-", "smtpd",
	                             "-o", "smtpd_tls_security_level=encrypt" };
	const size_t n = sizeof want / sizeof want[0];

	ok(adm_pf_entry_equal("443 inet n - n - - smtpd -o smtpd_tls_security_level=encrypt",
	                      want, n), "same entry");
	ok(adm_pf_entry_equal("443       inet  n       -       n       -       -       smtpd\n"
	                      "    -o smtpd_tls_security_level=encrypt\n", want, n),
	   "same entry, postconf's folded layout");
	ok(!adm_pf_entry_equal("443 inet n - n - - smtpd", want, n), "missing override");
	ok(!adm_pf_entry_equal("443 inet n - y - - smtpd -o smtpd_tls_security_level=encrypt",
	                       want, n), "chroot differs");
	ok(!adm_pf_entry_equal("443 inet n - n - - smtpd -o smtpd_tls_security_level=encrypt "
	                       "-o x=y", want, n), "extra override");
	ok(!adm_pf_entry_equal("", want, n), "no entry");
	ok(adm_pf_entry_equal("", want, 0), "empty equals empty");
}

/* Issue 8: a re-run undoes only what an earlier setup wrote into main.cf for the upstream
 * (where sendmail and port-25 mail used it too), and only once that layout is found. */
static void legacy(void)
{
	static const char map[] = "hash:/etc/postfix/relay_upstream_passwd";
	static const struct {
		const char *name, *value;
		enum adm_setup_legacy want;
	} cases[] = {
		{ "relayhost", "[smtp.example.com]:587", ADM_LEGACY_REMOVE },
		{ "relayhost", "smtp.example.com", ADM_LEGACY_KEEP },        /* not setup's form */
		{ "relayhost", "", ADM_LEGACY_KEEP },
		{ "smtp_tls_wrappermode", "yes", ADM_LEGACY_REMOVE },
		{ "smtp_tls_security_level", "secure", ADM_LEGACY_MAY },
		{ "smtp_tls_security_level", "encrypt", ADM_LEGACY_MAY },
		{ "smtp_tls_security_level", "dane", ADM_LEGACY_KEEP },     /* the admin's own */
		{ "smtp_tls_CAfile", "/etc/ssl/certs/ca-certificates.crt", ADM_LEGACY_REMOVE },
		{ "smtp_tls_protocols", ">=TLSv1.2", ADM_LEGACY_REMOVE },
		{ "smtp_tls_protocols", "!SSLv2,!SSLv3", ADM_LEGACY_KEEP },
		{ "smtp_sasl_auth_enable", "yes", ADM_LEGACY_REMOVE },
		{ "smtp_sasl_password_maps", "hash:/etc/postfix/relay_upstream_passwd",
		  ADM_LEGACY_REMOVE },
		{ "smtp_sasl_password_maps", "hash:/etc/postfix/sasl_passwd", ADM_LEGACY_KEEP },
		{ "smtp_sasl_security_options", "noanonymous", ADM_LEGACY_REMOVE },
		{ "smtp_sasl_security_options", "noplaintext", ADM_LEGACY_KEEP },
		{ "smtp_sasl_tls_security_options", "noanonymous", ADM_LEGACY_REMOVE },
		{ "myhostname", "[x]:1", ADM_LEGACY_KEEP },                  /* not an upstream key */
	};
	size_t names = 0;

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		ok(adm_setup_legacy(cases[i].name, cases[i].value, map) == cases[i].want,
		   "legacy %s = '%s'", cases[i].name, cases[i].value);
	ok(adm_setup_legacy("relayhost", NULL, map) == ADM_LEGACY_KEEP, "NULL value kept");
	while (adm_setup_legacy_names[names])
		names++;
	ok(names == 10, "ten main.cf names setup used to write");

	ok(adm_setup_legacy_layout("", map, map, NULL), "found by setup's own password map");
	ok(adm_setup_legacy_layout("[smtp.example.com]:587", "", map, "[smtp.example.com]:587"),
	   "found by relayhost = the upstream being set up");
	ok(!adm_setup_legacy_layout("[mx.example.org]:25", "", map, "[smtp.example.com]:587"),
	   "an admin's own relayhost is not setup's");
	ok(!adm_setup_legacy_layout("[smtp.example.com]:587", "hash:/etc/postfix/sasl_passwd",
	                            map, NULL), "without an upstream only the map counts");
	ok(!adm_setup_legacy_layout("", "", map, "[smtp.example.com]:587"), "nothing set");
}

/* --message-size: bytes or K/M/G (binary), 1 KiB .. 1 GiB; no 0 (unlimited), no sign,
 * no other suffix, nothing that would overflow a long on the way. */
static void sizes(void)
{
	static const struct { const char *s; long want; } good[] = {
		{ "1024", 1024 }, { "1K", 1024 }, { "64k", 65536 }, { "20M", 20L << 20 },
		{ "10240000", 10240000 }, { "1G", 1L << 30 }, { "1073741824", 1L << 30 },
	};
	static const char *const bad[] = {
		"", "0", "0M", "512", "1023", "-5", "+5", "M", "10X", "10MB", "2G", "1073741825",
		"99999999999", "9999999999G", " 5M", "5 M", "1.5M",
	};
	char why[200];
	long v;

	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
		ok(adm_setup_size(good[i].s, &v, why, sizeof why) && v == good[i].want,
		   "size '%s'", good[i].s);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		why[0] = '\0';
		ok(!adm_setup_size(bad[i], &v, why, sizeof why) && strstr(why, "--message-size"),
		   "refuse size '%s'", bad[i]);
	}
}

int main(void)
{
	sizes();
	plain_values();
	db_names();
	listen_specs();
	upstreams();
	entries();
	legacy();
	return tap_done();
}
