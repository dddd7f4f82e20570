/* SPDX-License-Identifier: MIT */
/* Post-copy migration, destination side.  See migrate.h for the design. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/backing.h"
#include "util/clock.h"
#include "util/histogram.h"
#include "migrate/dst.h"
#include "migrate/gate.h"

int dst_fail(struct mig_dst *d, int ret, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (d->err && !d->err[0])
		vsnprintf(d->err, d->errlen, fmt, ap);
	va_end(ap);
	return ret;
}

/* ---- the engine's source: ask the peer, deliver later --------------------- */

void dst_send_request(struct mig_dst *d, uint64_t u0, uint64_t n)
{
	struct mig_pages r = { u0 * d->lim.unit, (uint32_t)n, 0 };
	mig_pages_to_wire(&r);
	pthread_mutex_lock(&d->req_lock);
	if (atomic_load(&d->link_up) && mig_send(d->req_fd, MIG_REQUEST, &r, sizeof(r), NULL, 0)) {
		/* Cut: the request stays outstanding and is sent again on resume. */
		atomic_store(&d->link_up, false);
		shutdown(d->req_fd, SHUT_RDWR);
	}
	pthread_mutex_unlock(&d->req_lock);
}

static int dst_get(void *ctx, uint64_t off, size_t len, void *scratch, const void **data)
{
	struct mig_dst *d = ctx;
	(void)scratch, (void)data;
	uint64_t u0 = off / d->lim.unit, u1 = (off + len + d->lim.unit - 1) / d->lim.unit;
	uint64_t t = clock_now_ns(CLOCK_MONOTONIC);
	bool ask = false;
	for (uint64_t u = u0; u < u1; u++) {
		uint64_t zero = 0;
		if (!atomic_load(&d->have[u]))
			ask |= atomic_compare_exchange_strong(&d->asked_ns[u], &zero, t);
	}
	if (ask)
		dst_send_request(d, u0, u1 - u0);
	return LVM_SOURCE_PENDING;
}

/* ---- receiving units ------------------------------------------------------ */

void dst_wake(struct mig_dst *d)
{
	uint64_t one = 1;
	if (write(d->wake_fd, &one, sizeof(one)) < 0) {
		/* the counter cannot overflow with these few writes */
	}
}

/*
 * One unit arrived (pre-copy, push, or a request's answer).  Pre-copy writes
 * memory directly and a later round overwrites (the unit was dirtied since);
 * after that the engine installs it, exactly once: the main channel and the
 * request channel may both carry a unit, and only the thread that flips have[]
 * installs and counts it.
 */
static int dst_take_unit(struct mig_dst *d, uint64_t u, const uint8_t *data, bool answer)
{
	uint64_t off = u * d->lim.unit;
	const uint8_t *src = data ? data : d->zero;
	bool precopy = !atomic_load(&d->served);
	int ret;

	if (atomic_load(&d->frozen))
		return 0;	/* fetched all: the VM may run, never write under it */
	if (precopy) {
		ret = lvm_mem_write(d->mem, off, src, d->lim.unit);
		if (!ret && !atomic_exchange(&d->have[u], 1)) {
			atomic_fetch_add(&d->n_pre, 1);
			if (atomic_fetch_add(&d->nhave, 1) + 1 == d->nunits)
				dst_wake(d);	/* dst_fetch_all waits for this */
		}
	} else {
		if (atomic_exchange(&d->have[u], 1))
			return 0;	/* the other channel delivered it */
		ret = lvm_engine_supply(d->e, d->src, off, src, d->lim.unit);
		if (!ret) {
			uint64_t asked = atomic_exchange(&d->asked_ns[u], 0);
			if (asked) {	/* a vCPU waited for it */
				uint64_t wait = clock_now_ns(CLOCK_MONOTONIC) - asked;
				histogram_record(&d->remote_lat, wait);
				atomic_fetch_add(&d->blocktime_ns, wait);
			}
			atomic_fetch_add(answer ? &d->n_req : &d->n_push, 1);
			if (atomic_fetch_add(&d->nhave, 1) + 1 == d->nunits)
				dst_wake(d);
		}
	}
	if (ret)
		return dst_fail(d, ret, "installing the page at 0x%llx: %s",
				(unsigned long long)off, strerror(-ret));
	return 0;
}

int dst_take_pages(struct mig_dst *d, const struct mig_msg *m, bool answer)
{
	struct mig_pages pg;
	memcpy(&pg, m->payload, sizeof(pg));
	mig_pages_from_wire(&pg);
	const uint8_t *data = pg.flags & MIG_PAGES_ZERO ? NULL : m->payload + sizeof(pg);
	for (uint32_t i = 0; i < pg.count; i++) {
		int ret = dst_take_unit(d, pg.offset / d->lim.unit + i,
					data ? data + (uint64_t)i * d->lim.unit : NULL, answer);
		if (ret)
			return ret;
	}
	return 0;
}

/* ---- phases --------------------------------------------------------------- */

/* Units dirtied after they were sent: drop our copy (the engine fetches
 * them again), in runs so a big stale set costs few syscalls. */
static int dst_apply_discard(struct mig_dst *d, const uint8_t *bm)
{
	for (uint64_t u = 0; u < d->nunits; ) {
		uint64_t n = 0;
		while (u + n < d->nunits && (bm[(u + n) / 8] >> ((u + n) % 8) & 1) &&
		       atomic_load(&d->have[u + n]))
			n++;
		if (!n) {
			u++;
			continue;
		}
		int ret = backing_remove(d->mem, u * d->lim.unit, n * d->lim.unit);
		if (ret)
			return dst_fail(d, ret, "dropping %llu stale pages: %s",
					(unsigned long long)n, strerror(-ret));
		for (uint64_t i = u; i < u + n; i++)
			atomic_store(&d->have[i], 0);
		atomic_fetch_sub(&d->nhave, n);
		atomic_fetch_sub(&d->n_pre, n);
		u += n;
	}
	return 0;
}

/* Without userfaultfd on this backing: fetch everything before the VM runs. */
static int dst_fetch_all(struct mig_dst *d)
{
	uint64_t batch = MIG_MAX_DATA / d->lim.unit ? MIG_MAX_DATA / d->lim.unit : 1;
	for (uint64_t u = 0, n; u < d->nunits; u += n) {	/* runs of missing units */
		n = 1;
		if (atomic_load(&d->have[u]))
			continue;
		while (n < batch && u + n < d->nunits && !atomic_load(&d->have[u + n]))
			n++;
		dst_get(d, u * d->lim.unit, n * d->lim.unit, NULL, NULL);
	}
	while (atomic_load(&d->nhave) < d->nunits) {
		struct pollfd p = { d->wake_fd, POLLIN, 0 };
		if (poll(&p, 1, 1000) > 0) {
			uint64_t v;
			if (read(d->wake_fd, &v, sizeof(v)) < 0) {
				/* drained */
			}
		}
		if (!atomic_load(&d->link_up))
			return dst_fail(d, -ECONNRESET, "link lost while fetching all memory");
	}
	atomic_store(&d->frozen, true);
	return 0;
}

/*
 * The source is stopped: serve the rest of memory lazily.  Registering the
 * memory is the probe (cheaper in the downtime than probing on the side);
 * where the backing refuses userfaultfd (guest_memfd without the uffd series),
 * everything is fetched before the VM starts, and we say so.
 */
static int dst_serve_memory(struct mig_dst *d)
{
	static const struct lvm_source_ops ops = { .struct_size = sizeof(ops), .get = dst_get };
	int ret = lvm_source_create(&ops, d, d->lim.mem_size, &d->src);
	if (ret)
		return ret;
	struct lvm_engine_opts eo;
	lvm_engine_opts_init(&eo);
	eo.threads = d->o.handler_threads;
	eo.on_error = d->o.on_error;
	eo.on_error_ctx = d->o.on_error_ctx;
	ret = lvm_engine_create(&eo, &d->e);
	if (ret)
		return ret;
	int reg = lvm_engine_add_mem(d->e, d->mem, LVM_MODE_MISSING, d->src, 0);
	if (reg < 0) {
		lvm_engine_destroy(d->e);
		d->e = NULL;
		fprintf(stderr, "lazyvm migrate-recv: %s memory cannot be served lazily on this "
			"kernel (UFFDIO_REGISTER: %s): receiving all of it before the VM starts\n",
			lvm_backing_name(lvm_mem_backing(d->mem)), strerror(-reg));
		return dst_fetch_all(d);
	}
	for (uint64_t u = 0; !ret && u < d->nunits; u++)
		if (atomic_load(&d->have[u]))
			ret = lvm_engine_mark_present(d->e, d->src, u * d->lim.unit, d->lim.unit);
	if (!ret)
		ret = lvm_engine_start(d->e);
	atomic_store(&d->served, !ret);
	return ret;
}

/* The size comes from the peer: bounded by the protocol already (HELLO),
 * and here by this machine's memory before anything is allocated. */
static int dst_check_size(struct mig_dst *d)
{
	long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
	uint64_t phys = pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz : 0;
	if (phys && d->lim.mem_size > phys)
		return dst_fail(d, -E2BIG, "the source's guest has %llu MiB of memory, more than "
				"this machine's %llu MiB", (unsigned long long)(d->lim.mem_size >> 20),
				(unsigned long long)(phys >> 20));
	return 0;
}

static int dst_setup_memory(struct mig_dst *d, const struct mig_dst_vm *vm)
{
	int ret = dst_check_size(d);
	if (ret)
		return ret;
	d->nunits = d->lim.mem_size / d->lim.unit;
	ret = vm->create(vm->ctx, d->lim.mem_size, d->vcpus, &d->mem);
	if (ret)
		return dst_fail(d, ret, "creating %llu bytes of guest memory: %s",
				(unsigned long long)d->lim.mem_size, strerror(-ret));
	/* The transfer unit is the larger page size of the two sides. */
	if (lvm_mem_page_size(d->mem) > d->lim.unit)
		d->lim.unit = (uint32_t)lvm_mem_page_size(d->mem);
	d->nunits = d->lim.mem_size / d->lim.unit;
	d->have = calloc(d->nunits, 1);
	d->asked_ns = calloc(d->nunits, sizeof(uint64_t));
	d->zero = calloc(1, d->lim.unit);
	return d->have && d->asked_ns && d->zero ? 0 : -ENOMEM;
}

/* Pre-copy: units straight into memory until the source stops and sends the
 * state. */
static int dst_precopy(struct mig_dst *d, const struct mig_dst_vm *vm, void **state,
		       size_t *state_len)
{
	char why[160] = "";
	for (;;) {
		struct mig_msg m;
		int ret = mig_recv(d->main_fd, &m, d->buf, BUF_CAP, &d->lim, -1, why, sizeof(why));
		if (ret)
			return dst_fail(d, ret, "pre-copy: %s", why[0] ? why : strerror(-ret));
		switch (m.type) {
		case MIG_PAGES:
			ret = dst_take_pages(d, &m, false);
			break;
		case MIG_ROUND_END:	/* everything sent so far is in memory */
			d->rounds++;
			ret = mig_send(d->main_fd, MIG_ROUND_ACK, NULL, 0, NULL, 0);
			break;
		case MIG_DISCARD:
			ret = dst_apply_discard(d, m.payload);
			break;
		case MIG_STATE: {
			struct mig_stamp st;
			memcpy(&st, m.payload, sizeof(st));
			mig_stamp_from_wire(&st);
			d->stop_realtime_ns = st.realtime_ns;
			*state_len = m.len - sizeof(st);
			*state = malloc(*state_len ? *state_len : 1);
			if (!*state)
				return -ENOMEM;
			memcpy(*state, m.payload + sizeof(st), *state_len);
			return 0;
		}
		case MIG_ERROR:
			return dst_fail(d, -ECONNABORTED, "the source gave up: %.*s", (int)m.len,
					(const char *)m.payload);
		default:
			return dst_fail(d, -EPROTO, "pre-copy: unexpected %s", mig_type_name(m.type));
		}
		if (ret)
			return ret;
		(void)vm;
	}
}

/* Wait for GO (after READY), surviving cuts. */
static int dst_wait_go(struct mig_dst *d)
{
	char why[160] = "";
	for (;;) {
		struct mig_msg m;
		int ret = mig_recv(d->main_fd, &m, d->buf, BUF_CAP, &d->lim, -1, why, sizeof(why));
		if (ret == -EPROTO)
			return dst_fail(d, ret, "waiting for GO: %s", why);
		if (ret) {
			ret = dst_recover(d);
			if (ret)
				return ret;
			continue;
		}
		if (m.type == MIG_GO)
			return 0;
		if (m.type == MIG_PAGES) {
			ret = dst_take_pages(d, &m, false);
			if (ret)
				return ret;
			continue;
		}
		return dst_fail(d, -EPROTO, "waiting for GO: unexpected %s", mig_type_name(m.type));
	}
}

/* One wake-up of post-copy: a pushed message, a cut, or the last unit. */
static int dst_postcopy_step(struct mig_dst *d)
{
	char why[160] = "";
	struct pollfd p[3] = { { d->main_fd, POLLIN, 0 }, { d->wake_fd, POLLIN, 0 },
			       { mig_gate_fd(d->gate), POLLIN, 0 } };
	if (poll(p, 3, -1) < 0 && errno != EINTR)
		return -errno;
	if (p[1].revents) {
		uint64_t v;
		if (read(d->wake_fd, &v, sizeof(v)) < 0) {
			/* drained */
		}
	}
	/* A resume admitted by the gate: the source saw a cut we have not. */
	bool cut = !atomic_load(&d->link_up) || p[2].revents;
	if (p[0].revents && !cut) {
		struct mig_msg m;
		int ret = mig_recv(d->main_fd, &m, d->buf, BUF_CAP, &d->lim, -1, why, sizeof(why));
		if (ret == -EPROTO)
			return dst_fail(d, ret, "post-copy: %s", why);
		if (ret)
			cut = true;
		else if (m.type == MIG_PAGES && (ret = dst_take_pages(d, &m, false)))
			return ret;
		else if (m.type == MIG_ERROR)
			return dst_fail(d, -ECONNABORTED, "the source gave up: %.*s", (int)m.len,
					(const char *)m.payload);
	}
	return cut && atomic_load(&d->nhave) < d->nunits ? dst_recover(d) : 0;
}

/* Post-copy: pushed units on the main channel until every unit is here. */
static int dst_postcopy(struct mig_dst *d)
{
	int ret = 0;	/* at normal priority: see migrate.h */
	while (!ret && atomic_load(&d->nhave) < d->nunits)
		ret = dst_postcopy_step(d);
	if (!ret)
		dst_finish(d);
	return ret;
}

int mig_dst_listen(const struct mig_dst_opts *o, struct mig_dst **out)
{
	struct mig_dst *d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->o = *o;
	d->main_fd = d->req_fd = -1;
	d->lfd = mig_listen(o->listen);
	d->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	d->buf = malloc(BUF_CAP);
	pthread_mutex_init(&d->req_lock, NULL);
	pthread_mutex_init(&d->admit_lock, NULL);
	int ret = d->lfd < 0 ? d->lfd : d->wake_fd < 0 ? -errno : !d->buf ? -ENOMEM : 0;
	if (!ret) {
		struct mig_gate_opts g = { .lfd = d->lfd, .key = o->auth_key, .admit = dst_admit,
					   .ctx = d, .log = o->on_log, .log_ctx = o->on_log_ctx };
		ret = mig_gate_start(&g, &d->gate);
	}
	if (ret) {
		mig_dst_destroy(d);
		return ret;
	}
	*out = d;
	return 0;
}

static void dst_fill_stats(struct mig_dst *d, struct mig_stats *s, uint64_t t0,
			   uint64_t started)
{
	memset(s, 0, sizeof(*s));
	s->total_ms = (clock_now_ns(CLOCK_MONOTONIC) - t0) / 1000000;
	if (started && d->stop_realtime_ns && started > d->stop_realtime_ns)
		s->downtime_ms = (started - d->stop_realtime_ns) / 1000000;
	s->first_vcpu_entry_realtime_ns = started;
	s->precopy_rounds = d->rounds;
	s->pages_precopy = atomic_load(&d->n_pre);
	s->pages_postcopy_push = atomic_load(&d->n_push);
	s->pages_postcopy_request = atomic_load(&d->n_req);
	s->blocktime_ms = atomic_load(&d->blocktime_ns) / 1000000;
	s->reconnects = d->reconnects;
	histogram_summary(&d->remote_lat, &s->remote_fault);
}

int mig_dst_run(struct mig_dst *d, const struct mig_dst_vm *vm, struct mig_stats *stats,
		char *err, size_t errlen)
{
	d->err = err;
	d->errlen = errlen;
	if (err && errlen)
		err[0] = 0;
	uint64_t t0 = clock_now_ns(CLOCK_MONOTONIC), started = 0;
	void *state = NULL;
	size_t state_len = 0;
	char why[160];
	int ret = dst_accept_channel(d, MIG_CH_MAIN, false, d->o.accept_timeout_ms, why,
				     sizeof(why));
	if (ret < 0)
		dst_fail(d, ret, "waiting for the source: %s", why);
	if (ret >= 0) {
		d->main_fd = ret;
		t0 = clock_now_ns(CLOCK_MONOTONIC);
		ret = dst_setup_memory(d, vm);
	}
	if (!ret)
		ret = dst_ack(d, d->main_fd);
	if (!ret && (ret = dst_open_request_channel(d, false, why, sizeof(why))))
		dst_fail(d, ret, "request channel: %s", why);
	if (!ret)
		ret = dst_precopy(d, vm, &state, &state_len);
	if (!ret)
		ret = dst_serve_memory(d);
	if (!ret && (ret = vm->load_state(vm->ctx, state, state_len)))
		dst_fail(d, ret, "loading the VM state: %s", strerror(-ret));
	if (!ret) {
		atomic_store(&d->phase, MIG_PHASE_READY);
		ret = mig_send(d->main_fd, MIG_READY, NULL, 0, NULL, 0);
		if (ret)	/* the source resends GO after it reconnects */
			ret = dst_recover(d);
	}
	if (!ret)
		ret = dst_wait_go(d);
	if (!ret && (ret = vm->start(vm->ctx)))
		dst_fail(d, ret, "starting the vCPUs: %s", strerror(-ret));
	if (!ret) {
		started = clock_now_ns(CLOCK_REALTIME);
		atomic_store(&d->phase, MIG_PHASE_RUNNING);
		struct mig_stamp st = { started, 0 };
		mig_stamp_to_wire(&st);
		mig_send(d->main_fd, MIG_STARTED, &st, sizeof(st), NULL, 0);
		ret = dst_postcopy(d);
	}
	free(state);
	if (ret)	/* every failure is reported, even one without context */
		dst_fail(d, ret, "migration failed: %s", strerror(-ret));
	if (ret && started && d->e)	/* the VM runs: never leave a vCPU waiting forever */
		lvm_engine_fail(d->e, d->src, 0, d->lim.mem_size, ret);
	dst_fill_stats(d, stats, t0, started);
	if (ret && d->main_fd >= 0 && err && err[0])
		mig_send(d->main_fd, MIG_ERROR, err, strlen(err), NULL, 0);
	dst_drop_link(d);
	return ret;
}

int mig_dst_port(struct mig_dst *d)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	if (getsockname(d->lfd, (struct sockaddr *)&ss, &len))
		return -errno;
	return ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port :
		     ((struct sockaddr_in *)&ss)->sin_port);
}

struct lvm_engine *mig_dst_engine(struct mig_dst *d)
{
	return d->e;
}

void mig_dst_destroy(struct mig_dst *d)
{
	if (!d)
		return;
	mig_gate_stop(d->gate);	/* before the state its admit reads goes */
	dst_drop_link(d);
	lvm_engine_destroy(d->e);
	lvm_source_destroy(d->src);
	if (d->lfd >= 0)
		close(d->lfd);
	if (d->wake_fd >= 0)
		close(d->wake_fd);
	pthread_mutex_destroy(&d->req_lock);
	pthread_mutex_destroy(&d->admit_lock);
	free((void *)d->have);
	free((void *)d->asked_ns);
	free(d->zero);
	free(d->buf);
	free(d);
}
