/* SPDX-License-Identifier: MIT */
/*
 * Fault service latency: lazyvm's engine vs a bare minimal uffd handler
 * (poll, read one fault, one UFFDIO_COPY from the file mapping), same CPU
 * placement, measured in the same run.  A toucher reads one byte of every
 * page of a region in order; the time per page is the fault round trip.
 * Usage: fault-latency [MiB=64] [repeats=7]
 */
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench.h"
#include "lazyvm.h"
#include "core/uffd.h"
#include "../tests/testlib.h"

#define IDLE_MS 100

static uint64_t region;
static const uint8_t *file_map;
static char file_path[64];

struct bare { int uffd; uint8_t *mem; _Atomic int stop; };

static void *bare_handler(void *arg)
{
	struct bare *b = arg;
	struct pollfd pfd = { b->uffd, POLLIN, 0 };
	while (!atomic_load(&b->stop)) {
		if (poll(&pfd, 1, 10) <= 0)
			continue;
		struct uffd_msg m;
		if (read(b->uffd, &m, sizeof(m)) != sizeof(m) || m.event != UFFD_EVENT_PAGEFAULT)
			continue;
		uint64_t page = m.arg.pagefault.address & ~4095ull;
		uint64_t off = page - (uint64_t)(uintptr_t)b->mem, done;
		uffd_copy(b->uffd, page, file_map + off, 4096, 0, &done);
	}
	return NULL;
}

static double run_bare(int handler_cpu, int toucher_cpu)
{
	struct bare b = { .stop = 0 };
	b.mem = mmap(NULL, region, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	b.uffd = uffd_open(UFFD_FEATURE_EVENT_REMOVE, NULL);
	uffd_register(b.uffd, (uint64_t)(uintptr_t)b.mem, region, UFFDIO_REGISTER_MODE_MISSING, NULL);
	pthread_t t;
	bench_pin(handler_cpu);
	pthread_create(&t, NULL, bare_handler, &b);
	bench_pin(toucher_cpu);
	double us = bench_touch_pages(b.mem, region);
	atomic_store(&b.stop, 1);
	pthread_join(t, NULL);
	close(b.uffd);
	munmap(b.mem, region);
	return us;
}

/* CPU the whole process used over ms of idleness (the toucher sleeps):
 * what the engine's handler burns after the last fault (adaptive polling
 * must spin only while faults are dense). */
static double idle_cpu_ms(unsigned ms)
{
	struct timespec a, b;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
	usleep(ms * 1000);
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
	return (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
}

static double engine_idle_ms;

static double run_engine(int handler_cpu, int toucher_cpu)
{
	struct lvm_mem *mem;
	struct lvm_source *src;
	struct lvm_engine *e;
	struct lvm_mem_opts mo = { .struct_size = sizeof(mo), .backing = LVM_BACKING_ANON, .size = region, .kvm_vm_fd = -1 };
	struct lvm_engine_opts o;
	lvm_engine_opts_init(&o);
	o.threads = 1;	/* the same single handler as the bare loop */
	if (lvm_mem_create(&mo, &mem) || lvm_source_file_open(file_path, 0, &src) ||
	    lvm_engine_create(&o, &e) || lvm_engine_add_mem(e, mem, LVM_MODE_MISSING, src, 0) < 0)
		exit(1);
	bench_pin(handler_cpu);
	lvm_engine_start(e);
	bench_pin(toucher_cpu);
	double us = bench_touch_pages(lvm_mem_addr(mem), region);
	engine_idle_ms = idle_cpu_ms(IDLE_MS);
	lvm_engine_destroy(e);
	lvm_source_destroy(src);
	lvm_mem_destroy(mem);
	return us;
}

int main(int argc, char **argv)
{
	region = (uint64_t)(argc > 1 ? atoi(argv[1]) : 64) << 20;
	int reps = argc > 2 ? atoi(argv[2]) : 7;
	int fd = pattern_file(region, file_path, sizeof(file_path));
	file_map = mmap(NULL, region, PROT_READ, MAP_SHARED, fd, 0);
	static const struct { const char *name; int hcpu, tcpu; } place[] = {
		{ "same CPU (both pinned to CPU 0)", 0, 0 },
		{ "cross CPU (handler 1, toucher 0)", 1, 0 },
		{ "unpinned", -1, -1 },
	};
	printf("fault-latency: %llu MiB anon region, 4 KiB read faults, %d repeats\n",
	       (unsigned long long)(region >> 20), reps);
	run_bare(-1, -1);	/* warm-up: first-touch costs of this machine's RAM */
	run_engine(-1, -1);
	for (size_t p = 0; p < sizeof(place) / sizeof(place[0]); p++) {
		double bare[64], eng[64], ratio[64], idle[64];
		for (int r = 0; r < reps && r < 64; r++) {	/* paired: A B A B ... */
			bare[r] = run_bare(place[p].hcpu, place[p].tcpu);
			eng[r] = run_engine(place[p].hcpu, place[p].tcpu);
			ratio[r] = eng[r] / bare[r];
			idle[r] = engine_idle_ms;
		}
		bench_pin(-1);
		printf("\n%s\n", place[p].name);
		bench_header();
		bench_row("bare handler, us per fault", "us", bare, reps);
		bench_row("lazyvm engine, us per fault", "us", eng, reps);
		bench_row("ratio engine / bare (goal <= 1.3; cross CPU <= 0.5)", "x", ratio, reps);
		bench_row("engine CPU in the 100 ms after the last fault", "ms", idle, reps);
	}
	return 0;
}
