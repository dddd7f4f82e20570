/* SPDX-License-Identifier: MIT */
/*
 * run -> snapshot mid-run -> restore, on every backing the kernel supports,
 * 2 vCPUs: lazy (and MINOR on memfd) and eager restores finish with the
 * RESULT of the uninterrupted run (computed by the C model of the guest).
 * The anon snapshot's memory unpacked to a flat image (Firecracker style)
 * restores from that image with only the state file beside it.
 * A live (uffd-WP) snapshot taken while the guest writes: the run itself
 * finishes correctly and the snapshot restores to the same RESULT.
 * Where the snapshot fires does not matter: any instant must give the same
 * RESULT; the test only needs it to fire before the guest ends.
 */
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "lazyvm.h"
#include "core/hugetlb.h"
#include "gmem-test.h"
#include "tap.h"
#include "vmtest.h"

#define MEM (64ull << 20)
#define SEED 11
#define ITERS 3000000
#define FILL (32ull << 20)	/* --fill: half the memory is real data, half zero */

static char out[8192], err[8192];
static char tmp[] = "/tmp/lazyvm-vmm-snapshot.XXXXXX";
static uint64_t want;

static bool check_result(int st, const char *what)
{
	uint64_t got = 0;
	bool have = vmtest_result(out, &got);
	if (!tap_ok(st == 0 && have && got == want, "%s: RESULT %016llx == model %016llx", what,
		    (unsigned long long)got, (unsigned long long)want)) {
		tap_diag("exit %d, stderr: %s", st, err);
		return false;
	}
	return true;
}

static int snapshot_run(const char *backing, const char *dir, bool live)
{
	const char *args[] = { "run", "--guest", "workload", "--mem", "64M", "--seed", "11",
			       "--iterations", "3000000", "--fill", "32M", "--vcpus", "2",
			       "--backing", backing, "--snapshot", dir, "--snapshot-after-ms", "60",
			       live ? "--live" : NULL, NULL };
	return vmtest_exec(tmp, args, out, sizeof(out), err, sizeof(err));
}

static void restore(const char *dir, const char *backing, const char *extra, const char *what)
{
	const char *args[] = { "restore", dir, "--backing", backing, extra, extra ? "minor" : NULL,
			       NULL };
	if (extra && strcmp(extra, "--mode"))
		args[5] = NULL;
	check_result(vmtest_exec(tmp, args, out, sizeof(out), err, sizeof(err)), what);
}

static void test_backing(enum lvm_backing b)
{
	const char *name = lvm_backing_name(b);
	char dir[600], what[128];
	snprintf(dir, sizeof(dir), "%s/%s", tmp, name);
	struct hugetlb_reservation res = HUGETLB_RESERVATION_INIT;
	int tests = b == LVM_BACKING_MEMFD ? 4 : 3;
	static const char *const gmem_names[] = { "gmem: run --snapshot mid-run",
		"gmem: lazy restore", "gmem: eager restore" };
	if (b == LVM_BACKING_GMEM && !gmem_test_usable_or_skip(gmem_names, 3))
		return;
	if (b == LVM_BACKING_HUGETLB && hugetlb_reserve((long)(MEM >> 21), &res)) {
		for (int i = 0; i < tests; i++)
			tap_skip(name, "cannot reserve %llu huge pages", (unsigned long long)(MEM >> 21));
		return;
	}
	int st = snapshot_run(name, dir, false);
	snprintf(what, sizeof(what), "%s: run --snapshot mid-run", name);
	/* The filled half is incompressible: the memory file must hold it. */
	char mem[700];
	struct stat sb = { 0 };
	snprintf(mem, sizeof(mem), "%s/memory", dir);
	stat(mem, &sb);
	if (!tap_ok(st == 0 && !strstr(out, "RESULT") && (uint64_t)sb.st_size >= FILL,
		    "%s (exit %d), memory file %lld MiB >= the %llu MiB filled", what, st,
		    (long long)sb.st_size >> 20, (unsigned long long)(FILL >> 20))) {
		tap_diag("stderr: %s", err);
		for (int i = 1; i < tests; i++)
			tap_skip(name, "no snapshot");
		hugetlb_release(&res);
		return;
	}
	struct lvm_probe p = { .struct_size = sizeof(p) };
	lvm_probe(b, LVM_MODE_MISSING, &p);
	snprintf(what, sizeof(what), "%s: lazy restore%s", name, p.err ? " (eager fallback: no uffd)" : "");
	restore(dir, name, NULL, what);
	snprintf(what, sizeof(what), "%s: eager restore", name);
	restore(dir, name, "--eager", what);
	if (b == LVM_BACKING_MEMFD) {
		lvm_probe(b, LVM_MODE_MINOR, &p);
		if (p.err)
			tap_skip("memfd minor restore", "probe: %s", p.reason);
		else
			restore(dir, name, "--mode", "memfd: lazy restore, MINOR mode");
	}
	hugetlb_release(&res);
}

static void test_flat_image(void)
{
	char dir[600], img[600], state[600], cmd[2000];
	snprintf(dir, sizeof(dir), "%s/flat", tmp);
	snprintf(img, sizeof(img), "%s/flat.img", tmp);
	snprintf(state, sizeof(state), "%s/anon", tmp);
	const char *unpack[] = { "snapshot", "unpack", state, img, NULL };
	snprintf(cmd, sizeof(cmd), "mkdir '%s' && cp '%s/state' '%s/'", dir, state, dir);
	if (vmtest_exec(tmp, unpack, out, sizeof(out), err, sizeof(err)) || system(cmd)) {
		tap_skip("flat image restore", "no anon snapshot to unpack: %s", err);
		return;
	}
	const char *args[] = { "restore", dir, "--memory-file", img, NULL };
	check_result(vmtest_exec(tmp, args, out, sizeof(out), err, sizeof(err)),
		     "restore from a flat memory image + state file");
}

static void test_live(void)
{
	char dir[600];
	snprintf(dir, sizeof(dir), "%s/live", tmp);
	struct lvm_probe p = { .struct_size = sizeof(p) };
	lvm_probe(LVM_BACKING_ANON, LVM_MODE_WP, &p);
	if (p.err) {
		tap_skip("live snapshot", "uffd-WP: %s", p.reason);
		tap_skip("live snapshot restore", "uffd-WP: %s", p.reason);
		return;
	}
	int st = snapshot_run("anon", dir, true);
	if (!check_result(st, "live snapshot: the guest kept running and finished")) {
		tap_skip("live snapshot restore", "no snapshot");
		return;
	}
	restore(dir, "anon", NULL, "live snapshot: lazy restore gives the uninterrupted RESULT");
}

int main(void)
{
	if (!vmtest_begin("vmm-snapshot", 600, tmp, 3 + 4 + 3 + 3 + 1 + 2))
		return 0;
	want = vmtest_model_workload_fill(MEM, SEED, ITERS, FILL / 4096);
	tap_diag("model RESULT %016llx", (unsigned long long)want);
	for (enum lvm_backing b = 0; b < LVM_BACKING__COUNT; b++)
		test_backing(b);
	test_flat_image();
	test_live();
	vmtest_rmtree(tmp);
	return tap_done();
}
