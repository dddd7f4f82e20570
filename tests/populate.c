/* SPDX-License-Identifier: MIT */
/*
 * Pages in writable and populated (docs/restore-latency.md): after an eager
 * restore, and after --prefault on a fresh VM, every guest page is present
 * in the VMM's page table and mapped by it alone (/proc/self/pagemap bits 63
 * and 56) — no page left unpopulated, none mapping the shared zero page
 * (which is present but never exclusive), so no guest access pays a host
 * fault or a COW later; `run --prefault` still prints the model's RESULT.  On anon and memfd memory; the eagerly restored guest
 * still prints the uninterrupted run's RESULT.  Counts, never timings.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"
#include "vmm/snapshot.h"
#include "vmm/vmm.h"
#include "vmtest.h"

#define PM_PRESENT   (1ull << 63)
#define PM_EXCLUSIVE (1ull << 56)

static char out[8192], err[8192];
static char tmp[] = "/tmp/lazyvm-populate.XXXXXX";

/* Pages of mem not present, or present but not mapped by us alone; -1 on error. */
static long long pages_not_populated(struct lvm_mem *mem)
{
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	uint64_t base = (uint64_t)(uintptr_t)lvm_mem_addr(mem), n = lvm_mem_size(mem) / 4096;
	static uint64_t e[4096];
	long long bad = 0;
	for (uint64_t p = 0; p < n; p += 4096) {
		size_t k = n - p < 4096 ? (size_t)(n - p) : 4096;
		if (pread(fd, e, k * 8, (off_t)((base / 4096 + p) * 8)) != (ssize_t)(k * 8)) {
			close(fd);
			return -1;
		}
		for (size_t i = 0; i < k; i++)
			bad += (e[i] & (PM_PRESENT | PM_EXCLUSIVE)) != (PM_PRESENT | PM_EXCLUSIVE);
	}
	close(fd);
	return bad;
}

static void test_eager(const char *dir, enum lvm_backing b, uint64_t want)
{
	struct vm_restore_opts o = { .eager = true, .serial_fd = -1, .backing = b,
				     .backing_set = true };
	struct vm_restore *rs;
	char e[512];
	int ret = vm_restore_open(dir, &o, &rs, e, sizeof(e));
	if (!tap_ok(ret == 0, "eager restore on %s opens (%s)", lvm_backing_name(b), e)) {
		tap_skip("eager populated", "no restore");
		tap_skip("eager RESULT", "no restore");
		return;
	}
	struct lvm_mem *mem = vmm_mem(vm_restore_vmm(rs));
	long long bad = pages_not_populated(mem);
	tap_ok(bad == 0, "eager restore on %s: %lld of %zu pages not writable and populated",
	       lvm_backing_name(b), bad, lvm_mem_size(mem) / 4096);
	ret = vm_restore_run(rs, e, sizeof(e));
	uint64_t got = 0;
	vmtest_result(vmm_result(vm_restore_vmm(rs)), &got);
	tap_ok(ret == 0 && got == want, "eager restore on %s: RESULT %016llx (want %016llx)",
	       lvm_backing_name(b), (unsigned long long)got, (unsigned long long)want);
	vm_restore_close(rs);
}

static void test_prefault(enum lvm_backing b)
{
	struct vmm_opts o = { .guest = "workload", .mem_size = 32ull << 20, .vcpus = 1,
			      .backing = b, .seed = 1, .iterations = 1000, .serial_fd = -1 };
	struct vmm *vm;
	char e[256] = "";
	int ret = vmm_create(&o, &vm, e, sizeof(e));
	if (!ret)
		ret = vmm_load_guest(vm, e, sizeof(e));
	if (!ret)
		ret = vmm_prefault(vm, e, sizeof(e));
	long long bad = ret ? -1 : pages_not_populated(vmm_mem(vm));
	tap_ok(ret == 0 && bad == 0, "--prefault on %s: %lld pages not writable and populated "
	       "(KVM_PRE_FAULT_MEMORY %s) %s", lvm_backing_name(b), bad,
	       !ret && vmm_kvm_prefaulted(vm) ? "used" : "not supported here", e);
	if (!ret)
		vmm_destroy(vm);
}

int main(void)
{
	if (!vmtest_begin("populate", 240, tmp, 10))
		return 0;
	char dir[600];
	snprintf(dir, sizeof(dir), "%s/snap", tmp);
	/* Taken early: most of its memory is zero, the case eager restore left
	 * unpopulated. */
	const char *run[] = { "run", "--guest", "workload", "--mem", "64M", "--seed", "7",
			      "--iterations", "400000", "--snapshot", dir, "--snapshot-after-ms",
			      "20", NULL };
	int st = vmtest_exec(tmp, run, out, sizeof(out), err, sizeof(err));
	if (!tap_ok(st == 0, "snapshot taken (exit %d)", st))
		tap_diag("stderr: %s", err);
	uint64_t want = vmtest_model_workload(64ull << 20, 7, 400000);
	test_eager(dir, LVM_BACKING_ANON, want);
	test_eager(dir, LVM_BACKING_MEMFD, want);
	test_prefault(LVM_BACKING_ANON);
	test_prefault(LVM_BACKING_MEMFD);
	const char *fresh[] = { "run", "--guest", "workload", "--mem", "64M", "--seed", "7",
				"--iterations", "400000", "--prefault", NULL };
	st = vmtest_exec(tmp, fresh, out, sizeof(out), err, sizeof(err));
	uint64_t got = 0;
	vmtest_result(out, &got);
	tap_ok(st == 0 && got == want, "run --prefault: RESULT %016llx (want %016llx)",
	       (unsigned long long)got, (unsigned long long)want);
	vmtest_rmtree(tmp);
	return tap_done();
}
