/* SPDX-License-Identifier: MIT */
/*
 * Secret-free guest memory in lazyvm's VMM, as Firecracker's
 * feature/secret-hiding branch sets it up: the guest_memfd is the memslot
 * itself (KVM_MEM_GUEST_MEMFD) with KVM_MEM_USERFAULT and a userfault
 * bitmap in a memfd (one bit per page, all set: nothing populated).  A vCPU
 * touching a page whose bit is set leaves KVM_RUN with -EFAULT and a
 * KVM_EXIT_MEMORY_FAULT carrying KVM_MEMORY_EXIT_FLAG_USERFAULT; the
 * handler (vmm_set_userfault_handler: the FaultRequest to the page server)
 * returns once the page is in, and the vCPU enters again.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/uapi-compat.h"
#include "vmm/vmm-internal.h"

int vmm_userfault_setup(struct vmm *vm, char *err, size_t errlen)
{
	int cap = ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, LVM_KVM_CAP_USERFAULT);
	if (cap <= 0) {
		snprintf(err, errlen, "--secret-free: this kernel has no KVM userfault "
			 "(KVM_CAP_USERFAULT %d)", LVM_KVM_CAP_USERFAULT);
		return -EOPNOTSUPP;
	}
	int flags = ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD_FLAGS);
	if (flags <= 0 || !(flags & LVM_GUEST_MEMFD_FLAG_WRITE)) {
		snprintf(err, errlen, "--secret-free: this kernel's guest_memfd has no write()");
		return -EOPNOTSUPP;
	}
	vm->ufbitmap_len = vm->mem_size / 4096 / 8;
	vm->ufbitmap_fd = memfd_create("lazyvm-userfault-bitmap", MFD_CLOEXEC);
	if (vm->ufbitmap_fd < 0 || ftruncate(vm->ufbitmap_fd, (off_t)vm->ufbitmap_len)) {
		snprintf(err, errlen, "userfault bitmap memfd: %s", strerror(errno));
		return -errno;
	}
	void *p = mmap(NULL, vm->ufbitmap_len, PROT_READ | PROT_WRITE, MAP_SHARED,
		       vm->ufbitmap_fd, 0);
	if (p == MAP_FAILED) {
		snprintf(err, errlen, "userfault bitmap mmap: %s", strerror(errno));
		return -errno;
	}
	memset(p, 0xff, vm->ufbitmap_len);	/* every page waits for the server */
	vm->ufbitmap = p;
	return 0;
}

int vmm_userfault_memslot(struct vmm *vm)
{
	struct lvm_kvm_memory_region2_uf r = {
		.slot = 0,
		.flags = KVM_MEM_GUEST_MEMFD | LVM_KVM_MEM_USERFAULT,
		.guest_phys_addr = 0,
		.memory_size = vm->mem_size,
		.userspace_addr = (uint64_t)(uintptr_t)lvm_mem_addr(vm->mem),
		.guest_memfd_offset = 0,
		.guest_memfd = (uint32_t)lvm_mem_fd(vm->mem),
		.userfault_bitmap = (uint64_t)(uintptr_t)vm->ufbitmap,
	};
	return ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION2, &r) ? errno : 0;
}

void vmm_userfault_destroy(struct vmm *vm)
{
	if (vm->ufbitmap)
		munmap(vm->ufbitmap, vm->ufbitmap_len);
	if (vm->ufbitmap_fd >= 0)
		close(vm->ufbitmap_fd);
}

/* KVM_RUN failed with EFAULT: a userfault exit?  1 served (enter again),
 * 0 not one, -1 the handler failed (the VM is stopped). */
int vcpu_userfault_exit(struct vcpu *v)
{
	struct vmm *vm = v->vm;
	const struct lvm_kvm_memory_fault *mf = (const void *)&v->run->hw;
	if (v->run->exit_reason != KVM_EXIT_MEMORY_FAULT ||
	    !(mf->flags & LVM_KVM_MEMORY_EXIT_FLAG_USERFAULT) || !vm->userfault)
		return 0;
	atomic_fetch_add(&vm->userfault_exits, 1);
	int ret = vm->userfault(vm->userfault_ctx, v->idx, mf->gpa & ~4095ull, mf->flags);
	if (!ret)
		return 1;
	char msg[160];
	snprintf(msg, sizeof(msg), "vCPU %u: guest page at 0x%llx could not be served: %s",
		 v->idx, (unsigned long long)mf->gpa, strerror(-ret));
	vmm_abort(vm, msg);
	return -1;
}

int vmm_userfault_bitmap_fd(const struct vmm *vm)
{
	return vm->ufbitmap ? vm->ufbitmap_fd : -1;
}

void vmm_set_userfault_handler(struct vmm *vm, int (*fn)(void *ctx, unsigned vcpu,
							 uint64_t gpa, uint64_t flags),
			       void *ctx)
{
	vm->userfault_ctx = ctx;
	vm->userfault = fn;
}

uint64_t vmm_userfault_exits(const struct vmm *vm)
{
	return atomic_load(&vm->userfault_exits);
}

int vmm_probe_secret_free(bool *userfault, bool *gmem_write)
{
	*userfault = *gmem_write = false;
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		return -errno;
	int vm = ioctl(kvm, KVM_CREATE_VM, 0);
	int ret = vm < 0 ? -errno : 0;
	if (vm >= 0) {
		*userfault = ioctl(vm, KVM_CHECK_EXTENSION, LVM_KVM_CAP_USERFAULT) > 0;
		int flags = ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD_FLAGS);
		*gmem_write = flags > 0 && (flags & LVM_GUEST_MEMFD_FLAG_WRITE);
		close(vm);
	}
	close(kvm);
	return ret;
}
