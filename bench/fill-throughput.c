/* SPDX-License-Identifier: MIT */
/*
 * Background fill throughput: the engine streaming a region with no guest
 * faults vs raw UFFDIO_COPY in 2 MiB chunks from the same file mapping, in
 * the same run.  Usage: fill-throughput [MiB=1024] [repeats=5]
 */
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench.h"
#include "lazyvm.h"
#include "core/uffd.h"
#include "../tests/testlib.h"

static uint64_t region;
static const uint8_t *file_map;
static char file_path[64];
/* One file source for every engine run, as the raw side keeps one mapping:
 * both then copy from a warm, already-mapped file and the ratio measures the
 * engine, not the page-table setup of a fresh mmap. */
static struct lvm_source *file_src;

static double run_raw(void)
{
	uint8_t *mem = mmap(NULL, region, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	int uffd = uffd_open(0, NULL);
	uffd_register(uffd, (uint64_t)(uintptr_t)mem, region, UFFDIO_REGISTER_MODE_MISSING, NULL);
	double t0 = bench_now_us();
	for (uint64_t off = 0; off < region; off += 2 << 20) {
		uint64_t done;
		uffd_copy(uffd, (uint64_t)(uintptr_t)mem + off, file_map + off, 2 << 20, 0, &done);
	}
	double us = bench_now_us() - t0;
	close(uffd);
	munmap(mem, region);
	return (double)region / us / 1e3;	/* GB/s */
}

static double run_engine_on(size_t chunk, enum lvm_backing b, enum lvm_mode m)
{
	struct lvm_mem *mem;
	struct lvm_engine *e;
	struct lvm_mem_opts mo = { .struct_size = sizeof(mo), .backing = b, .size = region, .kvm_vm_fd = -1 };
	struct lvm_engine_opts o;
	lvm_engine_opts_init(&o);
	o.threads = 1;
	o.background_fill = true;
	o.fill_chunk = chunk;
	if (lvm_mem_create(&mo, &mem) || lvm_engine_create(&o, &e) ||
	    lvm_engine_add_mem(e, mem, m, file_src, 0) < 0)
		exit(1);
	double t0 = bench_now_us();
	lvm_engine_start(e);
	lvm_engine_wait_filled(e, -1);
	double us = bench_now_us() - t0;
	lvm_engine_destroy(e);
	lvm_mem_destroy(mem);
	return (double)region / us / 1e3;
}

static double run_engine(size_t chunk)
{
	return run_engine_on(chunk, LVM_BACKING_ANON, LVM_MODE_MISSING);
}

int main(int argc, char **argv)
{
	region = (uint64_t)(argc > 1 ? atoi(argv[1]) : 1024) << 20;
	int reps = argc > 2 ? atoi(argv[2]) : 5;
	int fd = pattern_file(region, file_path, sizeof(file_path));
	file_map = mmap(NULL, region, PROT_READ, MAP_SHARED, fd, 0);
	/* Fault the source in once so both sides copy from a warm page cache. */
	volatile uint8_t sink = 0;
	for (uint64_t off = 0; off < region; off += 4096)
		sink += file_map[off];
	(void)sink;
	if (lvm_source_file_open(file_path, 0, &file_src))
		exit(1);
	printf("fill-throughput: %llu MiB anon region from a warm file, %d repeats\n",
	       (unsigned long long)(region >> 20), reps);
	static const size_t chunks[] = { 512u << 10, 2u << 20 };
	/* Warm-up, not counted: this machine's own RAM is populated lazily by
	 * the host below it, so the first GiBs touched cost several times more. */
	for (int w = 0; w < 2; w++) {
		run_raw();
		run_engine(chunks[0]);
	}
	double raw[64], eng[2][64], ratio[2][64], minor[64], mratio[64];
	for (int r = 0; r < reps && r < 64; r++) {
		raw[r] = run_raw();
		for (int c = 0; c < 2; c++) {
			eng[c][r] = run_engine(chunks[c]);
			ratio[c][r] = eng[c][r] / raw[r];
		}
		/* MINOR on memfd: pwrite into the page cache, one CONTINUE per piece. */
		minor[r] = run_engine_on(chunks[0], LVM_BACKING_MEMFD, LVM_MODE_MINOR);
		mratio[r] = minor[r] / raw[r];
	}
	bench_header();
	bench_row("raw UFFDIO_COPY, 2 MiB chunks", "GB/s", raw, reps);
	bench_row("engine background fill, 512 KiB chunks", "GB/s", eng[0], reps);
	bench_row("engine background fill, 2 MiB chunks", "GB/s", eng[1], reps);
	bench_row("ratio engine(512K) / raw (goal >= 0.85)", "x", ratio[0], reps);
	bench_row("ratio engine(2M) / raw", "x", ratio[1], reps);
	bench_row("engine fill, memfd MINOR (pwrite + CONTINUE), 512K", "GB/s", minor, reps);
	bench_row("ratio memfd MINOR / raw COPY (goal >= 1.5)", "x", mratio, reps);
	lvm_source_destroy(file_src);
	return 0;
}
