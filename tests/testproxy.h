/* SPDX-License-Identifier: MIT */
/*
 * A test-only TCP proxy on 127.0.0.1 that forwards to an upstream port and
 * can cut every connection it carries: after a given number of bytes have
 * gone upstream (deterministic points in a stream), or on demand.
 */
#ifndef LAZYVM_TESTPROXY_H
#define LAZYVM_TESTPROXY_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PROXY_MAX_CONN 64
#define PROXY_MAX_CUTS 8

struct proxy {
	int lfd, port, upstream_port;
	pthread_t thread;
	pthread_mutex_t lock;
	int fds[PROXY_MAX_CONN * 2];
	int nfds;
	_Atomic uint64_t up_bytes;		/* client -> upstream, all connections */
	uint64_t cut_at[PROXY_MAX_CUTS];	/* cut when up_bytes crosses these */
	int ncuts, next_cut;
	_Atomic int cuts_done;
	_Atomic bool stop;
};

struct proxy_pipe { struct proxy *p; int from, to; bool upstream; };

static inline void proxy_cut_all(struct proxy *p)
{
	pthread_mutex_lock(&p->lock);
	for (int i = 0; i < p->nfds; i++)
		shutdown(p->fds[i], SHUT_RDWR);
	p->nfds = 0;
	pthread_mutex_unlock(&p->lock);
	atomic_fetch_add(&p->cuts_done, 1);
}

static inline void *proxy_pump(void *arg)
{
	struct proxy_pipe *pp = arg;
	struct proxy *p = pp->p;
	char buf[65536];
	for (;;) {
		ssize_t n = read(pp->from, buf, sizeof(buf));
		if (n <= 0)
			break;
		if (write(pp->to, buf, (size_t)n) != n)
			break;
		if (!pp->upstream)
			continue;
		uint64_t total = atomic_fetch_add(&p->up_bytes, (uint64_t)n) + (uint64_t)n;
		pthread_mutex_lock(&p->lock);
		bool cut = p->next_cut < p->ncuts && total >= p->cut_at[p->next_cut];
		if (cut)
			p->next_cut++;
		pthread_mutex_unlock(&p->lock);
		if (cut)
			proxy_cut_all(p);
	}
	shutdown(pp->to, SHUT_RDWR);
	shutdown(pp->from, SHUT_RDWR);
	free(pp);
	return NULL;
}

static inline int proxy_connect_upstream(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		close(fd);
		return -1;
	}
	return fd;
}

static inline void *proxy_accept_loop(void *arg)
{
	struct proxy *p = arg;
	while (!atomic_load(&p->stop)) {
		struct pollfd pfd = { p->lfd, POLLIN, 0 };
		if (poll(&pfd, 1, 100) <= 0)
			continue;
		int c = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0)
			continue;
		int u = proxy_connect_upstream(p->upstream_port);
		if (u < 0) {
			close(c);
			continue;
		}
		pthread_mutex_lock(&p->lock);
		if (p->nfds + 2 <= PROXY_MAX_CONN * 2) {
			p->fds[p->nfds++] = c;
			p->fds[p->nfds++] = u;
		}
		pthread_mutex_unlock(&p->lock);
		for (int dir = 0; dir < 2; dir++) {
			struct proxy_pipe *pp = malloc(sizeof(*pp));
			*pp = (struct proxy_pipe){ p, dir ? u : c, dir ? c : u, !dir };
			pthread_t t;
			pthread_create(&t, NULL, proxy_pump, pp);
			pthread_detach(t);
		}
	}
	return NULL;
}

/* Start a proxy to upstream_port; cuts at the given upstream byte counts. */
static inline int proxy_start(struct proxy *p, int upstream_port, const uint64_t *cuts, int ncuts)
{
	memset(p, 0, sizeof(*p));
	pthread_mutex_init(&p->lock, NULL);
	p->upstream_port = upstream_port;
	for (int i = 0; i < ncuts && i < PROXY_MAX_CUTS; i++)
		p->cut_at[p->ncuts++] = cuts[i];
	p->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof(a);
	if (bind(p->lfd, (struct sockaddr *)&a, sizeof(a)) || listen(p->lfd, 16) ||
	    getsockname(p->lfd, (struct sockaddr *)&a, &len))
		return -1;
	p->port = ntohs(a.sin_port);
	return pthread_create(&p->thread, NULL, proxy_accept_loop, p) ? -1 : 0;
}

static inline void proxy_stop(struct proxy *p)
{
	atomic_store(&p->stop, true);
	pthread_join(p->thread, NULL);
	proxy_cut_all(p);
	close(p->lfd);
}

#endif
