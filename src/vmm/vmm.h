/* SPDX-License-Identifier: MIT */
/*
 * The minimal KVM VMM (kvmtool-like): one VM, guest memory on any lvm_mem
 * backing, 1..N vCPU threads in 64-bit long mode (no firmware: KVM_SET_SREGS
 * plus 2 MiB identity page tables), a serial port on I/O port 0x3f8, and the
 * project's own freestanding guests (guests/).
 *
 * Memory is created by vmm_create() and left untouched, so a caller may
 * register it with userfaultfd (lazy restore, migration) before anything
 * writes it; vmm_load_guest() writes the guest image for a fresh boot.
 *
 * This is the contract the front-ends (run, restore, migrate, fc) code
 * against.  Functions return 0 or -errno; err/errlen get one line of context
 * where given.  Nothing here prints except the guest's serial output.
 */
#ifndef LAZYVM_VMM_H
#define LAZYVM_VMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lazyvm.h"

#define VMM_MAX_VCPUS 16

struct vmm;
struct timeline;

struct vmm_opts {
	const char *guest;		/* "workload" | "boot-like"; NULL on restore */
	uint64_t mem_size;		/* bytes; multiple of 2 MiB */
	unsigned vcpus;			/* 1..VMM_MAX_VCPUS; 0 = 2 */
	enum lvm_backing backing;
	uint64_t seed;			/* guest parameters (fresh boot only) */
	uint64_t iterations;
	uint64_t fill_pages;		/* workload: data pages written whole first */
	int serial_fd;			/* guest serial output; -1 = discard */
	/* Optional: the VM's creation steps and first KVM_RUN are marked here
	 * (timeline.h); must outlive the VM. */
	struct timeline *timeline;
	/* gmem only: a KVM_MEM_USERFAULT guest_memfd memslot with a userfault
	 * bitmap, as Firecracker's secret-free VMs (src/vmm/userfault.c). */
	bool secret_free;
	/* Optional: use this guest memory (size mem_size; the VM takes it over)
	 * instead of creating it on `backing` (e.g. a private mapping of the
	 * shared page cache, core/share.h). */
	struct lvm_mem *mem;
};

/*
 * Create the VM, its memory (backing as asked; for gmem the guest_memfd is
 * created from this VM with MMAP|INIT_SHARED and its mmap is the memslot's
 * userspace address, so vCPU faults reach userfaultfd), and its vCPUs.
 * Nothing is written to guest memory.
 *
 * Process-wide: vmm_create() installs two signal handlers, the vCPU kick
 * (vmm_kick_signal(), a no-op handler without SA_RESTART so KVM_RUN returns
 * EINTR) and SIGBUS (a poisoned guest page stops the VM with a message, see
 * vcpu.c), because this VMM is the program.  liblazyvm itself installs none.
 */
int vmm_create(const struct vmm_opts *o, struct vmm **out, char *err, size_t errlen);
/* Is mem_size a guest memory size this VMM takes?  0 or -EINVAL (err says). */
int vmm_check_mem_size(uint64_t mem_size, char *err, size_t errlen);
void vmm_destroy(struct vmm *vm);

struct lvm_mem *vmm_mem(struct vmm *vm);
/* secret_free: the bitmap memfd (-1 otherwise); who serves userfault exits
 * (returns 0 once the page is in: the vCPU enters again; -errno stops the
 * VM); how many exits there were. */
int vmm_userfault_bitmap_fd(const struct vmm *vm);
void vmm_set_userfault_handler(struct vmm *vm, int (*fn)(void *ctx, unsigned vcpu,
							 uint64_t gpa, uint64_t flags),
			       void *ctx);
uint64_t vmm_userfault_exits(const struct vmm *vm);
/* lazyvm probe: KVM_CAP_USERFAULT (the port's number) and guest_memfd
 * write() on this kernel.  0 or -errno (no KVM). */
int vmm_probe_secret_free(bool *userfault, bool *gmem_write);
int vmm_vm_fd(const struct vmm *vm);
unsigned vmm_vcpus(const struct vmm *vm);

/* boot-like's dense sequential prefix (bytes): a fixed working set. */
#define VMM_BOOTLIKE_PREFIX (16ull << 20)

/* The embedded guests, NULL-terminated; is name one of them? */
extern const char *const vmm_guest_names[];
bool vmm_guest_exists(const char *name);

/* Fresh boot: write guest image, page tables and parameters; set vCPU regs. */
int vmm_load_guest(struct vmm *vm, char *err, size_t errlen);
/* Has every vCPU of a freshly booted workload finished its fill phase
 * (vmm_opts.fill_pages)?  Read from the guest's parameter page. */
bool vmm_guest_filled(struct vmm *vm);

/*
 * --prefault: all guest memory writable and populated now (MADV_POPULATE_WRITE),
 * plus KVM_PRE_FAULT_MEMORY where the kernel has it; for memory no userfaultfd
 * serves.  After vmm_load_guest (the vCPUs' state is set), before vmm_start.
 */
int vmm_prefault(struct vmm *vm, char *err, size_t errlen);
/* Did KVM_PRE_FAULT_MEMORY map the memory (false: not supported here)? */
bool vmm_kvm_prefaulted(const struct vmm *vm);

/* Start the vCPU threads (the first KVM_RUN is timestamped). */
int vmm_start(struct vmm *vm);
/*
 * Bring every vCPU out of KVM_RUN and keep it out (immediate_exit + signal);
 * on return guest memory and vCPU state are quiescent.  Idempotent.
 * A vCPU waiting for a userfaultfd page on a guest data access leaves at
 * once (the wait is interruptible; tests/vmm-pause.c).  One blocked inside
 * the kernel's own read of guest memory — on this nested (PVM, shadow
 * paging) KVM: a guest page-table walk or an emulated instruction fetch —
 * waits killably only, so the pause completes when that page is served.
 */
int vmm_pause(struct vmm *vm);
int vmm_resume(struct vmm *vm);
/*
 * Wait until the guest finished (every vCPU halted after the guest's final
 * output) -> 0, or the VM was stopped by an error (a vCPU exit it cannot
 * handle, vmm_abort) -> -EIO with err set.
 */
int vmm_wait(struct vmm *vm, char *err, size_t errlen);
/* vmm_wait for at most timeout_ms: -ETIMEDOUT when the guest is still running. */
int vmm_wait_timeout(struct vmm *vm, int timeout_ms, char *err, size_t errlen);
/*
 * Stop the VM because of an error (e.g. the engine could not serve a page):
 * callable from any thread; vCPUs leave KVM_RUN and vmm_wait() returns -EIO
 * with msg.  The first message wins.
 */
void vmm_abort(struct vmm *vm, const char *msg);

/*
 * The whole VM state (every vCPU: regs, sregs, FPU/XSAVE, XCRs, MSRs that
 * matter, LAPIC, mp_state, events; plus device state and guest metadata) as
 * one versioned, self-describing blob, malloc'd.  VM must be paused.
 */
int vmm_save_state(struct vmm *vm, void **blob, size_t *len);
/* Load a blob from vmm_save_state into a VM created with the same vCPU count
 * and memory size; -EBADMSG (with err) when the blob is not valid. */
int vmm_load_state(struct vmm *vm, const void *blob, size_t len, char *err, size_t errlen);
/* The guest memory size a state blob was saved with; 0 if it is no blob. */
uint64_t vmm_state_mem_size(const void *blob, size_t len);

/* CLOCK_MONOTONIC ns of the first KVM_RUN of any vCPU; 0 before. */
uint64_t vmm_first_entry_ns(const struct vmm *vm);
/* The last "RESULT <hex>" line the guest printed, or "" (for tests/stats). */
const char *vmm_result(const struct vmm *vm);

#endif
