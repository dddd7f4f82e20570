/* SPDX-License-Identifier: MIT */
/* Log-linear latency histogram (8 sub-buckets per power of two: <= 12.5%
 * error), lock-free to record from many threads. */
#ifndef LAZYVM_HISTOGRAM_H
#define LAZYVM_HISTOGRAM_H

#include <stdatomic.h>
#include <stdint.h>

#include "lazyvm.h"

#define HIST_BUCKETS 320

struct histogram {
	_Atomic uint64_t bucket[HIST_BUCKETS];
	_Atomic uint64_t max;
	_Atomic uint64_t count;
};

void histogram_record(struct histogram *h, uint64_t ns);
/* Summarise into p50/p90/p99/max (bucket midpoints; max exact). */
void histogram_summary(struct histogram *h, struct lvm_latency *out);

#endif
