/* SPDX-License-Identifier: MIT */
/*
 * The guests' algorithms, compiled into the freestanding guests and into the
 * tests (which run them on an ordinary buffer to compute the RESULT a guest
 * must print).
 *
 * Determinism: iteration k touches page wl_page(k); every vCPU walks all k
 * in order but only does the iterations whose page it owns (page % vcpus).
 * Each page therefore sees its operations in global k order whatever the
 * vCPU count and whatever the timing, and what is written depends only on
 * what was read from that same page: the final memory, and so the RESULT,
 * are the same for any vCPU count and survive a pause/snapshot/restore at
 * any instant.
 */
#ifndef LAZYVM_WORKLOAD_ALGO_H
#define LAZYVM_WORKLOAD_ALGO_H

#include <stdint.h>

#define WL_PAGE_WORDS 512u	/* 4 KiB pages of 8-byte words */

static inline uint64_t wl_mix(uint64_t z)
{
	z += 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static inline uint64_t wl_rand(uint64_t seed, uint64_t k)
{
	return wl_mix(seed ^ wl_mix(k));
}

/* One random iteration: read a word of the page, write a word derived from it. */
static inline void wl_step(volatile uint64_t *data, uint64_t npages, uint64_t seed,
			   uint64_t k, uint64_t cpu, uint64_t vcpus)
{
	uint64_t r = wl_rand(seed, k);
	uint64_t page = r % npages;
	if (page % vcpus != cpu)
		return;
	volatile uint64_t *pg = data + page * WL_PAGE_WORDS;
	uint64_t old = pg[(r >> 32) % WL_PAGE_WORDS];
	pg[(r >> 41) % WL_PAGE_WORDS] = wl_mix(old ^ r ^ k);
}

static inline void wl_random(volatile uint64_t *data, uint64_t npages, uint64_t seed,
			     uint64_t iterations, uint64_t cpu, uint64_t vcpus)
{
	for (uint64_t k = 0; k < iterations; k++)
		wl_step(data, npages, seed, k, cpu, vcpus);
}

/*
 * workload --fill: before any random touch, every word of the first `pages`
 * data pages gets a non-zero value derived from the seed, so migrations and
 * snapshots move real bytes (an all-zero page travels as a flag, and is
 * elided from snapshots).  Each vCPU fills the pages it owns in wl_step's
 * sense, so a page's fill precedes its random touches whatever the vCPU
 * count and the timing: the RESULT stays a function of the parameters.
 */
static inline uint64_t wl_fill_word(uint64_t seed, uint64_t word)
{
	return wl_mix(seed ^ ~word) | 1;
}

static inline void wl_fill(volatile uint64_t *data, uint64_t pages, uint64_t seed,
			   uint64_t cpu, uint64_t vcpus)
{
	for (uint64_t p = cpu; p < pages; p += vcpus)
		for (uint64_t w = p * WL_PAGE_WORDS; w < (p + 1) * WL_PAGE_WORDS; w++)
			data[w] = wl_fill_word(seed, w);
}

/* boot-like's dense prefix: each owned page read and written once, in order. */
static inline void wl_prefix(volatile uint64_t *data, uint64_t pages, uint64_t seed,
			     uint64_t cpu, uint64_t vcpus)
{
	for (uint64_t p = cpu; p < pages; p += vcpus) {
		volatile uint64_t *pg = data + p * WL_PAGE_WORDS;
		pg[p % WL_PAGE_WORDS] = wl_mix(pg[0] ^ seed ^ p);
	}
}

static inline uint64_t wl_hash(uint64_t h, const volatile uint64_t *w, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		h = (h ^ w[i]) * 0x100000001b3ull;
	return h;
}

#define WL_HASH_INIT 0xcbf29ce484222325ull

/* workload: the hash of every data word. */
static inline uint64_t wl_hash_all(const volatile uint64_t *data, uint64_t npages)
{
	return wl_mix(wl_hash(WL_HASH_INIT, data, npages * WL_PAGE_WORDS));
}

/* boot-like: the prefix, then the word each random iteration wrote. */
static inline uint64_t wl_hash_bootlike(const volatile uint64_t *data, uint64_t npages,
					uint64_t prefix_pages, uint64_t seed,
					uint64_t iterations)
{
	uint64_t h = wl_hash(WL_HASH_INIT, data, prefix_pages * WL_PAGE_WORDS);
	for (uint64_t k = 0; k < iterations; k++) {
		uint64_t r = wl_rand(seed, k);
		h = wl_hash(h, data + (r % npages) * WL_PAGE_WORDS + (r >> 41) % WL_PAGE_WORDS, 1);
	}
	return wl_mix(h);
}

#endif
