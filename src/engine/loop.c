/* SPDX-License-Identifier: MIT */
/*
 * The fault engine: handler threads that read the uffd, apply the events,
 * and serve faults; a background thread that streams the rest; stats.  The
 * core loop is Firecracker's example handler's, made multi-threaded: poll,
 * read everything pending, apply removals, serve faults.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "engine/engine.h"
#include "util/thread-latency.h"

#define DEFAULT_FILL_CHUNK (512u << 10)
/* Background installs happen in pieces this big so a thread waiting to read
 * the uffd (write lock) never waits behind one long COPY. */
#define FILL_PIECE (256u << 10)

void engine_record_error(struct lvm_engine *e, int err, const char *fmt, ...)
{
	char msg[sizeof(e->error)];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < sizeof(msg) && err)
		snprintf(msg + n, sizeof(msg) - (size_t)n, ": %s", strerror(-err));
	pthread_mutex_lock(&e->err_lock);
	bool first = !e->error[0];
	if (first)
		memcpy(e->error, msg, sizeof(msg));
	pthread_mutex_unlock(&e->err_lock);
	if (e->opts.on_error)
		e->opts.on_error(e->opts.on_error_ctx, msg);
}

void lvm_engine_opts_init(struct lvm_engine_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->uffd = -1;
}

struct region *engine_region_of(struct lvm_engine *e, uint64_t addr)
{
	for (unsigned i = 0; i < e->nregions; i++) {
		struct region *r = &e->regions[i];
		uint64_t base = atomic_load(&r->base);
		if (addr >= base && addr - base < r->size)
			return r;
	}
	return NULL;
}

/* ---- events ------------------------------------------------------------- */

/* Apply fn to the pages of every region that [start, end) covers. */
static void for_pages_in(struct lvm_engine *e, uint64_t start, uint64_t end,
			 void (*fn)(struct lvm_engine *, struct region *, uint64_t, uint64_t))
{
	for (unsigned i = 0; i < e->nregions; i++) {
		struct region *r = &e->regions[i];
		uint64_t base = atomic_load(&r->base);
		uint64_t lo = start > base ? start : base;
		uint64_t hi = end < base + r->size ? end : base + r->size;
		if (lo >= hi)
			continue;
		/* Partial pages are not discarded by the kernel: round inward. */
		uint64_t first = (lo - base + r->psz - 1) >> r->pshift;
		uint64_t last = (hi - base) >> r->pshift;
		if (first < last)
			fn(e, r, first, last);
	}
}

static void mark_zero(struct lvm_engine *e, struct region *r, uint64_t a, uint64_t b)
{
	for (uint64_t p = a; p < b; p++)
		if (page_get(r, p) != PG_GONE)
			page_xchg(e, r, p, PG_ZERO);
}

static void mark_gone(struct lvm_engine *e, struct region *r, uint64_t a, uint64_t b)
{
	for (uint64_t p = a; p < b; p++)
		page_xchg(e, r, p, PG_GONE);
	if (a == 0 && b == r->npages)
		atomic_store(&r->gone, true);
}

static void apply_remap(struct lvm_engine *e, const struct uffd_msg *m)
{
	uint64_t from = m->arg.remap.from, to = m->arg.remap.to, len = m->arg.remap.len;
	struct region *r = engine_region_of(e, from);
	if (r && from == atomic_load(&r->base) && len == r->size) {
		atomic_store(&r->base, to);	/* the whole region moved */
		return;
	}
	/* Part of a region moved: we cannot follow it page by page. */
	for_pages_in(e, from, from + len, mark_gone);
	engine_record_error(e, 0, "partial mremap of guest memory (0x%llx+0x%llx) is not "
			    "supported; those pages are no longer served",
			    (unsigned long long)from, (unsigned long long)len);
}

static void apply_event(struct lvm_engine *e, const struct uffd_msg *m)
{
	switch (m->event) {
	case UFFD_EVENT_REMOVE:
		atomic_fetch_add(&e->st.remove_events, 1);
		for_pages_in(e, m->arg.remove.start, m->arg.remove.end, mark_zero);
		break;
	case UFFD_EVENT_UNMAP:
		atomic_fetch_add(&e->st.unmap_events, 1);
		for_pages_in(e, m->arg.remove.start, m->arg.remove.end, mark_gone);
		break;
	case UFFD_EVENT_REMAP:
		atomic_fetch_add(&e->st.remap_events, 1);
		apply_remap(e, m);
		break;
	case UFFD_EVENT_FORK:	/* not requested; never leak the child's fd */
		close((int)m->arg.fork.ufd);
		break;
	default:
		break;
	}
}

/*
 * Read every pending message (DESIGN.md §4: drain the queue before acting),
 * apply the events at once, and queue the faults on w.  Under the write
 * lock: see engine.h.  Returns the number of faults queued.
 */
int engine_drain_events(struct lvm_engine *e, struct worker *w)
{
	struct uffd_msg msgs[64];
	int queued = 0;

	pthread_rwlock_wrlock(&e->mm_lock);
	while (w->nfaults < ENGINE_MAX_FAULTS) {
		int room = ENGINE_MAX_FAULTS - w->nfaults;
		int n = uffd_read_msgs(e->uffd, msgs, room < 64 ? room : 64);
		if (n <= 0)
			break;
		for (int i = 0; i < n; i++) {
			if (msgs[i].event == UFFD_EVENT_PAGEFAULT) {
				w->faults[w->nfaults++] = msgs[i];
				queued++;
			} else {
				apply_event(e, &msgs[i]);
			}
		}
	}
	pthread_rwlock_unlock(&e->mm_lock);
	return queued;
}

/* ---- serving a fault ----------------------------------------------------- */

static void engine_serve_fault(struct worker *w, const struct uffd_msg *m)
{
	struct lvm_engine *e = w->e;
	uint64_t addr = m->arg.pagefault.address, t0 = mono_now_ns();
	struct region *r = engine_region_of(e, addr);

	atomic_fetch_add(&e->st.faults, 1);
	if (!r) {
		engine_record_error(e, 0, "fault at 0x%llx outside every served region",
				    (unsigned long long)addr);
		return;
	}
	uint64_t p = (addr - atomic_load(&r->base)) >> r->pshift;
	uint8_t st = page_get(r, p);
	if (r->minor && (st == PG_PRESENT || st == PG_ZERO)) {
		engine_serve_cached(w, r, p);
		histogram_record(&e->fault_lat, mono_now_ns() - t0);
		return;
	}
	switch (st) {
	case PG_MISSING: {
		size_t fa = e->opts.fault_around > r->psz ? e->opts.fault_around : r->psz;
		uint64_t span = fa >> r->pshift;
		uint64_t win_lo = p / span * span, win_hi = win_lo + span;
		struct run run;
		if (win_hi > r->npages)
			win_hi = r->npages;
		if (engine_claim_run(e, r, p, win_lo, win_hi, &run)) {
			engine_fetch_install(w, &run, false);
			break;
		}
		atomic_fetch_add(&e->st.faults_dup, 1);	/* lost the race: the claimer wakes us */
		return;
	}
	case PG_CLAIMED:
		atomic_fetch_add(&e->st.faults_dup, 1);
		return;
	case PG_ZERO:
		engine_serve_zero(w, r, p);
		break;
	case PG_PRESENT:	/* a message raised before the install woke it */
		uffd_wake(e->uffd, addr & ~((uint64_t)r->psz - 1), r->psz);
		break;
	case PG_FAILED: {
		uint64_t done;
		pthread_rwlock_rdlock(&e->mm_lock);
		uffd_poison(e->uffd, addr & ~((uint64_t)r->psz - 1), r->psz, 0, &done);
		pthread_rwlock_unlock(&e->mm_lock);
		return;
	}
	default:	/* GONE */
		return;
	}
	histogram_record(&e->fault_lat, mono_now_ns() - t0);
}

void engine_serve_queued(struct worker *w)
{
	/* In arrival order; the queue can grow while we serve (an install that
	 * hits EAGAIN drains the uffd again onto this same queue). */
	for (int i = 0; i < w->nfaults; i++)
		engine_serve_fault(w, &w->faults[i]);
	w->nfaults = 0;
}

/*
 * MINOR region, page already served (PRESENT) or discarded (ZERO).  The
 * page cache decides, asked by UFFDIO_CONTINUE itself: it looks the page up
 * and swaps it back in if shmem had swapped it out, so it fails with EFAULT
 * only where the file has no page at all (a hole: the guest punched it with
 * MADV_REMOVE, or the memory's owner with fallocate).  Only then are zeros
 * the file's content.  Never decide from residency (mincore): a swapped-out
 * page is "not resident" and still holds the guest's data (issue 9).
 */
void engine_serve_cached(struct worker *w, struct region *r, uint64_t p)
{
	int ret = engine_continue_only(w, r, p);
	if (!ret || atomic_load(&w->e->stopping))
		return;
	if (ret == -EFAULT) {
		page_cas(w->e, r, p, PG_PRESENT, PG_ZERO);
		engine_serve_zero(w, r, p);
		return;
	}
	/* The page exists but cannot be mapped (swap-in failed: EIO, ENOMEM):
	 * SIGBUS, not a vCPU blocked on a fault nobody answers. */
	if (page_cas(w->e, r, p, PG_PRESENT, PG_CLAIMED) ||
	    page_cas(w->e, r, p, PG_ZERO, PG_CLAIMED)) {
		struct run run = { r, p, p + 1 };
		engine_fail_run(w->e, &run, ret, "mapping a page the page cache holds");
	}
}

static void demand_done(struct lvm_engine *e)
{
	if (atomic_fetch_sub(&e->demand_active, 1) == 1) {
		pthread_mutex_lock(&e->lock);
		pthread_cond_broadcast(&e->cond);
		pthread_mutex_unlock(&e->lock);
	}
}

/* Wait for the uffd to have something, spinning spin_us first (DESIGN.md §3:
 * waking an idle handler costs far more than the fault itself). */
static bool handler_wait(struct lvm_engine *e)
{
	struct pollfd pfd[2] = { { e->uffd, POLLIN, 0 }, { e->stop_efd, POLLIN, 0 } };
	uint64_t spin_until = e->opts.spin_us ? mono_now_ns() + e->opts.spin_us * 1000ull : 0;

	for (;;) {
		int timeout = spin_until && mono_now_ns() < spin_until ? 0 : -1;
		int n = poll(pfd, 2, timeout);
		if (n < 0 && errno != EINTR)
			return false;
		if (atomic_load(&e->stopping) || (n > 0 && pfd[1].revents))
			return false;
		if (n > 0 && (pfd[0].revents & (POLLERR | POLLHUP | POLLNVAL)))
			return false;
		if (n > 0)
			return true;
	}
}

void *engine_handler_thread(void *arg)
{
	struct worker *w = arg;
	struct lvm_engine *e = w->e;

	thread_set_latency_critical();	/* a faulting vCPU waits for us */
	while (handler_wait(e)) {
		atomic_fetch_add(&e->demand_active, 1);
		engine_drain_events(e, w);
		engine_serve_queued(w);
		demand_done(e);
	}
	return NULL;
}

/* ---- background fill ------------------------------------------------------ */

static void fill_yield_to_demand(struct lvm_engine *e)
{
	if (!atomic_load(&e->demand_active))
		return;
	pthread_mutex_lock(&e->lock);
	while (atomic_load(&e->demand_active) && !atomic_load(&e->stopping))
		pthread_cond_wait(&e->cond, &e->lock);
	pthread_mutex_unlock(&e->lock);
}

/* opts.fill_delay_ms: let the first demand fault go first (demand_done()
 * broadcasts after each batch; stop broadcasts too). */
static void fill_wait_first_fault(struct lvm_engine *e)
{
	if (!e->opts.fill_delay_ms)
		return;
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	uint64_t ns = (uint64_t)dl.tv_nsec + e->opts.fill_delay_ms * 1000000ull;
	dl.tv_sec += (time_t)(ns / 1000000000ull);
	dl.tv_nsec = (long)(ns % 1000000000ull);
	pthread_mutex_lock(&e->lock);
	while (!atomic_load(&e->st.faults) && !atomic_load(&e->stopping))
		if (pthread_cond_timedwait(&e->cond, &e->lock, &dl) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&e->lock);
}

static void fill_region(struct worker *w, struct region *r)
{
	struct lvm_engine *e = w->e;
	size_t chunk = e->opts.fill_chunk ? e->opts.fill_chunk : DEFAULT_FILL_CHUNK;
	uint64_t span = chunk > r->psz ? chunk >> r->pshift : 1;
	uint64_t piece = FILL_PIECE > r->psz ? FILL_PIECE >> r->pshift : 1;

	for (uint64_t p = 0; p < r->npages && !atomic_load(&e->stopping); ) {
		if (atomic_load(&r->gone))
			return;
		fill_yield_to_demand(e);
		if (page_get(r, p) != PG_MISSING) {
			p++;
			continue;
		}
		struct run run;
		uint64_t hi = p + span < r->npages ? p + span : r->npages;
		if (!engine_claim_run(e, r, p, p, hi, &run))
			continue;
		uint64_t len = (run.hi - run.lo) << r->pshift;
		const void *data = NULL;
		if (r->src->ops.hint)
			r->src->ops.hint(r->src->ctx, r->src_off + (run.lo << r->pshift), len);
		int ret = source_get(r->src, r->src_off + (run.lo << r->pshift), len,
				     w->scratch, &data);
		if (ret == LVM_SOURCE_PENDING) {
			p = run.hi;
			continue;
		}
		if (ret < 0) {
			engine_fail_run(e, &run, ret, "background fill: reading the source");
			p = run.hi;
			continue;
		}
		for (uint64_t a = run.lo; a < run.hi; a += piece) {
			struct run sub = { r, a, a + piece < run.hi ? a + piece : run.hi };
			const uint8_t *src = ret == LVM_SOURCE_ZERO ? NULL :
				(const uint8_t *)data + ((a - run.lo) << r->pshift);
			engine_install(w, &sub, src, true);
			engine_serve_queued(w);	/* faults we drained on EAGAIN */
		}
		p = run.hi;
	}
}

void *engine_fill_thread(void *arg)
{
	struct worker *w = arg;
	fill_wait_first_fault(w->e);
	for (unsigned i = 0; i < w->e->nregions && !atomic_load(&w->e->stopping); i++)
		fill_region(w, &w->e->regions[i]);
	return NULL;
}
