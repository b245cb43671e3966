/*
 * errbuf.c — rdb_seterr(), the one formatter behind every caller-supplied error buffer
 * (see errbuf.h). Lives in the data layer so that relay-admin's modules share it too.
 */
#include "errbuf.h"

#include <stdarg.h>
#include <stdio.h>

void rdb_seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}
