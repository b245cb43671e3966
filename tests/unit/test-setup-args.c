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

int main(void)
{
	plain_values();
	listen_specs();
	upstreams();
	entries();
	return tap_done();
}
