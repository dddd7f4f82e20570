/* SPDX-License-Identifier: MIT */
/*
 * Fault engine internals shared by loop.c (threads, event loop) and
 * install.c (claiming pages and putting content in place).
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
 * Locking (DESIGN.md §4): reading the uffd and applying REMOVE/UNMAP/REMAP
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

#include "core/backing.h"
#include "util/clock.h"
#include "util/histogram.h"
#include "lazyvm.h"
#include "source/source.h"
#include "core/uffd.h"

enum page_state {
	PG_MISSING = 0,
	PG_CLAIMED,
	PG_PRESENT,
	PG_ZERO,
	PG_FAILED,
	PG_GONE,
};

#define ENGINE_MAX_REGIONS 64
#define ENGINE_MAX_FAULTS 1024	/* per thread queue; > any number of vCPUs */

struct region {
	_Atomic uint64_t base;	/* address in the faulting mm (REMAP moves it) */
	uint64_t size;
	uint64_t npages;
	size_t psz;
	unsigned pshift;
	struct lvm_mem *mem;	/* NULL: another process's memory (remote) */
	uint8_t *alias;		/* MINOR: second mapping we write content through */
	bool minor;		/* install = write alias + UFFDIO_CONTINUE */
	bool zeropage_ok;	/* UFFDIO_ZEROPAGE works (anon-like, 4 KiB) */
	struct lvm_source *src;
	uint64_t src_off;
	_Atomic uint8_t *state;
	_Atomic bool gone;
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
};

struct lvm_engine {
	struct lvm_engine_opts opts;
	int uffd;
	uint64_t features;
	struct region regions[ENGINE_MAX_REGIONS];
	unsigned nregions;
	size_t max_unit;	/* largest single fetch (fault-around or fill chunk) */
	uint8_t *zero_buf;	/* max_unit bytes of zeros (read-only anon map) */

	pthread_rwlock_t mm_lock;
	pthread_t *threads;
	struct worker **workers;
	unsigned nthreads;
	unsigned nworkers;
	pthread_mutex_t supply_lock;	/* one supplier at a time uses workers[n+1] */
	pthread_t fill_thread;
	bool fill_running;
	bool started;
	int stop_efd;
	_Atomic bool stopping;

	/* demand/background coordination and completion */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	_Atomic int demand_active;
	_Atomic uint64_t unresolved;
	_Atomic int fill_error;

	struct {
		_Atomic uint64_t faults, faults_dup, pages_demand, pages_background,
			pages_zero, pages_failed, remove_events, unmap_events,
			remap_events, eagain_retries;
	} st;
	struct histogram fault_lat;

	pthread_mutex_t err_lock;
	char error[512];
};

/* loop.c */
void engine_record_error(struct lvm_engine *e, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int engine_drain_events(struct lvm_engine *e, struct worker *w);
void *engine_handler_thread(void *worker);
void *engine_fill_thread(void *worker);
/* Serve every fault queued on w (any thread that drained must serve). */
void engine_serve_queued(struct worker *w);
struct region *engine_region_of(struct lvm_engine *e, uint64_t addr);

/* install.c */
bool page_cas(struct lvm_engine *e, struct region *r, uint64_t p, uint8_t from, uint8_t to);
uint8_t page_xchg(struct lvm_engine *e, struct region *r, uint64_t p, uint8_t to);
static inline uint8_t page_get(struct region *r, uint64_t p)
{
	return atomic_load_explicit(&r->state[p], memory_order_acquire);
}
/* Claim the run of MISSING pages around page p within [win_lo, win_hi). */
bool engine_claim_run(struct lvm_engine *e, struct region *r, uint64_t p,
		      uint64_t win_lo, uint64_t win_hi, struct run *out);
/* Fetch the run's content and install it; background selects the counter. */
int engine_fetch_install(struct worker *w, struct run *run, bool background);
/* Install given content (NULL: zeros) into the CLAIMED pages of run. */
int engine_install(struct worker *w, struct run *run, const uint8_t *data, bool background);
/* Serve a page the guest discarded (ZERO) with zeros. */
int engine_serve_zero(struct worker *w, struct region *r, uint64_t p);
/* MINOR fault on a page the page cache already has: map it. */
int engine_continue_only(struct worker *w, struct region *r, uint64_t p);
/* MINOR region, page PRESENT or ZERO: map what the page cache has, or zeros. */
void engine_serve_cached(struct worker *w, struct region *r, uint64_t p);
/* Source failed for the claimed run: poison it so the guest gets SIGBUS. */
void engine_fail_run(struct lvm_engine *e, struct run *run, int err, const char *why);

#endif
