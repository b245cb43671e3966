/*
 * addr.h — mail address parsing for relay-milter: the envelope sender (SMTP MAIL FROM
 * argument) and the RFC 5322 From: header (address-list with display names, comments,
 * quoted strings, groups and the common obsolete forms).
 *
 * Pure functions over caller-supplied buffers: no allocation visible to the caller, no
 * global state, so they are safe from any thread. Input is treated as hostile: lengths,
 * comment nesting and the number of addresses are clamped (see the MLT_* limits below);
 * control characters other than tab/CR/LF are refused.
 *
 * Output addresses are canonical for matching: `local@domain`, ASCII letters lowercased,
 * comments, whitespace and source routes removed; a quoted local part stays quoted only
 * when its content needs quoting. Matching is therefore case-insensitive.
 *
 * Errors: MLT_ADDR_INVALID with a short, client-safe reason in `why` (may be NULL).
 */
#ifndef RELAY_MLT_ADDR_H
#define RELAY_MLT_ADDR_H

#include <stdbool.h>
#include <stddef.h>

#define MLT_ADDR_MAX 254          /* RFC 5321 path limit minus the angle brackets */
#define MLT_FROM_ADDRS_MAX 64     /* addresses accepted in one From: header */
#define MLT_HEADER_MAX 16384      /* bytes of one header value we are willing to parse */
#define MLT_COMMENT_DEPTH_MAX 16  /* nesting of (comments) */

enum mlt_addr_result {
	MLT_ADDR_OK = 0,
	MLT_ADDR_NULL,     /* the null sender <> (envelope only) */
	MLT_ADDR_INVALID,
};

/* Parses one envelope address as Postfix passes it to xxfi_envfrom (argv[0]): `<a@b>`,
 * `a@b`, `<@route,@route:a@b>`, `<"quoted local"@b>`, or `<>`. On MLT_ADDR_OK `out`
 * (MLT_ADDR_MAX + 1 bytes) holds the canonical address; on MLT_ADDR_NULL it is "". */
enum mlt_addr_result mlt_envaddr_parse(const char *arg, char out[MLT_ADDR_MAX + 1],
                                       char *why, size_t whylen);

/* Called once per address found, in order; return false to stop early (the parse then
 * still returns MLT_ADDR_OK). */
typedef bool (*mlt_addr_cb)(void *arg, const char *addr);

/* Parses a From: header value (the part after "From:", possibly folded) of `len` bytes.
 * Calls `cb` for every mailbox, including those inside groups. `*count` (may be NULL)
 * receives the number of addresses seen. An empty list is MLT_ADDR_OK with count 0;
 * policy decides what that means. */
enum mlt_addr_result mlt_from_parse(const char *value, size_t len, mlt_addr_cb cb, void *arg,
                                    size_t *count, char *why, size_t whylen);

#endif
