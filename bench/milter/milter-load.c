/*
 * milter-load.c — a milter-protocol load client: plays the MTA against relay-milter (or any
 * milter) directly on its socket, the way Postfix's smtpd and cleanup do.
 *
 *   milter-load --socket PATH --login NAME --sender ADDR [--sessions 50] [--seconds 10]
 *               [--hold 1000 --pid PID]
 *
 * Throughput: N threads, each repeating one full session — negotiate (version 6, all
 * steps offered as Postfix 3.7 does), then only the stages the milter kept: connect,
 * HELO, MAIL with macros, 3 x RCPT, DATA, headers, end of headers, body, end of message,
 * quit — and counting end-of-message decisions. Prints messages/s.
 * Memory: with --hold K it then opens K sessions, takes each through MAIL and RCPT and
 * keeps them open, reads VmRSS of --pid, and closes them.
 * Exit 0 when every decision was "continue"/"accept"; 1 on any protocol error or refusal.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define NOCONNECT 0x1
#define NOHELO 0x2
#define NOBODY 0x10
#define NOHDRS 0x20
#define NOEOH 0x40
#define NR_HDR 0x80
#define NODATA 0x200
#define NR_CONN 0x1000
#define NR_HELO 0x2000
#define NR_DATA 0x10000
#define NR_EOH 0x40000
#define NR_BODY 0x80000

static const char *sock_path, *login = "bench", *sender = "bench@example.com";
static int seconds = 10;
static atomic_long done, failed;
static atomic_bool stop;

struct sess {
	int fd;
	unsigned long steps;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reads exactly len bytes into rbuf, or (rbuf NULL) writes len bytes from wbuf, going on
 * after short transfers and EINTR. Returns 0, or -1 on error or end of file. */
static int xfer(int fd, char *rbuf, const char *wbuf, size_t len)
{
	size_t off = 0;

	while (off < len) {
		ssize_t n = rbuf != NULL ? read(fd, rbuf + off, len - off)
		                         : write(fd, wbuf + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		off += (size_t)n;
	}
	return 0;
}

static int xwrite(int fd, const void *buf, size_t len)
{
	return xfer(fd, NULL, buf, len);
}

static int xread(int fd, void *buf, size_t len)
{
	return xfer(fd, buf, NULL, len);
}

static int send_cmd(struct sess *s, char cmd, const void *data, size_t len)
{
	char hdr[5];
	uint32_t n = htonl((uint32_t)len + 1);

	memcpy(hdr, &n, 4);
	hdr[4] = cmd;
	if (xwrite(s->fd, hdr, 5) != 0)
		return -1;
	return len ? xwrite(s->fd, data, len) : 0;
}

/* Reads replies until a final one; returns its code ('c', 'r', 't', 'a', 'y', 'O' ...). */
static int recv_reply(struct sess *s, char *data, size_t datalen, size_t *got)
{
	for (;;) {
		uint32_t n;
		char code, buf[4096];

		if (xread(s->fd, &n, 4) != 0)
			return -1;
		n = ntohl(n);
		if (n < 1 || n > sizeof buf)
			return -1;
		if (xread(s->fd, &code, 1) != 0 || xread(s->fd, buf, n - 1) != 0)
			return -1;
		if (data != NULL && datalen > 0) {
			size_t c = n - 1 < datalen ? n - 1 : datalen;

			memcpy(data, buf, c);
			if (got)
				*got = c;
		}
		if (strchr("crtayO", code) != NULL)
			return code;
		/* modification actions (q, h, ...) and progress: keep reading */
	}
}

static int step(struct sess *s, char cmd, const void *data, size_t len, bool reply)
{
	if (send_cmd(s, cmd, data, len) != 0)
		return -1;
	return reply ? recv_reply(s, NULL, 0, NULL) : 'c';
}

static size_t pack(char *out, const char *const *strs, size_t n)
{
	size_t o = 0;

	for (size_t k = 0; k < n; k++) {
		size_t l = strlen(strs[k]) + 1;

		memcpy(out + o, strs[k], l);
		o += l;
	}
	return o;
}

static int sess_open(struct sess *s)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	unsigned char neg[12];
	uint32_t v[3] = { htonl(6), htonl(0x1ff), htonl(0x1fffff) };
	char reply[512];
	size_t got = 0;

	s->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s->fd < 0)
		return -1;
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock_path);
	if (connect(s->fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		close(s->fd);
		return -1;
	}
	memcpy(neg, v, sizeof neg);
	if (send_cmd(s, 'O', neg, sizeof neg) != 0 || recv_reply(s, reply, sizeof reply, &got) != 'O' ||
	    got < 12) {
		close(s->fd);
		return -1;
	}
	memcpy(v, reply, sizeof v);
	s->steps = ntohl(v[2]);
	return 0;
}

/* connect .. RCPT x3; returns 0 if every stage said continue. */
static int sess_envelope(struct sess *s, int n)
{
	char buf[1024], addr[128];
	size_t len;

	if (!(s->steps & NOCONNECT)) {
		static const char conn[] = "client.example\0" "4\x30\x39" "127.0.0.1";

		if (step(s, 'C', conn, sizeof conn, !(s->steps & NR_CONN)) != 'c')
			return -1;
	}
	if (!(s->steps & NOHELO) && step(s, 'H', "client.example", 15, !(s->steps & NR_HELO)) != 'c')
		return -1;
	{
		const char *mac[] = { "{auth_authen}", login, "{auth_type}", "PLAIN",
		                      "{tls_version}", "TLSv1.3", "{cipher}", "TLS_AES_256_GCM_SHA384",
		                      "{client_addr}", "127.0.0.1", "{daemon_name}", "ORIGINATING" };

		buf[0] = 'M'; /* the stage these macros belong to, then name\0value\0 pairs */
		len = 1 + pack(buf + 1, mac, sizeof mac / sizeof mac[0]);
		if (send_cmd(s, 'D', buf, len) != 0)
			return -1;
	}
	snprintf(addr, sizeof addr, "<%s>", sender);
	{
		const char *args[] = { addr, "SIZE=300" };

		len = pack(buf, args, 2);
		if (step(s, 'M', buf, len, true) != 'c')
			return -1;
	}
	for (int r = 0; r < 3; r++) {
		len = (size_t)snprintf(buf, sizeof buf, "<rcpt%d-%d@dest.example>", n % 1000, r) + 1;
		if (step(s, 'R', buf, len, true) != 'c')
			return -1;
	}
	return 0;
}

static int sess_content(struct sess *s)
{
	static const char body[] = "Hello,\r\n\r\nthis is a benchmark message.\r\n-- \r\nbench\r\n";
	char buf[512];
	size_t len;
	const char *hdrs[][2] = {
		{ "From", NULL }, { "To", "rcpt0@dest.example" }, { "Subject", "benchmark" },
		{ "Date", "Thu, 26 Nov 2026 10:00:00 +0000" }, { "Message-ID", "<bench@example.com>" },
	};
	char from[160];

	snprintf(from, sizeof from, "Bench <%s>", sender);
	hdrs[0][1] = from;
	if (!(s->steps & NODATA) && step(s, 'T', NULL, 0, !(s->steps & NR_DATA)) != 'c')
		return -1;
	if (!(s->steps & NOHDRS)) {
		for (size_t k = 0; k < sizeof hdrs / sizeof hdrs[0]; k++) {
			len = pack(buf, hdrs[k], 2);
			if (step(s, 'L', buf, len, !(s->steps & NR_HDR)) != 'c')
				return -1;
		}
	}
	if (!(s->steps & NOEOH) && step(s, 'N', NULL, 0, !(s->steps & NR_EOH)) != 'c')
		return -1;
	if (!(s->steps & NOBODY) && step(s, 'B', body, sizeof body - 1, !(s->steps & NR_BODY)) != 'c')
		return -1;
	{
		static const char mac[] = "E" "i\0" "4XBENCH";
		int r;

		if (send_cmd(s, 'D', mac, sizeof mac) != 0)
			return -1;
		r = step(s, 'E', NULL, 0, true);
		if (r != 'c' && r != 'a')
			return -1;
	}
	return 0;
}

static void sess_close(struct sess *s)
{
	send_cmd(s, 'Q', NULL, 0);
	close(s->fd);
}

static void *worker(void *arg)
{
	long n = (long)(intptr_t)arg;

	while (!atomic_load(&stop)) {
		struct sess s;

		if (sess_open(&s) != 0) {
			atomic_fetch_add(&failed, 1);
			continue;
		}
		if (sess_envelope(&s, (int)n++) == 0 && sess_content(&s) == 0)
			atomic_fetch_add(&done, 1);
		else
			atomic_fetch_add(&failed, 1);
		sess_close(&s);
	}
	return NULL;
}

static long rss_kib(long pid)
{
	char path[64], line[256];
	long kib = -1;
	FILE *f;

	snprintf(path, sizeof path, "/proc/%ld/status", pid);
	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' }, { "login", required_argument, NULL, 'l' },
		{ "sender", required_argument, NULL, 'f' }, { "sessions", required_argument, NULL, 'n' },
		{ "seconds", required_argument, NULL, 't' }, { "hold", required_argument, NULL, 'H' },
		{ "pid", required_argument, NULL, 'p' }, { NULL, 0, NULL, 0 },
	};
	int sessions = 50, hold = 0, opt;
	long pid = 0;
	pthread_t *t;
	int64_t t0, t1;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 's': sock_path = optarg; break;
		case 'l': login = optarg; break;
		case 'f': sender = optarg; break;
		case 'n': sessions = atoi(optarg); break;
		case 't': seconds = atoi(optarg); break;
		case 'H': hold = atoi(optarg); break;
		case 'p': pid = atol(optarg); break;
		default:
			fprintf(stderr, "usage: milter-load --socket PATH [--login NAME] [--sender ADDR]"
			        " [--sessions N] [--seconds S] [--hold K --pid PID]\n");
			return 2;
		}
	}
	if (sock_path == NULL || sessions < 1 || sessions > 4096 || seconds < 1) {
		fprintf(stderr, "milter-load: --socket is required; sessions 1..4096\n");
		return 2;
	}
	t = calloc((size_t)sessions, sizeof *t);
	if (t == NULL)
		return 1;
	long rss0 = pid ? rss_kib(pid) : -1;

	t0 = now_ms();
	for (int i = 0; i < sessions; i++)
		pthread_create(&t[i], NULL, worker, (void *)(intptr_t)(i * 100000));
	sleep((unsigned)seconds);
	atomic_store(&stop, true);
	for (int i = 0; i < sessions; i++)
		pthread_join(t[i], NULL);
	t1 = now_ms();
	free(t);
	printf("milter-load: %d concurrent sessions, %.1f s: %ld messages decided, %ld failed,"
	       " %.0f messages/s\n", sessions, (double)(t1 - t0) / 1000.0, atomic_load(&done),
	       atomic_load(&failed), (double)atomic_load(&done) * 1000.0 / (double)(t1 - t0));
	if (pid)
		printf("milter-load: milter RSS before %ld KiB, after the run %ld KiB\n", rss0, rss_kib(pid));
	if (hold > 0 && pid) {
		struct sess *hs = calloc((size_t)hold, sizeof *hs);
		int open = 0;

		for (int i = 0; hs != NULL && i < hold; i++) {
			if (sess_open(&hs[i]) != 0 || sess_envelope(&hs[i], i) != 0) {
				fprintf(stderr, "milter-load: session %d failed: %s\n", i, strerror(errno));
				atomic_fetch_add(&failed, 1);
				break;
			}
			open++;
		}
		usleep(200000);
		printf("milter-load: %d sessions held open mid-message: milter RSS %ld KiB (%.1f MiB)\n",
		       open, rss_kib(pid), (double)rss_kib(pid) / 1024.0);
		for (int i = 0; i < open; i++) {
			if (sess_content(&hs[i]) != 0)
				atomic_fetch_add(&failed, 1);
			sess_close(&hs[i]);
		}
		free(hs);
	}
	return atomic_load(&failed) == 0 ? 0 : 1;
}
