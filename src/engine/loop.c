/* SPDX-License-Identifier: MIT */
/*
 * The fault engine's threads: handlers that read the uffd, apply the events
 * and serve faults; a background thread that streams the rest.  The
 * core loop is Firecracker's example handler's, made multi-threaded: poll,
 * read everything pending, apply removals, serve faults.
 */
#include <errno.h>
#include <poll.h>

#include "engine/loop.h"
#include "engine/userfault.h"
#include "util/thread-latency.h"

/* Background installs happen in pieces this big so a thread waiting to read
 * the uffd (write lock) never waits behind one long COPY. */
#define FILL_PIECE (256u << 10)

/* ---- serving a fault ----------------------------------------------------- */

/*
 * MINOR region, page already served (PRESENT) or discarded (ZERO).  The
 * page cache decides, asked by UFFDIO_CONTINUE itself: it looks the page up
 * and swaps it back in if shmem had swapped it out, so it fails with EFAULT
 * only where the file has no page at all (a hole: the guest punched it with
 * MADV_REMOVE, or the memory's owner with fallocate).  Only then are zeros
 * the file's content.  Never decide from residency (mincore): a swapped-out
 * page is "not resident" and still holds the guest's data (issue 9).
 */
static void engine_serve_cached(struct worker *w, struct region *r, uint64_t p)
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
		engine_fail_run(w->e, w, &run, ret, "mapping a page the page cache holds");
	}
}

/*
 * A WP fault, or a MINOR fault on memory served in MISSING mode (a shared
 * cache's private mapping serves MINOR too: install.c; so does a
 * secret-free region, registered MISSING|MINOR by its VMM, whose populated
 * pages are CONTINUEd: userfault.c), is about a
 * page that exists: COPY would answer EEXIST, the wake would retry the
 * access, and the fault would come back forever.  It comes from a peer (an
 * adopted uffd) that registered its memory for more than it told us: say
 * so, loudly, and leave the fault unanswered rather than loop.
 */
static bool fault_unservable(struct lvm_engine *e, struct region *r, const struct uffd_msg *m)
{
	uint64_t fl = m->arg.pagefault.flags;
	const char *kind = (fl & UFFD_PAGEFAULT_FLAG_WP) ? "write-protect" :
			   ((fl & UFFD_PAGEFAULT_FLAG_MINOR) && !r->minor && !r->shared_cache &&
			    !r->ufbits) ?
			   "MINOR" : NULL;
	if (kind)
		engine_record_error(e, -EPROTO, "a %s fault at 0x%llx: the memory is registered "
				    "for more than MISSING; not answered (a COPY would meet "
				    "EEXIST forever)", kind,
				    (unsigned long long)m->arg.pagefault.address);
	return kind != NULL;
}

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
	if (fault_unservable(e, r, m))
		return;
	uint64_t p = (addr - atomic_load(&r->base)) >> r->pshift;
	uint8_t st = page_get(r, p);
	if (r->ufbits && engine_sf_serve_fault(w, r, p)) {
		histogram_record(&e->fault_lat, mono_now_ns() - t0);
		return;
	}
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
			if (r->ufbits)
				engine_sf_after_copy(e, &run);
			if (e->opts.on_demand)	/* after the install: the vCPU runs again */
				e->opts.on_demand(e->opts.on_demand_ctx, r->src,
						  r->src_off + (p << r->pshift));
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
	case PG_FAILED: {	/* raised before the poison went in */
		uint64_t done, page = addr & ~((uint64_t)r->psz - 1);
		pthread_rwlock_rdlock(&e->mm_lock);
		int ret = uffd_poison(e->uffd, page, r->psz, 0, &done);
		pthread_rwlock_unlock(&e->mm_lock);
		if (ret)	/* EEXIST: poisoned already, but nobody woke this one */
			uffd_wake(e->uffd, page, r->psz);
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

static void demand_done(struct lvm_engine *e)
{
	if (atomic_fetch_sub(&e->demand_active, 1) == 1) {
		pthread_mutex_lock(&e->lock);
		pthread_cond_broadcast(&e->cond);
		pthread_mutex_unlock(&e->lock);
	}
}

/*
 * Adaptive polling (docs/engine.md §3: waking an idle handler costs far more than
 * the fault itself, ~60-100 us across CPUs here).  A handler that has just
 * served a fault spins on the uffd for up to ADAPTIVE_SPIN_NS while faults
 * are dense, as NAPI busy-poll and io_uring's SQPOLL idle do; it sleeps at
 * once when they are sparse.  Dense: the next fault came while spinning, or
 * within ADAPTIVE_DENSE_NS of the last one served (a sleeping handler's
 * wake-up included).  A spin that ends with nothing marks the stream sparse,
 * so an idle VM costs one bounded spin after its last fault, then nothing.
 * One handler spins at a time: the vCPUs need the other CPUs.
 * opts.spin_us > 0 replaces this by a fixed spin after every batch.
 */
#define ADAPTIVE_SPIN_NS (100 * 1000ull)
#define ADAPTIVE_DENSE_NS (300 * 1000ull)

static uint64_t handler_spin_ns(struct lvm_engine *e, const struct worker *w)
{
	uint64_t ns = e->opts.spin_us ? e->opts.spin_us * 1000ull :
		      w->faults_dense ? ADAPTIVE_SPIN_NS : 0;
	if (ns && atomic_exchange(&e->spinning, true))
		return 0;	/* another handler spins already */
	return ns;
}

/* One poll of the uffd and the stop eventfd: 1 a fault or event, 0 nothing
 * (timeout), -1 stop or a dead uffd. */
static int handler_poll(struct lvm_engine *e, int timeout)
{
	struct pollfd pfd[2] = { { e->uffd, POLLIN, 0 }, { e->stop_efd, POLLIN, 0 } };
	int n = poll(pfd, 2, timeout);
	if (n < 0)
		return errno == EINTR ? 0 : -1;
	if (atomic_load(&e->stopping) || (n > 0 && pfd[1].revents))
		return -1;
	if (n > 0 && (pfd[0].revents & (POLLERR | POLLHUP | POLLNVAL)))
		return -1;
	return n > 0;
}

/* Wait for the uffd to have something; false when the engine stops. */
static bool handler_wait(struct lvm_engine *e, struct worker *w)
{
	uint64_t spin = handler_spin_ns(e, w);
	int got = 0;
	if (spin) {
		uint64_t until = mono_now_ns() + spin;
		while (!got && mono_now_ns() < until)
			got = handler_poll(e, 0);
		atomic_store(&e->spinning, false);
		w->faults_dense = got > 0;	/* nothing while spinning: sparse */
	}
	while (!got)
		got = handler_poll(e, -1);
	if (got > 0 && !spin)	/* woken from sleep: dense if it came soon */
		w->faults_dense = mono_now_ns() - w->served_ns < ADAPTIVE_DENSE_NS;
	return got > 0;
}

void *engine_handler_thread(void *arg)
{
	struct worker *w = arg;
	struct lvm_engine *e = w->e;

	thread_set_latency_critical();	/* a faulting vCPU waits for us */
	while (handler_wait(e, w)) {
		engine_serve_pending(w);
		w->served_ns = mono_now_ns();
	}
	return NULL;
}

int engine_serve_pending(struct worker *w)
{
	struct lvm_engine *e = w->e;
	atomic_fetch_add(&e->demand_active, 1);
	pthread_rwlock_rdlock(&e->regions_lock);
	int n = engine_drain_events(e, w);
	engine_serve_queued(w);
	pthread_rwlock_unlock(&e->regions_lock);
	demand_done(e);
	return n;
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
	struct timespec dl = mono_deadline(e->opts.fill_delay_ms);
	pthread_mutex_lock(&e->lock);
	while (!atomic_load(&e->st.faults) && !atomic_load(&e->stopping))
		if (pthread_cond_timedwait(&e->cond, &e->lock, &dl) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&e->lock);
}

/* Where the fill is: a region id and a page in it.  The region is looked
 * up again for every chunk: it may have been removed in between. */
struct fill_cursor {
	uint64_t id, page;
};

/* Under regions_lock: the region the cursor is in, else the next one (from
 * page 0); NULL when none is left, and then fill_finished is set under the
 * same lock, so a region added after this is seen by its adder (engine.h). */
static struct region *fill_next_region(struct lvm_engine *e, struct fill_cursor *c)
{
	for (unsigned i = 0; i < e->nregions; i++) {
		struct region *r = e->regions[i];
		if (r->id < c->id)
			continue;
		if (r->id > c->id)
			*c = (struct fill_cursor){ r->id, 0 };
		if (c->page < r->npages && !atomic_load(&r->gone))
			return r;
		*c = (struct fill_cursor){ r->id + 1, 0 };
	}
	atomic_store(&e->fill_finished, true);
	return NULL;
}

/* Fill one chunk of r from *page on (the first MISSING page there), below
 * page end. */
static void fill_chunk(struct worker *w, struct region *r, uint64_t *page, uint64_t end)
{
	struct lvm_engine *e = w->e;
	size_t chunk = e->opts.fill_chunk ? e->opts.fill_chunk : ENGINE_DEFAULT_FILL_CHUNK;
	uint64_t span = chunk > r->psz ? chunk >> r->pshift : 1;
	uint64_t piece = FILL_PIECE > r->psz ? FILL_PIECE >> r->pshift : 1;
	uint64_t p = *page;

	while (p < end && page_get(r, p) != PG_MISSING)
		p++;
	*page = p;
	struct run run;
	uint64_t hi = p + span < end ? p + span : end;
	if (p >= end || !engine_claim_run(e, r, p, p, hi, &run))
		return;	/* done, or a fault claimed it first: look again */
	*page = run.hi;
	const void *data;
	int ret = engine_fetch(w, &run, &data);
	if (ret == LVM_SOURCE_PENDING)
		return;
	if (ret < 0) {
		engine_fail_run(e, w, &run, ret, "background fill: reading the source");
		return;
	}
	for (uint64_t a = run.lo; a < run.hi; a += piece) {
		struct run sub = { r, a, a + piece < run.hi ? a + piece : run.hi };
		const uint8_t *src = ret == LVM_SOURCE_ZERO ? NULL :
			(const uint8_t *)data + ((a - run.lo) << r->pshift);
		if (r->ufbits)	/* secret-free: pwrite + bitmap */
			engine_sf_install(w, &sub, src, true);
		else
			engine_install(w, &sub, src, true);
		engine_serve_queued(w);	/* faults we drained on EAGAIN */
	}
}

/* Under regions_lock: the region with that id, NULL once it was removed. */
static struct region *region_by_id(struct lvm_engine *e, uint64_t id)
{
	for (unsigned i = 0; i < e->nregions; i++)
		if (e->regions[i]->id == id)
			return e->regions[i];
	return NULL;
}

/* One range of the prefetch list, a chunk per hold of regions_lock. */
static void fill_prefetch_range(struct worker *w, const struct prefetch_range *pr)
{
	struct lvm_engine *e = w->e;
	for (uint64_t page = pr->lo; !atomic_load(&e->stopping); ) {
		/* No fill_yield_to_demand: the working set must stay ahead of the
		 * vCPUs, and handler threads serve their faults meanwhile (waiting
		 * for them starved it: 811 of 961 faults left at 256 MiB). */
		pthread_rwlock_rdlock(&e->regions_lock);
		struct region *r = region_by_id(e, pr->id);
		bool more = r && page < pr->hi && !atomic_load(&r->gone);
		if (more)
			fill_chunk(w, r, &page, pr->hi);
		pthread_rwlock_unlock(&e->regions_lock);
		if (!more)
			return;
	}
}

/* Everything still missing, region by region in the order they were added. */
static void fill_everything(struct worker *w)
{
	struct lvm_engine *e = w->e;
	struct fill_cursor c = { 0, 0 };
	while (!atomic_load(&e->stopping)) {
		fill_yield_to_demand(e);
		pthread_rwlock_rdlock(&e->regions_lock);
		struct region *r = fill_next_region(e, &c);
		if (r)
			fill_chunk(w, r, &c.page, r->npages);
		pthread_rwlock_unlock(&e->regions_lock);
		if (!r)
			return;
	}
}

/*
 * The prefetch list first (lvm_engine_prefetch: a working set in the order
 * the guest touched it), at once: it is meant to be ahead of the vCPUs.
 * Then, with background_fill, everything else in address order.
 */
static void *engine_fill_thread(void *arg)
{
	struct worker *w = arg;
	struct lvm_engine *e = w->e;
	w->prefetching = true;
	for (size_t i = 0; i < e->nprefetch && !atomic_load(&e->stopping); i++)
		fill_prefetch_range(w, &e->prefetch[i]);
	w->prefetching = false;
	if (!e->opts.background_fill)
		return NULL;
	/* After a working set, the rest is what the guest did not need first:
	 * it gets the CPUs the vCPUs leave idle, not theirs (2 cores here). */
	if (e->nprefetch)
		thread_set_bulk();
	fill_wait_first_fault(e);
	fill_everything(w);
	return NULL;
}

int engine_fill_start(struct lvm_engine *e)
{
	int ret = -pthread_create(&e->fill_thread, NULL, engine_fill_thread, e->fill_worker);
	e->fill_running = !ret;
	return ret;
}

void engine_fill_join(struct lvm_engine *e)
{
	if (e->fill_running)
		pthread_join(e->fill_thread, NULL);
	e->fill_running = false;
}

void engine_fill_restart(struct lvm_engine *e)
{
	engine_fill_join(e);
	if (!atomic_load(&e->stopping) && engine_fill_start(e))
		engine_warn(e, "could not restart the background fill for a region added "
			    "after it finished; its pages are served on demand only");
}
