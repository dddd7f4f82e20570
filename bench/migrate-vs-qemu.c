/* SPDX-License-Identifier: MIT */
/*
 * bench/migrate-vs-qemu: QEMU's post-copy and lazyvm's, side by side, in one
 * run, interleaved: the same guest memory (1 GiB), the same dirty set and
 * rate (the `dirty` workload of QEMU's anchor, ../shared/qemu-postcopy, and
 * lazyvm's `dirty` guest: 4096 random pages/s by default), both on
 * 127.0.0.1, each migrated a few seconds after its fill.
 *
 *   build/bench/migrate-vs-qemu [dirty MiB (512)] [repeats (3)]
 *   env QEMU_ANCHOR=DIR (default ../shared/qemu-postcopy), RATE=pages/s
 *
 * QEMU (TCG here: its KVM does not boot on this nested host) runs in its
 * `postcopy` mode for downtime, total time, blocktime and bytes, and in
 * `postcopy-preempt+trace` for the per-fault latency (the trace costs it
 * some blocktime, so that run's other figures are not used).  lazyvm (KVM)
 * runs `run --guest dirty --fill` with 0 pre-copy rounds and migrate-recv;
 * its RESULT must equal the C model, else the run is dropped.  Prints
 * min/median/max of each side and the ratio of the medians; writes
 * migrate-vs-qemu.dat and, with gnuplot, migrate-vs-qemu.png.  How to read
 * it: docs/migration-protocol.md.
 */
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>

#include "bench.h"
#include "migrate-cli.h"
#include "../tests/vmtest.h"

#define MAX_REPEATS 16
#define GUEST_MIB 1024
#define SEED 5
#define STEPS 12000		/* 12 s of dirtying; migration 3 s after the fill */
#define AFTER_MS "3000"

enum fig { DOWNTIME, TOTAL, P50, P99, BLOCKTIME, WIRE, MAXGAP, NFIG };
static const char *const fig_name[NFIG] = { "downtime", "total migration time",
	"remote fault p50", "remote fault p99", "vCPU blocktime", "bytes on the wire",
	"guest max step gap" };
static const char *const fig_unit[NFIG] = { "ms", "ms", "us", "us", "ms", "MiB", "ms" };

static char tmp[] = "/tmp/lazyvm-bench-vs-qemu.XXXXXX";

/* One figure "MODE.name: value unit" from mig.py's output; -1 if absent. */
static double mig_fig(const char *out, const char *mode, const char *name)
{
	char pat[128];
	snprintf(pat, sizeof(pat), "%s.%s: ", mode, name);
	const char *p = strstr(out, pat);
	return p ? atof(p + strlen(pat)) : -1;
}

/* One QEMU migration in `mode`; its output in out (0 lines: failed). */
static bool qemu_once(const char *anchor, const char *mode, unsigned mib, unsigned rate,
		      char *out, size_t len)
{
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "python3 %s/mig.py %s --mem %u --rate %u --timeout 240 "
		 "--dir %s/qemu 2>/dev/null", anchor, mode, mib, rate, tmp);
	FILE *f = popen(cmd, "r");
	size_t n = f ? fread(out, 1, len - 1, f) : 0;
	out[n] = 0;
	int st = f ? pclose(f) : -1;
	if (st)
		fprintf(stderr, "bench: QEMU %s failed (exit %d)\n", mode, st);
	return !st && mig_fig(out, mode, "status") == 1;
}

static bool qemu_sample(const char *anchor, unsigned mib, unsigned rate, double *v)
{
	static char out[65536];
	if (!qemu_once(anchor, "postcopy", mib, rate, out, sizeof(out)))
		return false;
	v[DOWNTIME] = mig_fig(out, "postcopy", "downtime");
	v[TOTAL] = mig_fig(out, "postcopy", "total-time");
	v[BLOCKTIME] = mig_fig(out, "postcopy", "postcopy-blocktime");
	v[WIRE] = mig_fig(out, "postcopy", "transferred");
	v[MAXGAP] = mig_fig(out, "postcopy", "guest-maxgap");
	const char *tm = "postcopy-preempt+trace";
	if (!qemu_once(anchor, tm, mib, rate, out, sizeof(out)))
		return false;
	v[P50] = mig_fig(out, tm, "fault-latency-p50");
	v[P99] = mig_fig(out, tm, "fault-latency-p99");
	return true;
}

/* The largest maxgap_ms the dirty guest printed. */
static double guest_maxgap(const char *out)
{
	const char *p = strstr(out, "maxgap_ms=");
	return p ? atof(p + 10) : -1;
}

static bool lazyvm_sample(unsigned mib, unsigned rate, uint64_t want, double *v)
{
	char dout[600], sout[600], djson[600], sjson[600], addr[64], fill[32], mem[32], it[32];
	static char buf[65536];
	snprintf(dout, sizeof(dout), "%s/dst.out", tmp);
	snprintf(sout, sizeof(sout), "%s/src.out", tmp);
	snprintf(djson, sizeof(djson), "%s/dst.json", tmp);
	snprintf(sjson, sizeof(sjson), "%s/src.json", tmp);
	snprintf(fill, sizeof(fill), "%uM", mib);
	snprintf(mem, sizeof(mem), "%uM", GUEST_MIB);
	snprintf(it, sizeof(it), "%u", STEPS);
	(void)rate;	/* the guest's default, 4096 pages/s */
	pid_t d = bench_start_receiver(dout, djson, addr, sizeof(addr));
	const char *sargs[] = { bench_cli, "run", "--guest", "dirty", "--mem", mem, "--fill", fill,
				"--seed", "5", "--iterations", it, "--vcpus", "1",
				"--migrate-to", addr, "--migrate-after-ms", AFTER_MS,
				"--precopy-rounds", "0", "--stats-json", sjson, NULL };
	pid_t src = bench_spawn(sargs, sout, -1);
	int sst = bench_reap(src), dst = bench_reap(d);
	uint64_t got = 0;
	vmtest_slurp(dout, buf, sizeof(buf));
	bool ok = !sst && !dst && vmtest_result(buf, &got) && got == want;
	v[MAXGAP] = guest_maxgap(buf);
	vmtest_slurp(djson, buf, sizeof(buf));
	v[DOWNTIME] = bench_json_num(buf, "downtime_ms");
	v[TOTAL] = bench_json_num(buf, "total_ms");
	v[P50] = bench_json_lat(buf, "p50");
	v[P99] = bench_json_lat(buf, "p99");
	v[BLOCKTIME] = bench_json_num(buf, "blocktime_ms");
	vmtest_slurp(sjson, buf, sizeof(buf));
	v[WIRE] = bench_json_num(buf, "wire_bytes") / 1048576.0;
	if (!ok)
		fprintf(stderr, "bench: lazyvm run failed (source exit %d, destination exit %d, "
			"RESULT %016llx, model %016llx)\n", sst, dst, (unsigned long long)got,
			(unsigned long long)want);
	unlink(dout), unlink(sout), unlink(djson), unlink(sjson);
	return ok;
}

static void plot(const double med[2][NFIG])
{
	FILE *f = fopen("migrate-vs-qemu.dat", "w");
	if (!f)
		return;
	fprintf(f, "# figure qemu lazyvm (medians; lazyvm/qemu ratio in the bench output)\n");
	for (int k = 0; k < NFIG; k++)
		fprintf(f, "\"%s (%s)\" %.3f %.3f\n", fig_name[k], fig_unit[k], med[0][k], med[1][k]);
	fclose(f);
	FILE *g = bench_gnuplot_open();
	if (!g)
		return;
	fprintf(g, "set terminal png size 1000,520\nset output 'migrate-vs-qemu.png'\n"
		"set title 'Post-copy, 1 GiB guest, same dirty set and rate: QEMU 7.2 (TCG) vs "
		"lazyvm (KVM), medians'\nset style data histograms\nset style fill solid 0.8\n"
		"set logscale y\nset ylabel 'value (log scale; unit in the label)'\n"
		"set xtics rotate by -20\nset key top right\n"
		"plot 'migrate-vs-qemu.dat' using 2:xtic(1) title 'QEMU', '' using 3 title 'lazyvm'\n");
	pclose(g);
}

int main(int argc, char **argv)
{
	unsigned mib = argc > 1 ? (unsigned)atoi(argv[1]) : 512;
	int repeats = argc > 2 ? atoi(argv[2]) : 3;
	unsigned rate = getenv("RATE") ? (unsigned)atoi(getenv("RATE")) : DIRTY_DEFAULT_RATE;
	const char *anchor = getenv("QEMU_ANCHOR") ? getenv("QEMU_ANCHOR")
						   : "../shared/qemu-postcopy";
	if (!mib || mib > GUEST_MIB - 16 || repeats < 1 || repeats > MAX_REPEATS ||
	    rate != DIRTY_DEFAULT_RATE) {
		fprintf(stderr, "usage: %s [dirty MiB 1..%d] [repeats 1..%d] (RATE: %u only)\n",
			argv[0], GUEST_MIB - 16, MAX_REPEATS, DIRTY_DEFAULT_RATE);
		return 64;
	}
	bench_find_cli(argv[0]);
	char mig[1200];
	snprintf(mig, sizeof(mig), "%s/mig.py", anchor);
	if (access("/dev/kvm", R_OK | W_OK) || access(bench_cli, X_OK) || access(mig, R_OK) ||
	    !mkdtemp(tmp)) {
		fprintf(stderr, "bench: needs /dev/kvm, the CLI at %s and QEMU's anchor at %s "
			"(QEMU_ANCHOR; run its setup.sh first)\n", bench_cli, anchor);
		return 1;
	}
	uint64_t want = vmtest_model_dirty((uint64_t)GUEST_MIB << 20, SEED, STEPS,
					   ((uint64_t)mib << 20) / 4096, 0);
	printf("migrate-vs-qemu: 1 GiB guest, %u MiB dirty set at %u pages/s, migrated %s ms "
	       "after the fill, post-copy, 127.0.0.1, %d repeats interleaved\n", mib, rate,
	       AFTER_MS, repeats);
	double v[2][NFIG][MAX_REPEATS];
	int n[2] = { 0, 0 };
	for (int r = 0; r < repeats; r++) {
		double s[NFIG];
		for (int side = 0; side < 2; side++) {
			bool ok = side ? lazyvm_sample(mib, rate, want, s)
				       : qemu_sample(anchor, mib, rate, s);
			for (int k = 0; ok && k < NFIG; k++)
				v[side][k][n[side]] = s[k];
			n[side] += ok;
		}
		printf("  repeat %d done (QEMU runs ok %d, lazyvm runs ok %d)\n", r + 1, n[0], n[1]);
		fflush(stdout);
	}
	if (!n[0] || !n[1]) {
		fprintf(stderr, "bench: a side had no successful run\n");
		return 1;
	}
	double med[2][NFIG];
	printf("  %-24s %-5s %27s   %27s   %s\n", "", "", "QEMU 7.2 TCG min/med/max",
	       "lazyvm KVM min/med/max", "lazyvm/QEMU");
	for (int k = 0; k < NFIG; k++) {
		struct bench_mmm q = bench_summary(v[0][k], n[0]), l = bench_summary(v[1][k], n[1]);
		med[0][k] = q.median;
		med[1][k] = l.median;
		printf("  %-24s %-5s %8.1f %8.1f %9.1f   %8.1f %8.1f %9.1f   %6.2fx\n", fig_name[k],
		       fig_unit[k], q.min, q.median, q.max, l.min, l.median, l.max,
		       q.median > 0 ? l.median / q.median : 0);
	}
	plot(med);
	char rm[700];
	snprintf(rm, sizeof(rm), "rm -rf -- '%s'", tmp);
	if (system(rm)) {
		/* best effort: the QEMU logs of the last run */
	}
	return 0;
}
