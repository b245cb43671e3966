/*
 * errbuf.h — filling a caller's error buffer, the convention every "char *err, size_t
 * errlen" function in this project follows.
 *
 * Ownership: the buffer is the caller's; nothing is allocated. Thread safety: none needed
 * (it touches only the buffer it is given). Errors: none; a message that does not fit is
 * truncated, NUL-terminated.
 */
#ifndef RELAY_RDB_ERRBUF_H
#define RELAY_RDB_ERRBUF_H

#include <stddef.h>

/* Formats the message into err[errlen]. A NULL err or a zero errlen means the caller
 * does not want the reason: nothing is written. */
__attribute__((format(printf, 3, 4)))
void rdb_seterr(char *err, size_t errlen, const char *fmt, ...);

#endif
