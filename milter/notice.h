/*
 * notice.h — what a limit-hit notification says and when one is due, as pure code: the
 * gate that lets at most one notification per login and event kind through per period,
 * and the message text handed to sendmail. No threads, no clock, no I/O: callers pass the
 * time, so both are unit tested (tests/milter/test-mlt-notice.c). The sending side (queue,
 * thread, sendmail) is notify.h.
 *
 * Events: a login first refused over a rate limit (MLT_NOTICE_LIMIT), a message held over
 * a limit (MLT_NOTICE_HELD), a login that keeps trying senders it may not use
 * (MLT_NOTICE_SENDERS: the Nth refused sender within a period, N = notify_refused_senders).
 *
 * Safety of the text: the login, the client address and the refused sender come from the
 * SMTP client (a login that failed no check yet may still be anything a client typed in
 * an envelope). Every such value is copied as printable ASCII only and clamped, so no CR
 * or LF can end a header field and start another (header injection) and no line grows
 * past RFC 5322's 998 characters. notify_to and notify_from come from the configuration,
 * which refuses anything but one plain address (config.c).
 *
 * Ownership: struct mlt_gate from mlt_gate_new(), freed by mlt_gate_free() (NULL-safe);
 * struct mlt_notice is a plain value.
 * Thread safety: a gate is not locked; its one user (notify.c) holds a mutex. The message
 * builder is a pure function.
 */
#ifndef RELAY_MLT_NOTICE_H
#define RELAY_MLT_NOTICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "window.h"

enum mlt_notice_kind { MLT_NOTICE_LIMIT, MLT_NOTICE_HELD, MLT_NOTICE_SENDERS, MLT_NOTICE_KINDS };

/* The most logins a gate tracks; past it (after pruning entries older than a period) a new
 * login is not notified and mlt_gate_check() says so (MLT_GATE_FULL). */
#define MLT_GATE_MAX 4096

/* One event, as the callbacks saw it. Strings are raw (sanitized by the builder). */
struct mlt_notice {
	enum mlt_notice_kind kind;
	char login[256];
	char client[64];
	char sender[256];          /* MLT_NOTICE_SENDERS: the last refused sender */
	struct mlt_limit limit;    /* LIMIT, HELD: the limit that was hit */
	uint64_t count;            /* SENDERS: refusals counted in the period */
	int64_t wall;              /* unix time of the event, for the text */
};

/* Printable names: "limit", "held", "refused-senders". */
const char *mlt_notice_kind_name(enum mlt_notice_kind k);

struct mlt_gate;

struct mlt_gate *mlt_gate_new(void);
void mlt_gate_free(struct mlt_gate *g);

enum mlt_gate_result {
	MLT_GATE_SEND,      /* due: send one now */
	MLT_GATE_QUIET,     /* already sent for this login and kind within the period, or
	                     * (SENDERS) the threshold not reached */
	MLT_GATE_FULL,      /* no room to track the login: nothing sent */
	MLT_GATE_NOMEM,
};

/* Counts one event of `kind` for `login` at `now` (any monotonic seconds) and says whether
 * a notification is due. LIMIT and HELD are due at the first event and then not again
 * until `period` seconds after the last one sent. SENDERS counts refusals in a period that
 * starts at the first one and is due when the count reaches `threshold` (0: never), again
 * at most once per period; *count (may be NULL) receives the count. */
enum mlt_gate_result mlt_gate_check(struct mlt_gate *g, const char *login,
                                    enum mlt_notice_kind kind, int64_t now, int64_t period,
                                    uint64_t threshold, uint64_t *count);

/* The message for sendmail -i (LF line ends; Postfix adds Date: and Message-ID:).
 * `from` "" writes "MAILER-DAEMON". `host` names the relay in the text (may be "").
 * `period` is the notify period (said in the text). Returns the length, or 0 when `outlen`
 * is too small (never a cut message). */
size_t mlt_notice_build(const struct mlt_notice *n, const char *from, const char *to,
                        const char *host, int64_t period, char *out, size_t outlen);

#endif
