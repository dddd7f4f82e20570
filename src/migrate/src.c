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
#include "migrate/src.h"
#include "util/clock.h"
#include "util/histogram.h"
#include "util/progress.h"
#include "util/zero.h"

int src_fail(struct mig_src *s, int ret, const char *fmt, ...)
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
int src_send_units(struct mig_src *s, int fd, uint64_t u, uint64_t n)
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

/* From GO on the VM lives at the destination: only ever recover, never
 * resume.  Normal priority: see migrate.h. */
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
		ret = src_postcopy_loop(&s);
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
