/* SPDX-License-Identifier: MIT */
/*
 * The VMM contract without snapshot files: pausing and resuming a running
 * guest over and over (saving its state each time) does not change its
 * RESULT; and a VM paused mid-run, whose state and memory are moved into a
 * second, fresh VM, finishes there with the uninterrupted RESULT (the state
 * blob is complete).  Also: a corrupt state blob is refused with -EBADMSG;
 * and vmm_pause returns while a vCPU waits for a data page that userfaultfd
 * has not served yet (post-copy migration pauses like this).
 */
#include <errno.h>
#include <pthread.h>
#include <sys/mman.h>
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

/* A source that holds back data pages until opened (system pages pass:
 * see vmm_pause in vmm.h for why). */
struct gate {
	struct lvm_source *inner;
	pthread_mutex_t m;
	pthread_cond_t c;
	bool open;
	unsigned waiting;
};

static int gate_get(void *ctx, uint64_t off, size_t len, void *scratch, const void **data)
{
	struct gate *g = ctx;
	pthread_mutex_lock(&g->m);
	g->waiting += off >= GUEST_SYS_SIZE;
	pthread_cond_broadcast(&g->c);
	while (off >= GUEST_SYS_SIZE && !g->open)
		pthread_cond_wait(&g->c, &g->m);
	pthread_mutex_unlock(&g->m);
	*data = scratch;
	return lvm_source_read(g->inner, off, scratch, len);
}

static void gate_set(struct gate *g, bool wait_for_fault)
{
	pthread_mutex_lock(&g->m);
	while (wait_for_fault && !g->waiting)
		pthread_cond_wait(&g->c, &g->m);
	if (!wait_for_fault)
		g->open = true;
	pthread_cond_broadcast(&g->c);
	pthread_mutex_unlock(&g->m);
}

/* The booted image of a fresh VM in a memfd, and its state. */
static int boot_image(void **blob, size_t *len, char *path, size_t pathlen)
{
	struct vmm *a = vm_new();
	char err[256];
	int fd = memfd_create("lazyvm-vmm-pause", MFD_CLOEXEC);
	if (fd < 0 || vmm_load_guest(a, err, sizeof(err)) || vmm_save_state(a, blob, len) ||
	    pwrite(fd, lvm_mem_addr(vmm_mem(a)), MEM, 0) != (ssize_t)MEM)
		tap_bail("boot image");
	vmm_destroy(a);
	snprintf(path, pathlen, "/proc/self/fd/%d", fd);
	return fd;
}

static void test_pause_in_fault(uint64_t want)
{
	void *blob;
	size_t len;
	char path[64], err[256];
	int fd = boot_image(&blob, &len, path, sizeof(path));
	static const struct lvm_source_ops ops = { .struct_size = sizeof(ops), .get = gate_get };
	struct gate g = { .m = PTHREAD_MUTEX_INITIALIZER, .c = PTHREAD_COND_INITIALIZER };
	struct lvm_source *src = NULL;
	struct lvm_engine *e = NULL;
	struct lvm_engine_opts eo;
	lvm_engine_opts_init(&eo);
	struct vmm *b = vm_new();
	if (lvm_source_file_open(path, 0, &g.inner) || lvm_source_create(&ops, &g, MEM, &src) ||
	    lvm_engine_create(&eo, &e) || lvm_engine_add_mem(e, vmm_mem(b), LVM_MODE_MISSING, src, 0) < 0 ||
	    lvm_engine_start(e) || vmm_load_state(b, blob, len, err, sizeof(err)) || vmm_start(b))
		tap_bail("lazy VM setup");
	free(blob);
	gate_set(&g, true);	/* a vCPU now waits for a data page */
	vmm_pause(b);
	gate_set(&g, false);
	vmm_resume(b);
	int ret = vmm_wait(b, err, sizeof(err));
	tap_ok(!ret && result_of(b) == want,
	       "paused while a vCPU waited for a data page, resumed: RESULT %016llx == model",
	       (unsigned long long)result_of(b));
	vmm_destroy(b);
	lvm_engine_destroy(e);
	lvm_source_destroy(src);
	lvm_source_destroy(g.inner);
	close(fd);
}

int main(void)
{
	char tmp[] = "/tmp/lazyvm-vmm-pause.XXXXXX";
	if (!vmtest_begin("vmm-pause", 300, tmp, 4))
		return 0;
	uint64_t want = vmtest_model_workload(MEM, SEED, ITERS);
	test_pause_storm(want);
	test_move(want);
	test_pause_in_fault(want);
	vmtest_rmtree(tmp);
	return tap_done();
}
