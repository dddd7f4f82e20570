/* SPDX-License-Identifier: MIT */
/*
 * lazyvm run: the workload guest on every backing, 2 vCPUs, prints the
 * RESULT that the C model of the guest's algorithm computes (boot-like
 * too); 1 and 3 vCPUs print the same (the algorithm makes the result
 * independent of the vCPU count); bad options are refused.
 */
#include <signal.h>
#include <stdlib.h>

#include "lazyvm.h"
#include "core/hugetlb.h"
#include "vmm/vmm.h"
#include "gmem-test.h"
#include "tap.h"
#include "vmtest.h"

#define MEM (64ull << 20)
#define SEED 7
#define ITERS 300000

static char out[8192], err[8192];

static void run_guest(const char *tmp, const char *guest, const char *backing, const char *vcpus,
		      uint64_t want)
{
	const char *args[] = { "run", "--guest", guest, "--mem", "64M", "--seed", "7",
			       "--iterations", "300000", "--vcpus", vcpus, "--backing", backing,
			       NULL };
	int st = vmtest_exec(tmp, args, out, sizeof(out), err, sizeof(err));
	uint64_t got = 0;
	bool have = vmtest_result(out, &got);
	if (!tap_ok(st == 0 && have && got == want, "run %s on %s, %s vCPUs: RESULT %016llx == model %016llx",
		    guest, backing, vcpus, (unsigned long long)got, (unsigned long long)want))
		tap_diag("exit %d, stderr: %s", st, err);
}

static void run_one(const char *tmp, const char *backing, const char *vcpus, uint64_t want)
{
	run_guest(tmp, "workload", backing, vcpus, want);
}

int main(void)
{
	char tmp[] = "/tmp/lazyvm-vmm-run.XXXXXX";
	if (!vmtest_begin("vmm-run", 300, tmp, 9))
		return 0;
	uint64_t want = vmtest_model_workload(MEM, SEED, ITERS);
	tap_diag("model RESULT %016llx", (unsigned long long)want);

	run_one(tmp, "anon", "2", want);
	run_one(tmp, "memfd", "2", want);
	struct hugetlb_reservation res = HUGETLB_RESERVATION_INIT;
	if (hugetlb_reserve((long)(MEM >> 21), &res))
		tap_skip("run hugetlb", "cannot reserve %llu huge pages", (unsigned long long)(MEM >> 21));
	else
		run_one(tmp, "hugetlb", "2", want);
	hugetlb_release(&res);
	static const char *const gmem_name[] = { "run workload on gmem" };
	if (gmem_test_usable_or_skip(gmem_name, 1))
		run_one(tmp, "gmem", "2", want);
	run_one(tmp, "anon", "1", want);
	run_one(tmp, "anon", "3", want);
	run_guest(tmp, "boot-like", "anon", "2",
		  vmtest_model_bootlike(MEM, SEED, ITERS, VMM_BOOTLIKE_PREFIX));

	const char *bad_mem[] = { "run", "--mem", "3M", NULL };
	int st = vmtest_exec(tmp, bad_mem, out, sizeof(out), err, sizeof(err));
	tap_ok(st != 0 && strstr(err, "multiple of 2 MiB"), "--mem 3M refused (exit %d): %s", st, err);
	const char *bad_guest[] = { "run", "--guest", "nosuch", NULL };
	st = vmtest_exec(tmp, bad_guest, out, sizeof(out), err, sizeof(err));
	tap_ok(st == 64 && strstr(err, "unknown guest"), "--guest nosuch refused (exit %d)", st);
	vmtest_rmtree(tmp);
	return tap_done();
}
