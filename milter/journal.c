/*
 * journal.c — the crash journal of accepted messages (see journal.h).
 *
 * Why one write() per record: with O_APPEND the kernel places each write() whole at the
 * end of the file, and a process killed outside a write() leaves only whole records. A
 * kill inside one (or a disk that fills up half way) can leave a torn record; the appender
 * cuts the file back when it sees that, and recovery skips anything that does not check
 * out and looks for the next record header, so one bad region never hides the records
 * behind it.
 */
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "state.h"

#define MAGIC 0x314a4c52u               /* "RLJ1" little-endian */
#define HEADER_SIZE 32
#define RECORD_MAX 4096                 /* header + payload; the largest is about 2.4 KiB */
#define FILE_MAX ((off_t)1 << 30)       /* a journal larger than this is not read into memory */
#define RESERVE ((off_t)64 << 10)       /* room kept allocated per file (about 200 records) */

struct mlt_journal {
	char *path[2];
	int fd[2];
	off_t size[2];                      /* bytes of whole records in each file */
	int active;                         /* the file appends go to */
	uint64_t id;
	uint64_t seq;                       /* last sequence number handed out */
};

/* Little-endian encoding, so a journal is readable whatever wrote it. */
static void put64(unsigned char *p, uint64_t v)
{
	for (int k = 0; k < 8; k++)
		p[k] = (unsigned char)(v >> (8 * k));
}

static uint64_t get64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int k = 7; k >= 0; k--)
		v = (v << 8) | p[k];
	return v;
}

static void put32(unsigned char *p, uint32_t v)
{
	for (int k = 0; k < 4; k++)
		p[k] = (unsigned char)(v >> (8 * k));
}

static uint32_t get32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* FNV-1a 64: catches a torn or overwritten record; nobody is trying to forge one (the
 * files belong to the milter's user, who can write the state database anyway). */
static uint64_t fnv1a(const unsigned char *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325u;

	for (size_t k = 0; k < n; k++) {
		h ^= p[k];
		h *= 0x100000001b3u;
	}
	return h;
}

/* The text fields of a record, in their order on disk. The credential came last, with app
 * credentials: a record without it (written by the milter before them, recovered after an
 * upgrade) ends after the reason and decodes with an empty credential. */
#define FIELDS(r) { (r)->login, (r)->client_addr, (r)->tls_version, (r)->cipher, \
	(r)->env_from, (r)->header_from, (r)->queue_id, (r)->verdict, (r)->reason, \
	(r)->credential }
#define NFIELDS 10
#define SIZES(r) { sizeof (r)->login, sizeof (r)->client_addr, sizeof (r)->tls_version, \
	sizeof (r)->cipher, sizeof (r)->env_from, sizeof (r)->header_from, sizeof (r)->queue_id, \
	sizeof (r)->verdict, sizeof (r)->reason, sizeof (r)->credential }

/* Encodes rec (with id and seq) into buf (RECORD_MAX bytes) -> its length. */
static size_t encode(const struct mlt_record *r, uint64_t id, uint64_t seq, unsigned char *buf)
{
	const char *fields[NFIELDS] = FIELDS(r);
	const size_t sizes[NFIELDS] = SIZES(r);
	unsigned char *p = buf + HEADER_SIZE;

	put64(p, (uint64_t)r->ts);
	put64(p + 8, r->v[0]);
	put64(p + 16, r->v[1]);
	put64(p + 24, r->v[2]);
	put64(p + 32, r->rcpt_count);
	put64(p + 40, r->size);
	p[48] = (unsigned char)((r->counted ? 1 : 0) | (r->touch ? 2 : 0));
	p += 49;
	for (size_t k = 0; k < NFIELDS; k++) {
		size_t n = strnlen(fields[k], sizes[k] - 1);

		p[0] = (unsigned char)n;
		p[1] = (unsigned char)(n >> 8);
		memcpy(p + 2, fields[k], n);
		p += 2 + n;
	}
	put32(buf, MAGIC);
	put32(buf + 4, (uint32_t)(p - buf - HEADER_SIZE));
	put64(buf + 16, id);
	put64(buf + 24, seq);
	put64(buf + 8, fnv1a(buf + 16, (size_t)(p - buf) - 16));
	return (size_t)(p - buf);
}

/* Decodes the record at buf (n bytes available) into *r; its total length, or 0 if no
 * whole, valid record starts there. */
static size_t decode(const unsigned char *buf, size_t n, struct mlt_record *r, uint64_t *id,
                     uint64_t *seq)
{
	size_t len, off;

	if (n < HEADER_SIZE || get32(buf) != MAGIC)
		return 0;
	len = get32(buf + 4);
	if (len < 49 || len > RECORD_MAX - HEADER_SIZE || len > n - HEADER_SIZE ||
	    get64(buf + 8) != fnv1a(buf + 16, HEADER_SIZE - 16 + len))
		return 0;
	memset(r, 0, sizeof *r);
	*id = get64(buf + 16);
	*seq = get64(buf + 24);
	buf += HEADER_SIZE;
	r->ts = (int64_t)get64(buf);
	r->v[0] = get64(buf + 8);
	r->v[1] = get64(buf + 16);
	r->v[2] = get64(buf + 24);
	r->rcpt_count = get64(buf + 32);
	r->size = get64(buf + 40);
	r->counted = (buf[48] & 1) != 0;
	r->touch = (buf[48] & 2) != 0;
	off = 49;
	{
		char *fields[NFIELDS] = FIELDS(r);
		const size_t sizes[NFIELDS] = SIZES(r);

		for (size_t k = 0; k < NFIELDS; k++) {
			size_t f;

			if (k == NFIELDS - 1 && off == len)
				break; /* a record from before the credential field */
			if (off + 2 > len)
				return 0;
			f = (size_t)buf[off] | (size_t)buf[off + 1] << 8;
			if (f >= sizes[k] || off + 2 + f > len || memchr(buf + off + 2, 0, f) != NULL)
				return 0;
			memcpy(fields[k], buf + off + 2, f);
			fields[k][f] = '\0';
			off += 2 + f;
		}
	}
	return off == len ? HEADER_SIZE + len : 0;
}

int mlt_journal_open(const char *state_db, struct mlt_journal **out, char *err, size_t errlen)
{
	struct mlt_journal *j = calloc(1, sizeof *j);

	*out = NULL;
	if (j == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	j->fd[0] = j->fd[1] = -1;
	for (int k = 0; k < 2; k++) {
		size_t n = strlen(state_db) + sizeof ".journal-0";

		j->path[k] = malloc(n);
		if (j->path[k] == NULL) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		snprintf(j->path[k], n, "%s.journal-%d", state_db, k);
		/* O_NOFOLLOW: a link planted in the state folder must not redirect our appends */
		j->fd[k] = open(j->path[k], O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (j->fd[k] < 0) {
			snprintf(err, errlen, "journal %s: %s", j->path[k], strerror(errno));
			goto fail;
		}
	}
	*out = j;
	return 0;
fail:
	mlt_journal_close(j);
	return -1;
}

void mlt_journal_close(struct mlt_journal *j)
{
	if (j == NULL)
		return;
	for (int k = 0; k < 2; k++) {
		if (j->fd[k] >= 0)
			close(j->fd[k]);
		free(j->path[k]);
	}
	free(j);
}

/* Keeps RESERVE bytes allocated beyond the end of file k (FALLOC_FL_KEEP_SIZE: the size, and
 * so where O_APPEND writes, does not move). Why: the journal shares the state database's
 * file system, and when that fills up, appends into blocks already allocated still work,
 * so mail already past MAIL is not refused for the journal's sake while the writer waits
 * for room. Best effort: without it, appends need room as they go. */
static void reserve(struct mlt_journal *j, int k)
{
	if (fallocate(j->fd[k], FALLOC_FL_KEEP_SIZE, 0, RESERVE) != 0 && errno != EOPNOTSUPP)
		mlt_log(LOG_DEBUG, "journal %s: reserving room: %s", j->path[k], strerror(errno));
}

/* Reads file k whole -> malloc'd buffer (NULL with *n = 0 when empty). */
static int slurp(struct mlt_journal *j, int k, unsigned char **buf, size_t *n, char *err,
                 size_t errlen)
{
	struct stat sb;
	size_t got = 0;

	*buf = NULL;
	*n = 0;
	if (fstat(j->fd[k], &sb) != 0) {
		snprintf(err, errlen, "journal %s: %s", j->path[k], strerror(errno));
		return -1;
	}
	if (!S_ISREG(sb.st_mode) || sb.st_size > FILE_MAX) {
		snprintf(err, errlen, "journal %s: %s", j->path[k], !S_ISREG(sb.st_mode) ?
		         "not a regular file" : "larger than 1 GiB, not read");
		return -1;
	}
	if (sb.st_size == 0)
		return 0;
	*buf = malloc((size_t)sb.st_size);
	if (*buf == NULL) {
		snprintf(err, errlen, "journal %s: out of memory", j->path[k]);
		return -1;
	}
	while (got < (size_t)sb.st_size) {
		ssize_t r = pread(j->fd[k], *buf + got, (size_t)sb.st_size - got, (off_t)got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break; /* shorter than fstat said: read what is there */
		got += (size_t)r;
	}
	*n = got;
	return 0;
}

struct entry {
	uint64_t id, seq;
	struct mlt_record *r;
};

static int by_seq(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;

	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Parses buf into *list (appending); bytes that are not whole records count as torn. */
static int parse(const unsigned char *buf, size_t n, struct entry **list, size_t *count,
                 size_t *cap, size_t *torn)
{
	size_t off = 0;

	while (off < n) {
		struct mlt_record tmp;
		struct entry e;
		size_t len = decode(buf + off, n - off, &tmp, &e.id, &e.seq);

		if (len == 0) {
			off++;
			(*torn)++;
			continue; /* look for the next record header */
		}
		if (*count == *cap) {
			size_t c = *cap ? *cap * 2 : 256;
			struct entry *l = realloc(*list, c * sizeof *l);

			if (l == NULL)
				return -1;
			*list = l;
			*cap = c;
		}
		e.r = malloc(sizeof *e.r);
		if (e.r == NULL)
			return -1;
		*e.r = tmp;
		(*list)[(*count)++] = e;
		off += len;
	}
	return 0;
}

/* Also the writer's write of one record: a recovered record must land exactly as the
 * writer would have written it. */
/* A counter reset: the rows go every time (idempotent: a journal replayed after an
 * earlier application cannot bring them back); the audit record and the mark only the
 * first time this file sees the reset. */
static enum rdb_result reset_write(struct rdb_state *st, const struct mlt_record *r,
                                   const struct rdb_audit *a)
{
	enum rdb_result res;
	int64_t mark;

	if ((res = rdb_state_usage_reset(st, r->login, r->reset_metrics, r->ts)) != RDB_OK ||
	    (res = rdb_state_reset_mark_get(st, &mark)) != RDB_OK)
		return res;
	if (r->reset_id <= mark)
		return RDB_OK;
	if ((res = rdb_state_audit_add(st, a)) != RDB_OK)
		return res;
	return rdb_state_reset_mark_set(st, r->reset_id);
}

enum rdb_result mlt_record_write(struct rdb_state *st, const struct mlt_record *r)
{
	struct rdb_audit a = {
		.ts = r->ts, .login = r->login, .client_addr = r->client_addr,
		.tls_version = r->tls_version, .cipher = r->cipher, .env_from = r->env_from,
		.header_from = r->header_from, .rcpt_count = r->rcpt_count, .size = r->size,
		.queue_id = r->queue_id, .verdict = r->verdict, .reason = r->reason,
		.credential = r->credential,
	};
	enum rdb_result res;

	if (r->reset_id > 0)
		return reset_write(st, r, &a);
	if (r->counted && (res = rdb_state_usage_add(st, r->login, r->ts, r->v[0], r->v[1],
	                                               r->v[2])) != RDB_OK)
		return res;
	if (r->touch && (res = rdb_state_touch(st, r->login, r->ts, r->client_addr)) != RDB_OK)
		return res;
	if (r->touch && r->credential[0] != '\0' &&
	    (res = rdb_state_credential_touch(st, r->login, r->credential, r->ts,
	                                      r->client_addr)) != RDB_OK)
		return res;
	return rdb_state_audit_add(st, &a);
}

/* One transaction: the records the database lacks, and the mark of the last one. */
static int apply_all(struct rdb_state *st, struct entry *list, size_t count, size_t *recovered,
                     size_t *skipped, char *err, size_t errlen)
{
	uint64_t mark_id = 0, mark_seq = 0;
	enum rdb_result r;

	if (rdb_state_begin(st) != RDB_OK)
		goto fail;
	r = rdb_state_journal_get(st, &mark_id, &mark_seq);
	if (r == RDB_ERROR)
		goto fail;
	if (r == RDB_NOTFOUND)
		mark_id = mark_seq = 0;
	for (size_t k = 0; k < count; k++) {
		if (list[k].id == mark_id && list[k].seq <= mark_seq) {
			(*skipped)++;
			continue;
		}
		if (mlt_record_write(st, list[k].r) != RDB_OK)
			goto fail;
		(*recovered)++;
	}
	if (count > 0 &&
	    rdb_state_journal_set(st, list[count - 1].id, list[count - 1].seq) != RDB_OK)
		goto fail;
	if (rdb_state_commit(st) != RDB_OK)
		goto fail;
	return 0;
fail:
	snprintf(err, errlen, "applying the journal: %s", rdb_state_errmsg(st));
	rdb_state_rollback(st);
	*recovered = *skipped = 0;
	return -1;
}

int mlt_journal_recover(struct mlt_journal *j, struct rdb_state *st, size_t *recovered,
                        size_t *skipped, size_t *torn, char *err, size_t errlen)
{
	struct entry *list = NULL;
	size_t count = 0, cap = 0;
	int rc = -1;

	*recovered = *skipped = *torn = 0;
	for (int k = 0; k < 2; k++) {
		unsigned char *buf;
		size_t n;

		if (slurp(j, k, &buf, &n, err, errlen) != 0)
			goto out;
		if (parse(buf, n, &list, &count, &cap, torn) != 0) {
			free(buf);
			snprintf(err, errlen, "journal: out of memory");
			goto out;
		}
		free(buf);
	}
	/* the two files interleave: the database saw them in sequence order. A journal only
	 * ever holds one id (each start empties it before taking a new one), so seq orders. */
	if (count > 1)
		qsort(list, count, sizeof *list, by_seq);
	if (apply_all(st, list, count, recovered, skipped, err, errlen) != 0)
		goto out;
	/* applied (or already there): only now may the files be emptied */
	for (int k = 0; k < 2; k++) {
		if (ftruncate(j->fd[k], 0) != 0) {
			snprintf(err, errlen, "journal %s: emptying it after recovery: %s", j->path[k],
			         strerror(errno));
			goto out;
		}
		j->size[k] = 0;
		reserve(j, k);
	}
	/* a new id: sequence numbers start again, and no record of this run can be mistaken
	 * for one the database's mark covers */
	if (getrandom(&j->id, sizeof j->id, 0) != (ssize_t)sizeof j->id) {
		snprintf(err, errlen, "journal: no random id: %s", strerror(errno));
		goto out;
	}
	j->seq = 0;
	j->active = 0;
	rc = 0;
out:
	for (size_t k = 0; k < count; k++)
		free(list[k].r);
	free(list);
	return rc;
}

int mlt_journal_append(struct mlt_journal *j, struct mlt_record *rec)
{
	unsigned char buf[RECORD_MAX];
	int a = j->active;
	size_t n = encode(rec, j->id, j->seq + 1, buf);
	ssize_t w;

	do
		w = write(j->fd[a], buf, n);
	while (w < 0 && errno == EINTR);
	if (w != (ssize_t)n) {
		int e = w < 0 ? errno : ENOSPC; /* a short write to a regular file: out of room */

		/* cut a torn record off, so that later appends follow whole records (recovery
		 * would skip it anyway, byte by byte) */
		if (w > 0 && ftruncate(j->fd[a], j->size[a]) != 0)
			mlt_log(LOG_WARNING, "journal %s: cutting off a torn record: %s", j->path[a],
			        strerror(errno));
		errno = e;
		return -1;
	}
	j->size[a] += (off_t)n;
	rec->journal_seq = ++j->seq;
	return 0;
}

void mlt_journal_switch(struct mlt_journal *j)
{
	if (j->size[!j->active] == 0)
		j->active = !j->active;
}

int mlt_journal_release(struct mlt_journal *j)
{
	int k = !j->active;

	if (j->size[k] == 0)
		return 0;
	if (ftruncate(j->fd[k], 0) != 0) {
		mlt_log(LOG_WARNING, "journal %s: emptying it: %s (its records are skipped at the next"
		        " start)", j->path[k], strerror(errno));
		return -1;
	}
	j->size[k] = 0;
	reserve(j, k);
	return 0;
}

uint64_t mlt_journal_id(const struct mlt_journal *j)
{
	return j->id;
}
