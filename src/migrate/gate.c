/* SPDX-License-Identifier: MIT */
/*
 * The destination's gate (see gate.h).  One thread, one poll loop over the
 * listening socket and up to GATE_PENDING handshakes in progress, each a
 * small state machine on a non-blocking socket: header, HELLO, [challenge
 * sent, header, AUTH_RESPONSE], then the destination's verdict.  A handshake
 * that does not complete a message by its deadline is refused: one byte
 * every 9 s gets nowhere, and never delays anyone else.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "migrate/gate.h"
#include "util/clock.h"

#define GATE_PENDING 16		/* handshakes at once; more wait in the backlog */
#define GATE_QUEUE 4		/* admitted channels not yet taken */
#define HDR sizeof(struct mig_hdr)

enum hs_state { HS_HELLO, HS_RESPONSE };

struct handshake {
	int fd;				/* -1: slot free */
	enum hs_state state;
	uint8_t buf[HDR + sizeof(struct mig_hello)];
	size_t got, need;
	uint64_t deadline_ns;
	struct mig_hello hello_wire;
	uint8_t nonce[MIG_NONCE_LEN];
	char peer[64];
};

struct mig_gate {
	struct mig_gate_opts o;
	pthread_t thread;
	int stop_fd, ready_fd;		/* eventfds: stop the thread; admitted count */
	pthread_mutex_t lock;
	struct mig_gate_conn queue[GATE_QUEUE];
	int nqueued;
	char last_refusal[200];
	struct handshake hs[GATE_PENDING];
};

static void hs_verdict(struct mig_gate *g, struct handshake *h);

static uint64_t deadline_in(const struct mig_gate *g)
{
	int ms = g->o.handshake_ms > 0 ? g->o.handshake_ms : MIG_MSG_DEADLINE_MS;
	return clock_now_ns(CLOCK_MONOTONIC) + (uint64_t)ms * 1000000;
}

static void hs_close(struct handshake *h)
{
	if (h->fd >= 0)
		close(h->fd);
	h->fd = -1;
}

/* Refuse: ERROR with the reason (best effort: the socket is non-blocking),
 * log it, close. */
static void hs_refuse(struct mig_gate *g, struct handshake *h, const char *why)
{
	char line[320];
	snprintf(line, sizeof(line), "refused a connection from %s: %s", h->peer, why);
	pthread_mutex_lock(&g->lock);
	snprintf(g->last_refusal, sizeof(g->last_refusal), "%s", why);
	pthread_mutex_unlock(&g->lock);
	if (g->o.log)
		g->o.log(g->o.log_ctx, line);
	else
		fprintf(stderr, "lazyvm migrate-recv: %s\n", line);
	mig_send(h->fd, MIG_ERROR, why, strlen(why), NULL, 0);
	hs_close(h);
}

static void hs_expect(struct mig_gate *g, struct handshake *h, enum hs_state s)
{
	h->state = s;
	h->got = 0;
	h->need = HDR;
	h->deadline_ns = deadline_in(g);
}

static void gate_accept(struct mig_gate *g)
{
	struct handshake *h = NULL;
	for (int i = 0; i < GATE_PENDING && !h; i++)
		if (g->hs[i].fd < 0)
			h = &g->hs[i];
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int fd = accept4(g->o.lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0 || !h) {
		if (fd >= 0)
			close(fd);
		return;
	}
	h->fd = fd;
	char host[INET6_ADDRSTRLEN] = "?";
	const void *a = ss.ss_family == AF_INET6 ? (void *)&((struct sockaddr_in6 *)&ss)->sin6_addr
						  : (void *)&((struct sockaddr_in *)&ss)->sin_addr;
	inet_ntop(ss.ss_family, a, host, sizeof(host));
	unsigned port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
						  : ((struct sockaddr_in *)&ss)->sin_port);
	snprintf(h->peer, sizeof(h->peer), "%s:%u", host, port);
	hs_expect(g, h, HS_HELLO);
}

static void gate_enqueue(struct mig_gate *g, struct handshake *h)
{
	pthread_mutex_lock(&g->lock);
	bool room = g->nqueued < GATE_QUEUE;
	if (room) {
		int fl = fcntl(h->fd, F_GETFL);
		fcntl(h->fd, F_SETFL, fl & ~O_NONBLOCK);
		mig_tune_socket(h->fd);
		struct mig_gate_conn *c = &g->queue[g->nqueued++];
		c->fd = h->fd;
		memcpy(&c->hello, &h->hello_wire, sizeof(c->hello));
		mig_hello_from_wire(&c->hello);
		h->fd = -1;
	}
	pthread_mutex_unlock(&g->lock);
	if (!room) {
		hs_refuse(g, h, "too many connections waiting");
		return;
	}
	uint64_t one = 1;
	if (write(g->ready_fd, &one, sizeof(one)) < 0) {
		/* cannot overflow: at most GATE_QUEUE outstanding */
	}
}

/* The HELLO is in and valid: challenge, or decide. */
static void hs_hello(struct mig_gate *g, struct handshake *h)
{
	struct mig_hello hl = h->hello_wire;
	mig_hello_from_wire(&hl);
	bool auth = hl.flags & MIG_HELLO_AUTH;
	if (g->o.key && !auth) {
		hs_refuse(g, h, "authentication required (this destination has --auth-psk)");
		return;
	}
	if (!g->o.key && auth) {
		hs_refuse(g, h, "the source wants to authenticate, but this destination has "
			 "no --auth-psk");
		return;
	}
	if (!g->o.key) {
		hs_verdict(g, h);
		return;
	}
	struct mig_auth_challenge c;
	if (mig_random(c.nonce, sizeof(c.nonce))) {
		hs_refuse(g, h, "no random numbers for a nonce");
		return;
	}
	memcpy(h->nonce, c.nonce, sizeof(h->nonce));
	mig_auth_proof(g->o.key, MIG_AUTH_DST, &h->hello_wire, c.nonce, c.mac);
	/* 64 bytes into an empty socket buffer: sent whole or the peer is gone. */
	if (mig_send(h->fd, MIG_AUTH_CHALLENGE, &c, sizeof(c), NULL, 0)) {
		hs_refuse(g, h, "could not send the challenge");
		return;
	}
	hs_expect(g, h, HS_RESPONSE);
}

static void hs_verdict(struct mig_gate *g, struct handshake *h)
{
	struct mig_hello hl = h->hello_wire;
	mig_hello_from_wire(&hl);
	char why[160] = "";
	if (g->o.admit(g->o.ctx, &hl, why, sizeof(why))) {
		hs_refuse(g, h, why[0] ? why : "not admitted");
		return;
	}
	gate_enqueue(g, h);
}

/* A whole message is in h->buf: act on it. */
static void hs_message(struct mig_gate *g, struct handshake *h)
{
	uint16_t type;
	uint32_t len;
	char why[160];
	struct mig_limits none = { 0, 0 };
	if (mig_check_header(h->buf, &type, &len, why, sizeof(why))) {
		hs_refuse(g, h, why);
		return;
	}
	uint16_t want = h->state == HS_HELLO ? MIG_HELLO : MIG_AUTH_RESPONSE;
	uint32_t want_len = want == MIG_HELLO ? sizeof(struct mig_hello) : MIG_MAC_LEN;
	if (type != want || len != want_len) {
		snprintf(why, sizeof(why), "expected %s of %u bytes, got %s of %u",
			 mig_type_name(want), want_len, mig_type_name(type), len);
		hs_refuse(g, h, why);
		return;
	}
	if (h->got == HDR) {	/* the header: now the payload, same deadline */
		h->need = HDR + len;
		return;
	}
	if (mig_check_payload(type, h->buf + HDR, len, &none, why, sizeof(why))) {
		hs_refuse(g, h, why);
		return;
	}
	if (h->state == HS_HELLO) {
		memcpy(&h->hello_wire, h->buf + HDR, sizeof(h->hello_wire));
		hs_hello(g, h);
		return;
	}
	if (mig_auth_check(g->o.key, MIG_AUTH_SRC, &h->hello_wire, h->nonce, h->buf + HDR)) {
		hs_refuse(g, h, "authentication failed (wrong key)");
		return;
	}
	hs_verdict(g, h);
}

static void hs_read(struct mig_gate *g, struct handshake *h)
{
	ssize_t n = recv(h->fd, h->buf + h->got, h->need - h->got, 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		hs_refuse(g, h, n ? strerror(errno) : "closed during the handshake");
		return;
	}
	h->got += (size_t)n;
	if (h->got == h->need)
		hs_message(g, h);
}

static void *gate_thread(void *arg)
{
	struct mig_gate *g = arg;
	struct pollfd p[2 + GATE_PENDING];
	int idx[GATE_PENDING];
	for (;;) {
		int n = 0, npend = 0;
		uint64_t now = clock_now_ns(CLOCK_MONOTONIC), next = now + 1000000000ull;
		p[n++] = (struct pollfd){ g->stop_fd, POLLIN, 0 };
		for (int i = 0; i < GATE_PENDING; i++) {
			struct handshake *h = &g->hs[i];
			if (h->fd >= 0 && now >= h->deadline_ns)
				hs_refuse(g, h, "handshake message not complete within its deadline");
			if (h->fd < 0)
				continue;
			next = h->deadline_ns < next ? h->deadline_ns : next;
			idx[npend++] = i;
			p[n++] = (struct pollfd){ h->fd, POLLIN, 0 };
		}
		bool room = npend < GATE_PENDING;
		if (room)
			p[n++] = (struct pollfd){ g->o.lfd, POLLIN, 0 };
		int r = poll(p, (nfds_t)n, (int)((next - now) / 1000000) + 1);
		if (r < 0 && errno != EINTR)
			break;
		if (r <= 0)
			continue;
		if (p[0].revents)
			break;
		for (int k = 0; k < npend; k++)
			if (p[1 + k].revents)
				hs_read(g, &g->hs[idx[k]]);
		if (room && p[n - 1].revents)
			gate_accept(g);
	}
	return NULL;
}

int mig_gate_start(const struct mig_gate_opts *o, struct mig_gate **out)
{
	struct mig_gate *g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->o = *o;
	for (int i = 0; i < GATE_PENDING; i++)
		g->hs[i].fd = -1;
	pthread_mutex_init(&g->lock, NULL);
	g->stop_fd = eventfd(0, EFD_CLOEXEC);
	g->ready_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK | EFD_SEMAPHORE);
	int ret = g->stop_fd < 0 || g->ready_fd < 0 ? -errno : 0;
	if (!ret)
		ret = -pthread_create(&g->thread, NULL, gate_thread, g);
	if (ret) {
		if (g->stop_fd >= 0)
			close(g->stop_fd);
		if (g->ready_fd >= 0)
			close(g->ready_fd);
		pthread_mutex_destroy(&g->lock);
		free(g);
		return ret;
	}
	*out = g;
	return 0;
}

int mig_gate_fd(struct mig_gate *g)
{
	return g->ready_fd;
}

int mig_gate_take(struct mig_gate *g, int timeout_ms, struct mig_gate_conn *c)
{
	uint64_t v;
	while (read(g->ready_fd, &v, sizeof(v)) != sizeof(v)) {
		struct pollfd p = { g->ready_fd, POLLIN, 0 };
		int n = poll(&p, 1, timeout_ms);
		if (n == 0)
			return -ETIMEDOUT;
		if (n < 0 && errno != EINTR)
			return -errno;
	}
	pthread_mutex_lock(&g->lock);
	*c = g->queue[0];
	memmove(g->queue, g->queue + 1, (size_t)--g->nqueued * sizeof(g->queue[0]));
	pthread_mutex_unlock(&g->lock);
	return 0;
}

void mig_gate_last_refusal(struct mig_gate *g, char *buf, size_t len)
{
	pthread_mutex_lock(&g->lock);
	snprintf(buf, len, "%s", g->last_refusal);
	pthread_mutex_unlock(&g->lock);
}

void mig_gate_stop(struct mig_gate *g)
{
	if (!g)
		return;
	uint64_t one = 1;
	if (write(g->stop_fd, &one, sizeof(one)) == sizeof(one))
		pthread_join(g->thread, NULL);
	for (int i = 0; i < GATE_PENDING; i++)
		hs_close(&g->hs[i]);
	for (int i = 0; i < g->nqueued; i++)
		close(g->queue[i].fd);
	close(g->stop_fd);
	close(g->ready_fd);
	pthread_mutex_destroy(&g->lock);
	free(g);
}
