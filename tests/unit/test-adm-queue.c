/*
 * test-adm-queue.c — what relay-admin held reads before it runs postsuper (admin/queue.h):
 * the queue-id check and the `postqueue -j` line reader, on the lines Postfix 3.7 prints
 * and on hostile or broken ones (every refusal is an error, never a partial message).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queue.h"
#include "tap.h"

static void test_ids(void)
{
	static const struct { const char *id; bool ok; } v[] = {
		{ "4F1C21C0A3", true },             /* short: hex */
		{ "84FA3A745D2", true },
		{ "4Lh2Wm1x8Gz9kQ", true },         /* long (enable_long_queue_ids) */
		{ "ALL", false },                   /* postsuper -d ALL */
		{ "-", false },                     /* postsuper: ids from stdin */
		{ "-d", false },
		{ "", false },
		{ "ABCDE", false },                 /* too short */
		{ "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", false },  /* 33 */
		{ "../etc/passwd", false },
		{ "4F1C21C0A3 hold", false },
		{ "4F1C21C0A3\n", false },
		{ "4F1C21C0A3;id", false },
		{ "4F1C21C0\xc3\xa9", false },
	};

	for (size_t k = 0; k < sizeof v / sizeof v[0]; k++)
		is_int(adm_queue_id_valid(v[k].id), v[k].ok, "queue id %zu", k);
}

static void test_line(void)
{
	struct adm_qmsg m = { 0 };
	char err[256] = "";

	is_int(adm_queue_parse_line(
	       "{\"queue_name\": \"hold\", \"queue_id\": \"84FA3A745D2\", \"arrival_time\": "
	       "1764500000, \"message_size\": 347, \"forced_expire\": false, \"sender\": "
	       "\"h@example.org\", \"recipients\": [{\"address\": \"r@example.net\"}, "
	       "{\"address\": \"c\\u00e9@example.net\", \"delay_reason\": \"x \\\"y\\\"\"}]}",
	       &m, err, sizeof err), 1, "a held message: %s", err);
	is_str(m.queue_id, "84FA3A745D2", "its id");
	is_int(m.arrival_time, 1764500000, "its arrival time");
	is_int(m.size, 347, "its size");
	is_str(m.sender, "h@example.org", "its sender");
	is_int(m.nrcpt, 2, "two recipients");
	if (m.nrcpt == 2) {
		is_str(m.rcpt[0], "r@example.net", "the first");
		is_str(m.rcpt[1], "c\xc3\xa9@example.net", "the second, \\u decoded to UTF-8");
	}
	adm_qmsg_clear(&m);

	is_int(adm_queue_parse_line(
	       "{\"queue_name\": \"deferred\", \"queue_id\": \"4F1C21C0A3\", \"arrival_time\": 1,"
	       " \"message_size\": 1, \"sender\": \"\", \"recipients\": []}", &m, err, sizeof err),
	       0, "a deferred message is skipped");
	is_int(adm_queue_parse_line(
	       "{\"queue_name\": \"hold\", \"queue_id\": \"4F1C21C0A3\", \"arrival_time\": 1,"
	       " \"message_size\": 1, \"sender\": \"\", \"recipients\": [], \"extra\":"
	       " {\"a\": [1, -2.5e3, null, true, {\"b\": \"\\ud83d\\ude00\"}]}}", &m, err, sizeof err),
	       1, "unknown members of any type are skipped: %s", err);
	is_str(m.sender, "", "the null sender is \"\"");
	adm_qmsg_clear(&m);
}

static void test_refused(void)
{
	static const char *const bad[] = {
		"",
		"[]",
		"{\"queue_name\": \"hold\"}",                                 /* members missing */
		"{\"queue_name\": \"hold\", \"queue_id\": \"ALL\", \"arrival_time\": 1,"
		" \"message_size\": 1, \"sender\": \"\", \"recipients\": []}",  /* not an id */
		"{\"queue_name\": \"hold\", \"queue_id\": \"-d\", \"arrival_time\": 1,"
		" \"message_size\": 1, \"sender\": \"\", \"recipients\": []}",
		"{\"queue_name\": \"hold\", \"queue_id\": \"4F1C21C0A3\", \"arrival_time\": 1.5,"
		" \"message_size\": 1, \"sender\": \"\", \"recipients\": []}",
		"{\"queue_name\": \"hold\", \"queue_id\": \"4F1C21C0A3\", \"arrival_time\": 1,"
		" \"message_size\": 1, \"sender\": \"a\\u0000b\", \"recipients\": []}",
		"{\"queue_name\": \"hold\", \"queue_id\": \"4F1C21C0A3\", \"arrival_time\": 1,"
		" \"message_size\": 1, \"sender\": \"\", \"recipients\": [\"x\"]}",
		"{\"queue_name\": \"hold\", \"queue_id\": \"4F1C21C0A3\", \"arrival_time\": 1,"
		" \"message_size\": 1, \"sender\": \"\", \"recipients\": []} trailing",
		"{\"queue_name\": \"hold\", \"queue_id\": \"4F1C21C0A3\"",
		"{\"queue_name\": \"hold\" \"queue_id\": \"4F1C21C0A3\"}",
		"{\"a\": [[[[[[[[[[[[1]]]]]]]]]]]]}",
		"{\"queue_name\": \"ho\tld\"}",
		"{\"queue_name\": \"hold\", \"queue_id\": \"4F1C21C0A3\", \"arrival_time\":"
		" 99999999999999999999, \"message_size\": 1, \"sender\": \"\", \"recipients\": []}",
	};
	struct adm_qmsg m = { 0 };
	char err[256] = "";

	for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
		err[0] = '\0';
		is_int(adm_queue_parse_line(bad[k], &m, err, sizeof err), -1, "refused %zu", k);
		ok(err[0] != '\0', "  and says why: %s", err);
		is_int(m.nrcpt, 0, "  and hands out nothing");
	}
}

int main(void)
{
	test_ids();
	test_line();
	test_refused();
	return tap_done();
}
