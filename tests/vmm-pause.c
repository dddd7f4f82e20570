/* SPDX-License-Identifier: MIT */
/*
 * The VMM contract without snapshot files: pausing and resuming a running
 * guest over and over (saving its state each time) does not change its
 * RESULT; and a VM paused mid-run, whose state and memory are moved into a
 * second, fresh VM, finishes there with the uninterrupted RESULT (the state
 * blob is complete).  Also: a corrupt state blob is refused with -EBADMSG.
 */
#include <errno.h>
#include <stdlib.h>

#include "lazyvm.h"
#include "vmm/vmm.h"
#include "vmtest.h"

#define MEM (64ull << 20)
#define SEED 5
#define ITERS 2000000

static struct vmm *vm_new(void)
{
	struct vmm_opts o = { .guest = "workload", .mem_size = MEM, .vcpus = 2,
			      .backing = LVM_BACKING_ANON, .seed = SEED, .iterations = ITERS,
			      .serial_fd = -1 };
	struct vmm *vm;
	char err[256];
	if (vmm_create(&o, &vm, err, sizeof(err)))
		tap_bail("vmm_create: %s", err);
	return vm;
}

static uint64_t result_of(struct vmm *vm)
{
	uint64_t v = 0;
	return vmtest_result(vmm_result(vm), &v) ? v : 0;
}

static void test_pause_storm(uint64_t want)
{
	struct vmm *vm = vm_new();
	char err[256];
	if (vmm_load_guest(vm, err, sizeof(err)) || vmm_start(vm))
		tap_bail("boot: %s", err);
	unsigned pauses = 0;
	int ret;
	while ((ret = vmm_wait_timeout(vm, 0, err, sizeof(err))) == -ETIMEDOUT) {
		void *blob;
		size_t len;
		vmm_pause(vm);
		if (!vmm_save_state(vm, &blob, &len))
			free(blob);
		vmm_resume(vm);
		pauses++;
	}
	tap_ok(!ret && result_of(vm) == want && pauses > 0,
	       "%u pause/save/resume cycles: RESULT %016llx == model", pauses,
	       (unsigned long long)result_of(vm));
	vmm_destroy(vm);
}

static void test_move(uint64_t want)
{
	struct vmm *a = vm_new(), *b = vm_new();
	char err[256];
	if (vmm_load_guest(a, err, sizeof(err)) || vmm_start(a))
		tap_bail("boot: %s", err);
	/* Let it make some progress, bounded by its own end. */
	int ret = vmm_wait_timeout(a, 50, err, sizeof(err));
	if (ret != -ETIMEDOUT) {
		tap_skip("move", "the guest ended before the move point");
		tap_skip("move", "the guest ended before the move point");
		vmm_destroy(a);
		vmm_destroy(b);
		return;
	}
	vmm_pause(a);
	void *blob = NULL;
	size_t len = 0;
	if (vmm_save_state(a, &blob, &len))
		tap_bail("vmm_save_state");
	memcpy(lvm_mem_addr(vmm_mem(b)), lvm_mem_addr(vmm_mem(a)), MEM);
	vmm_destroy(a);

	uint8_t *bad = malloc(len);
	memcpy(bad, blob, len);
	bad[len / 2] ^= 0xff;
	bad[40] = 0xee;	/* the first record's length */
	int lret = vmm_load_state(b, bad, len, err, sizeof(err));
	tap_ok(lret == -EBADMSG, "a corrupt state blob is refused: %s", err);
	free(bad);

	lret = vmm_load_state(b, blob, len, err, sizeof(err));
	free(blob);
	if (lret)
		tap_bail("vmm_load_state: %s", err);
	if (vmm_start(b))
		tap_bail("vmm_start");
	ret = vmm_wait(b, err, sizeof(err));
	tap_ok(!ret && result_of(b) == want,
	       "state + memory moved to a fresh VM mid-run: RESULT %016llx == model (%s)",
	       (unsigned long long)result_of(b), ret ? err : "ok");
	vmm_destroy(b);
}

int main(void)
{
	char tmp[] = "/tmp/lazyvm-vmm-pause.XXXXXX";
	if (!vmtest_begin("vmm-pause", 300, tmp, 3))
		return 0;
	uint64_t want = vmtest_model_workload(MEM, SEED, ITERS);
	test_pause_storm(want);
	test_move(want);
	vmtest_rmtree(tmp);
	return tap_done();
}
