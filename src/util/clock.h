/* SPDX-License-Identifier: MIT */
/* Nanosecond clock readings (one definition for the engine, restore, migration, CLI). */
#ifndef LAZYVM_CLOCK_H
#define LAZYVM_CLOCK_H

#include <pthread.h>
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

static inline uint64_t mono_now_ms(void)
{
	return mono_now_ns() / 1000000u;
}

/* Seconds as a double, for rates in human output. */
static inline double mono_now_s(void)
{
	return (double)mono_now_ns() / 1e9;
}

/*
 * Timed waits: a condvar whose pthread_cond_timedwait() deadline is on
 * CLOCK_MONOTONIC, so setting the wall clock neither cuts a wait short nor
 * stretches it.  Every timed wait in the tree uses this pair.
 */
static inline int mono_cond_init(pthread_cond_t *c)
{
	pthread_condattr_t attr;
	int ret = pthread_condattr_init(&attr);
	if (ret)
		return -ret;
	ret = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	if (!ret)
		ret = pthread_cond_init(c, &attr);
	pthread_condattr_destroy(&attr);
	return -ret;
}

/* The CLOCK_MONOTONIC deadline ms milliseconds from now (for mono_cond_init
 * condvars). */
static inline struct timespec mono_deadline(uint64_t ms)
{
	uint64_t ns = mono_now_ns() + ms * 1000000ull;
	return (struct timespec){ (time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull) };
}

#endif
