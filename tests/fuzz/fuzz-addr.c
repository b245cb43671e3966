/*
 * fuzz-addr.c — libFuzzer target for milter/addr.c: the RFC 5322 From: parser and the
 * envelope address parser get arbitrary bytes. Beyond "no crash, no sanitizer report",
 * every address handed out must be bounded, contain '@', and be free of control bytes
 * and whitespace outside quotes.
 *
 * Build and run: tests/fuzz/run [SECONDS] addr (clang, -fsanitize=fuzzer,address,undefined);
 * seeds in tests/fuzz/corpus-addr/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"

static bool check(void *arg, const char *addr)
{
	size_t len = strlen(addr);

	(void)arg;
	if (len == 0 || len > MLT_ADDR_MAX || strchr(addr, '@') == NULL)
		abort();
	for (size_t k = 0; k < len; k++)
		if ((unsigned char)addr[k] < 0x20 || addr[k] == 0x7f)
			abort();
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char why[80], out[MLT_ADDR_MAX + 1];
	size_t n = 0;
	char *s;

	if (mlt_from_parse((const char *)data, size, check, NULL, &n, why, sizeof why) ==
	    MLT_ADDR_OK && n > MLT_FROM_ADDRS_MAX)
		abort();
	s = malloc(size + 1);
	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	if (mlt_envaddr_parse(s, out, why, sizeof why) == MLT_ADDR_OK)
		check(NULL, out);
	free(s);
	return 0;
}
