/* SPDX-License-Identifier: MIT */
/*
 * A test-only TCP proxy on 127.0.0.1 that forwards to an upstream port and
 * can cut every connection it carries: after a given number of bytes have
 * gone upstream, after a given number of post-copy PAGES messages went
 * upstream (the proxy follows the migration wire's framing: post-copy starts
 * with the source's GO, and each cut lands on a later PAGES message than the
 * one before, so on a connection opened after the previous cut), or on
 * demand.  Both counts are points in the streams the test drives, never
 * moments in time.  A cut
 * shuts both sockets of every pair down, and the pair's sockets are closed
 * once both of its pumps are done, so each endpoint sees the link drop (a
 * socket left open but unread would block the peer's send forever).
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

#include "migrate/wire.h"

/* What the cut points count. */
enum proxy_count {
	PROXY_BYTES,		/* bytes upstream */
	PROXY_POSTCOPY_PAGES,	/* PAGES messages upstream from GO on */
	PROXY_PRECOPY_PAGES,	/* PAGES messages upstream before GO */
};

#define PROXY_MAX_CONN 64
#define PROXY_MAX_CUTS 8

struct proxy_pair {
	int c, u;	/* client side, upstream side */
	int pumps;	/* running pump threads; 0 = slot free */
};

struct proxy {
	int lfd, port, upstream_port;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t idle;
	struct proxy_pair pairs[PROXY_MAX_CONN];
	_Atomic uint64_t up_bytes;		/* client -> upstream, all connections */
	uint64_t cut_at[PROXY_MAX_CUTS];	/* cut when up_bytes crosses these */
	int ncuts, next_cut;
	_Atomic int cuts_done;
	_Atomic bool stop;
	_Atomic bool refuse_after_cut;	/* after the first cut, hang up every new connection */
	enum proxy_count counting;	/* what cut_at[] counts */
	_Atomic bool postcopy;		/* a GO went upstream */
	_Atomic uint64_t precopy_pages, postcopy_pages;	/* PAGES upstream before / after GO */
	/* Optional: called (from a pump thread) at each cut point, after the cut. */
	void (*on_cut)(void *ctx);
	void *on_cut_ctx;
};

/* One direction of one connection, and where it is in the wire's framing. */
struct proxy_pipe {
	struct proxy *p;
	struct proxy_pair *pair;
	bool upstream;
	uint8_t hdr[sizeof(struct mig_hdr)];
	size_t hdr_have;	/* bytes of the next header seen */
	uint64_t payload_left;	/* of the current message */
};

static inline void proxy_cut_all(struct proxy *p)
{
	pthread_mutex_lock(&p->lock);
	for (int i = 0; i < PROXY_MAX_CONN; i++) {
		if (p->pairs[i].pumps) {
			shutdown(p->pairs[i].c, SHUT_RDWR);
			shutdown(p->pairs[i].u, SHUT_RDWR);
		}
	}
	pthread_mutex_unlock(&p->lock);
	atomic_fetch_add(&p->cuts_done, 1);
}

/* Follow the framing of n upstream bytes: GO starts post-copy, then count
 * its PAGES messages. */
static inline void proxy_follow_wire(struct proxy_pipe *pp, const uint8_t *b, size_t n)
{
	while (n) {
		if (pp->payload_left) {
			size_t k = pp->payload_left < n ? (size_t)pp->payload_left : n;
			pp->payload_left -= k, b += k, n -= k;
			continue;
		}
		size_t k = sizeof(pp->hdr) - pp->hdr_have < n ? sizeof(pp->hdr) - pp->hdr_have : n;
		memcpy(pp->hdr + pp->hdr_have, b, k);
		pp->hdr_have += k, b += k, n -= k;
		if (pp->hdr_have < sizeof(pp->hdr))
			break;
		struct mig_hdr h;
		memcpy(&h, pp->hdr, sizeof(h));	/* little-endian host */
		pp->hdr_have = 0;
		pp->payload_left = h.len;
		if (h.type == MIG_GO)
			atomic_store(&pp->p->postcopy, true);
		else if (h.type == MIG_PAGES)
			atomic_fetch_add(atomic_load(&pp->p->postcopy) ? &pp->p->postcopy_pages
								       : &pp->p->precopy_pages, 1);
	}
}

static inline bool proxy_cut_due(struct proxy_pipe *pp, const uint8_t *b, uint64_t n)
{
	struct proxy *p = pp->p;
	uint64_t total = atomic_fetch_add(&p->up_bytes, n) + n;
	if (p->counting != PROXY_BYTES) {
		proxy_follow_wire(pp, b, n);
		total = atomic_load(p->counting == PROXY_POSTCOPY_PAGES ? &p->postcopy_pages
									: &p->precopy_pages);
	}
	pthread_mutex_lock(&p->lock);
	bool cut = p->next_cut < p->ncuts && total >= p->cut_at[p->next_cut];
	if (cut)
		p->next_cut++;
	pthread_mutex_unlock(&p->lock);
	return cut;
}

static inline void *proxy_pump(void *arg)
{
	struct proxy_pipe *pp = arg;
	struct proxy *p = pp->p;
	struct proxy_pair *pair = pp->pair;
	int from = pp->upstream ? pair->c : pair->u, to = pp->upstream ? pair->u : pair->c;
	uint8_t buf[65536];
	for (;;) {
		ssize_t n = read(from, buf, sizeof(buf));
		if (n <= 0 || send(to, buf, (size_t)n, MSG_NOSIGNAL) != n)
			break;
		if (pp->upstream && proxy_cut_due(pp, buf, (uint64_t)n)) {
			proxy_cut_all(p);
			if (p->on_cut)
				p->on_cut(p->on_cut_ctx);
		}
	}
	pthread_mutex_lock(&p->lock);
	shutdown(pair->c, SHUT_RDWR);
	shutdown(pair->u, SHUT_RDWR);
	if (!--pair->pumps) {
		close(pair->c);
		close(pair->u);
		pthread_cond_broadcast(&p->idle);
	}
	pthread_mutex_unlock(&p->lock);
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

static inline void proxy_add_pair(struct proxy *p, int c, int u)
{
	struct proxy_pair *pair = NULL;
	pthread_mutex_lock(&p->lock);
	for (int i = 0; i < PROXY_MAX_CONN && !pair; i++)
		if (!p->pairs[i].pumps)
			pair = &p->pairs[i];
	if (pair)
		*pair = (struct proxy_pair){ c, u, 2 };
	pthread_mutex_unlock(&p->lock);
	if (!pair) {
		close(c);
		close(u);
		return;
	}
	for (int dir = 0; dir < 2; dir++) {
		struct proxy_pipe *pp = malloc(sizeof(*pp));
		*pp = (struct proxy_pipe){ .p = p, .pair = pair, .upstream = !dir };
		pthread_t t;
		pthread_create(&t, NULL, proxy_pump, pp);
		pthread_detach(t);
	}
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
		if (atomic_load(&p->refuse_after_cut) && atomic_load(&p->cuts_done)) {
			close(c);	/* the peer is gone for good */
			continue;
		}
		int u = proxy_connect_upstream(p->upstream_port);
		if (u < 0) {
			close(c);
			continue;
		}
		proxy_add_pair(p, c, u);
	}
	return NULL;
}

/* Start a proxy to upstream_port cutting at cuts[] (counted as counting
 * says); on_cut(ctx), when given, runs right after each of those cuts. */
static inline int proxy_start_cutting(struct proxy *p, int upstream_port, const uint64_t *cuts,
				      int ncuts, enum proxy_count counting,
				      void (*on_cut)(void *ctx), void *ctx)
{
	memset(p, 0, sizeof(*p));
	p->counting = counting;
	p->on_cut = on_cut;
	p->on_cut_ctx = ctx;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->idle, NULL);
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

/* Start a proxy to upstream_port; cuts at the given upstream byte counts. */
static inline int proxy_start(struct proxy *p, int upstream_port, const uint64_t *cuts, int ncuts)
{
	return proxy_start_cutting(p, upstream_port, cuts, ncuts, PROXY_BYTES, NULL, NULL);
}

/* Start a proxy to upstream_port that cuts after the given numbers of
 * post-copy PAGES messages (counted over every connection, from GO on). */
static inline int proxy_start_postcopy(struct proxy *p, int upstream_port, const uint64_t *pages,
				       int ncuts)
{
	return proxy_start_cutting(p, upstream_port, pages, ncuts, PROXY_POSTCOPY_PAGES, NULL, NULL);
}

/* How many of the cut points were reached (cuts on demand not counted). */
static inline int proxy_cuts_made(struct proxy *p)
{
	pthread_mutex_lock(&p->lock);
	int n = p->next_cut;
	pthread_mutex_unlock(&p->lock);
	return n;
}

/* Stop accepting, cut everything, wait for every pump to finish. */
static inline void proxy_stop(struct proxy *p)
{
	atomic_store(&p->stop, true);
	pthread_join(p->thread, NULL);
	close(p->lfd);
	proxy_cut_all(p);
	pthread_mutex_lock(&p->lock);
	for (int i = 0; i < PROXY_MAX_CONN; i++)
		while (p->pairs[i].pumps)
			pthread_cond_wait(&p->idle, &p->lock);
	pthread_mutex_unlock(&p->lock);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->idle);
}

#endif
