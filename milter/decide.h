/*
 * decide.h — relay-milter's decisions as plain functions over plain structs: TLS and AUTH
 * at MAIL, the login's state, allowed envelope and header senders, and the wording of
 * every reply. No libmilter, no database, no clock: callers pass what they know, so the
 * whole table of decisions is unit tested (tests/milter/test-mlt-policy.c).
 *
 * Ownership: struct mlt_login is built by store.c from the users database and is
 * immutable once published; the functions here only read it. Verdicts are plain values.
 * Thread safety: pure functions, safe from any thread.
 */
#ifndef RELAY_MLT_DECIDE_H
#define RELAY_MLT_DECIDE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "config.h"
#include "window.h"

#define MLT_LOGIN_MAX 255
#define MLT_LABEL_MAX 32    /* == RDB_LABEL_MAX, which store.c static_asserts */
#define MLT_LIMITS_MAX 32   /* == RDB_LIMITS_MAX, which store.c static_asserts */

enum mlt_login_state { MLT_LOGIN_ACTIVE, MLT_LOGIN_DISABLED, MLT_LOGIN_EXPIRED };

struct mlt_login {
	char name[MLT_LOGIN_MAX + 1];   /* canonical spelling from the database, lowercased */
	/* the app credential the client authenticated with ({auth_authen} was its
	 * authentication name; everything above is its login's); "" = the login's own */
	char credential[MLT_LABEL_MAX + 1];
	enum mlt_login_state state;
	bool rate_exempt;
	bool hold_over_limit;
	size_t nsenders;
	const char **senders;           /* lowercase patterns: a@b, @domain, <> */
	size_t nlimits;
	struct mlt_limit limits[MLT_LIMITS_MAX];
};

enum mlt_action {
	MLT_CONTINUE,   /* nothing to object to (at EOM: accept) */
	MLT_REJECT,     /* 5xx */
	MLT_TEMPFAIL,   /* 4xx */
	MLT_HOLD,       /* accept into Postfix's hold queue */
};

/* Why a decision was taken. Each value has one row in decide.c's table: the action, the
 * SMTP reply code, the enhanced status code (RFC 3463) and the audit log's reason tag. A
 * verdict's codes come from that row only, never from comparing strings. */
enum mlt_why {
	MLT_WHY_OK,                 /* continue / accept */
	MLT_WHY_NO_TLS,
	MLT_WHY_TLS_TOO_OLD,
	MLT_WHY_NO_AUTH,
	MLT_WHY_UNKNOWN_LOGIN,
	MLT_WHY_LOGIN_DISABLED,
	MLT_WHY_LOGIN_EXPIRED,
	MLT_WHY_SENDER_INVALID,
	MLT_WHY_SENDER_NOT_ALLOWED,
	MLT_WHY_FROM_MISSING,
	MLT_WHY_FROM_INVALID,
	MLT_WHY_FROM_NOT_ALLOWED,
	MLT_WHY_TOO_BIG_ALONE,      /* one message over a byte limit: 552 5.3.4 */
	MLT_WHY_TOO_MANY_ALONE,     /* one message over a count limit: 550 5.7.1 */
	MLT_WHY_RATE_LIMIT,         /* 450 4.7.1, with the wait */
	MLT_WHY_HELD,               /* over a limit, held instead (no reply code) */
	/* internal trouble: 451 4.3.0, fail closed */
	MLT_WHY_WRONG_SERVICE,
	MLT_WHY_USERS_DB_ERROR,
	MLT_WHY_STATE_DB_ERROR,
	MLT_WHY_NO_CONTEXT,
	MLT_WHY_NO_SENDER,
	MLT_WHY_NO_CONFIG,
	MLT_WHY_OUT_OF_MEMORY,
	MLT_WHY_QUARANTINE_FAILED,
	MLT_WHY_STALE_SESSION,      /* the session negotiated before the policy needed more */
	MLT_WHY_JOURNAL_ERROR,      /* an accepted message's record not in the crash journal */
	MLT_WHY_COUNT_
};

/* A decision. rcode, xcode and reason point into decide.c's table (static strings, ""
 * when the action has no reply, e.g. MLT_CONTINUE and MLT_HOLD); text is this decision's
 * client-visible wording. A plain value: copy it freely. */
struct mlt_verdict {
	enum mlt_action action;
	enum mlt_why why;
	const char *rcode;   /* "550" */
	const char *xcode;   /* "5.7.1" */
	const char *reason;  /* short tag for the audit log: "sender-not-allowed", … */
	char text[240];      /* client-visible; printable ASCII, no '%' */
};

/* The audit log's tag for a reason ("sender-not-allowed"). */
const char *mlt_why_tag(enum mlt_why why);

/* What the MTA told us at MAIL. Strings may be NULL (macro absent). */
struct mlt_mail_facts {
	const char *auth_authen;
	const char *tls_version;
	const char *daemon_name;
	const char *envelope;      /* xxfi_envfrom argv[0] */
};

/* Outcome of looking the login up (store.c maps enum rdb_result onto this). */
enum mlt_lookup { MLT_LOOKUP_FOUND, MLT_LOOKUP_NOTFOUND, MLT_LOOKUP_ERROR };

/* Is `addr` (canonical, "" for the null sender) allowed for `l`? Exact pattern, `@domain`
 * on the address's domain, the login name itself when it is an address, and `<>` for the
 * null sender. */
bool mlt_sender_allowed(const struct mlt_login *l, const char *addr);

/* Checks without a login (daemon name, TLS, AUTH): MLT_CONTINUE if the login lookup may
 * proceed. */
void mlt_decide_session(const struct mlt_config *cfg, const struct mlt_mail_facts *f,
                        struct mlt_verdict *v);

/* The rest of MAIL: the lookup outcome, the login state and the envelope sender. On
 * MLT_CONTINUE `sender` (MLT_ADDR_MAX + 1) holds the canonical envelope sender ("" = <>);
 * on refusal it holds what could be parsed (for the audit log). */
void mlt_decide_mail(const struct mlt_mail_facts *f, enum mlt_lookup lookup,
                     const struct mlt_login *l, char sender[MLT_ADDR_MAX + 1],
                     struct mlt_verdict *v);

/* The header From: values of one message (nfrom may be 0: no From: header). `first`
 * (MLT_ADDR_MAX + 1, may be NULL) receives the first address for the audit log. */
void mlt_decide_from(const struct mlt_config *cfg, const struct mlt_login *l,
                     const char *const *values, const size_t *lens, size_t nfrom,
                     char *first, struct mlt_verdict *v);

/* A rate limit was hit: `wait` seconds (MLT_WAIT_NEVER = can never fit) on `lim`.
 * Temporary 450 4.7.1 with the wait, 552 5.3.4 for a message that alone exceeds a byte
 * limit, 550 5.7.1 for a message that alone exceeds a count, or MLT_HOLD when the login
 * holds instead of refusing (never for MLT_WAIT_NEVER). */
void mlt_verdict_rate(const struct mlt_login *l, const struct mlt_limit *lim, int64_t wait,
                      struct mlt_verdict *v);

/* Internal trouble (`why` one of the internal reasons): 451 4.3.0 with `what`
 * (client-safe) — fail closed. */
void mlt_verdict_tempfail(struct mlt_verdict *v, enum mlt_why why, const char *what);

/* Sets the verdict for `why` (action and codes from the table); the text is sanitized
 * (printable ASCII, '%' → '?', clamped). */
__attribute__((format(printf, 3, 4)))
void mlt_verdict_set(struct mlt_verdict *v, enum mlt_why why, const char *fmt, ...);

/* Copies client-supplied text for logs and replies: printable ASCII only, clamped. */
void mlt_sanitize(char *out, size_t outlen, const char *in);

#endif
