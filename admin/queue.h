/*
 * queue.h — Postfix's hold queue through Postfix's own tools, for `relay-admin held`:
 * `postqueue -j` to list, `postsuper -H` / `-d` to release or delete, `postqueue -i` to
 * deliver a released message now, all on one instance (`-c DIR`), each run through
 * adm_run() (postconf.h: fork + execv with an argv array, never a shell).
 *
 * Queue ids go on postsuper's command line, so nothing reaches it unchecked: an id must
 * have the shape of a Postfix queue id (adm_queue_id_valid: letters and digits, 6 to 32
 * of them — no option, no "-" (stdin), no "ALL") and must be listed in the hold queue at
 * that moment (the callers refuse the whole command otherwise, running nothing).
 *
 * Release is `postsuper -H`, never `-r`: -H moves the queue file as it is into the
 * deferred queue, with the content_filter the relay service recorded in it, so the message
 * goes on to the upstream through the relay's own transport; -r would re-submit it as
 * local mail through pickup and cleanup, losing that filter.
 *
 * Ownership: struct adm_queue from adm_queue_list() is freed with adm_queue_free()
 * (NULL-safe); its strings live as long as it. Single-threaded.
 * Errors: -1 with a one-line reason in err (a tool failed, its output did not parse, the
 * listing was larger than adm_run keeps).
 */
#ifndef RELAY_ADM_QUEUE_H
#define RELAY_ADM_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ADM_QUEUE_ID_MAX 32

struct adm_qmsg {
	char queue_id[ADM_QUEUE_ID_MAX + 1];
	int64_t arrival_time;        /* unix seconds */
	int64_t size;                /* bytes (message_size) */
	char *sender;                /* "" for the null sender */
	char **rcpt;                 /* nrcpt addresses */
	size_t nrcpt;
};

struct adm_queue {
	struct adm_qmsg *v;          /* the messages of the hold queue, in listing order */
	size_t n;
};

/* True for the shape of a Postfix queue id (short: hex; long: base-52 with 'z'). */
bool adm_queue_id_valid(const char *id);

/* The hold queue of the instance in `dir` (`postqueue -c dir -j`, other queues skipped). */
int adm_queue_list(const char *dir, struct adm_queue **out, char *err, size_t errlen);
void adm_queue_free(struct adm_queue *q);

/* The message with this id, or NULL. */
const struct adm_qmsg *adm_queue_find(const struct adm_queue *q, const char *id);

/* `postsuper -c dir -H id ... hold`, then `postqueue -c dir -i id` for each (deliver
 * now rather than at the next deferred-queue run; a failure there only delays). Ids must
 * have been checked as above. */
int adm_queue_release(const char *dir, const char *const ids[], size_t n, char *err,
                      size_t errlen);

/* `postsuper -c dir -d id ... hold`: only from the hold queue. */
int adm_queue_delete(const char *dir, const char *const ids[], size_t n, char *err,
                     size_t errlen);

/* Parses one line of `postqueue -j` (exported for the unit test). Returns 1 and fills *m
 * for a message of the hold queue, 0 for a message of another queue (m untouched), -1 on
 * malformed input (err says where). */
int adm_queue_parse_line(const char *line, struct adm_qmsg *m, char *err, size_t errlen);
void adm_qmsg_clear(struct adm_qmsg *m);

#endif
