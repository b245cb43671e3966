/*
 * milter_probe.c — whether a milter socket answers a connect; see milter_probe.h.
 * Shared by `setup` (it registers relay-milter and says loudly when nothing listens yet)
 * and `check` (which fails until something does).
 */
#include "milter_probe.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

bool adm_milter_answers(const char *spec, char *why, size_t whylen)
{
	int fd = -1;
	bool ok = false;

	if (strncmp(spec, "unix:", 5) == 0 || strncmp(spec, "local:", 6) == 0) {
		struct sockaddr_un sun = { .sun_family = AF_UNIX };
		const char *p = strchr(spec, ':') + 1;

		if (strlen(p) >= sizeof(sun.sun_path)) {
			snprintf(why, whylen, "socket path too long");
			return false;
		}
		memcpy(sun.sun_path, p, strlen(p) + 1);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		ok = fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0;
		if (!ok)
			snprintf(why, whylen, "%.200s: %s", p, strerror(errno));
	} else if (strncmp(spec, "inet:", 5) == 0) {
		char host[256], *colon;
		struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;

		snprintf(host, sizeof(host), "%.255s", spec + 5);
		colon = strrchr(host, ':');
		if (!colon) {
			snprintf(why, whylen, "no port in %.200s", spec);
			return false;
		}
		*colon = '\0';
		/* Postfix writes inet:host:port; libmilter's own form is inet:port@host. */
		int gr = getaddrinfo(host[0] == '[' ? host + 1 : host, colon + 1, &hints, &res);

		if (gr != 0) {
			snprintf(why, whylen, "%.200s: %s", spec, gai_strerror(gr));
			return false;
		}
		fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd >= 0 && (connect(fd, res->ai_addr, res->ai_addrlen) == 0 || errno == EINPROGRESS)) {
			struct pollfd pfd = { .fd = fd, .events = POLLOUT };
			int soerr = 0;
			socklen_t sl = sizeof(soerr);

			if (poll(&pfd, 1, 3000) == 1 &&
			    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0)
				ok = true;
			else
				snprintf(why, whylen, "%.200s: %s", spec, soerr ? strerror(soerr) : "no answer");
		} else {
			snprintf(why, whylen, "%.200s: %s", spec, strerror(errno));
		}
		freeaddrinfo(res);
	} else {
		snprintf(why, whylen, "unknown socket type in %.200s", spec);
	}
	if (fd >= 0)
		close(fd);
	return ok;
}
