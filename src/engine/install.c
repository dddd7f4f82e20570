/* SPDX-License-Identifier: MIT */
/*
 * Claiming pages and putting their content in place.  See engine.h for the
 * state machine and why installs hold mm_lock for reading.
 */
#include <errno.h>
#include <sched.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/install.h"

bool engine_claim_run(struct lvm_engine *e, struct region *r, uint64_t p,
		      uint64_t win_lo, uint64_t win_hi, struct run *out)
{
	if (!page_cas(e, r, p, PG_MISSING, PG_CLAIMED))
		return false;
	uint64_t lo = p, hi = p + 1;
	while (hi < win_hi && page_cas(e, r, hi, PG_MISSING, PG_CLAIMED))
		hi++;
	while (lo > win_lo && page_cas(e, r, lo - 1, PG_MISSING, PG_CLAIMED))
		lo--;
	*out = (struct run){ r, lo, hi };
	return true;
}

static uint64_t page_addr(struct region *r, uint64_t p)
{
	return atomic_load(&r->base) + (p << r->pshift);
}

/* Back off after EAGAIN without spinning: first yield, then sleep a little
 * longer each time (the madvise/munmap thread must run to finish). */
static void eagain_backoff(unsigned attempt)
{
	if (attempt < 4) {
		sched_yield();
		return;
	}
	long us = 10L << (attempt < 10 ? attempt - 4 : 6);
	struct timespec ts = { 0, (us > 1000 ? 1000 : us) * 1000 };
	nanosleep(&ts, NULL);
}

/* COPY/CONTINUE said EAGAIN: a REMOVE/UNMAP is queued (mmap_changing). */
static bool install_must_retry(struct lvm_engine *e, int ret)
{
	return ret == -EAGAIN && !atomic_load(&e->stopping);
}

/*
 * Called with mm_lock held for reading, after install_must_retry(): let go
 * of the lock, read the queued events (faults land on w's queue), back off,
 * and take the lock again.  The caller looks at the pages' state again.
 */
static void install_wait_for_events(struct worker *w, unsigned *attempt)
{
	struct lvm_engine *e = w->e;
	atomic_fetch_add(&e->st.eagain_retries, 1);
	pthread_rwlock_unlock(&e->mm_lock);
	engine_drain_events(e, w);
	eagain_backoff((*attempt)++);
	pthread_rwlock_rdlock(&e->mm_lock);
}

/* MINOR: put len bytes at page a into the page cache (src NULL: zeros).
 * pwrite on shmem (memcpy speed, no fault per page), else the alias. */
static void install_fill_cache(struct lvm_engine *e, struct region *r, uint64_t a,
			       const uint8_t *src, uint64_t len)
{
	uint64_t off = a << r->pshift, put = 0;
	const uint8_t *from = src ? src : e->zero_buf;
	while (r->pwrite_fd >= 0 && put < len && (src || len <= e->max_unit)) {
		ssize_t n = pwrite(r->pwrite_fd, from + put, len - put,
				   (off_t)(r->pwrite_off + off + put));
		if (n <= 0)
			break;
		put += (uint64_t)n;
	}
	if (put == len)
		return;
	if (src)
		memcpy(r->alias + off + put, src + put, len - put);
	else
		memset(r->alias + off + put, 0, len - put);
}

/*
 * Put one sub-run [a, b) of CLAIMED pages in place (src NULL: zeros).  Zeros
 * the guest is about to touch (a fault, a working set) are a COPY from the
 * zero buffer: a real, writable page.  UFFDIO_ZEROPAGE maps the shared zero
 * page read-only, and the guest's first write then takes a COW fault — on
 * anon, a lazy restore of a mostly-zero 256 MiB workload snapshot took 7.0 s
 * and 46 K host faults with ZEROPAGE, 3.6 s and 0.8 K with COPY
 * (docs/restore-latency.md).  The background fill's zeros stay ZEROPAGE:
 * nobody may touch them, and they then cost no memory.  Returns the number of
 * pages now present (>= 0, EEXIST counts as present: someone else won), or
 * -errno; -EAGAIN leaves *done_pages at the progress made.
 */
static int install_span(struct lvm_engine *e, struct region *r, uint64_t a, uint64_t b,
			const uint8_t *src, bool zero_map, uint64_t *done_pages)
{
	uint64_t len = (b - a) << r->pshift, done = 0;
	uint64_t dst = page_addr(r, a);
	int ret;

	if (r->shared_cache && src) {
		ret = uffd_continue(e->uffd, dst, len, 0, &done);
	} else if (r->minor) {
		/* filemap_add after alloc_folio: the content goes into the page
		 * cache first — never CONTINUE a page we did not write. */
		install_fill_cache(e, r, a, src, len);
		ret = uffd_continue(e->uffd, dst, len, 0, &done);
	} else if (src) {
		/* Secret-free: wake only once the bits are clear too
		 * (engine_sf_after_copy), so the woken VMM sees them clear. */
		ret = uffd_copy(e->uffd, dst, src, len, r->ufbits ? UFFDIO_COPY_MODE_DONTWAKE : 0,
				&done);
	} else if (atomic_load(&r->zeropage_ok) && zero_map) {
		ret = uffd_zeropage(e->uffd, dst, len, 0, &done);
		if (ret == -EINVAL && !done) {
			/* Another process's shared memory (a VMM on memfd): ZEROPAGE
			 * is for private anon only; a COPY of zeros from now on. */
			atomic_store(&r->zeropage_ok, false);
			ret = uffd_copy(e->uffd, dst, e->zero_buf, len, 0, &done);
		}
	} else {
		ret = uffd_copy(e->uffd, dst, e->zero_buf, len, 0, &done);
	}
	*done_pages = done >> r->pshift;
	return ret;
}

void engine_mark_present(struct lvm_engine *e, struct region *r, uint64_t a, uint64_t b,
			 _Atomic uint64_t *counter, bool zero)
{
	uint64_t n = 0;
	for (uint64_t p = a; p < b; p++)
		n += page_cas(e, r, p, PG_CLAIMED, PG_PRESENT);
	atomic_fetch_add(counter, n);
	if (zero)
		atomic_fetch_add(&e->st.pages_zero, n);
}

/* The kernel says the range is gone: the VMA was unmapped or the process
 * that owned it exited (remote memory). */
static bool install_region_gone(int err)
{
	return err == -ENOENT || err == -ESRCH;
}

int engine_install(struct worker *w, struct run *run, const uint8_t *data, bool background)
{
	struct lvm_engine *e = w->e;
	struct region *r = run->r;
	bool need_wake = false;
	unsigned attempt = 0;
	int ret = 0;
	uint64_t p = run->lo;
	_Atomic uint64_t *counter = !background ? &e->st.pages_demand :
		w->prefetching ? &e->st.pages_prefetch : &e->st.pages_background;

	pthread_rwlock_rdlock(&e->mm_lock);
	while (p < run->hi) {
		if (page_get(r, p) != PG_CLAIMED) {	/* lost to a REMOVE/UNMAP */
			need_wake = true;
			p++;
			continue;
		}
		uint64_t b = p + 1, done = 0;
		while (b < run->hi && page_get(r, b) == PG_CLAIMED)
			b++;
		const uint8_t *src = data ? data + ((p - run->lo) << r->pshift) : NULL;
		ret = install_span(e, r, p, b, src, background && !w->prefetching, &done);
		engine_mark_present(e, r, p, p + done, counter, !data);
		p += done;
		if (!ret)
			continue;
		if (ret == -EEXIST) {	/* populated by someone else: that is success */
			engine_mark_present(e, r, p, p + 1, counter, false);
			need_wake = true;
			p++;
			ret = 0;
			continue;
		}
		if (install_must_retry(e, ret)) {
			install_wait_for_events(w, &attempt);
			ret = 0;
			continue;
		}
		break;
	}
	pthread_rwlock_unlock(&e->mm_lock);

	if (ret && install_region_gone(ret)) {
		atomic_store(&r->gone, true);
		for (uint64_t q = p; q < run->hi; q++)
			page_cas(e, r, q, PG_CLAIMED, PG_GONE);
		return ret;
	}
	if (ret) {
		struct run rest = { r, p, run->hi };
		if (r->minor && r->mem)	/* filemap_remove: undo the page-cache fill */
			backing_remove(r->mem, p << r->pshift, (run->hi - p) << r->pshift);
		engine_fail_run(e, w, &rest, ret, "installing the page");
		return ret;
	}
	if (need_wake)
		uffd_wake(e->uffd, page_addr(r, run->lo), (run->hi - run->lo) << r->pshift);
	return 0;
}

int engine_fetch(struct worker *w, const struct run *run, const void **data)
{
	struct region *r = run->r;
	uint64_t len = (run->hi - run->lo) << r->pshift;
	uint64_t off = r->src_off + (run->lo << r->pshift);

	*data = NULL;
	if (r->src->ops.hint)
		r->src->ops.hint(r->src->ctx, off, len);
	return source_get(r->src, off, len, w->scratch, data);
}

int engine_fetch_install(struct worker *w, struct run *run, bool background)
{
	const void *data;
	int ret = engine_fetch(w, run, &data);
	if (ret == LVM_SOURCE_PENDING)
		return 0;	/* lvm_engine_supply() finishes it */
	if (ret < 0) {
		engine_fail_run(w->e, w, run, ret, "reading the source");
		return ret;
	}
	return engine_install(w, run, ret == LVM_SOURCE_ZERO ? NULL : data, background);
}

int engine_serve_zero(struct worker *w, struct region *r, uint64_t p)
{
	/* Claim it even though the content is known: two threads zeroing a
	 * MINOR page through the alias could wipe what the guest wrote between. */
	if (!page_cas(w->e, r, p, PG_ZERO, PG_CLAIMED))
		return 0;
	struct run run = { r, p, p + 1 };
	return engine_install(w, &run, NULL, false);
}

int engine_continue_only(struct worker *w, struct region *r, uint64_t p)
{
	struct lvm_engine *e = w->e;
	uint64_t done = 0;
	int ret;
	unsigned attempt = 0;

	pthread_rwlock_rdlock(&e->mm_lock);
	for (;;) {
		ret = uffd_continue(e->uffd, page_addr(r, p), r->psz, 0, &done);
		if (!install_must_retry(e, ret))
			break;
		install_wait_for_events(w, &attempt);
	}
	pthread_rwlock_unlock(&e->mm_lock);
	if (ret == -EEXIST) {
		uffd_wake(e->uffd, page_addr(r, p), r->psz);
		ret = 0;
	}
	/* -EFAULT: no page in the page cache (a hole); the caller serves
	 * zeros.  Anything else is worth reporting. */
	if (ret && ret != -EFAULT && !install_region_gone(ret))
		engine_record_error(e, ret, "UFFDIO_CONTINUE at 0x%llx",
				    (unsigned long long)page_addr(r, p));
	return ret;
}

static uint64_t mark_failed(struct lvm_engine *e, struct region *r, uint64_t a, uint64_t b)
{
	uint64_t n = 0;
	for (uint64_t p = a; p < b; p++)
		n += page_cas(e, r, p, PG_CLAIMED, PG_FAILED);
	return n;
}

/*
 * Poison the pages of run that are still CLAIMED, under mm_lock for reading
 * (so no REMOVE is applied between the look and the poison).  A page a REMOVE
 * made ZERO is the guest's discarded page, not ours to poison.  EEXIST means
 * someone populated that page (it is delivered); the poison goes on after
 * it.  Returns the first error that left pages unpoisoned, or 0.
 */
static int poison_claimed(struct lvm_engine *e, struct worker *w, struct run *run,
			  uint64_t *failed)
{
	struct region *r = run->r;
	unsigned attempt = 0;
	int first_err = (e->features & UFFD_FEATURE_POISON) ? 0 : -EOPNOTSUPP;

	pthread_rwlock_rdlock(&e->mm_lock);
	for (uint64_t p = run->lo; p < run->hi; ) {
		if (page_get(r, p) != PG_CLAIMED) {
			p++;
			continue;
		}
		uint64_t b = p + 1, done = 0;
		while (b < run->hi && page_get(r, b) == PG_CLAIMED)
			b++;
		int ret = first_err == -EOPNOTSUPP ? -EOPNOTSUPP :
			uffd_poison(e->uffd, page_addr(r, p), (b - p) << r->pshift, 0, &done);
		uint64_t upto = p + (done >> r->pshift);
		*failed += mark_failed(e, r, p, upto);
		p = upto;
		if (!ret)
			continue;
		if (ret == -EEXIST) {
			page_cas(e, r, p, PG_CLAIMED, PG_PRESENT);
			p++;
		} else if (install_must_retry(e, ret)) {
			if (w) {
				install_wait_for_events(w, &attempt);
			} else {	/* no queue to drain onto: the handlers read it */
				pthread_rwlock_unlock(&e->mm_lock);
				eagain_backoff(attempt++);
				pthread_rwlock_rdlock(&e->mm_lock);
			}
		} else {	/* cannot poison: the state still says FAILED */
			if (!first_err)
				first_err = ret;
			*failed += mark_failed(e, r, p, b);
			p = b;
		}
	}
	pthread_rwlock_unlock(&e->mm_lock);
	return first_err;
}

void engine_fail_run(struct lvm_engine *e, struct worker *w, struct run *run, int err,
		     const char *why)
{
	struct region *r = run->r;
	uint64_t addr = page_addr(r, run->lo), len = (run->hi - run->lo) << r->pshift;
	uint64_t n = 0;

	/* Never a silent zero page: the faulting thread gets SIGBUS from the
	 * poison marker (KVM forwards it to the vCPU thread as BUS_MCEERR_AR). */
	int pret = poison_claimed(e, w, run, &n);
	/* Every thread waiting on the run must wake: UFFDIO_POISON wakes only
	 * the range it updated, not the pages after an EEXIST or a REMOVE.
	 * Woken, a thread retries and meets its poison, content or zero page. */
	uffd_wake(e->uffd, addr, len);
	atomic_fetch_add(&e->st.pages_failed, n);
	atomic_store(&e->fill_error, err);
	engine_record_error(e, err,
			    "%s for guest page at 0x%llx (source offset 0x%llx, %llu bytes)%s",
			    why, (unsigned long long)addr,
			    (unsigned long long)(r->src_off + (run->lo << r->pshift)),
			    (unsigned long long)len,
			    pret ? "; could not poison it, the faulting thread stays blocked" : "");
}
