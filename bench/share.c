/* SPDX-License-Identifier: MIT */
/*
 * share: N VMs restored from one 1 GiB boot-like snapshot, each in its own
 * process, with the shared page cache (--share) and without.  VMs 1..N-1 are
 * started together; when their guests have ended (they stay mapped), the
 * Nth starts: its restore time (first instruction) and working-set time
 * (guest done) show what a VM gets from a cache its peers filled.  Then every
 * VM samples its memory use with all N mapped (share_sync_sample): the total
 * Pss of the guest mappings and of the processes.  "warm" is one eager
 * restore timed from the moment its memory was resident.
 *
 *   build/bench/share [MiB (1024)] [max VMs (8)] [repeats (3)]
 *
 * Prints min/median/max and ratios to one unshared VM measured in the same
 * run; writes share.dat and, with gnuplot, share.png.  Caches live in a
 * private directory under /dev/shm, removed at the end.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "bootlike-snapshot.h"
#include "core/share.h"
#include "util/timeline.h"

#define MAX_REPEATS 8
#define MAX_VMS 16
#define ITERATIONS 2000

struct vm_sample {
	double first_us, done_us;
	double guest_pss_kib, pss_kib, private_kib;
	char result[24];
	int err;
	pid_t pid;
};

struct point {	/* one N, one mode, one repeat */
	double nth_first_ms, nth_done_ms, guest_pss_mib, pss_mib;
};

static char share_dir[] = "/dev/shm/lazyvm-bench-share.XXXXXX";

static uint64_t mark_ns(const struct timeline *t, const char *step)
{
	struct timeline_mark m[TIMELINE_MAX];
	unsigned n = timeline_sorted(t, m, TIMELINE_MAX);
	for (unsigned i = 0; i < n; i++)
		if (!strcmp(m[i].step, step))
			return m[i].ns;
	return 0;
}

/* One VM, in this (child) process: restore, run, tell the parent the guest
 * ended (done_fd), sample with the peers, report. */
static void vm_child(const char *dir, bool share, bool eager, unsigned n, int done_fd,
		     int go_fd, int report_fd)
{
	struct timeline tl;
	timeline_init(&tl);
	struct vm_restore_opts o = { .serial_fd = -1, .timeline = &tl, .share = share,
				     .share_dir = share_dir, .share_sync = share ? n : 0,
				     .eager = eager };
	struct vm_sample s = { .pid = getpid() };
	struct vm_restore *rs = NULL;
	char err[512];
	double t0 = bench_now_us();
	tl.start_ns = (uint64_t)(t0 * 1e3);
	s.err = vm_restore_open(dir, &o, &rs, err, sizeof(err));
	if (!s.err)
		s.err = vm_restore_run(rs, err, sizeof(err));
	if (s.err)
		fprintf(stderr, "share bench: restore: %s\n", err);
	if (write(done_fd, "d", 1) != 1)
		_exit(1);
	if (!s.err) {
		struct vm_restore_ws_stats w;
		struct share_usage u;
		vm_restore_ws_stats(rs, &w);
		double start = t0;
		if (eager)	/* warm: timed from when the memory was resident */
			start += (double)(mark_ns(&tl, "memory_filled") - mark_ns(&tl, "memory_source")) / 1e3;
		s.first_us = (double)vmm_first_entry_ns(vm_restore_vmm(rs)) / 1e3 - start;
		s.done_us = (double)w.guest_done_ns / 1e3 - start;
		vm_restore_share_usage(rs, &u);
		s.guest_pss_kib = (double)u.guest_pss_kib;
		s.pss_kib = (double)u.pss_kib;
		s.private_kib = (double)u.anon_kib;
		snprintf(s.result, sizeof(s.result), "%s", vmm_result(vm_restore_vmm(rs)));
	}
	if (write(report_fd, &s, sizeof(s)) != sizeof(s))
		_exit(1);
	char go;
	if (!share && read(go_fd, &go, 1) < 0)	/* unshared: stay until all sampled */
		_exit(1);
	vm_restore_close(rs);
	_exit(s.err ? 1 : 0);
}

/* Pipes: done (child -> parent: guest ended), go (parent -> unshared
 * children: all sampled, exit), report (child -> parent: the sample). */
struct pipes {
	int done[2], go[2], report[2];
};

static int pipes_open(struct pipes *p)
{
	return pipe(p->done) || pipe(p->go) || pipe(p->report) ? -1 : 0;
}

static void pipes_close(struct pipes *p)
{
	for (int i = 0; i < 2; i++)
		close(p->done[i]), close(p->go[i]), close(p->report[i]);
}

static pid_t vm_spawn(const char *dir, bool share, bool eager, unsigned n, struct pipes *p)
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0)
		vm_child(dir, share, eager, n, p->done[1], p->go[0], p->report[1]);
	return pid;
}

/* N VMs (N-1, then the Nth on what they left); 0 and p filled, or -1. */
static int run_n(const char *dir, bool share, unsigned n, struct point *p, char *result)
{
	struct pipes pp;
	if (pipes_open(&pp))
		return -1;
	pid_t pids[MAX_VMS];
	char d;
	int bad = 0;
	for (unsigned i = 0; i + 1 < n; i++)
		pids[i] = vm_spawn(dir, share, false, n, &pp);
	for (unsigned i = 0; i + 1 < n && !bad; i++)
		bad = read(pp.done[0], &d, 1) != 1;
	pids[n - 1] = vm_spawn(dir, share, false, n, &pp);
	struct vm_sample s[MAX_VMS];
	for (unsigned i = 0; i < n; i++)
		if (read(pp.report[0], &s[i], sizeof(s[i])) != sizeof(s[i]))
			bad = 1;
	if (write(pp.go[1], "gggggggggggggggg", n) != (ssize_t)n)	/* unshared: release */
		bad = 1;
	for (unsigned i = 0; i < n; i++) {
		int st;
		waitpid(pids[i], &st, 0);
		bad |= !WIFEXITED(st) || WEXITSTATUS(st);
	}
	pipes_close(&pp);
	*p = (struct point){ 0 };
	for (unsigned i = 0; i < n && !bad; i++) {
		if (s[i].err || (*result && strcmp(result, s[i].result)))
			bad = 1;
		snprintf(result, 24, "%s", s[i].result);
		p->guest_pss_mib += s[i].guest_pss_kib / 1024;
		p->pss_mib += s[i].pss_kib / 1024;
		if (s[i].pid == pids[n - 1]) {	/* the Nth (reports arrive in any order) */
			p->nth_first_ms = s[i].first_us / 1000;
			p->nth_done_ms = s[i].done_us / 1000;
		}
	}
	return bad ? -1 : 0;
}

static double warm_done_ms(const char *dir, char *result)
{
	struct pipes pp;
	if (pipes_open(&pp))
		return -1;
	pid_t pid = vm_spawn(dir, false, true, 1, &pp);
	struct vm_sample s = { .err = -EIO };
	char d;
	if (read(pp.done[0], &d, 1) != 1 || read(pp.report[0], &s, sizeof(s)) != sizeof(s))
		s.err = -EIO;
	if (write(pp.go[1], "g", 1) != 1)
		s.err = -EIO;
	waitpid(pid, NULL, 0);
	pipes_close(&pp);
	if (s.err || strcmp(result, s.result))
		return -1;
	return s.done_us / 1000;
}

static void plot(void)
{
	FILE *g = bench_gnuplot_open();
	if (!g)
		return;
	fprintf(g, "set terminal png size 1000,450\nset output 'share.png'\nset multiplot layout 1,2\n"
		   "set xlabel 'VMs from one snapshot'\nset xtics (1,4,8)\nset key top left\n"
		   "set ylabel 'total guest Pss, MiB (median)'\n"
		   "set title 'memory of N VMs'\n"
		   "plot 'share.dat' u 1:2 w lp t '--share', '' u 1:3 w lp t 'not shared'\n"
		   "set ylabel 'ms (median)'\nset title 'the Nth VM: working set done'\n"
		   "plot 'share.dat' u 1:4 w lp t '--share', '' u 1:5 w lp t 'not shared', "
		   "'' u 1:6 w l t 'warm'\nunset multiplot\n");
	if (!pclose(g))
		printf("\nwrote share.png\n");
}

static double median_of(const struct point *v, int n, size_t field)
{
	double x[MAX_REPEATS];
	for (int i = 0; i < n; i++)
		x[i] = *(const double *)((const char *)&v[i] + field);
	return bench_summary(x, n).median;
}

static void rows(const char *mode, const struct point *v, int n)
{
	static const struct { const char *what; size_t off; const char *unit; } f[] = {
		{ "Nth VM: first instruction", offsetof(struct point, nth_first_ms), "ms" },
		{ "Nth VM: working set done", offsetof(struct point, nth_done_ms), "ms" },
		{ "total guest Pss", offsetof(struct point, guest_pss_mib), "MiB" },
		{ "total process Pss", offsetof(struct point, pss_mib), "MiB" },
	};
	for (size_t k = 0; k < sizeof(f) / sizeof(f[0]); k++) {
		double x[MAX_REPEATS];
		char label[80];
		for (int i = 0; i < n; i++)
			x[i] = *(const double *)((const char *)&v[i] + f[k].off);
		snprintf(label, sizeof(label), "%s: %s", mode, f[k].what);
		bench_row(label, f[k].unit, x, n);
	}
}

int main(int argc, char **argv)
{
	uint64_t mib = argc > 1 ? strtoull(argv[1], NULL, 0) : 1024;
	unsigned max_vms = argc > 2 ? (unsigned)atoi(argv[2]) : 8;
	int repeats = argc > 3 ? atoi(argv[3]) : 3;
	if (max_vms < 1 || max_vms > MAX_VMS || repeats < 1 || repeats > MAX_REPEATS)
		return 2;
	char dir[] = "/tmp/lazyvm-bench-share.XXXXXX";
	if (!mkdtemp(dir) || !mkdtemp(share_dir))
		return 1;
	struct lvm_probe pr;
	if (share_probe(&pr))
		printf("no true sharing on this kernel (%s): --share copies\n", pr.reason);
	if (bench_bootlike_snapshot(dir, mib << 20, ITERATIONS))
		return 1;
	printf("share: %llu MiB boot-like snapshot, %d repeats; VMs 1..N-1 at once, then the Nth\n",
	       (unsigned long long)mib, repeats);
	unsigned ns[] = { 1, 4, 8, 16 };
	FILE *dat = fopen("share.dat", "w");
	char result[24] = "";
	double one_vm = 0, warm[MAX_REPEATS];
	int failed = 0;
	for (int r = 0; r < repeats; r++) {
		struct point p;
		if (run_n(dir, false, 1, &p, result))
			failed = 1;
		warm[r] = warm_done_ms(dir, result);
		failed |= warm[r] < 0;
	}
	double warm_med = bench_summary(warm, repeats).median;
	for (size_t k = 0; k < sizeof(ns) / sizeof(ns[0]) && ns[k] <= max_vms && !failed; k++) {
		struct point v[2][MAX_REPEATS];
		for (int r = 0; r < repeats && !failed; r++)
			for (int m = 0; m < 2 && !failed; m++)
				failed = run_n(dir, m == 0, ns[k], &v[m][r], result) != 0;
		if (failed)
			break;
		if (ns[k] == 1)
			one_vm = median_of(v[1], repeats, offsetof(struct point, guest_pss_mib));
		printf("\n%u VM%s (%s)\n", ns[k], ns[k] > 1 ? "s" : "", result);
		bench_header();
		rows("share", v[0], repeats);
		rows("not shared", v[1], repeats);
		bench_row("warm: working set done", "ms", warm, repeats);
		double sp = median_of(v[0], repeats, offsetof(struct point, guest_pss_mib));
		double up = median_of(v[1], repeats, offsetof(struct point, guest_pss_mib));
		double sd = median_of(v[0], repeats, offsetof(struct point, nth_done_ms));
		double ud = median_of(v[1], repeats, offsetof(struct point, nth_done_ms));
		printf("  ratios (medians): memory shared / one unshared VM %.2f (goal <= 1.3 at 8), "
		       "not shared / one VM %.2f; Nth working set / warm: shared %.2f (goal <= 1.2), "
		       "not shared %.2f\n", sp / one_vm, up / one_vm, sd / warm_med, ud / warm_med);
		if (dat)
			fprintf(dat, "%u %.1f %.1f %.2f %.2f %.2f\n", ns[k], sp, up, sd, ud, warm_med);
	}
	if (dat)
		fclose(dat);
	if (!failed)
		plot();
	else
		fprintf(stderr, "share bench: a restore failed or RESULTs differ\n");
	char cmd[200];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s'", dir, share_dir);
	if (system(cmd))
		fprintf(stderr, "could not remove %s\n", dir);
	return failed;
}
