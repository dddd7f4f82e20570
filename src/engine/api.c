/* SPDX-License-Identifier: MIT */
/* The engine's public lifecycle: create, add regions, start, stop, stats. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "engine/loop.h"
#include "util/abi.h"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22	/* Linux 5.14 */
#endif

void lvm_engine_opts_init(struct lvm_engine_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->struct_size = sizeof(*o);
	o->uffd = -1;
}

int lvm_engine_create(const struct lvm_engine_opts *opts, struct lvm_engine **out)
{
	struct lvm_engine_opts o;
	lvm_engine_opts_init(&o);
	if (opts) {
		int ret = abi_copy_in(&o, sizeof(o), opts,
				      ABI_SIZE_TO(struct lvm_engine_opts, on_error_ctx));
		if (ret)
			return ret;
	}
	struct lvm_engine *e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->opts = o;
	e->stop_efd = -1;
	e->uffd = -1;

	pthread_rwlockattr_t attr;
	pthread_rwlockattr_init(&attr);
	/* Readers (installs) must not starve the thread waiting to read events. */
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&e->mm_lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	pthread_mutex_init(&e->lock, NULL);
	pthread_mutex_init(&e->err_lock, NULL);
	pthread_mutex_init(&e->supply_lock, NULL);

	int ret = mono_cond_init(&e->cond);
	if (ret) {
		e->opts.uffd = -1;	/* the caller still owns an fd it passed */
		lvm_engine_destroy(e);
		return ret;
	}
	if (e->opts.uffd >= 0) {
		/* Adopted (Firecracker did the handshake): assume what the kernel
		 * offers; range ioctls fail cleanly if something is missing. */
		ret = uffd_check_fd(e->opts.uffd);
		if (!ret) {
			e->uffd = e->opts.uffd;
			ret = uffd_kernel_features(&e->features);
		}
	} else {
		e->uffd = uffd_open(UFFD_WANT_FEATURES, &e->features);
		ret = e->uffd < 0 ? e->uffd : 0;
	}
	if (!ret) {
		e->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (e->stop_efd < 0)
			ret = -errno;
	}
	if (ret) {
		e->opts.uffd = -1;	/* the caller still owns an fd it passed */
		if (e->uffd >= 0 && o.uffd < 0)
			close(e->uffd);
		e->uffd = -1;
		lvm_engine_destroy(e);
		return ret;
	}
	*out = e;
	return 0;
}

static int region_init(struct lvm_engine *e, uint64_t base, uint64_t size, size_t psz,
		       struct lvm_source *src, uint64_t src_off)
{
	if (e->started)
		return -EBUSY;
	if (e->nregions == ENGINE_MAX_REGIONS)
		return -ENOSPC;
	if (!src || !psz || (psz & (psz - 1)) || !size || size % psz || base % psz)
		return -EINVAL;
	if (src_off > src->size || size > src->size - src_off)
		return -ERANGE;	/* never serve from outside the source */
	for (unsigned i = 0; i < e->nregions; i++) {
		struct region *o = &e->regions[i];
		if (base < o->base + o->size && o->base < base + size)
			return -EEXIST;
	}
	struct region *r = &e->regions[e->nregions];
	memset(r, 0, sizeof(*r));
	r->npages = size / psz;
	r->state = calloc(r->npages, 1);
	if (!r->state)
		return -ENOMEM;
	atomic_store(&r->base, base);
	r->size = size;
	r->psz = psz;
	r->pshift = (unsigned)__builtin_ctzll(psz);
	r->src = src;
	r->src_off = src_off;
	r->zeropage_ok = psz == 4096;
	atomic_fetch_add(&e->unresolved, r->npages);
	return (int)e->nregions++;
}

int lvm_engine_add_mem(struct lvm_engine *e, struct lvm_mem *mem, enum lvm_mode m,
		       struct lvm_source *src, uint64_t src_off)
{
	if (!mem || (m != LVM_MODE_MISSING && m != LVM_MODE_MINOR))
		return -EINVAL;
	if (e->opts.uffd >= 0)
		return -EINVAL;	/* an adopted uffd belongs to another mm */
	int idx = region_init(e, (uint64_t)(uintptr_t)mem->addr, mem->size, mem->page_size,
			      src, src_off);
	if (idx < 0)
		return idx;
	struct region *r = &e->regions[idx];
	int ret = 0;
	if (m == LVM_MODE_MINOR && !mem->share)
		ret = backing_alias(mem, &r->alias);
	if (!ret)
		ret = backing_can_userfault(mem, e->uffd, m, true);
	if (ret) {
		free((void *)r->state);
		atomic_fetch_sub(&e->unresolved, r->npages);
		e->nregions--;
		return ret;
	}
	r->mem = mem;
	r->shared_cache = mem->share && m == LVM_MODE_MINOR;
	r->minor = m == LVM_MODE_MINOR && !r->shared_cache;
	/* UFFDIO_ZEROPAGE is for private mappings; shared memory takes a COPY of zeros. */
	r->zeropage_ok = r->zeropage_ok && (mem->fd < 0 || r->shared_cache);
	return idx;
}

int lvm_engine_add_remote(struct lvm_engine *e, uint64_t base, size_t size,
			  size_t page_size, struct lvm_source *src, uint64_t src_off)
{
	/* Firecracker's memory may be anon or hugetlb; COPY works for both, and
	 * ZEROPAGE only for the 4 KiB anon case. */
	if (e->opts.uffd < 0)
		return -EINVAL;	/* our own uffd covers only our own memory */
	return region_init(e, base, size, page_size, src, src_off);
}

static struct worker *worker_new(struct lvm_engine *e)
{
	struct worker *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->e = e;
	w->scratch_size = e->max_unit;
	w->scratch = aligned_alloc(4096, w->scratch_size);
	if (!w->scratch) {
		free(w);
		return NULL;
	}
	return w;
}

static void worker_free(struct worker *w)
{
	if (w) {
		free(w->scratch);
		free(w);
	}
}

static int engine_alloc_units(struct lvm_engine *e)
{
	size_t unit = e->opts.fault_around;
	size_t chunk = e->opts.fill_chunk ? e->opts.fill_chunk : ENGINE_DEFAULT_FILL_CHUNK;
	if ((e->opts.background_fill || e->nprefetch) && chunk > unit)
		unit = chunk;
	for (unsigned i = 0; i < e->nregions; i++)
		if (e->regions[i].psz > unit)
			unit = e->regions[i].psz;
	e->max_unit = (unit + 4095) & ~(size_t)4095;
	/* Read-only anonymous zeros: no memory is committed for it. */
	void *z = mmap(NULL, e->max_unit, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (z == MAP_FAILED)
		return -errno;
	/* Map the shared zero page in now: a hugetlb UFFDIO_COPY whose source is
	 * not resident falls back to allocating a temporary huge page from the
	 * pool, and a pool sized for the guest alone has none (SIGBUS). */
	madvise(z, e->max_unit, MADV_POPULATE_READ);
	e->zero_buf = z;
	return 0;
}

int lvm_engine_start(struct lvm_engine *e)
{
	if (e->started)
		return -EBUSY;
	if (!e->nregions)
		return -EINVAL;
	int ret = engine_alloc_units(e);
	if (ret)
		return ret;
	unsigned n = e->opts.threads;
	if (!n) {
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);
		n = cpus > 0 ? (unsigned)cpus : 1;
	}
	/* workers[0..n-1]: handlers, [n]: background fill, [n+1]: supply(). */
	e->threads = calloc(n, sizeof(*e->threads));
	e->workers = calloc(n + 3, sizeof(*e->workers));
	if (!e->threads || !e->workers)
		return -ENOMEM;
	e->started = true;
	e->nworkers = n + 2;
	for (unsigned i = 0; i < e->nworkers; i++) {
		e->workers[i] = worker_new(e);
		if (!e->workers[i]) {
			lvm_engine_stop(e);
			return -ENOMEM;
		}
	}
	for (; e->nthreads < n; e->nthreads++) {
		ret = -pthread_create(&e->threads[e->nthreads], NULL, engine_handler_thread,
				      e->workers[e->nthreads]);
		if (ret) {
			lvm_engine_stop(e);
			return ret;
		}
	}
	if (e->opts.background_fill || e->nprefetch) {
		ret = -pthread_create(&e->fill_thread, NULL, engine_fill_thread, e->workers[n]);
		if (ret) {
			lvm_engine_stop(e);
			return ret;
		}
		e->fill_running = true;
	}
	return 0;
}

static struct region *region_of_source(struct lvm_engine *e, struct lvm_source *src,
				       uint64_t off, uint64_t *page)
{
	for (unsigned i = 0; i < e->nregions; i++) {
		struct region *r = &e->regions[i];
		if (r->src == src && off >= r->src_off && off - r->src_off < r->size) {
			*page = (off - r->src_off) >> r->pshift;
			return r;
		}
	}
	return NULL;
}

int lvm_engine_supply(struct lvm_engine *e, struct lvm_source *src, uint64_t off,
		      const void *data, size_t len)
{
	if (!e->started)
		return -EINVAL;
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
		struct worker *w = e->workers[e->nworkers - 1];
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

int lvm_engine_mark_present(struct lvm_engine *e, struct lvm_source *src, uint64_t off,
			    size_t len)
{
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
	uint64_t p = 0;
	struct region *r = region_of_source(e, src, off, &p);
	if (e->started)
		return -EBUSY;
	if (!r || !len || (off - r->src_off) % r->psz || len > r->size - (off - r->src_off))
		return -EINVAL;
	uint64_t hi = p + ((len + r->psz - 1) >> r->pshift);
	struct prefetch_range *last = e->nprefetch ? &e->prefetch[e->nprefetch - 1] : NULL;
	if (last && last->r == r && last->hi == p) {	/* one longer run */
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
	e->prefetch[e->nprefetch++] = (struct prefetch_range){ r, p, hi };
	return 0;
}

int lvm_engine_fail(struct lvm_engine *e, struct lvm_source *src, uint64_t off,
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
		struct worker *w = e->started ? e->workers[e->nworkers - 1] : NULL;
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

bool lvm_engine_is_present(struct lvm_engine *e, struct lvm_source *src, uint64_t off)
{
	uint64_t p;
	struct region *r = region_of_source(e, src, off, &p);
	if (!r)
		return false;
	uint8_t s = page_get(r, p);
	return s == PG_PRESENT || s == PG_ZERO;
}

int lvm_engine_wait_filled(struct lvm_engine *e, int timeout_ms)
{
	struct timespec dl = mono_deadline(timeout_ms < 0 ? 0 : (uint64_t)timeout_ms);
	int ret = 0;
	pthread_mutex_lock(&e->lock);
	while (atomic_load(&e->unresolved) && !atomic_load(&e->stopping) && !ret) {
		if (timeout_ms < 0)
			pthread_cond_wait(&e->cond, &e->lock);
		else if (pthread_cond_timedwait(&e->cond, &e->lock, &dl) == ETIMEDOUT)
			ret = -ETIMEDOUT;
	}
	pthread_mutex_unlock(&e->lock);
	if (!ret && atomic_load(&e->unresolved))
		ret = -ECANCELED;
	int ferr = atomic_load(&e->fill_error);
	return ret ? ret : ferr;
}

int lvm_engine_stop(struct lvm_engine *e)
{
	if (!e->started)
		return 0;
	atomic_store(&e->stopping, true);
	uint64_t one = 1;
	if (write(e->stop_efd, &one, sizeof(one)) < 0) {
		/* eventfd full cannot happen with one write; poll sees stopping */
	}
	pthread_mutex_lock(&e->lock);
	pthread_cond_broadcast(&e->cond);
	pthread_mutex_unlock(&e->lock);
	for (unsigned i = 0; i < e->nthreads; i++)
		pthread_join(e->threads[i], NULL);
	e->nthreads = 0;
	if (e->fill_running)
		pthread_join(e->fill_thread, NULL);
	e->fill_running = false;
	e->started = false;
	return 0;
}

void lvm_engine_destroy(struct lvm_engine *e)
{
	if (!e)
		return;
	lvm_engine_stop(e);
	for (unsigned i = 0; i < e->nregions; i++) {
		struct region *r = &e->regions[i];
		if (r->mem && !atomic_load(&r->gone) && e->uffd >= 0)
			uffd_unregister(e->uffd, atomic_load(&r->base), r->size);
		free((void *)r->state);
	}
	for (unsigned i = 0; e->workers && i < e->nworkers; i++)
		worker_free(e->workers[i]);
	free(e->workers);
	free(e->threads);
	free(e->prefetch);
	if (e->zero_buf)
		munmap(e->zero_buf, e->max_unit);
	if (e->uffd >= 0)
		close(e->uffd);
	if (e->stop_efd >= 0)
		close(e->stop_efd);
	pthread_rwlock_destroy(&e->mm_lock);
	pthread_mutex_destroy(&e->lock);
	pthread_mutex_destroy(&e->err_lock);
	pthread_mutex_destroy(&e->supply_lock);
	pthread_cond_destroy(&e->cond);
	free(e);
}

int lvm_engine_uffd(const struct lvm_engine *e)
{
	return e->uffd;
}

int lvm_engine_stats(struct lvm_engine *e, struct lvm_stats *out)
{
	struct lvm_stats st = { .struct_size = sizeof(st) }, *s = &st;
	s->faults = atomic_load(&e->st.faults);
	s->faults_dup = atomic_load(&e->st.faults_dup);
	s->pages_demand = atomic_load(&e->st.pages_demand);
	s->pages_background = atomic_load(&e->st.pages_background);
	s->pages_prefetch = atomic_load(&e->st.pages_prefetch);
	s->pages_zero = atomic_load(&e->st.pages_zero);
	s->pages_failed = atomic_load(&e->st.pages_failed);
	s->remove_events = atomic_load(&e->st.remove_events);
	s->unmap_events = atomic_load(&e->st.unmap_events);
	s->remap_events = atomic_load(&e->st.remap_events);
	s->eagain_retries = atomic_load(&e->st.eagain_retries);
	for (unsigned i = 0; i < e->nregions; i++)
		s->pages_total += e->regions[i].npages;
	s->pages_present = s->pages_total - atomic_load(&e->unresolved);
	histogram_summary(&e->fault_lat, &s->fault_latency);
	return abi_copy_out(out, &st, sizeof(st), ABI_SIZE_TO(struct lvm_stats, fault_latency));
}

const char *lvm_engine_error(const struct lvm_engine *e)
{
	/* The writers (engine_record_error) fill e->error once, under err_lock;
	 * taking it here orders this read after that write.  The text never
	 * changes after, so the pointer stays valid until destroy. */
	pthread_mutex_t *lock = (pthread_mutex_t *)&e->err_lock;
	pthread_mutex_lock(lock);
	const char *msg = e->error;
	pthread_mutex_unlock(lock);
	return msg;
}
