/*
 * queue.c — listing, releasing and deleting held mail with Postfix's tools (see queue.h).
 */
#include "queue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"
#include "postconf.h"

void adm_queue_free(struct adm_queue *q)
{
	if (q == NULL)
		return;
	for (size_t k = 0; k < q->n; k++)
		adm_qmsg_clear(&q->v[k]);
	free(q->v);
	free(q);
}

const struct adm_qmsg *adm_queue_find(const struct adm_queue *q, const char *id)
{
	for (size_t k = 0; k < q->n; k++)
		if (strcmp(q->v[k].queue_id, id) == 0)
			return &q->v[k];
	return NULL;
}

static int add(struct adm_queue *q, struct adm_qmsg *m)
{
	struct adm_qmsg *v = realloc(q->v, (q->n + 1) * sizeof *v);

	if (v == NULL)
		return -1;
	q->v = v;
	q->v[q->n++] = *m;
	return 0;
}

int adm_queue_list(const char *dir, struct adm_queue **out, char *err, size_t errlen)
{
	const char *argv[] = { "postqueue", "-c", dir, "-j", NULL };
	struct adm_queue *q = calloc(1, sizeof *q);
	char *text = NULL, *line, *next;
	int status = 0, rc = -1;

	*out = NULL;
	if (q == NULL) {
		rdb_seterr(err, errlen, "out of memory");
		return -1;
	}
	if (adm_run(argv, NULL, &text, &status, err, errlen) != 0 || status != 0)
		goto out;
	/* adm_run keeps ADM_RUN_OUT_MAX bytes: a listing that filled them may be cut short,
	 * and a cut listing could miss a held message */
	if (strlen(text) >= ADM_RUN_OUT_MAX) {
		rdb_seterr(err, errlen, "postqueue -j printed more than %d bytes: queue too large "
		           "to list", ADM_RUN_OUT_MAX);
		goto out;
	}
	for (line = text; line != NULL && *line != '\0'; line = next) {
		struct adm_qmsg m = { 0 };
		int got;

		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		if (line[0] == '\0')
			continue;
		got = adm_queue_parse_line(line, &m, err, errlen);
		if (got < 0)
			goto out;
		if (got == 1 && add(q, &m) != 0) {
			adm_qmsg_clear(&m);
			rdb_seterr(err, errlen, "out of memory");
			goto out;
		}
	}
	*out = q;
	q = NULL;
	rc = 0;
out:
	free(text);
	adm_queue_free(q);
	return rc;
}

/* postsuper -c dir FLAG id FLAG id ... hold. */
static int postsuper(const char *dir, const char *flag, const char *const ids[], size_t n,
                     char *err, size_t errlen)
{
	const char **argv = calloc(2 * n + 5, sizeof *argv);
	size_t a = 0;
	int status = 0, rc;

	if (argv == NULL) {
		rdb_seterr(err, errlen, "out of memory");
		return -1;
	}
	argv[a++] = "postsuper";
	argv[a++] = "-c";
	argv[a++] = dir;
	for (size_t k = 0; k < n; k++) {
		if (!adm_queue_id_valid(ids[k])) {   /* the callers checked; never pass one on */
			free(argv);
			rdb_seterr(err, errlen, "not a queue id");
			return -1;
		}
		argv[a++] = flag;
		argv[a++] = ids[k];
	}
	argv[a++] = "hold";   /* the queue: never touch active or deferred mail */
	argv[a] = NULL;
	rc = adm_run(argv, NULL, NULL, &status, err, errlen) == 0 && status == 0 ? 0 : -1;
	free(argv);
	return rc;
}

int adm_queue_release(const char *dir, const char *const ids[], size_t n, char *err,
                      size_t errlen)
{
	if (n == 0)
		return 0;
	if (postsuper(dir, "-H", ids, n, err, errlen) != 0)
		return -1;
	/* -H moved them to the deferred queue, which the queue manager scans only every
	 * queue_run_delay: ask for each now. A failure here only delays the delivery. */
	for (size_t k = 0; k < n; k++) {
		const char *argv[] = { "postqueue", "-c", dir, "-i", ids[k], NULL };
		char ignored[256];
		int status;

		adm_run(argv, NULL, NULL, &status, ignored, sizeof ignored);
	}
	return 0;
}

int adm_queue_delete(const char *dir, const char *const ids[], size_t n, char *err,
                     size_t errlen)
{
	return n == 0 ? 0 : postsuper(dir, "-d", ids, n, err, errlen);
}
