/* SPDX-License-Identifier: MIT */
#include "util/histogram.h"

static unsigned hist_index(uint64_t v)
{
	if (v < 16)
		return (unsigned)v;
	unsigned e = 63u - (unsigned)__builtin_clzll(v);	/* e >= 4 */
	unsigned sub = (unsigned)(v >> (e - 3)) & 7u;
	unsigned idx = 16u + (e - 4u) * 8u + sub;
	return idx < HIST_BUCKETS ? idx : HIST_BUCKETS - 1;
}

/* Midpoint of a bucket: what a percentile reports. */
static uint64_t hist_value(unsigned idx)
{
	if (idx < 16)
		return idx;
	unsigned e = (idx - 16u) / 8u + 4u, sub = (idx - 16u) % 8u;
	uint64_t lo = (1ULL << e) + ((uint64_t)sub << (e - 3));
	return lo + (1ULL << (e - 4));
}

void histogram_record(struct histogram *h, uint64_t ns)
{
	atomic_fetch_add_explicit(&h->bucket[hist_index(ns)], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
	uint64_t m = atomic_load_explicit(&h->max, memory_order_relaxed);
	while (ns > m && !atomic_compare_exchange_weak(&h->max, &m, ns))
		;
}

void histogram_summary(struct histogram *h, struct lvm_latency *out)
{
	uint64_t counts[HIST_BUCKETS], total = 0;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		counts[i] = atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
		total += counts[i];
	}
	const double q[3] = { 0.50, 0.90, 0.99 };
	uint64_t *dst[3] = { &out->p50_ns, &out->p90_ns, &out->p99_ns };
	out->count = total;
	out->max_ns = atomic_load(&h->max);
	for (int k = 0; k < 3; k++) {
		*dst[k] = 0;
		if (!total)
			continue;
		uint64_t rank = (uint64_t)(q[k] * (double)total), seen = 0;
		if (rank >= total)
			rank = total - 1;
		for (unsigned i = 0; i < HIST_BUCKETS; i++) {
			seen += counts[i];
			if (seen > rank) {
				uint64_t v = hist_value(i);
				*dst[k] = v < out->max_ns ? v : out->max_ns;
				break;
			}
		}
	}
}
