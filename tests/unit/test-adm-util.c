/*
 * test-adm-util.c — relay-admin's pure helpers (admin/util.c, admin/json.c): strict date
 * parsing, time formatting, the JSON writer (escaping, invalid UTF-8, nesting, commas) and
 * safe printing of hostile strings.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adm.h"
#include "tap.h"

/* is_str() on an array trips -Waddress (its NULL test); go through a pointer. */
#define is_buf(got, ...) do { const char *got_ = (got); is_str(got_, __VA_ARGS__); } while (0)

static void test_parse_time(void)
{
	static const struct { const char *in; bool ok; long long want; } v[] = {
		{ "1970-01-01", true, 0 },
		{ "2026-11-26", true, 1795651200 },
		{ "2028-02-29", true, 1835395200 },
		{ "2000-02-29", true, 951782400 },
		{ "2028-02-29T12:30:00Z", true, 1835440200 },
		{ "2038-01-19T03:14:08Z", true, 2147483648LL },
		{ "2100-02-29", false, 0 },
		{ "2025-02-29", false, 0 },
		{ "2026-04-31", false, 0 },
		{ "2026-00-10", false, 0 },
		{ "2026-13-10", false, 0 },
		{ "2026-01-00", false, 0 },
		{ "1969-12-31", false, 0 },
		{ "2026-1-01", false, 0 },
		{ "2026-01-01T24:00:00Z", false, 0 },
		{ "2026-01-01T00:60:00Z", false, 0 },
		{ "2026-01-01T00:00:00", false, 0 },
		{ "2026-01-01 00:00:00Z", false, 0 },
		{ "2026-01-01x", false, 0 },
		{ " 2026-01-01", false, 0 },
		{ "+026-01-01", false, 0 },
		{ "", false, 0 },
	};
	int64_t t;

	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		t = -1;
		ok(adm_parse_time(v[i].in, &t) == v[i].ok, "parse %s", v[i].in);
		if (v[i].ok)
			is_int(t, v[i].want, "value of %s", v[i].in);
	}
	ok(!adm_parse_time(NULL, &t), "NULL refused");
}

static void test_format_time(void)
{
	char buf[ADM_TIME_LEN];

	adm_format_time(0, buf);
	is_buf(buf, "1970-01-01T00:00:00Z", "epoch");
	adm_format_time(1835440200, buf);
	is_buf(buf, "2028-02-29T12:30:00Z", "leap day");
}

/* Runs fn against a memory stream and returns what it wrote (caller frees). */
static char *capture(void (*fn)(FILE *f))
{
	char *data = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&data, &len);

	if (f == NULL)
		return NULL;
	fn(f);
	fclose(f);
	return data;
}

static void json_doc(FILE *f)
{
	struct adm_json j;

	adm_json_init(&j, f);
	adm_json_obj(&j);
	adm_json_key(&j, "s");
	adm_json_str(&j, "q\" b\\ n\n t\t c\x01 del\x7f");
	adm_json_key(&j, "utf8");
	adm_json_str(&j, "\xe2\x82\xac ok \xc2\x9b" "2J \xc2\x85 \xc2\xa0");
	adm_json_key(&j, "bad");
	adm_json_str(&j, "a\xff" "b\xc0\xaf" "c\xed\xa0\x80" "d\xe2\x82");
	adm_json_key(&j, "arr");
	adm_json_arr(&j);
	adm_json_int(&j, -5);
	adm_json_bool(&j, true);
	adm_json_null(&j);
	adm_json_obj(&j);
	adm_json_end(&j);
	adm_json_arr(&j);
	adm_json_end(&j);
	adm_json_end(&j);
	adm_json_key(&j, "t");
	adm_json_time(&j, 0);
	adm_json_key(&j, "open");
	adm_json_arr(&j);
	adm_json_str(&j, NULL);
	adm_json_finish(&j); /* closes what is still open */
}

static void safe_print(FILE *f)
{
	adm_print_safe(f, "ok \x1b[2J\\ \xff\n");
}

static void test_json(void)
{
	char *s = capture(json_doc);

	is_str(s, "{\"s\":\"q\\\" b\\\\ n\\n t\\t c\\u0001 del\\u007f\","
	          "\"utf8\":\"\xe2\x82\xac ok \\u009b2J \\u0085 \xc2\xa0\","
	          "\"bad\":\"a\\ufffdb\\ufffd\\ufffdc\\ufffd\\ufffd\\ufffdd\\ufffd\\ufffd\","
	          "\"arr\":[-5,true,null,{},[]],"
	          "\"t\":\"1970-01-01T00:00:00Z\",\"open\":[\"\"]}\n", "JSON document");
	free(s);
	s = capture(safe_print);
	is_str(s, "ok \\x1b[2J\\x5c \\xff\\x0a", "adm_print_safe escapes controls and bytes");
	free(s);
}

static void test_exit_codes(void)
{
	is_int(adm_exit_for(RDB_OK), ADM_EXIT_OK, "ok");
	is_int(adm_exit_for(RDB_NOTFOUND), ADM_EXIT_NOTFOUND, "not found");
	is_int(adm_exit_for(RDB_EXISTS), ADM_EXIT_EXISTS, "exists");
	is_int(adm_exit_for(RDB_INVALID), ADM_EXIT_USAGE, "invalid");
	is_int(adm_exit_for(RDB_ERROR), ADM_EXIT_DB, "error");
}

int main(void)
{
	test_parse_time();
	test_format_time();
	test_json();
	test_exit_codes();
	return tap_done();
}
