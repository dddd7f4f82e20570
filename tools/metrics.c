/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "metrics.h"

#define METRICS_READ_MS 2000

struct metrics {
	int lfd, stop_fd;
	unsigned port;
	pthread_t thread;
	void (*render)(void *ctx, FILE *f);
	void *ctx;
};

static void send_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
		if (k <= 0)
			return;
		p += k;
		n -= (size_t)k;
	}
}

/* Read the request head (bounded in size and time), answer, close. */
static void metrics_answer(struct metrics *m, int fd)
{
	char req[2048];
	size_t have = 0;
	while (have < sizeof(req) - 1) {
		struct pollfd p = { fd, POLLIN, 0 };
		if (poll(&p, 1, METRICS_READ_MS) <= 0)
			break;
		ssize_t n = recv(fd, req + have, sizeof(req) - 1 - have, 0);
		if (n <= 0)
			break;
		have += (size_t)n;
		req[have] = 0;
		if (strstr(req, "\r\n\r\n") || strstr(req, "\n\n"))
			break;
	}
	req[have] = 0;
	char *body = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&body, &len);
	bool get = !strncmp(req, "GET ", 4);
	if (f && get)
		m->render(m->ctx, f);
	if (f)
		fclose(f);
	char head[256];
	int hn = snprintf(head, sizeof(head), "HTTP/1.1 %s\r\nContent-Type: text/plain; "
			  "version=0.0.4\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
			  get ? "200 OK" : "405 Method Not Allowed", get ? len : 0);
	send_all(fd, head, (size_t)hn);
	if (get && body)
		send_all(fd, body, len);
	free(body);
	close(fd);
}

static void *metrics_thread(void *arg)
{
	struct metrics *m = arg;
	for (;;) {
		struct pollfd p[2] = { { m->lfd, POLLIN, 0 }, { m->stop_fd, POLLIN, 0 } };
		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			break;
		if (!(p[0].revents & POLLIN))
			continue;
		int c = accept4(m->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (c >= 0)
			metrics_answer(m, c);
	}
	return NULL;
}

static int parse_hostport(const char *s, struct sockaddr_in *a)
{
	char host[64];
	const char *colon = strrchr(s, ':');
	if (!colon || (size_t)(colon - s) >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = 0;
	char *end;
	unsigned long port = strtoul(colon + 1, &end, 10);
	if (*end || end == colon + 1 || port > 65535)
		return -EINVAL;
	memset(a, 0, sizeof(*a));
	a->sin_family = AF_INET;
	a->sin_port = htons((uint16_t)port);
	return inet_pton(AF_INET, host, &a->sin_addr) == 1 ? 0 : -EINVAL;
}

int metrics_start(const char *hostport, void (*render)(void *ctx, FILE *f), void *ctx,
		  struct metrics **out, char *err, size_t errlen)
{
	struct sockaddr_in a;
	if (parse_hostport(hostport, &a)) {
		snprintf(err, errlen, "--metrics-listen %s: expected IPv4:PORT (e.g. 127.0.0.1:9464)",
			 hostport);
		return -EINVAL;
	}
	struct metrics *m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->render = render;
	m->ctx = ctx;
	m->stop_fd = eventfd(0, EFD_CLOEXEC);
	m->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	socklen_t al = sizeof(a);
	if (m->lfd < 0 || m->stop_fd < 0 ||
	    setsockopt(m->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(m->lfd, (struct sockaddr *)&a, sizeof(a)) || listen(m->lfd, 16) ||
	    getsockname(m->lfd, (struct sockaddr *)&a, &al) ||
	    pthread_create(&m->thread, NULL, metrics_thread, m)) {
		int e = errno ? -errno : -EIO;
		snprintf(err, errlen, "--metrics-listen %s: %s", hostport, strerror(-e));
		if (m->lfd >= 0)
			close(m->lfd);
		if (m->stop_fd >= 0)
			close(m->stop_fd);
		free(m);
		return e;
	}
	m->port = ntohs(a.sin_port);
	*out = m;
	return 0;
}

unsigned metrics_port(const struct metrics *m)
{
	return m->port;
}

void metrics_stop(struct metrics *m)
{
	if (!m)
		return;
	uint64_t one = 1;
	if (write(m->stop_fd, &one, sizeof(one)) != sizeof(one)) {
		/* cannot fail on an eventfd */
	}
	pthread_join(m->thread, NULL);
	close(m->lfd);
	close(m->stop_fd);
	free(m);
}
