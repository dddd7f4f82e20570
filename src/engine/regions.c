/* SPDX-License-Identifier: MIT */
/*
 * The region table: adding and removing regions (before start or while the
 * engine runs: memory hotplug, virtio-mem), and the calls that name a range
 * by its source (supply, fail, mark_present, is_present).  See engine.h for
 * regions_lock.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine/loop.h"

static void region_free(struct region *r)
{
	free((void *)r->state);
	lvm_mem_destroy(r->own_mem);
	free(r);
}

static int region_new(uint64_t base, uint64_t size, size_t psz, struct lvm_source *src,
		      uint64_t src_off, struct region **out)
{
	if (!src || !psz || (psz & (psz - 1)) || !size || size % psz || base % psz)
		return -EINVAL;
	if (src_off > src->size || size > src->size - src_off)
		return -ERANGE;	/* never serve from outside the source */
	struct region *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->npages = size / psz;
	r->state = calloc(r->npages, 1);
	if (!r->state) {
		free(r);
		return -ENOMEM;
	}
	atomic_store(&r->base, base);
	r->size = size;
	r->psz = psz;
	r->pshift = (unsigned)__builtin_ctzll(psz);
	r->pwrite_fd = -1;
	r->src = src;
	r->src_off = src_off;
	r->zeropage_ok = psz == 4096;
	*out = r;
	return 0;
}

static bool region_overlaps(struct lvm_engine *e, const struct region *n)
{
	for (unsigned i = 0; i < e->nregions; i++) {
		struct region *o = e->regions[i];
		uint64_t ob = atomic_load(&o->base), nb = atomic_load(&n->base);
		if (nb < ob + o->size && ob < nb + n->size)
			return true;
	}
	return false;
}

/* Our own memory: UFFDIO_REGISTER it for the region's mode. */
static int region_register(struct lvm_engine *e, struct region *r)
{
	if (!r->mem)
		return 0;	/* remote: the other process registered it */
	int ret = 0;
	enum lvm_mode m = r->minor || r->shared_cache ? LVM_MODE_MINOR : LVM_MODE_MISSING;
	if (r->minor)
		ret = backing_alias(r->mem, &r->alias);
	return ret ? ret : backing_can_userfault(r->mem, e->uffd, m, true);
}

/*
 * Under the write lock: no handler is between reading the uffd and serving
 * (they hold the read lock for that), so a fault in the new range is read
 * only once the region is in the table.
 */
static int region_insert(struct lvm_engine *e, struct region *r)
{
	if (e->started && r->psz > e->max_unit)
		return -EINVAL;	/* bigger than the workers' scratch */
	if (region_overlaps(e, r))
		return -EEXIST;
	if (e->nregions == e->regions_cap) {
		unsigned cap = e->regions_cap ? e->regions_cap * 2 : 8;
		struct region **t = realloc(e->regions, cap * sizeof(*t));
		if (!t)
			return -ENOMEM;
		e->regions = t;
		e->regions_cap = cap;
	}
	int ret = region_register(e, r);
	if (ret)
		return ret;
	r->id = e->next_region_id++;
	e->regions[e->nregions++] = r;
	atomic_fetch_add(&e->unresolved, r->npages);
	atomic_store(&e->fill_finished, false);
	return 0;
}

/* Insert r (freed on failure); returns its id or -errno. */
static int engine_add_region(struct lvm_engine *e, struct region *r)
{
	pthread_mutex_lock(&e->hotplug_lock);
	pthread_rwlock_wrlock(&e->regions_lock);
	int ret = region_insert(e, r);
	bool refill = !ret && e->fill_running && atomic_load(&e->fill_finished);
	pthread_rwlock_unlock(&e->regions_lock);
	if (ret) {
		region_free(r);
	} else {
		ret = (int)r->id;
		if (refill)	/* the fill already finished: it has new work */
			engine_fill_restart(e);
	}
	pthread_mutex_unlock(&e->hotplug_lock);
	return ret;
}

/* Takes own (add_range's wrapper, or NULL) in every case. */
static int engine_add_own(struct lvm_engine *e, struct lvm_mem *mem, struct lvm_mem *own,
			  enum lvm_mode m, struct lvm_source *src, uint64_t src_off)
{
	struct region *r;
	int ret = -EINVAL;
	/* an adopted uffd belongs to another mm: add_remote is for that */
	if ((m == LVM_MODE_MISSING || m == LVM_MODE_MINOR) && e->opts.uffd < 0)
		ret = region_new((uint64_t)(uintptr_t)mem->addr, mem->size, mem->page_size,
				 src, src_off, &r);
	if (ret) {
		lvm_mem_destroy(own);
		return ret;
	}
	r->mem = mem;
	r->own_mem = own;
	r->shared_cache = mem->share && m == LVM_MODE_MINOR;
	r->minor = m == LVM_MODE_MINOR && !r->shared_cache;
	/* shmem takes write(): it allocates the page-cache pages in the kernel,
	 * without a page fault per page on the alias (hugetlbfs and guest_memfd
	 * have no write path; they keep the alias). */
	r->pwrite_fd = r->minor && lvm_mem_backing(mem) == LVM_BACKING_MEMFD ? mem->fd : -1;
	r->pwrite_off = mem->fd_off;
	/* UFFDIO_ZEROPAGE is for private mappings; shared memory takes a COPY of zeros. */
	r->zeropage_ok = r->zeropage_ok && (mem->fd < 0 || r->shared_cache);
	return engine_add_region(e, r);
}

int lvm_engine_add_mem(struct lvm_engine *e, struct lvm_mem *mem, enum lvm_mode m,
		       struct lvm_source *src, uint64_t src_off)
{
	return mem ? engine_add_own(e, mem, NULL, m, src, src_off) : -EINVAL;
}

int lvm_engine_add_range(struct lvm_engine *e, const struct lvm_range *range, enum lvm_mode m,
			 struct lvm_source *src, uint64_t src_off)
{
	struct lvm_mem *mem;
	int ret = range ? lvm_mem_wrap(range, &mem) : -EINVAL;
	if (ret)
		return ret;
	if (m == LVM_MODE_MINOR && mem->fd < 0) {
		lvm_mem_destroy(mem);
		return -EINVAL;	/* MINOR fills the page cache: it needs the file */
	}
	return engine_add_own(e, mem, mem, m, src, src_off);
}

int lvm_engine_add_remote(struct lvm_engine *e, uint64_t base, size_t size,
			  size_t page_size, struct lvm_source *src, uint64_t src_off)
{
	/* Firecracker's memory may be anon or hugetlb; COPY works for both, and
	 * ZEROPAGE only for the 4 KiB anon case. */
	if (e->opts.uffd < 0)
		return -EINVAL;	/* our own uffd covers only our own memory */
	struct region *r;
	int ret = region_new(base, size, page_size, src, src_off, &r);
	return ret ? ret : engine_add_region(e, r);
}

static void region_retire(struct lvm_engine *e, struct region *r)
{
	if (r->mem && !atomic_load(&r->gone) && e->uffd >= 0)
		uffd_unregister(e->uffd, atomic_load(&r->base), r->size);
	for (uint64_t p = 0; p < r->npages; p++)
		page_xchg(e, r, p, PG_GONE);	/* keeps `unresolved` exact */
	region_free(r);
}

int lvm_engine_remove(struct lvm_engine *e, int id)
{
	int ret = -ENOENT;
	pthread_mutex_lock(&e->hotplug_lock);
	pthread_rwlock_wrlock(&e->regions_lock);
	for (unsigned i = 0; i < e->nregions; i++) {
		if (e->regions[i]->id != (uint64_t)id)
			continue;
		region_retire(e, e->regions[i]);
		memmove(&e->regions[i], &e->regions[i + 1],
			(e->nregions - i - 1) * sizeof(*e->regions));
		e->nregions--;
		ret = 0;
		break;
	}
	pthread_rwlock_unlock(&e->regions_lock);
	pthread_mutex_unlock(&e->hotplug_lock);
	return ret;
}

static struct region *region_of_source(struct lvm_engine *e, struct lvm_source *src,
				       uint64_t off, uint64_t *page)
{
	for (unsigned i = 0; i < e->nregions; i++) {
		struct region *r = e->regions[i];
		if (r->src == src && off >= r->src_off && off - r->src_off < r->size) {
			*page = (off - r->src_off) >> r->pshift;
			return r;
		}
	}
	return NULL;
}

static int supply_locked(struct lvm_engine *e, struct lvm_source *src, uint64_t off,
			 const void *data, size_t len)
{
	uint64_t p;
	struct region *r = region_of_source(e, src, off, &p);
	if (!r || (off - r->src_off) % r->psz || len % r->psz ||
	    len > r->size - (off - r->src_off))
		return -EINVAL;
	uint64_t n = len >> r->pshift;
	const uint8_t *d = data;
	/* Pages a fault claimed (waiting for this data) count as demand; pages
	 * nobody asked for yet are claimed here and count as background. */
	for (uint64_t i = 0; i < n; ) {
		uint8_t st = page_get(r, p + i);
		bool demand = st == PG_CLAIMED;
		/* A fault may claim the page between the read and the CAS: look
		 * again and serve that claim (skipping it would leave the faulting
		 * thread waiting for data that was already delivered). */
		if (st == PG_MISSING && !page_cas(e, r, p + i, PG_MISSING, PG_CLAIMED))
			continue;
		if (st != PG_MISSING && !demand) {
			i++;	/* present, removed or gone: nothing to do */
			continue;
		}
		struct run run = { r, p + i, p + i + 1 };
		struct worker *w = e->supply_worker;
		pthread_mutex_lock(&e->supply_lock);
		int ret = engine_install(w, &run, d + (i << r->pshift), !demand);
		engine_serve_queued(w);
		pthread_mutex_unlock(&e->supply_lock);
		if (ret)
			return ret;
		i++;
	}
	return 0;
}

int lvm_engine_supply(struct lvm_engine *e, struct lvm_source *src, uint64_t off,
		      const void *data, size_t len)
{
	if (!e->started)
		return -EINVAL;
	pthread_rwlock_rdlock(&e->regions_lock);
	int ret = supply_locked(e, src, off, data, len);
	pthread_rwlock_unlock(&e->regions_lock);
	return ret;
}

int lvm_engine_mark_present(struct lvm_engine *e, struct lvm_source *src, uint64_t off,
			    size_t len)
{
	/* Before start nothing else looks at the table: no lock needed. */
	uint64_t p;
	struct region *r = region_of_source(e, src, off, &p);
	if (e->started)
		return -EBUSY;
	if (!r || (off - r->src_off) % r->psz || len % r->psz ||
	    len > r->size - (off - r->src_off))
		return -EINVAL;
	for (uint64_t i = 0; i < len >> r->pshift; i++)
		page_cas(e, r, p + i, PG_MISSING, PG_PRESENT);
	return 0;
}

int lvm_engine_prefetch(struct lvm_engine *e, struct lvm_source *src, uint64_t off,
			size_t len)
{
	/* Before start nothing else looks at the table: no lock needed. */
	uint64_t p = 0;
	struct region *r = region_of_source(e, src, off, &p);
	if (e->started)
		return -EBUSY;
	if (!r || !len || (off - r->src_off) % r->psz || len > r->size - (off - r->src_off))
		return -EINVAL;
	uint64_t hi = p + ((len + r->psz - 1) >> r->pshift);
	struct prefetch_range *last = e->nprefetch ? &e->prefetch[e->nprefetch - 1] : NULL;
	if (last && last->id == r->id && last->hi == p) {	/* one longer run */
		last->hi = hi;
		return 0;
	}
	if (e->nprefetch == e->prefetch_cap) {
		size_t cap = e->prefetch_cap ? e->prefetch_cap * 2 : 64;
		struct prefetch_range *v = realloc(e->prefetch, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		e->prefetch = v;
		e->prefetch_cap = cap;
	}
	e->prefetch[e->nprefetch++] = (struct prefetch_range){ r->id, p, hi };
	return 0;
}

static int fail_locked(struct lvm_engine *e, struct lvm_source *src, uint64_t off,
		       size_t len, int err)
{
	uint64_t p;
	struct region *r = region_of_source(e, src, off, &p);
	if (!r || !len)
		return -EINVAL;
	uint64_t n = (len + r->psz - 1) >> r->pshift;
	for (uint64_t i = 0; i < n && p + i < r->npages; i++) {
		if (page_get(r, p + i) != PG_CLAIMED &&
		    !page_cas(e, r, p + i, PG_MISSING, PG_CLAIMED))
			continue;
		struct run run = { r, p + i, p + i + 1 };
		struct worker *w = e->started ? e->supply_worker : NULL;
		if (w)
			pthread_mutex_lock(&e->supply_lock);
		engine_fail_run(e, w, &run, err ? err : -EIO, "source reported failure");
		if (w) {
			engine_serve_queued(w);
			pthread_mutex_unlock(&e->supply_lock);
		}
	}
	return 0;
}

int lvm_engine_fail(struct lvm_engine *e, struct lvm_source *src, uint64_t off,
		    size_t len, int err)
{
	pthread_rwlock_rdlock(&e->regions_lock);
	int ret = fail_locked(e, src, off, len, err);
	pthread_rwlock_unlock(&e->regions_lock);
	return ret;
}

bool lvm_engine_is_present(struct lvm_engine *e, struct lvm_source *src, uint64_t off)
{
	uint64_t p;
	pthread_rwlock_rdlock(&e->regions_lock);
	struct region *r = region_of_source(e, src, off, &p);
	uint8_t s = r ? page_get(r, p) : PG_MISSING;
	pthread_rwlock_unlock(&e->regions_lock);
	return s == PG_PRESENT || s == PG_ZERO;
}

void engine_regions_free(struct lvm_engine *e)
{
	for (unsigned i = 0; i < e->nregions; i++)
		region_retire(e, e->regions[i]);
	free(e->regions);
	e->regions = NULL;
	e->nregions = e->regions_cap = 0;
}
