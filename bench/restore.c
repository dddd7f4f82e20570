/* SPDX-License-Identifier: MIT */
/*
 * Restore: lazy vs eager, guest sizes 64 MiB .. 4 GiB (anon memory).
 *
 * For each size a snapshot of the boot-like guest is made at its entry point,
 * with all of its data memory filled (a guest that used its memory), so an
 * eager restore has the whole size to read.  Each repeat restores it lazily
 * (fault engine + background fill) and eagerly, and measures, from the start
 * of the restore: the first vCPU entry (first instruction) and the guest's
 * end (a fixed working set: 16 MiB dense prefix + random touches, so the
 * same work at every size).  Both restores must print the same RESULT.
 *
 *   build/bench/restore [max MiB (4096)] [repeats (3)]
 *
 * Prints min/median/max per size and the eager/lazy ratio of the medians;
 * writes restore.dat and, when gnuplot is installed, restore.png.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "bootlike-snapshot.h"
#include "lazyvm.h"
#include "vmm/snapshot.h"
#include "vmm/vmm.h"
#include "layout.h"
#include "workload-algo.h"

#define MAX_REPEATS 16
#define ITERATIONS 2000

struct sample {
	double first_us, done_us;
	double after_vm_us;	/* first instruction - KVM VM and vCPUs created */
	char result[64];
};

static int restore_once(const char *dir, bool eager, struct sample *s)
{
	struct vm_restore_opts o = { .eager = eager, .serial_fd = -1 };
	struct vm_restore *rs;
	char err[512];
	double t0 = bench_now_us();
	int ret = vm_restore_open(dir, &o, &rs, err, sizeof(err));
	if (!ret)
		ret = vm_restore_run(rs, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "restore bench: %s restore: %s\n", eager ? "eager" : "lazy", err);
		return ret;
	}
	s->done_us = bench_now_us() - t0;
	s->first_us = (double)vmm_first_entry_ns(vm_restore_vmm(rs)) / 1e3 - t0;
	s->after_vm_us = (double)(vmm_first_entry_ns(vm_restore_vmm(rs)) -
				  vm_restore_vm_created_ns(rs)) / 1e3;
	snprintf(s->result, sizeof(s->result), "%s", vmm_result(vm_restore_vmm(rs)));
	vm_restore_close(rs);
	return 0;
}

static double median_of(struct sample *v, int n, bool first)
{
	double x[MAX_REPEATS];
	for (int i = 0; i < n; i++)
		x[i] = first ? v[i].first_us : v[i].done_us;
	return bench_summary(x, n).median;
}

static void print_rows(const char *what, struct sample *v, int n, bool first)
{
	double x[MAX_REPEATS];
	for (int i = 0; i < n; i++)
		x[i] = (first ? v[i].first_us : v[i].done_us) / 1000.0;
	bench_row(what, "ms", x, n);
}

static void print_after_vm(const char *what, struct sample *v, int n)
{
	double x[MAX_REPEATS];
	for (int i = 0; i < n; i++)
		x[i] = v[i].after_vm_us / 1000.0;
	bench_row(what, "ms", x, n);
}

static void plot(void)
{
	FILE *g = bench_gnuplot_open();
	if (!g)
		return;
	fprintf(g, "set terminal png size 900,500\nset output 'restore.png'\n"
		   "set logscale xy\nset xlabel 'guest memory (MiB)'\nset ylabel 'ms (median)'\n"
		   "set key top left\nset title 'lazyvm restore: lazy vs eager'\n"
		   "plot 'restore.dat' u 1:2 w lp t 'lazy: first instruction', "
		   "'' u 1:3 w lp t 'eager: first instruction', "
		   "'' u 1:4 w lp t 'lazy: working set done', "
		   "'' u 1:5 w lp t 'eager: working set done'\n");
	if (!pclose(g))
		printf("\nwrote restore.png\n");
}

int main(int argc, char **argv)
{
	uint64_t max_mib = argc > 1 ? strtoull(argv[1], NULL, 0) : 4096;
	int repeats = argc > 2 ? atoi(argv[2]) : 3;
	if (repeats < 1 || repeats > MAX_REPEATS)
		repeats = 3;
	char tmp[] = "/tmp/lazyvm-bench-restore.XXXXXX";
	if (!mkdtemp(tmp))
		return 1;
	FILE *dat = fopen("restore.dat", "w");
	static const uint64_t sizes[] = { 64, 256, 1024, 2048, 4096 };
	double ratio_first[5], ratio_done[5];
	int nsizes = 0, status = 0;
	printf("restore: boot-like guest (16 MiB prefix + %d random page touches), anon, 2 vCPUs, "
	       "%d repeats\n", ITERATIONS, repeats);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]) && sizes[i] <= max_mib; i++) {
		char dir[128];
		snprintf(dir, sizeof(dir), "%s/%llu", tmp, (unsigned long long)sizes[i]);
		if (bench_bootlike_snapshot(dir, sizes[i] << 20, ITERATIONS)) {
			status = 1;
			break;
		}
		struct sample lazy[MAX_REPEATS], eager[MAX_REPEATS];
		for (int r = 0; r < repeats && !status; r++)
			if (restore_once(dir, false, &lazy[r]) || restore_once(dir, true, &eager[r]) ||
			    strcmp(lazy[r].result, eager[r].result) || !lazy[r].result[0])
				status = 1;
		if (status) {
			fprintf(stderr, "restore bench: %llu MiB: restore failed or RESULTs differ\n",
				(unsigned long long)sizes[i]);
			break;
		}
		printf("\n%llu MiB  (%s)\n", (unsigned long long)sizes[i], lazy[0].result);
		bench_header();
		print_rows("lazy: first instruction", lazy, repeats, true);
		print_after_vm("  of which after KVM VM creation", lazy, repeats);
		print_rows("eager: first instruction", eager, repeats, true);
		print_after_vm("  of which after KVM VM creation", eager, repeats);
		print_rows("lazy: working set done", lazy, repeats, false);
		print_rows("eager: working set done", eager, repeats, false);
		ratio_first[nsizes] = median_of(eager, repeats, true) / median_of(lazy, repeats, true);
		ratio_done[nsizes] = median_of(eager, repeats, false) / median_of(lazy, repeats, false);
		if (dat)
			fprintf(dat, "%llu %.3f %.3f %.3f %.3f\n", (unsigned long long)sizes[i],
				median_of(lazy, repeats, true) / 1e3, median_of(eager, repeats, true) / 1e3,
				median_of(lazy, repeats, false) / 1e3, median_of(eager, repeats, false) / 1e3);
		nsizes++;
		char cmd[200];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd))
			fprintf(stderr, "restore bench: could not remove %s\n", dir);
	}
	if (nsizes) {
		printf("\neager / lazy (ratio of medians; > 1: lazy is faster)\n");
		printf("  %-10s %18s %18s\n", "MiB", "first instruction", "working set done");
		for (int i = 0; i < nsizes; i++)
			printf("  %-10llu %18.1f %18.2f\n", (unsigned long long)sizes[i], ratio_first[i],
			       ratio_done[i]);
		printf("  %-10s %18.1f %18.2f   (min over sizes)\n", "min",
		       bench_summary(ratio_first, nsizes).min, bench_summary(ratio_done, nsizes).min);
		printf("  %-10s %18.1f %18.2f   (median)\n", "median",
		       bench_summary(ratio_first, nsizes).median, bench_summary(ratio_done, nsizes).median);
		printf("  %-10s %18.1f %18.2f   (max)\n", "max",
		       bench_summary(ratio_first, nsizes).max, bench_summary(ratio_done, nsizes).max);
	}
	if (dat)
		fclose(dat);
	if (nsizes)
		plot();
	rmdir(tmp);
	return status;
}
