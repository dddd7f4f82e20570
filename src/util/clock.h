/* SPDX-License-Identifier: MIT */
/* Nanosecond clock readings (one definition for the engine, restore, migration, CLI). */
#ifndef LAZYVM_CLOCK_H
#define LAZYVM_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t clock_now_ns(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* CLOCK_MONOTONIC: durations and latencies. */
static inline uint64_t mono_now_ns(void)
{
	return clock_now_ns(CLOCK_MONOTONIC);
}

#endif
