/* SPDX-License-Identifier: MIT */
/* Post-copy migration, source side.  See migrate.h for the design. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/backing.h"
#include "core/wp.h"
#include "migrate/auth.h"
#include "migrate/migrate.h"
#include "migrate/wire.h"
#include "util/clock.h"
#include "util/histogram.h"
#include "util/progress.h"
#include "util/thread-latency.h"
#include "util/zero.h"

#define BATCH_BYTES (256u << 10)	/* one PAGES message of the background push */
#define WP_CHUNK (64u << 10)
#define PUSH_NEAR_BYTES (1u << 20)	/* pushed first after each fault */
/* A cut while waiting for READY: the VM is stopped here, so try to resume
 * only briefly before running it here again. */
#define SRC_READY_RECOVER_S 10

struct mig_src {
	const struct mig_src_opts *o;
	struct lvm_mem *mem;
	const struct mig_src_vm *vm;
	const uint8_t *base;
	struct mig_limits lim;
	uint8_t session[MIG_SESSION_LEN];
	uint64_t nunits;
	int main_fd, req_fd;
	_Atomic uint8_t *sent;		/* per unit: the destination has (or gets) it */
	_Atomic uint8_t *dirty;		/* per WP chunk: written since last sent */
	size_t chunk;
	struct lvm_wp *wp;
	pthread_t req_thread;
	bool req_running;
	_Atomic bool req_broken;
	uint8_t *buf;
	uint64_t t0, stop_realtime_ns, started_realtime_ns;
	_Atomic uint64_t nsent;		/* units with sent[] set */
	struct progress bar;		/* units the destination has (or gets) */
	struct histogram req_lat;	/* request received -> answer sent */
	struct mig_stats st;
	_Atomic uint64_t n_req, wire_bytes;
	_Atomic uint64_t push_hint;	/* unit after the latest request; ~0: none */
	char *err;
	size_t errlen;
	char why[200];			/* detail of the last failed exchange */
};

static int src_fail(struct mig_src *s, int ret, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (s->err && !s->err[0])
		vsnprintf(s->err, s->errlen, fmt, ap);
	va_end(ap);
	return ret;
}

/* A new bar per phase; it counts units the destination has or is getting. */
static void src_progress_phase(struct mig_src *s, const char *label)
{
	progress_end(&s->bar);
	progress_init(&s->bar, label, s->lim.mem_size);
	if (!s->o->progress)
		progress_set_enabled(&s->bar, false);
	progress_update(&s->bar, atomic_load(&s->nsent) * s->lim.unit);
}

/*
 * Send units [u, u+n) on fd: zero runs without data, data runs split at the
 * protocol's limit per PAGES message (a request may cover more: 64 units of
 * 2 MiB hugetlb pages are 128 MiB).
 */
static int src_send_units(struct mig_src *s, int fd, uint64_t u, uint64_t n)
{
	uint64_t max_data_units = MIG_MAX_DATA / s->lim.unit;
	while (n) {
		uint64_t k = 1;
		bool zero = buf_is_zero(s->base + u * s->lim.unit, s->lim.unit);
		while (k < n && (zero || k < max_data_units) &&
		       buf_is_zero(s->base + (u + k) * s->lim.unit, s->lim.unit) == zero)
			k++;
		struct mig_pages pg = { u * s->lim.unit, (uint32_t)k, zero ? MIG_PAGES_ZERO : 0 };
		mig_pages_to_wire(&pg);
		int ret = mig_send(fd, MIG_PAGES, &pg, sizeof(pg), zero ? NULL : s->base + u * s->lim.unit,
				   zero ? 0 : k * s->lim.unit);
		if (ret)
			return ret;
		atomic_fetch_add(&s->wire_bytes, sizeof(struct mig_hdr) + sizeof(pg) +
				 (zero ? 0 : k * s->lim.unit));
		for (uint64_t i = 0; i < k; i++)
			if (!atomic_exchange(&s->sent[u + i], 1))
				atomic_fetch_add(&s->nsent, 1);
		progress_update(&s->bar, atomic_load(&s->nsent) * s->lim.unit);
		u += k;
		n -= k;
	}
	return 0;
}

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

static void src_close_link(struct mig_src *s)
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

static int src_connect(struct mig_src *s)
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

/* ---- pre-copy ------------------------------------------------------------- */

static void src_first_write(void *ctx, uint64_t chunk)
{
	struct mig_src *s = ctx;
	atomic_store(&s->dirty[chunk], 1);
}

static uint64_t units_per_chunk(struct mig_src *s)
{
	return s->chunk / s->lim.unit;
}

/*
 * End a round and wait until the destination has it in memory.  Without
 * this, the megabytes queued in socket buffers would be drained inside the
 * downtime (after the pause, ahead of the state); with it, the round's dirty
 * set also covers exactly the time its pages took to land.
 */
static int src_end_round(struct mig_src *s)
{
	struct mig_msg m;
	int ret = mig_send(s->main_fd, MIG_ROUND_END, NULL, 0, NULL, 0);
	if (!ret)
		ret = mig_recv(s->main_fd, &m, s->buf, 64 + MIG_MAX_DATA, &s->lim, 60000, s->why,
			       sizeof(s->why));
	if (ret && ret != -EPROTO)
		snprintf(s->why, sizeof(s->why), "%s", strerror(-ret));
	if (!ret && m.type == MIG_ERROR)
		ret = -ECONNABORTED, snprintf(s->why, sizeof(s->why), "the destination failed: %.*s",
					      (int)m.len, (const char *)m.payload);
	else if (!ret && m.type != MIG_ROUND_ACK)
		ret = -EPROTO, snprintf(s->why, sizeof(s->why), "expected ROUND_ACK, got %s",
					mig_type_name(m.type));
	return ret;
}

/* Chunks written since they were last sent (the set a next round sends). */
static uint64_t src_dirty_chunks(struct mig_src *s, uint64_t nchunks)
{
	uint64_t n = 0;
	for (uint64_t c = 0; c < nchunks; c++)
		n += atomic_load(&s->dirty[c]);
	return n;
}

/*
 * --precopy-rounds auto: another round pays only if it shrinks what is left
 * for post-copy.  What a round sent was dirtied again, during it, at the
 * guest's rate; when that is still 3/4 of what it sent (the guest dirties
 * about as fast as we send), or it is small already, switch to post-copy.
 */
static bool src_auto_converged(struct mig_src *s, unsigned round, uint64_t sent,
			       uint64_t nchunks)
{
	uint64_t dirty = src_dirty_chunks(s, nchunks);
	return round >= MIG_AUTO_MAX_ROUNDS || dirty * 4 >= sent * 3 ||
	       dirty * s->chunk <= (4u << 20);
}

static int src_precopy(struct mig_src *s)
{
	if (!s->o->precopy_rounds)
		return 0;
	bool autor = s->o->precopy_rounds == MIG_PRECOPY_AUTO;
	uint64_t nchunks = (s->lim.mem_size + s->chunk - 1) / s->chunk, upc = units_per_chunk(s);
	int ret = lvm_wp_start(s->mem, s->chunk, src_first_write, s, &s->wp);
	if (ret)
		return src_fail(s, ret, "write-protect tracking for pre-copy: %s", strerror(-ret));
	for (unsigned round = 1; autor || round <= s->o->precopy_rounds; round++) {
		uint64_t sent = 0;
		for (uint64_t c = 0; c < nchunks; c++) {
			if (round > 1) {	/* only what was written since */
				if (!atomic_exchange(&s->dirty[c], 0))
					continue;
				if ((ret = lvm_wp_protect(s->wp, c)))
					return src_fail(s, ret, "re-protecting: %s", strerror(-ret));
			}
			uint64_t u = c * upc, n = u + upc > s->nunits ? s->nunits - u : upc;
			if ((ret = src_send_units(s, s->main_fd, u, n)))
				return src_fail(s, ret, "pre-copy round %u: %s", round, strerror(-ret));
			s->st.pages_precopy += n;
			sent++;
		}
		if ((ret = src_end_round(s)))
			return src_fail(s, ret, "pre-copy round %u: %s", round, s->why);
		s->st.precopy_rounds = round;
		if (autor && src_auto_converged(s, round, sent, nchunks))
			break;
	}
	return 0;
}

/* Stopped: tell the destination which pre-copied units went stale, and
 * forget we sent them. */
static int src_send_discard(struct mig_src *s)
{
	if (!s->wp)
		return 0;
	uint64_t upc = units_per_chunk(s);
	size_t bytes = (s->nunits + 7) / 8;
	uint8_t *bm = calloc(bytes, 1);
	if (!bm)
		return -ENOMEM;
	for (uint64_t u = 0; u < s->nunits; u++) {
		if (atomic_load(&s->dirty[u / upc]) && atomic_load(&s->sent[u])) {
			bm[u / 8] |= (uint8_t)(1u << (u % 8));
			atomic_store(&s->sent[u], 0);
			atomic_fetch_sub(&s->nsent, 1);
		}
	}
	int ret = mig_send(s->main_fd, MIG_DISCARD, bm, bytes, NULL, 0);
	free(bm);
	return ret;
}

static int src_send_state(struct mig_src *s)
{
	void *blob = NULL;
	size_t len = 0;
	int ret = s->vm->save_state(s->vm->ctx, &blob, &len);
	if (ret)
		return src_fail(s, ret, "saving the VM state: %s", strerror(-ret));
	if (len > MIG_MAX_STATE) {
		free(blob);
		return src_fail(s, -E2BIG, "VM state of %zu bytes exceeds the protocol limit", len);
	}
	struct mig_stamp st = { s->stop_realtime_ns, len };
	mig_stamp_to_wire(&st);
	ret = mig_send(s->main_fd, MIG_STATE, &st, sizeof(st), blob, len);
	atomic_fetch_add(&s->wire_bytes, sizeof(struct mig_hdr) + sizeof(st) + len);
	free(blob);
	return ret;
}

/* ---- post-copy ------------------------------------------------------------- */

/* Non-blocking look at the main channel: STARTED, DONE, ERROR. */
static int src_poll_main(struct mig_src *s, int timeout_ms, bool *done)
{
	struct pollfd p = { s->main_fd, POLLIN, 0 };
	int n = poll(&p, 1, timeout_ms);
	if (n <= 0)
		return n < 0 && errno != EINTR ? -errno : 0;
	char why[160] = "";
	struct mig_msg m;
	int ret = mig_recv(s->main_fd, &m, s->buf, 64 + MIG_MAX_DATA, &s->lim, 10000, why,
			   sizeof(why));
	if (ret)
		return ret == -EPROTO ? src_fail(s, ret, "%s", why) : ret;
	struct mig_stamp st = { 0, 0 };
	if (m.type == MIG_STARTED || m.type == MIG_DONE) {
		memcpy(&st, m.payload, sizeof(st));
		mig_stamp_from_wire(&st);
	}
	if (m.type == MIG_STARTED && !s->started_realtime_ns)
		s->started_realtime_ns = st.realtime_ns;
	else if (m.type == MIG_DONE) {
		*done = true;	/* say we saw it: the destination stops waiting for us */
		mig_send(s->main_fd, MIG_DONE, m.payload, m.len, NULL, 0);
	}
	else if (m.type == MIG_ERROR)
		return src_fail(s, -ECONNABORTED, "the destination failed: %.*s", (int)m.len,
				(const char *)m.payload);
	return 0;
}

/* One batch of the push: the first unsent units in [*u, end); *u moves past
 * them (to end when none is left). */
static int src_push_batch(struct mig_src *s, uint64_t *u, uint64_t end)
{
	uint64_t batch = BATCH_BYTES / s->lim.unit ? BATCH_BYTES / s->lim.unit : 1;
	while (*u < end && atomic_load(&s->sent[*u]))
		++*u;
	if (*u >= end)
		return 0;
	uint64_t n = 1;
	while (*u + n < end && n < batch && !atomic_load(&s->sent[*u + n]))
		n++;
	int ret = src_send_units(s, s->main_fd, *u, n);
	if (!ret)
		s->st.pages_postcopy_push += n;
	*u += n;
	return ret;
}

/*
 * The background push, in address order, except that the units right after
 * the latest fault go first (a guest that faulted on a unit soon touches the
 * next ones: the sequential part of its accesses stops faulting).
 */
static int src_push(struct mig_src *s, bool *done)
{
	uint64_t u = 0, near = 0, near_end = 0, near_units = PUSH_NEAR_BYTES / s->lim.unit;
	while (!*done && (u < s->nunits || near < near_end)) {
		if (atomic_load(&s->req_broken))
			return -ECONNRESET;
		uint64_t h = atomic_exchange(&s->push_hint, UINT64_MAX);
		if (h < s->nunits) {
			near = h;
			near_end = h + near_units < s->nunits ? h + near_units : s->nunits;
		}
		int ret = near < near_end ? src_push_batch(s, &near, near_end)
					  : src_push_batch(s, &u, s->nunits);
		if (!ret)
			ret = src_poll_main(s, 0, done);
		if (ret)
			return ret;
	}
	while (!*done) {
		if (atomic_load(&s->req_broken))
			return -ECONNRESET;
		int ret = src_poll_main(s, 200, done);
		if (ret)
			return ret;
	}
	return 0;
}

/* Reconnect after a cut (with backoff), learn what the destination has,
 * resume.  0, or 1 when the destination already has everything;
 * *go_needed: the destination is still waiting for GO. */
static int src_recover(struct mig_src *s, unsigned timeout_s, bool *go_needed)
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

/* From GO on the VM lives at the destination: only ever recover, never resume. */
static int src_postcopy_loop(struct mig_src *s)
{
	unsigned timeout_s = s->o->recover_timeout_s ? s->o->recover_timeout_s : 60;
	bool done = false, go = true;
	for (;;) {
		int ret = go ? mig_send(s->main_fd, MIG_GO, NULL, 0, NULL, 0) : 0;
		go = false;
		if (!ret)
			ret = src_push(s, &done);
		if (!ret && done)
			return 0;
		if (ret == -EPROTO || ret == -ECONNABORTED)
			return ret;
		ret = src_recover(s, timeout_s, &go);
		if (ret)
			return ret > 0 ? 0 : ret;
	}
}

static int src_postcopy(struct mig_src *s)
{
	int nice = thread_set_bulk();	/* the request channel comes first */
	int ret = src_postcopy_loop(s);
	thread_restore_bulk(nice);
	return ret;
}

/* Wait for READY; a cut here is recoverable only if the destination made it
 * to READY (it then waits for our GO); otherwise the VM stays here. */
static int src_wait_ready(struct mig_src *s)
{
	char why[160] = "";
	struct mig_msg m;
	int ret = mig_recv(s->main_fd, &m, s->buf, 64 + MIG_MAX_DATA, &s->lim, -1, why, sizeof(why));
	if (!ret && m.type == MIG_READY)
		return 0;
	if (!ret && m.type == MIG_ERROR)
		return src_fail(s, -ECONNABORTED, "the destination failed: %.*s", (int)m.len,
				(const char *)m.payload);
	if (!ret || ret == -EPROTO)
		return src_fail(s, -EPROTO, "waiting for READY: %s",
				ret ? why : mig_type_name(m.type));
	bool go = false;
	ret = src_recover(s, SRC_READY_RECOVER_S, &go);
	if (!ret && !go)
		ret = src_fail(s, -EPROTO, "the destination resumed past READY without GO");
	return ret > 0 ? -EPROTO : ret;
}

static void src_fill_stats(struct mig_src *s, struct mig_stats *out)
{
	s->st.total_ms = (clock_now_ns(CLOCK_MONOTONIC) - s->t0) / 1000000;
	s->st.pages_postcopy_request = atomic_load(&s->n_req);
	s->st.wire_bytes = atomic_load(&s->wire_bytes);
	histogram_summary(&s->req_lat, &s->st.remote_fault);
	if (s->started_realtime_ns > s->stop_realtime_ns && s->stop_realtime_ns)
		s->st.downtime_ms = (s->started_realtime_ns - s->stop_realtime_ns) / 1000000;
	*out = s->st;
}

int mig_src_run(const struct mig_src_opts *o, struct lvm_mem *mem, const struct mig_src_vm *vm,
		struct mig_stats *stats, char *err, size_t errlen)
{
	struct mig_src s = { .o = o, .mem = mem, .vm = vm, .base = lvm_mem_addr(mem),
			     .main_fd = -1, .req_fd = -1, .err = err, .errlen = errlen,
			     .push_hint = UINT64_MAX };
	if (err && errlen)
		err[0] = 0;
	s.t0 = clock_now_ns(CLOCK_MONOTONIC);
	s.lim.mem_size = lvm_mem_size(mem);
	s.buf = malloc(64 + MIG_MAX_DATA);
	src_progress_phase(&s, "migrate: pre-copy");
	bool paused = false, gone = false;
	int ret = s.buf ? mig_random(s.session, sizeof(s.session)) : -ENOMEM;
	if (ret)
		src_fail(&s, ret, "session id from getrandom: %s", strerror(-ret));
	else
		ret = src_connect(&s);
	if (!ret)
		ret = src_precopy(&s);
	if (!ret) {
		ret = vm->pause(vm->ctx);
		paused = !ret;
		s.stop_realtime_ns = clock_now_ns(CLOCK_REALTIME);
		if (ret)
			src_fail(&s, ret, "pausing the VM: %s", strerror(-ret));
	}
	if (!ret && (ret = src_send_discard(&s)))
		src_fail(&s, ret, "sending the stale set: %s", strerror(-ret));
	if (!ret && (ret = src_send_state(&s)))
		src_fail(&s, ret, "sending the VM state: %s", strerror(-ret));
	/* The tracker stays until the end: unprotecting and unregistering all of
	 * memory takes long on a big guest, and the stopped VM writes nothing. */
	if (!ret)
		ret = src_wait_ready(&s);
	if (!ret) {
		gone = true;	/* GO: the VM belongs to the destination now */
		src_progress_phase(&s, "migrate: post-copy");
		ret = src_postcopy(&s);
	}
	if (!ret)
		progress_done(&s.bar);
	else
		progress_end(&s.bar);
	if (s.wp)
		lvm_wp_stop(s.wp);
	if (ret)	/* every failure is reported, even one without context */
		src_fail(&s, ret, "%s", strerror(-ret));
	if (!gone) {
		if (paused)
			vm->resume(vm->ctx);
		if (ret && s.main_fd >= 0 && err && err[0])
			mig_send(s.main_fd, MIG_ERROR, err, strlen(err), NULL, 0);
		if (ret)
			ret = -ECANCELED;
	}
	src_close_link(&s);
	src_fill_stats(&s, stats);
	free((void *)s.sent);
	free((void *)s.dirty);
	free(s.buf);
	return ret;
}
