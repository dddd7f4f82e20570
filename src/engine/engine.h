/* SPDX-License-Identifier: MIT */
/*
 * Fault engine internals: the types every engine file shares.  The files
 * build on each other in one direction, never back:
 *
 *   events.c   page-state transitions, REMOVE/UNMAP/REMAP, reading the uffd
 *   install.c  claiming pages, COPY/CONTINUE/ZEROPAGE/POISON   (uses events)
 *   loop.c     serving a fault, handler and fill threads     (uses install)
 *   api.c      the public lifecycle in lazyvm.h                 (uses loop)
 *   regions.c  adding/removing regions, supply/fail by source range (ditto)
 *
 * Each has its own header (events.h, install.h, loop.h) declaring what the
 * files above it may call.
 *
 * Per-page state (one byte per backing page):
 *
 *   MISSING --claim--> CLAIMED --install--> PRESENT
 *      |                  |  \--source error--> FAILED (poisoned: SIGBUS)
 *      +---- REMOVE ------+---> ZERO (guest discarded it: zero on next fault)
 *   any ---- UNMAP ---> GONE
 *
 * "Unresolved" pages are MISSING or CLAIMED; the background fill is done when
 * none is left.  Every transition goes through page_cas()/page_xchg() so the
 * count stays exact under races.
 *
 * Locking (docs/engine.md §4): reading the uffd and applying REMOVE/UNMAP/REMAP
 * happens under mm_lock held for writing; checking a page's state and
 * installing it (COPY/CONTINUE/ZEROPAGE/POISON) under mm_lock held for
 * reading.  Why: the kernel completes a REMOVE event when it is read, and the
 * discard (zap) runs right after.  Without the lock a thread could check
 * "still CLAIMED", another read the REMOVE, the zap run, and then the first
 * thread's COPY land stale content in a page the guest just discarded.  While
 * a REMOVE is queued but unread, COPY fails with EAGAIN (mmap_changing), which
 * is the other half of the argument.
 */
#ifndef LAZYVM_ENGINE_H
#define LAZYVM_ENGINE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "lazyvm.h"
#include "core/backing.h"
#include "core/uffd.h"
#include "source/source.h"
#include "util/clock.h"
#include "util/histogram.h"

enum page_state {
	PG_MISSING = 0,
	PG_CLAIMED,
	PG_PRESENT,
	PG_ZERO,
	PG_FAILED,
	PG_GONE,
};

#define ENGINE_MAX_PAGE (2u << 20)	/* the biggest page of any backing (hugetlb) */
#define ENGINE_MAX_FAULTS 1024	/* per thread queue; > any number of vCPUs */

struct region {
	uint64_t id;		/* what add_* returned; never reused */
	_Atomic uint64_t base;	/* address in the faulting mm (REMAP moves it) */
	uint64_t size;
	uint64_t npages;
	size_t psz;
	unsigned pshift;
	struct lvm_mem *mem;	/* NULL: another process's memory (remote) */
	struct lvm_mem *own_mem;	/* add_range's wrapper, freed with the region */
	uint8_t *alias;		/* MINOR: second mapping we write content through */
	bool minor;		/* install = write alias + UFFDIO_CONTINUE */
	_Atomic bool zeropage_ok; /* UFFDIO_ZEROPAGE works (anon-like, 4 KiB) */
	int pwrite_fd;		/* MINOR on shmem: fill the page cache with pwrite; else -1 */
	uint64_t pwrite_off;	/* file offset of the region's first byte (lvm_mem_wrap) */
	/* A private mapping of the shared page cache (core/share.h): the source
	 * put the content in the cache; install = UFFDIO_CONTINUE, zeros =
	 * UFFDIO_ZEROPAGE; the cache is never written or punched from here. */
	bool shared_cache;
	struct lvm_source *src;
	uint64_t src_off;
	_Atomic uint8_t *state;
	_Atomic bool gone;
	/* Secret-free guest_memfd (engine/userfault.h): non-NULL when content
	 * goes in by pwrite into gmem_fd and each page has a bit in this
	 * userfault bitmap, set while the page is not populated. */
	_Atomic uint64_t *ufbits;
	uint64_t ufbit0;	/* bit of the region's first page */
	int gmem_fd;
	uint64_t gmem_off;	/* region start in the guest_memfd */
};

/* A page run [lo, hi) of one region, claimed by the caller. */
struct run {
	struct region *r;
	uint64_t lo, hi;
};

/* Per-thread working set: fault queue and source scratch. */
struct worker {
	struct lvm_engine *e;
	struct uffd_msg faults[ENGINE_MAX_FAULTS];
	int nfaults;
	uint8_t *scratch;
	size_t scratch_size;
	bool prefetching;	/* the fill thread, on the prefetch list: its counter */
	bool faults_dense;	/* handler: adaptive polling spins (loop.c) */
	uint64_t served_ns;	/* handler: when it last finished a batch */
};

/* A range lvm_engine_prefetch() queued: pages [lo, hi) of region id (by
 * id, not pointer: the region may be removed before the fill gets there). */
struct prefetch_range {
	uint64_t id;
	uint64_t lo, hi;
};

struct lvm_engine {
	struct lvm_engine_opts opts;
	int uffd;
	uint64_t features;
	/*
	 * The region table, in the order regions were added (ids ascending).
	 * Anyone who looks at a region holds regions_lock for reading for as
	 * long as it uses the pointer: the handler for one batch, the fill for
	 * one chunk, supply() for its call.  Adding and removing take it for
	 * writing, so a removed region is never in use when it is freed.  Taken
	 * before mm_lock, never after; readers may nest (glibc's default
	 * reader-preferring rwlock: a source's get() may call supply()).
	 */
	pthread_rwlock_t regions_lock;
	struct region **regions;
	unsigned nregions, regions_cap;
	uint64_t next_region_id;
	pthread_mutex_t hotplug_lock;	/* one add/remove at a time (fill restart) */
	size_t max_unit;	/* largest single fetch (fault-around or fill chunk) */
	uint8_t *zero_buf;	/* max_unit bytes of zeros (read-only anon map) */

	pthread_rwlock_t mm_lock;
	pthread_t *threads;
	struct worker **workers;
	unsigned nthreads;
	unsigned nworkers;
	struct worker *fill_worker, *supply_worker, *process_worker;
	pthread_mutex_t supply_lock;	/* one supplier at a time uses supply_worker */
	pthread_t fill_thread;
	bool fill_running;
	_Atomic bool fill_finished;	/* set under regions_lock: no region left */
	pthread_mutex_t process_lock;	/* one lvm_engine_process() at a time */
	struct prefetch_range *prefetch;	/* queued before start, in order */
	size_t nprefetch, prefetch_cap;
	bool started;
	int stop_efd;
	_Atomic bool stopping;

	/* demand/background coordination and completion */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	_Atomic int demand_active;
	_Atomic bool spinning;	/* a handler busy-polls the uffd (loop.c) */
	_Atomic uint64_t unresolved;
	_Atomic int fill_error;

	struct {
		_Atomic uint64_t faults, faults_dup, pages_demand, pages_background,
			pages_zero, pages_failed, remove_events, unmap_events,
			remap_events, eagain_retries, pages_prefetch;
	} st;
	struct histogram fault_lat;
	struct {	/* secret-free regions (engine/userfault.c) */
		_Atomic uint64_t requests, pwrites, pages_written, pages_copied,
			continues, already_populated;
	} sf;

	pthread_mutex_t err_lock;
	char error[512];
};

#endif
