/* SPDX-License-Identifier: MIT */
/*
 * Working-set prefetch (docs/prefetch.md) against on-demand, full-stream and
 * warm restores, guest sizes 256 MiB .. 4 GiB (anon, 2 vCPUs).
 *
 * For each size a boot-like snapshot is made at its entry point, all of its
 * data memory filled (bootlike-snapshot.h), and its working set recorded once
 * (--record-ws).  Each repeat then restores it four ways:
 *   none  demand faults only (--prefetch none)
 *   ws    the working set in recorded order, then the rest in the background
 *   all   everything in address order (the background fill)
 *   warm  memory resident and populated, no userfaultfd: an eager restore,
 *         its clock started when the memory was in (timeline "memory_filled")
 * and measures from the start of the restore: the first instruction, the
 * working set done (the guest's end: 16 MiB dense prefix + random touches,
 * the same work at every size), and demand faults.  All must print the same
 * RESULT.  Learning is off here (each ws restore starts from the recorded
 * set): a copy of the file is put back before each one.
 *
 *   build/bench/prefetch [max MiB (4096)] [repeats (3)]
 *
 * Prints min/median/max, the ratios to warm of the same run, the demand
 * faults of ws against none; writes prefetch.dat and, with gnuplot,
 * prefetch.png.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "bootlike-snapshot.h"
#include "snapshot/ws.h"
#include "util/timeline.h"

#define MAX_REPEATS 16
#define ITERATIONS 2000

enum mode { M_NONE, M_WS, M_ALL, M_WARM, M__COUNT };
static const char *const mode_names[M__COUNT] = { "none", "ws", "all", "warm" };

struct sample {
	double first_us, done_us, faults, demand;
	char result[64];
};

static uint64_t mark_ns(const struct timeline *t, const char *step)
{
	struct timeline_mark m[TIMELINE_MAX];
	unsigned n = timeline_sorted(t, m, TIMELINE_MAX);
	for (unsigned i = 0; i < n; i++)
		if (!strcmp(m[i].step, step))
			return m[i].ns;
	return 0;
}

static int restore_once(const char *dir, enum mode m, bool record, struct sample *s)
{
	static const enum vm_prefetch pf[M__COUNT] = { VM_PREFETCH_NONE, VM_PREFETCH_WS,
						       VM_PREFETCH_ALL, VM_PREFETCH_ALL };
	struct timeline tl;
	timeline_init(&tl);
	struct vm_restore_opts o = { .eager = m == M_WARM, .serial_fd = -1, .prefetch = pf[m],
				     .record_ws = record, .timeline = &tl };
	struct vm_restore *rs;
	char err[512];
	double t0 = bench_now_us();
	tl.start_ns = (uint64_t)(t0 * 1e3);
	int ret = vm_restore_open(dir, &o, &rs, err, sizeof(err));
	bool opened = !ret;
	if (!ret)
		ret = vm_restore_run(rs, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "prefetch bench: %s restore: %s\n", mode_names[m], err);
		if (opened)
			vm_restore_close(rs);
		return ret;
	}
	struct vm_restore_ws_stats w;
	struct lvm_stats st = { .struct_size = sizeof(st) };
	vm_restore_ws_stats(rs, &w);
	vm_restore_stats(rs, &st);
	double start = t0;
	if (m == M_WARM)	/* the memory is resident from here on */
		start += (double)(mark_ns(&tl, "memory_filled") - mark_ns(&tl, "memory_source")) / 1e3;
	s->first_us = (double)vmm_first_entry_ns(vm_restore_vmm(rs)) / 1e3 - start;
	s->done_us = (double)w.guest_done_ns / 1e3 - start;
	s->faults = (double)st.faults;
	s->demand = (double)st.pages_demand;
	snprintf(s->result, sizeof(s->result), "%s", vmm_result(vm_restore_vmm(rs)));
	vm_restore_close(rs);
	return 0;
}

static struct bench_mmm summary(const struct sample *v, int n, size_t field)
{
	double x[MAX_REPEATS];
	for (int i = 0; i < n; i++)
		x[i] = *(const double *)((const char *)&v[i] + field);
	return bench_summary(x, n);
}

static void row(const char *what, const char *mode, const struct sample *v, int n, size_t field,
		double scale, const char *unit)
{
	double x[MAX_REPEATS];
	char label[64];
	snprintf(label, sizeof(label), "%s: %s", mode, what);
	for (int i = 0; i < n; i++)
		x[i] = *(const double *)((const char *)&v[i] + field) / scale;
	bench_row(label, unit, x, n);
}

static int copy_file(const char *from, const char *to)
{
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", from, to);
	return system(cmd);
}

/* Record the working set, then repeats x every mode; 0 when all RESULTs agree. */
static int bench_size(const char *dir, int repeats, struct sample v[M__COUNT][MAX_REPEATS])
{
	char ws[300], keep[300];
	struct sample rec;
	snprintf(ws, sizeof(ws), "%s/%s", dir, WS_FILE_NAME);
	snprintf(keep, sizeof(keep), "%s/recorded-ws", dir);
	if (restore_once(dir, M_NONE, true, &rec) || copy_file(ws, keep))
		return 1;
	for (int r = 0; r < repeats; r++)
		for (int m = 0; m < M__COUNT; m++) {
			if (m == M_WS && copy_file(keep, ws))	/* no learning between repeats */
				return 1;
			if (restore_once(dir, (enum mode)m, false, &v[m][r]) ||
			    strcmp(v[m][r].result, rec.result) || !rec.result[0])
				return 1;
		}
	return 0;
}

static void plot(void)
{
	FILE *g = bench_gnuplot_open();
	if (!g)
		return;
	fprintf(g, "set terminal png size 900,500\nset output 'prefetch.png'\n"
		   "set logscale xy\nset xlabel 'guest memory (MiB)'\n"
		   "set ylabel 'working set done, ms (median)'\nset key top left\n"
		   "set title 'lazyvm restore: time to working set done by prefetch mode'\n"
		   "plot 'prefetch.dat' u 1:2 w lp t 'none (demand only)', "
		   "'' u 1:3 w lp t 'ws (working set first)', '' u 1:4 w lp t 'all (address order)', "
		   "'' u 1:5 w lp t 'warm (resident, no uffd)'\n");
	if (!pclose(g))
		printf("\nwrote prefetch.png\n");
}

static void report_size(uint64_t mib, struct sample v[M__COUNT][MAX_REPEATS], int n, FILE *dat)
{
	printf("\n%llu MiB  (%s)\n", (unsigned long long)mib, v[M_WS][0].result);
	bench_header();
	for (int m = 0; m < M__COUNT; m++)
		row("first instruction", mode_names[m], v[m], n, offsetof(struct sample, first_us),
		    1000.0, "ms");
	for (int m = 0; m < M__COUNT; m++)
		row("working set done", mode_names[m], v[m], n, offsetof(struct sample, done_us),
		    1000.0, "ms");
	for (int m = 0; m < M_WARM; m++)
		row("demand faults", mode_names[m], v[m], n, offsetof(struct sample, faults), 1.0, "");
	double warm = summary(v[M_WARM], n, offsetof(struct sample, done_us)).median;
	double none_f = summary(v[M_NONE], n, offsetof(struct sample, faults)).median;
	double ws_f = summary(v[M_WS], n, offsetof(struct sample, faults)).median;
	printf("  working set done / warm (medians): none %.2f  ws %.2f  all %.2f\n",
	       summary(v[M_NONE], n, offsetof(struct sample, done_us)).median / warm,
	       summary(v[M_WS], n, offsetof(struct sample, done_us)).median / warm,
	       summary(v[M_ALL], n, offsetof(struct sample, done_us)).median / warm);
	printf("  demand faults ws vs none (medians): %.0f vs %.0f = %+.1f%%\n", ws_f, none_f,
	       none_f ? (ws_f - none_f) * 100.0 / none_f : 0.0);
	if (dat) {
		fprintf(dat, "%llu", (unsigned long long)mib);
		for (int m = 0; m < M__COUNT; m++)
			fprintf(dat, " %.3f", summary(v[m], n, offsetof(struct sample, done_us)).median / 1e3);
		fprintf(dat, "\n");
	}
}

int main(int argc, char **argv)
{
	uint64_t max_mib = argc > 1 ? strtoull(argv[1], NULL, 0) : 4096;
	int repeats = argc > 2 ? atoi(argv[2]) : 3;
	if (repeats < 1 || repeats > MAX_REPEATS)
		repeats = 3;
	char tmp[] = "/tmp/lazyvm-bench-prefetch.XXXXXX";
	if (!mkdtemp(tmp))
		return 1;
	FILE *dat = fopen("prefetch.dat", "w");
	static const uint64_t sizes[] = { 256, 1024, 4096 };
	static struct sample v[M__COUNT][MAX_REPEATS];
	int status = 0, done = 0;
	printf("prefetch: boot-like guest (16 MiB prefix + %d random page touches), anon, 2 vCPUs, "
	       "%d repeats; times from the start of the restore (warm: from when its memory "
	       "was resident)\n", ITERATIONS, repeats);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]) && sizes[i] <= max_mib; i++) {
		char dir[128], cmd[200];
		snprintf(dir, sizeof(dir), "%s/%llu", tmp, (unsigned long long)sizes[i]);
		status = bench_bootlike_snapshot(dir, sizes[i] << 20, ITERATIONS) ||
			 bench_size(dir, repeats, v);
		if (status) {
			fprintf(stderr, "prefetch bench: %llu MiB: a restore failed or RESULTs differ\n",
				(unsigned long long)sizes[i]);
			break;
		}
		report_size(sizes[i], v, repeats, dat);
		done++;
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd))
			fprintf(stderr, "prefetch bench: could not remove %s\n", dir);
	}
	if (dat)
		fclose(dat);
	if (done)
		plot();
	rmdir(tmp);
	return status;
}
