/* SPDX-License-Identifier: MIT */
/* Shared bits of lazyvm's benchmarks: timing, pinning, min/median/max. */
#ifndef LAZYVM_BENCH_H
#define LAZYVM_BENCH_H

#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "util/clock.h"

static inline double bench_now_us(void)
{
	return (double)mono_now_ns() / 1e3;
}

/* Read one byte of every 4 KiB page of [mem, mem+len) in order: microseconds
 * per page (each first touch of lazily served memory is one fault). */
static inline double bench_touch_pages(volatile const uint8_t *mem, uint64_t len)
{
	uint8_t sink = 0;
	double t0 = bench_now_us();
	for (uint64_t off = 0; off < len; off += 4096)
		sink += mem[off];
	(void)sink;
	return (bench_now_us() - t0) / (double)(len / 4096);
}

/* Pin the calling thread (threads it creates later inherit it); cpu < 0: any. */
static inline void bench_pin(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	if (cpu < 0) {
		for (int i = 0; i < CPU_SETSIZE; i++)
			CPU_SET(i, &set);
	} else {
		CPU_SET(cpu, &set);
	}
	sched_setaffinity(0, sizeof(set), &set);
}

static int bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

struct bench_mmm { double min, median, max; };

static inline struct bench_mmm bench_summary(const double *v, int n)
{
	double *s = malloc(sizeof(double) * (size_t)n);
	for (int i = 0; i < n; i++)
		s[i] = v[i];
	qsort(s, (size_t)n, sizeof(double), bench_cmp_double);
	struct bench_mmm m = { s[0], n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2, s[n - 1] };
	free(s);
	return m;
}

static inline void bench_row(const char *what, const char *unit, const double *v, int n)
{
	struct bench_mmm m = bench_summary(v, n);
	printf("  %-44s %10.2f %10.2f %10.2f  %s\n", what, m.min, m.median, m.max, unit);
}

static inline void bench_header(void)
{
	printf("  %-44s %10s %10s %10s\n", "", "min", "median", "max");
}

/* A pipe to gnuplot, or NULL when gnuplot is not installed (the plot is
 * optional; the .dat file is always written).  The caller pcloses it. */
static inline FILE *bench_gnuplot_open(void)
{
	if (system("command -v gnuplot >/dev/null 2>&1"))
		return NULL;
	return popen("gnuplot", "w");
}

#endif
