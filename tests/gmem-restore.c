/* SPDX-License-Identifier: MIT */
/*
 * Snapshot -> lazy restore of a 2-vCPU `workload` guest whose memory is a
 * guest_memfd (MMAP|INIT_SHARED, its mmap the memslot's userspace address, so
 * vCPU faults reach userfaultfd), through the CLI:
 *
 *   - the uninterrupted run on gmem prints the RESULT of the C model;
 *   - run --snapshot mid-run, then restore --backing gmem in MISSING and in
 *     MINOR mode without the background fill: the RESULT equals the
 *     uninterrupted run's, and the stats show demand faults (it really was
 *     lazy: every page arrived because a vCPU touched it);
 *   - restore --backing gmem with the defaults (mode as the probe allows,
 *     background fill on): same RESULT, and lazy, not the eager fallback;
 *   - a live snapshot (uffd-WP on the gmem mapping while the guest runs on):
 *     the run finishes with the same RESULT, and so does its lazy restore.
 *
 * Small (16 MiB) because the real run is nested KVM inside QEMU TCG (make
 * check-gmem).  On a kernel without userfaultfd for guest_memfd every test
 * SKIPs with the probe's reason (vmm-snapshot covers the eager fallback).
 */
#include "gmem-test.h"
#include "vmtest.h"

#define MEM_ARG "16M"
#define MEM (16ull << 20)
#define SEED 5
#define SEED_ARG "5"
#define ITERS 3000000
#define ITERS_ARG "3000000"
#define NTESTS 7

static char out[8192], err[8192];
static char tmp[] = "/tmp/lazyvm-gmem-restore.XXXXXX";

/* The guest's RESULT (false if none) after `lazyvm args`; reports failures. */
static bool run_cli(const char *const *args, const char *what, uint64_t *result)
{
	int st = vmtest_exec(tmp, args, out, sizeof(out), err, sizeof(err));
	bool have = vmtest_result(out, result);
	if (st || !have)
		tap_diag("%s: exit %d, %s; stderr: %s", what, st, have ? "RESULT" : "no RESULT", err);
	return !st && have;
}

static bool stats_mode_is(const char *json, const char *mode)
{
	char pat[64];
	snprintf(pat, sizeof(pat), "\"mode\": \"%s\"", mode);
	return strstr(json, pat) != NULL;
}

/*
 * restore DIR --backing gmem [--mode M] [--no-background]: RESULT == want
 * and lazy.  mode NULL: the defaults (any lazy mode, background fill on).
 */
static void restore(const char *dir, const char *label, const char *mode, uint64_t want)
{
	char json_path[600], json[4096], what[160];
	snprintf(json_path, sizeof(json_path), "%s/stats.json", tmp);
	snprintf(what, sizeof(what), "%slazy restore on gmem, %s", label,
		 mode ? mode : "default mode, background fill");
	/* mode NULL ends the list there: defaults, background fill on. */
	const char *args[] = { "restore", dir, "--backing", "gmem", "--stats-json", json_path,
			       mode ? "--mode" : NULL, mode, "--no-background", NULL };
	uint64_t got = 0;
	bool ran = run_cli(args, what, &got);
	vmtest_slurp(json_path, json, sizeof(json));
	unlink(json_path);
	long long faults = vmtest_json_int(json, "faults");
	long long demand = vmtest_json_int(json, "pages_demand");
	long long background = vmtest_json_int(json, "pages_background");
	/* Without the background fill every page came from a vCPU fault. */
	bool lazy = mode ? stats_mode_is(json, mode) && faults > 0 && demand > 0 && background == 0
			 : !stats_mode_is(json, "eager") && faults > 0 && demand > 0;
	tap_ok(ran && got == want && lazy, "%s: RESULT %016llx == uninterrupted %016llx, "
	       "%lld faults, %lld pages on demand, %lld in the background", what,
	       (unsigned long long)got, (unsigned long long)want, faults, demand, background);
	const char *lat = strstr(json, "\"fault_latency_us\"");
	if (lat)	/* the TCG figures: reported, never asserted */
		tap_diag("%s: %.*s, wall %lld us", what, (int)strcspn(lat, "\n"), lat,
			 vmtest_json_int(json, "wall_us"));
	if (!lazy)
		tap_diag("stats: %s", json);
}

/* A point-in-time snapshot while the guest runs on, tracked with uffd-WP on
 * the guest_memfd mapping: the run finishes right, the snapshot restores. */
static void test_live(const char *const names[2], uint64_t want)
{
	struct lvm_probe pw = { .struct_size = sizeof(pw) };
	lvm_probe(LVM_BACKING_GMEM, LVM_MODE_WP, &pw);
	if (pw.err) {
		for (int i = 0; i < 2; i++)
			tap_skip(names[i], "probe gmem x WP: %s", pw.reason);
		return;
	}
	char dir[600];
	snprintf(dir, sizeof(dir), "%s/live", tmp);
	const char *args[] = { "run", "--guest", "workload", "--mem", MEM_ARG, "--seed", SEED_ARG,
			       "--iterations", ITERS_ARG, "--vcpus", "2", "--backing", "gmem",
			       "--snapshot", dir, "--snapshot-after-ms", "50", "--live", NULL };
	uint64_t got = 0;
	bool ran = run_cli(args, names[0], &got);
	tap_ok(ran && got == want, "%s: RESULT %016llx == uninterrupted %016llx", names[0],
	       (unsigned long long)got, (unsigned long long)want);
	if (ran)
		restore(dir, "live snapshot: ", "missing", want);
	else
		tap_skip(names[1], "no live snapshot");
}

int main(void)
{
	static const char *const names[NTESTS] = {
		"gmem: uninterrupted run, RESULT == model", "gmem: run --snapshot mid-run",
		"lazy restore on gmem, missing", "lazy restore on gmem, minor",
		"lazy restore on gmem, default mode, background fill",
		"gmem: live snapshot (uffd-WP), the guest finishes", "live snapshot: lazy restore",
	};
	if (!vmtest_begin("gmem-restore", GMEM_TEST_WATCHDOG_S, tmp, NTESTS))
		return 0;
	if (!gmem_test_lazy_or_skip(names, NTESTS)) {
		vmtest_rmtree(tmp);
		return tap_done();
	}

	uint64_t want = vmtest_model_workload(MEM, SEED, ITERS), ref = 0;
	const char *run[] = { "run", "--guest", "workload", "--mem", MEM_ARG, "--seed", SEED_ARG,
			      "--iterations", ITERS_ARG, "--vcpus", "2", "--backing", "gmem", NULL };
	bool ran = run_cli(run, names[0], &ref);
	tap_ok(ran && ref == want, "%s: %016llx == %016llx", names[0], (unsigned long long)ref,
	       (unsigned long long)want);

	char dir[600];
	snprintf(dir, sizeof(dir), "%s/snap", tmp);
	const char *snap[] = { "run", "--guest", "workload", "--mem", MEM_ARG, "--seed", SEED_ARG,
			       "--iterations", ITERS_ARG, "--vcpus", "2", "--backing", "gmem",
			       "--snapshot", dir, "--snapshot-after-ms", "50", NULL };
	int st = vmtest_exec(tmp, snap, out, sizeof(out), err, sizeof(err));
	/* No RESULT: the snapshot stopped the guest before it finished. */
	if (!tap_ok(st == 0 && !strstr(out, "RESULT"), "%s (exit %d)", names[1], st)) {
		tap_diag("stdout: %s; stderr: %s", out, err);
		for (int i = 2; i < NTESTS; i++)
			tap_skip(names[i], "no snapshot");
	} else {
		restore(dir, "", "missing", ref);
		restore(dir, "", "minor", ref);
		restore(dir, "", NULL, ref);
	}
	test_live(names + 5, ref);
	vmtest_rmtree(tmp);
	return tap_done();
}
