/* SPDX-License-Identifier: MIT */
/*
 * guest_memfd fault cost, MISSING (UFFDIO_COPY) vs MINOR (write through the
 * alias, then UFFDIO_CONTINUE), against the no-userfaultfd floor (first touch
 * of a fresh guest_memfd page), measured in the same run: a toucher reads one
 * byte of every page of the region in order, one engine handler thread, one
 * page per fault.  Needs a kernel with userfaultfd for guest_memfd: run it in
 * the test kernel with `tools/check-gmem.sh build $PWD/build/bench/gmem-fault`.
 * Usage: gmem-fault [MiB=8] [repeats=5]
 */
#include <string.h>

#include "bench.h"
#include "lazyvm.h"
#include "../tests/testlib.h"

static uint64_t region;
static char file_path[64];

/* us per page; m < 0: no userfaultfd (the floor). */
static double run(int m, int handler_cpu, int toucher_cpu)
{
	struct lvm_mem *mem = NULL;
	struct lvm_source *src = NULL;
	struct lvm_engine *e = NULL;
	struct lvm_engine_opts o;
	lvm_engine_opts_init(&o);
	o.threads = 1;
	bench_pin(handler_cpu);	/* the engine's threads inherit it */
	int ret;
	if (m < 0) {
		struct lvm_mem_opts mo = { .struct_size = sizeof(mo), .backing = LVM_BACKING_GMEM, .size = region,
					   .kvm_vm_fd = -1 };
		ret = lvm_mem_create(&mo, &mem);
	} else {
		ret = test_serve(LVM_BACKING_GMEM, (enum lvm_mode)m, region, file_path, &o, &mem,
				 &src, &e);
	}
	if (ret) {
		fprintf(stderr, "gmem-fault: %s\n", strerror(-ret));
		exit(1);
	}
	bench_pin(toucher_cpu);
	double us = bench_touch_pages(lvm_mem_addr(mem), region);
	test_unserve(mem, src, e);
	return us;
}

int main(int argc, char **argv)
{
	region = (uint64_t)(argc > 1 ? atoi(argv[1]) : 8) << 20;
	int reps = argc > 2 ? atoi(argv[2]) : 5;
	if (reps < 1 || reps > 64 || !region) {
		fprintf(stderr, "usage: gmem-fault [MiB=8] [repeats=5 (1..64)]\n");
		return 64;
	}
	struct lvm_probe p = { .struct_size = sizeof(p) };
	for (int m = LVM_MODE_MISSING; m <= LVM_MODE_MINOR; m++) {
		lvm_probe(LVM_BACKING_GMEM, (enum lvm_mode)m, &p);
		if (p.err) {
			printf("gmem-fault: gmem x %s not lazy on this kernel (%s): nothing to measure\n",
			       lvm_mode_name((enum lvm_mode)m), p.reason);
			return 0;
		}
	}
	int fd = pattern_file(region, file_path, sizeof(file_path));
	if (fd < 0) {
		fprintf(stderr, "gmem-fault: pattern file: %s\n", strerror(-fd));
		return 1;
	}
	static const struct { const char *name; int hcpu, tcpu; } place[] = {
		{ "same CPU (both pinned to CPU 0)", 0, 0 },
		{ "cross CPU (handler 1, toucher 0)", 1, 0 },
	};
	printf("gmem-fault: %llu MiB guest_memfd, 4 KiB read faults from userspace, %d repeats\n",
	       (unsigned long long)(region >> 20), reps);
	run(LVM_MODE_MISSING, -1, -1);	/* warm-up */
	for (size_t i = 0; i < sizeof(place) / sizeof(place[0]); i++) {
		double floor_us[64], miss[64], minor[64], r_miss[64], r_minor[64], r_mm[64];
		for (int r = 0; r < reps; r++) {	/* paired: floor, MISSING, MINOR, ... */
			floor_us[r] = run(-1, place[i].hcpu, place[i].tcpu);
			miss[r] = run(LVM_MODE_MISSING, place[i].hcpu, place[i].tcpu);
			minor[r] = run(LVM_MODE_MINOR, place[i].hcpu, place[i].tcpu);
			r_miss[r] = miss[r] / floor_us[r];
			r_minor[r] = minor[r] / floor_us[r];
			r_mm[r] = minor[r] / miss[r];
		}
		bench_pin(-1);
		printf("\n%s\n", place[i].name);
		bench_header();
		bench_row("no uffd (floor), us per first touch", "us", floor_us, reps);
		bench_row("MISSING (COPY), us per fault", "us", miss, reps);
		bench_row("MINOR (alias write + CONTINUE), us/fault", "us", minor, reps);
		bench_row("ratio MISSING / floor", "x", r_miss, reps);
		bench_row("ratio MINOR / floor", "x", r_minor, reps);
		bench_row("ratio MINOR / MISSING", "x", r_mm, reps);
	}
	return 0;
}
