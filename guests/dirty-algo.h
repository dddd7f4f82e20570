/* SPDX-License-Identifier: MIT */
/*
 * The `dirty` guest's algorithm (like QEMU's post-copy anchor workload,
 * ../shared/qemu-postcopy/dirty.c), compiled into the guest and into the
 * tests' model.  Data memory holds a generation array (one u32 per page of
 * the dirty set) and then the dirty set, every page of which is filled with
 * a pattern derived from (page, generation).  Step s rewrites
 * dirty_writes(s) random pages (bumping their generation) and verifies the
 * next DIRTY_VERIFY pages of a sliding window against the array.  Which
 * pages are written depends only on (seed, write index), never on time: the
 * guest paces the steps (one per millisecond at `rate` pages/s) but the
 * memory after `steps` steps, and so the RESULT, is a function of the
 * parameters, whatever the timing and wherever a migration happens.
 */
#ifndef LAZYVM_DIRTY_ALGO_H
#define LAZYVM_DIRTY_ALGO_H

#include <stdint.h>

#include "workload-algo.h"

#define DIRTY_VERIFY 64		/* pages verified per step */
#define DIRTY_DEFAULT_RATE 4096	/* pages rewritten per second (QEMU anchor's) */

struct dirty {
	volatile uint32_t *gen;		/* per dirty-set page */
	volatile uint64_t *pages;	/* the dirty set */
	uint64_t npages, rate, seed, written, verified, errors, vcur;
};

/* Lay out `data_pages` of data memory; dirty_pages = 0: as many as fit. */
static inline void dirty_layout(struct dirty *d, volatile uint64_t *data, uint64_t data_pages,
				uint64_t dirty_pages, uint64_t rate, uint64_t seed)
{
	/* n pages need ceil(4n / 4096) generation pages: n + n/1024 + 1 <= data */
	uint64_t fit = data_pages > 1 ? (data_pages - 1) * 1024 / 1025 : 0;
	d->npages = dirty_pages && dirty_pages < fit ? dirty_pages : fit;
	uint64_t gen_pages = (d->npages * 4 + 4095) / 4096;
	d->gen = (volatile uint32_t *)data;
	d->pages = data + gen_pages * WL_PAGE_WORDS;
	d->rate = rate ? rate : DIRTY_DEFAULT_RATE;
	d->seed = seed;
	d->written = d->verified = d->errors = d->vcur = 0;
}

static inline uint64_t dirty_word0(uint64_t page, uint32_t gen)
{
	return wl_mix(page * 0x9e3779b97f4a7c15ull + gen) | 1;
}

static inline void dirty_write_page(struct dirty *d, uint64_t page, uint32_t gen)
{
	volatile uint64_t *p = d->pages + page * WL_PAGE_WORDS;
	uint64_t v = dirty_word0(page, gen);
	for (unsigned i = 0; i < WL_PAGE_WORDS; i++)
		p[i] = v + i;
}

static inline void dirty_fill(struct dirty *d)
{
	for (uint64_t i = 0; i < d->npages; i++) {
		d->gen[i] = 0;
		dirty_write_page(d, i, 0);
	}
}

/* Writes in step s: rate/1000 per step, the remainder carried. */
static inline uint64_t dirty_writes(const struct dirty *d, uint64_t s)
{
	return (s + 1) * d->rate / 1000 - s * d->rate / 1000;
}

/* Every 8th word and the last: a stale or foreign page fails. */
static inline int dirty_check_page(const struct dirty *d, uint64_t page)
{
	const volatile uint64_t *p = d->pages + page * WL_PAGE_WORDS;
	uint64_t v = dirty_word0(page, d->gen[page]);
	for (unsigned i = 0; i < WL_PAGE_WORDS; i += 8)
		if (p[i] != v + i)
			return 1;
	return p[WL_PAGE_WORDS - 1] != v + WL_PAGE_WORDS - 1;
}

static inline void dirty_step(struct dirty *d, uint64_t s)
{
	for (uint64_t k = dirty_writes(d, s); k; k--) {
		uint64_t page = wl_rand(d->seed, d->written++) % d->npages;
		dirty_write_page(d, page, ++d->gen[page]);
	}
	for (unsigned k = 0; k < DIRTY_VERIFY && d->npages; k++) {
		d->errors += (uint64_t)dirty_check_page(d, d->vcur);
		d->verified++;
		if (++d->vcur == d->npages)
			d->vcur = 0;
	}
}

/* The RESULT: every data page hashed, and any verification error in it. */
static inline uint64_t dirty_result(const struct dirty *d, volatile uint64_t *data,
				    uint64_t data_pages)
{
	return wl_hash_all(data, data_pages) ^ (d->errors * 0x9e3779b97f4a7c15ull);
}

#endif
