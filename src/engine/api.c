/* SPDX-License-Identifier: MIT */
/* The engine's public lifecycle: create, start, process, stop, stats. */
#include <fcntl.h>
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
	pthread_mutex_init(&e->process_lock, NULL);
	pthread_mutex_init(&e->hotplug_lock, NULL);
	pthread_rwlock_init(&e->regions_lock, NULL);	/* reader-preferring: see engine.h */

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
		/* lvm_engine_process() must never block in read(). */
		if (!ret && e->opts.caller_driven &&
		    fcntl(e->opts.uffd, F_SETFL, fcntl(e->opts.uffd, F_GETFL) | O_NONBLOCK))
			ret = -errno;
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
	/* At least the biggest page there is (2 MiB hugetlb), so a region added
	 * while the engine runs always fits the workers' scratch. */
	if (unit < ENGINE_MAX_PAGE)
		unit = ENGINE_MAX_PAGE;
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

/* Handlers (none when caller-driven), then the fill, supply and process
 * workers, each with its own fault queue and scratch. */
static int engine_alloc_workers(struct lvm_engine *e, unsigned handlers)
{
	e->threads = calloc(handlers ? handlers : 1, sizeof(*e->threads));
	e->workers = calloc(handlers + 3, sizeof(*e->workers));
	if (!e->threads || !e->workers)
		return -ENOMEM;
	for (; e->nworkers < handlers + 3; e->nworkers++)
		if (!(e->workers[e->nworkers] = worker_new(e)))
			return -ENOMEM;
	e->fill_worker = e->workers[handlers];
	e->supply_worker = e->workers[handlers + 1];
	e->process_worker = e->workers[handlers + 2];
	return 0;
}

static unsigned engine_handler_count(const struct lvm_engine *e)
{
	if (e->opts.caller_driven)
		return 0;
	if (e->opts.threads)
		return e->opts.threads;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	return cpus > 0 ? (unsigned)cpus : 1;
}

int lvm_engine_start(struct lvm_engine *e)
{
	if (e->started)
		return -EBUSY;
	if (!e->nregions)
		return -EINVAL;
	int ret = engine_alloc_units(e);
	unsigned n = engine_handler_count(e);
	if (!ret)
		ret = engine_alloc_workers(e, n);
	if (ret)
		return ret;
	e->started = true;
	while (!ret && e->nthreads < n) {
		ret = -pthread_create(&e->threads[e->nthreads], NULL, engine_handler_thread,
				      e->workers[e->nthreads]);
		e->nthreads += !ret;
	}
	if (!ret && (e->opts.background_fill || e->nprefetch))
		ret = engine_fill_start(e);
	if (ret)
		lvm_engine_stop(e);
	return ret;
}

int lvm_engine_process(struct lvm_engine *e)
{
	if (!e->started || !e->opts.caller_driven)
		return -EINVAL;
	pthread_mutex_lock(&e->process_lock);
	int n = engine_serve_pending(e->process_worker);
	pthread_mutex_unlock(&e->process_lock);
	return n;
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
	pthread_mutex_lock(&e->hotplug_lock);	/* an add may be restarting the fill */
	engine_fill_join(e);
	pthread_mutex_unlock(&e->hotplug_lock);
	e->started = false;
	return 0;
}

void lvm_engine_destroy(struct lvm_engine *e)
{
	if (!e)
		return;
	lvm_engine_stop(e);
	engine_regions_free(e);
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
	pthread_mutex_destroy(&e->process_lock);
	pthread_mutex_destroy(&e->hotplug_lock);
	pthread_rwlock_destroy(&e->regions_lock);
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
	pthread_rwlock_rdlock(&e->regions_lock);
	for (unsigned i = 0; i < e->nregions; i++)
		s->pages_total += e->regions[i]->npages;
	s->pages_present = s->pages_total - atomic_load(&e->unresolved);
	pthread_rwlock_unlock(&e->regions_lock);
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
