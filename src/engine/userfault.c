/* SPDX-License-Identifier: MIT */
/* Secret-free guest_memfd regions: pwrite + userfault bitmap (userfault.h). */
#include <errno.h>
#include <sched.h>
#include <unistd.h>

#include "engine/userfault.h"

static uint64_t sf_bit(const struct region *r, uint64_t p)
{
	return r->ufbit0 + p;
}

static bool sf_bit_set(const struct region *r, uint64_t p)
{
	uint64_t b = sf_bit(r, p);
	return atomic_load_explicit(&r->ufbits[b / 64], memory_order_acquire) >> (b % 64) & 1;
}

/* Release: whoever sees the bit clear (KVM, on the vCPU's next entry) sees
 * the page content written before. */
static void sf_clear_bits(struct region *r, uint64_t a, uint64_t b)
{
	for (uint64_t p = a; p < b; p++) {
		uint64_t bit = sf_bit(r, p);
		atomic_fetch_and_explicit(&r->ufbits[bit / 64], ~(1ull << (bit % 64)),
					  memory_order_release);
	}
}

static uint64_t sf_host_addr(struct region *r, uint64_t p)
{
	return atomic_load(&r->base) + (p << r->pshift);
}

static void sf_attach_region(struct lvm_engine *e, struct region *r, int gmem_fd,
			     uint64_t gmem_off, _Atomic uint64_t *bitmap);

static struct region *sf_region_by_id(struct lvm_engine *e, int id)
{
	for (unsigned i = 0; i < e->nregions; i++)
		if (e->regions[i]->id == (uint64_t)id)
			return e->regions[i];
	return NULL;
}

int engine_sf_attach(struct lvm_engine *e, int id, int gmem_fd, uint64_t gmem_off,
		     _Atomic uint64_t *bitmap)
{
	if (e->started || id < 0 || !bitmap || gmem_fd < 0)
		return -EINVAL;
	pthread_rwlock_wrlock(&e->regions_lock);
	struct region *r = sf_region_by_id(e, id);
	int ret = r && r->psz == 4096 && !(gmem_off % 4096) ? 0 : -EINVAL;
	if (!ret)
		sf_attach_region(e, r, gmem_fd, gmem_off, bitmap);
	pthread_rwlock_unlock(&e->regions_lock);
	return ret;
}

static void sf_attach_region(struct lvm_engine *e, struct region *r, int gmem_fd,
			     uint64_t gmem_off, _Atomic uint64_t *bitmap)
{
	r->gmem_fd = gmem_fd;
	r->gmem_off = gmem_off;
	r->ufbit0 = gmem_off >> 12;
	r->ufbits = bitmap;
	r->zeropage_ok = false;	/* shared memory: zeros are a COPY */
	/* Bits the VMM cleared before the handshake: its own pages. */
	for (uint64_t p = 0; p < r->npages; p++)
		if (!sf_bit_set(r, p))
			page_cas(e, r, p, PG_MISSING, PG_PRESENT);
}

/* pwrite all of [buf, len) at off; a short write or EEXIST mean the page at
 * the stop is already populated (PROTOCOL.md).  Returns bytes written
 * before the stop (the caller skips one page there), or -errno. */
static ssize_t sf_pwrite(struct lvm_engine *e, int fd, const uint8_t *buf, size_t len,
			 uint64_t off, bool *stopped)
{
	size_t done = 0;
	*stopped = false;
	while (done < len) {
		ssize_t n = pwrite(fd, buf + done, len - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		atomic_fetch_add(&e->sf.pwrites, 1);
		if (n < 0 && errno != EEXIST)
			return -errno;
		if (n <= 0) {
			*stopped = true;
			break;
		}
		done += (size_t)n & ~(size_t)4095;
		if ((size_t)n % 4096) {	/* a partial page: populated by someone else */
			*stopped = true;
			break;
		}
	}
	return (ssize_t)done;
}

/* Write the CLAIMED pages [a, b) (bits all set), clear their bits. */
static int sf_write_span(struct worker *w, struct region *r, uint64_t a, uint64_t b,
			 const uint8_t *src, bool background)
{
	struct lvm_engine *e = w->e;
	_Atomic uint64_t *counter = !background ? &e->st.pages_demand :
		w->prefetching ? &e->st.pages_prefetch : &e->st.pages_background;
	while (a < b) {
		size_t len = (size_t)(b - a) << r->pshift;
		const uint8_t *buf = src ? src : e->zero_buf;
		bool stopped;
		ssize_t n = sf_pwrite(e, r->gmem_fd, buf, len, r->gmem_off + (a << r->pshift),
				      &stopped);
		if (n < 0)
			return (int)n;
		uint64_t wrote = (uint64_t)n >> r->pshift;
		atomic_fetch_add(&e->sf.pages_written, wrote);
		sf_clear_bits(r, a, a + wrote);
		engine_mark_present(e, r, a, a + wrote, counter, !src);
		a += wrote;
		if (src)
			src += wrote << r->pshift;
		if (stopped && a < b) {	/* already populated: clear, skip */
			atomic_fetch_add(&e->sf.already_populated, 1);
			sf_clear_bits(r, a, a + 1);
			engine_mark_present(e, r, a, a + 1, counter, false);
			a++;
			if (src)
				src += r->psz;
		}
	}
	return 0;
}

int engine_sf_install(struct worker *w, struct run *run, const uint8_t *data,
		      bool background)
{
	struct lvm_engine *e = w->e;
	struct region *r = run->r;
	int ret = 0;
	for (uint64_t p = run->lo; p < run->hi && !ret; ) {
		/* Never a second write: a page whose bit someone cleared is theirs. */
		if (page_get(r, p) != PG_CLAIMED || !sf_bit_set(r, p)) {
			if (page_cas(e, r, p, PG_CLAIMED, PG_PRESENT))
				atomic_fetch_add(&e->sf.already_populated, 1);
			p++;
			continue;
		}
		uint64_t q = p + 1;
		while (q < run->hi && page_get(r, q) == PG_CLAIMED && sf_bit_set(r, q))
			q++;
		const uint8_t *src = data ? data + ((p - run->lo) << r->pshift) : NULL;
		ret = sf_write_span(w, r, p, q, src, background);
		p = q;
	}
	if (ret) {
		struct run rest = *run;
		engine_fail_run(e, NULL, &rest, ret, "pwrite into the guest_memfd");
		return ret;
	}
	/* A VMM thread may sit in a MISSING fault on these pages: it retries
	 * and finds them in the page cache (a MINOR fault, CONTINUE). */
	uffd_wake(e->uffd, sf_host_addr(r, run->lo), (run->hi - run->lo) << r->pshift);
	return 0;
}

static struct region *sf_region_of_offset(struct lvm_engine *e, uint64_t off, uint64_t *p)
{
	for (unsigned i = 0; i < e->nregions; i++) {
		struct region *r = e->regions[i];
		if (r->ufbits && off >= r->gmem_off && off - r->gmem_off < r->size) {
			*p = (off - r->gmem_off) >> r->pshift;
			return r;
		}
	}
	return NULL;
}

/* Claim p's fault-around window, fetch it and pwrite it. */
static int sf_populate_window(struct worker *w, struct region *r, uint64_t p,
			      uint64_t *populated)
{
	struct lvm_engine *e = w->e;
	size_t fa = e->opts.fault_around > r->psz ? e->opts.fault_around : r->psz;
	uint64_t span = fa >> r->pshift, win_lo = p / span * span;
	uint64_t win_hi = win_lo + span < r->npages ? win_lo + span : r->npages;
	struct run run;
	if (!engine_claim_run(e, r, p, win_lo, win_hi, &run))
		return 0;	/* lost the race: the claimer populates it */
	const void *data = NULL;
	uint64_t before = atomic_load(&e->sf.pages_written);
	int ret = engine_fetch(w, &run, &data);
	if (ret == LVM_SOURCE_PENDING)
		return 0;
	if (ret < 0) {
		engine_fail_run(e, NULL, &run, ret, "reading the source");
		return ret;
	}
	ret = engine_sf_install(w, &run, ret == LVM_SOURCE_ZERO ? NULL : data, false);
	*populated = (atomic_load(&e->sf.pages_written) - before) << r->pshift;
	return ret;
}

/* One request on page p of r; regions_lock held for reading. */
static int sf_serve_page(struct lvm_engine *e, struct region *r, uint64_t p,
			 uint64_t *populated)
{
	struct worker *w = e->workers[e->nworkers - 1];
	int ret = 0;
	pthread_mutex_lock(&e->supply_lock);
	uint8_t st = page_get(r, p);
	if (st == PG_MISSING && !sf_bit_set(r, p)) {
		page_cas(e, r, p, PG_MISSING, PG_PRESENT);	/* the VMM's page */
	} else if (st == PG_MISSING) {
		ret = sf_populate_window(w, r, p, populated);
	} else if (st == PG_ZERO && page_cas(e, r, p, PG_ZERO, PG_CLAIMED)) {
		struct run run = { r, p, p + 1 };	/* discarded: zeros */
		ret = engine_sf_install(w, &run, NULL, false);
	} else if (st == PG_PRESENT && sf_bit_set(r, p)) {
		sf_clear_bits(r, p, p + 1);	/* COPY landed, its bit not yet cleared */
	} else if (st == PG_FAILED || st == PG_GONE) {
		ret = -EIO;
	}
	pthread_mutex_unlock(&e->supply_lock);
	/* CLAIMED: another thread is installing it; the vCPU exits again if
	 * the bit is still set when it re-enters. */
	return ret;
}

int engine_sf_serve_request(struct lvm_engine *e, uint64_t off, uint64_t *populated)
{
	uint64_t p;
	*populated = 0;
	if (!e->started)
		return -EINVAL;
	pthread_rwlock_rdlock(&e->regions_lock);	/* r stays valid (engine.h) */
	struct region *r = sf_region_of_offset(e, off, &p);
	int ret = !r || off % 4096 ? -ERANGE : 0;
	if (!ret) {
		atomic_fetch_add(&e->sf.requests, 1);
		ret = sf_serve_page(e, r, p, populated);
	}
	pthread_rwlock_unlock(&e->regions_lock);
	return ret;
}

bool engine_sf_serve_fault(struct worker *w, struct region *r, uint64_t p)
{
	struct lvm_engine *e = w->e;
	uint8_t st = page_get(r, p);
	if (st == PG_MISSING && !sf_bit_set(r, p) && page_cas(e, r, p, PG_MISSING, PG_PRESENT))
		st = PG_PRESENT;	/* cleared by the VMM after the handshake */
	if (st != PG_PRESENT)
		return false;
	/* Populated (pwrite, or by the VMM): in the page cache, map it. */
	int ret = engine_continue_only(w, r, p);
	if (!ret) {
		atomic_fetch_add(&e->sf.continues, 1);
		return true;
	}
	if (ret != -EFAULT)
		return true;	/* recorded by engine_continue_only */
	/* Not in the page cache although its bit is clear: a page the VMM
	 * declared its own without writing it.  Its content is the
	 * guest_memfd's, zeros, exactly what KVM maps for it. */
	uint64_t done;
	pthread_rwlock_rdlock(&e->mm_lock);
	ret = uffd_copy(e->uffd, sf_host_addr(r, p), e->zero_buf, r->psz, 0, &done);
	pthread_rwlock_unlock(&e->mm_lock);
	if (ret == -EEXIST)
		uffd_wake(e->uffd, sf_host_addr(r, p), r->psz);
	else if (ret)
		engine_record_error(e, ret, "zeros for the VMM's own page at 0x%llx",
				    (unsigned long long)sf_host_addr(r, p));
	else
		atomic_fetch_add(&e->st.pages_zero, 1);
	return true;
}

void engine_sf_after_copy(struct lvm_engine *e, const struct run *run)
{
	struct region *r = run->r;
	uint64_t n = 0;
	for (uint64_t p = run->lo; p < run->hi; p++)
		if (page_get(r, p) == PG_PRESENT && sf_bit_set(r, p)) {
			sf_clear_bits(r, p, p + 1);
			n++;
		}
	atomic_fetch_add(&e->sf.pages_copied, n);
	/* The COPY did not wake (DONTWAKE): the faulting thread goes on now. */
	uffd_wake(e->uffd, sf_host_addr(r, run->lo), (run->hi - run->lo) << r->pshift);
}

void engine_sf_stats(struct lvm_engine *e, struct engine_sf_stats *s)
{
	s->requests = atomic_load(&e->sf.requests);
	s->pwrites = atomic_load(&e->sf.pwrites);
	s->pages_written = atomic_load(&e->sf.pages_written);
	s->pages_copied = atomic_load(&e->sf.pages_copied);
	s->continues = atomic_load(&e->sf.continues);
	s->already_populated = atomic_load(&e->sf.already_populated);
}
