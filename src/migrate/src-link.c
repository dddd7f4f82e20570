/* SPDX-License-Identifier: MIT */
/* Post-copy migration, source side: the connections (see src.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/backing.h"
#include "migrate/auth.h"
#include "migrate/src.h"
#include "util/clock.h"
#include "util/thread-latency.h"

/* ---- the request channel: answered ahead of the background stream -------- */

static void *src_request_server(void *arg)
{
	struct mig_src *s = arg;
	uint8_t buf[64];
	thread_set_latency_critical();	/* ahead of the push, on the CPU too */
	char why[160];
	for (;;) {
		struct mig_msg m;
		if (mig_recv(s->req_fd, &m, buf, sizeof(buf), &s->lim, -1, why, sizeof(why)) ||
		    m.type != MIG_REQUEST)
			break;
		uint64_t t = clock_now_ns(CLOCK_MONOTONIC);
		struct mig_pages r;
		memcpy(&r, m.payload, sizeof(r));
		mig_pages_from_wire(&r);
		if (src_send_units(s, s->req_fd, r.offset / s->lim.unit, r.count))
			break;
		histogram_record(&s->req_lat, clock_now_ns(CLOCK_MONOTONIC) - t);
		atomic_fetch_add(&s->n_req, r.count);
		atomic_store(&s->push_hint, r.offset / s->lim.unit + r.count);
	}
	/* The link is broken, whichever channel noticed: kick the main thread
	 * out of a blocked send so it starts recovering.  main_fd stays open
	 * until this thread is joined (src_close_link). */
	atomic_store(&s->req_broken, true);
	shutdown(s->main_fd, SHUT_RDWR);
	return NULL;
}

void src_close_link(struct mig_src *s)
{
	if (s->req_fd >= 0)
		shutdown(s->req_fd, SHUT_RDWR);
	if (s->req_running)
		pthread_join(s->req_thread, NULL);
	s->req_running = false;
	if (s->req_fd >= 0)
		close(s->req_fd);
	if (s->main_fd >= 0)
		close(s->main_fd);
	s->req_fd = s->main_fd = -1;
}

/*
 * With a key, the destination's first answer must be its AUTH_CHALLENGE:
 * check its proof, answer with ours (auth.h).  Without one, a challenge is
 * refused.  0, or -EACCES with why filled; *m is the next message then.
 */
static int src_authenticate(struct mig_src *s, int fd, const struct mig_hello *hello_wire,
			    struct mig_msg *m, uint8_t *buf, size_t cap, char *why, size_t whylen)
{
	const struct mig_key *k = s->o->auth_key;
	bool challenged = m->type == MIG_AUTH_CHALLENGE;
	if (!k && !challenged)
		return 0;
	if (!k || !challenged) {
		snprintf(why, whylen, "%s", k ? "the destination did not authenticate itself "
			 "(no --auth-psk there?)" : "the destination requires --auth-psk");
		return -EACCES;
	}
	struct mig_auth_challenge c;
	memcpy(&c, m->payload, sizeof(c));
	if (mig_auth_check(k, MIG_AUTH_DST, hello_wire, c.nonce, c.mac)) {
		snprintf(why, whylen, "the destination failed authentication (wrong key, or not "
			 "the destination)");
		return -EACCES;
	}
	uint8_t mac[MIG_MAC_LEN];
	mig_auth_proof(k, MIG_AUTH_SRC, hello_wire, c.nonce, mac);
	struct mig_limits none = { 0, 0 };
	int ret = mig_send(fd, MIG_AUTH_RESPONSE, mac, sizeof(mac), NULL, 0);
	return ret ? ret : mig_recv(fd, m, buf, cap, &none, 30000, why, whylen);
}

static int src_check_ack(struct mig_src *s, const struct mig_msg *m, struct mig_hello_ack *ack,
			 char *why, size_t whylen)
{
	if (m->type == MIG_ERROR) {
		snprintf(why, whylen, "the destination refused: %.*s", (int)m->len,
			 (const char *)m->payload);
		return -ECONNABORTED;
	}
	if (m->type != MIG_HELLO_ACK) {
		snprintf(why, whylen, "expected HELLO_ACK, got %s", mig_type_name(m->type));
		return -EPROTO;
	}
	memcpy(ack, m->payload, sizeof(*ack));
	mig_ack_from_wire(ack);
	if (ack->status || memcmp(ack->session, s->session, sizeof(s->session)) || !ack->unit ||
	    (ack->unit & (ack->unit - 1)) || lvm_mem_size(s->mem) % ack->unit ||
	    ack->unit < lvm_mem_page_size(s->mem) || ack->phase > MIG_PHASE_DONE) {
		snprintf(why, whylen, "bad HELLO_ACK (status %u, unit %u)", ack->status, ack->unit);
		return -EPROTO;
	}
	return 0;
}

/*
 * Open one channel: HELLO, [authentication], HELLO_ACK.  The fd, or
 * -ECONNABORTED when the destination refused (why: its reason), -EACCES
 * when authentication failed, -EPROTO for a bad answer, -errno.
 */
static int src_open_channel(struct mig_src *s, uint32_t channel, bool resume,
			    struct mig_hello_ack *ack, char *why, size_t whylen)
{
	int fd = mig_connect(s->o->addr, 5000);
	if (fd < 0) {
		snprintf(why, whylen, "%s", strerror(-fd));
		return fd;
	}
	struct mig_hello h = { .channel = channel, .flags = resume ? MIG_HELLO_RESUME : 0,
			       .mem_size = lvm_mem_size(s->mem),
			       .unit = (uint32_t)lvm_mem_page_size(s->mem), .vcpus = s->o->vcpus };
	if (s->o->auth_key)
		h.flags |= MIG_HELLO_AUTH;
	memcpy(h.session, s->session, sizeof(h.session));
	int ret = mig_random(h.nonce, sizeof(h.nonce));
	mig_hello_to_wire(&h);
	uint8_t buf[4160];
	struct mig_msg m;
	struct mig_limits none = { 0, 0 };
	why[0] = 0;
	if (!ret)
		ret = mig_send(fd, MIG_HELLO, &h, sizeof(h), NULL, 0);
	if (!ret)
		ret = mig_recv(fd, &m, buf, sizeof(buf), &none, 30000, why, whylen);
	if (!ret && m.type != MIG_ERROR)
		ret = src_authenticate(s, fd, &h, &m, buf, sizeof(buf), why, whylen);
	if (!ret)
		ret = src_check_ack(s, &m, ack, why, whylen);
	if (ret) {
		if (!why[0])
			snprintf(why, whylen, "%s", strerror(-ret));
		close(fd);
		return ret;
	}
	return fd;
}

static int src_start_request_server(struct mig_src *s, bool resume, char *why, size_t whylen)
{
	struct mig_hello_ack ack;
	int fd = src_open_channel(s, MIG_CH_REQUEST, resume, &ack, why, whylen);
	if (fd < 0)
		return fd;
	s->req_fd = fd;
	atomic_store(&s->req_broken, false);
	int ret = -pthread_create(&s->req_thread, NULL, src_request_server, s);
	s->req_running = !ret;
	if (ret)
		snprintf(why, whylen, "%s", strerror(-ret));
	return ret;
}

int src_connect(struct mig_src *s)
{
	struct mig_hello_ack ack;
	char why[200];
	int fd = src_open_channel(s, MIG_CH_MAIN, false, &ack, why, sizeof(why));
	if (fd < 0)
		return src_fail(s, fd, "connecting to %s: %s", s->o->addr, why);
	s->main_fd = fd;
	s->lim.unit = ack.unit;
	s->nunits = s->lim.mem_size / s->lim.unit;
	s->sent = calloc(s->nunits, 1);
	s->chunk = WP_CHUNK > s->lim.unit ? WP_CHUNK : s->lim.unit;
	s->dirty = calloc((s->lim.mem_size + s->chunk - 1) / s->chunk, 1);
	if (!s->sent || !s->dirty)
		return -ENOMEM;
	int ret = src_start_request_server(s, false, why, sizeof(why));
	return ret ? src_fail(s, ret, "request channel: %s", why) : 0;
}

/* Reconnect after a cut (with backoff), learn what the destination has,
 * resume.  0, or 1 when the destination already has everything;
 * *go_needed: the destination is still waiting for GO. */
int src_recover(struct mig_src *s, unsigned timeout_s, bool *go_needed)
{
	uint64_t deadline = clock_now_ns(CLOCK_MONOTONIC) + timeout_s * 1000000000ull;
	unsigned backoff_ms = 50;
	char why[200] = "";
	for (;;) {
		src_close_link(s);
		if (clock_now_ns(CLOCK_MONOTONIC) > deadline)
			return src_fail(s, -ETIMEDOUT, "lost the destination %s and could not "
					"reconnect within %u s (last: %s)", s->o->addr, timeout_s, why);
		struct mig_hello_ack ack;
		int fd = src_open_channel(s, MIG_CH_MAIN, true, &ack, why, sizeof(why));
		if (fd == -ECONNABORTED || fd == -EACCES)	/* given up, or not ours */
			return src_fail(s, fd, "resuming: %s", why);
		if (fd >= 0 && ack.phase == MIG_PHASE_DONE) {
			close(fd);
			return 1;
		}
		if (fd >= 0) {
			s->main_fd = fd;
			struct mig_msg m;
			int ret = mig_recv(fd, &m, s->buf, 64 + MIG_MAX_DATA, &s->lim, 30000, why,
					   sizeof(why));
			if (ret == -EPROTO || (!ret && m.type != MIG_RECV_BITMAP))
				return src_fail(s, -EPROTO, "resuming: %s",
						ret ? why : mig_type_name(m.type));
			if (!ret) {
				uint64_t have = 0;
				for (uint64_t u = 0; u < s->nunits; u++) {
					uint8_t bit = (m.payload[u / 8] >> (u % 8)) & 1;
					atomic_store(&s->sent[u], bit);
					have += bit;
				}
				atomic_store(&s->nsent, have);
				*go_needed = ack.phase == MIG_PHASE_READY;
				if (!src_start_request_server(s, true, why, sizeof(why))) {
					s->st.reconnects++;
					return 0;
				}
			}
		}
		usleep(backoff_ms * 1000);
		backoff_ms = backoff_ms < 1000 ? backoff_ms * 2 : 1000;
	}
}
