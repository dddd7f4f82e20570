/* SPDX-License-Identifier: MIT */
/*
 * --prefault: a fresh VM's memory put in writable and populated before the
 * guest runs, as other VMMs offer (QEMU -mem-prealloc, Firecracker's
 * prefault).  Host side: MADV_POPULATE_WRITE (backing_populate), so no guest
 * page pays the zero-page read fault plus COW of anon memory.  KVM side:
 * KVM_PRE_FAULT_MEMORY (Linux 6.10) builds the stage-2 mappings too, where the
 * kernel supports it (TDP MMU only; nested/shadow-paging KVM says EOPNOTSUPP
 * or lacks the capability: then the host side alone).  docs/restore-latency.md
 * has the measurements.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include "core/backing.h"
#include "core/uapi-compat.h"
#include "vmm/vmm-internal.h"

/* 1 when KVM pre-faulted all of it, 0 when the kernel cannot, -errno else. */
static int vmm_kvm_pre_fault(struct vmm *vm)
{
	if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_PRE_FAULT_MEMORY) <= 0)
		return 0;
	struct kvm_pre_fault_memory r = { .gpa = 0, .size = vm->mem_size };
	while (r.size) {	/* the ioctl advances gpa/size and may stop early */
		if (ioctl(vm->vcpus[0].fd, KVM_PRE_FAULT_MEMORY, &r) == 0)
			continue;
		if (errno == EINTR || errno == EAGAIN)
			continue;
		return errno == EOPNOTSUPP || errno == EINVAL || errno == ENOENT ? 0 : -errno;
	}
	return 1;
}

int vmm_prefault(struct vmm *vm, char *err, size_t errlen)
{
	int ret = backing_populate(vm->mem, 0, vm->mem_size);
	if (ret) {
		snprintf(err, errlen, "prefault: populating %llu MiB: %s",
			 (unsigned long long)(vm->mem_size >> 20), strerror(-ret));
		return ret;
	}
	ret = vmm_kvm_pre_fault(vm);
	vm->kvm_prefaulted = ret == 1;
	if (ret < 0)
		snprintf(err, errlen, "KVM_PRE_FAULT_MEMORY: %s", strerror(-ret));
	return ret < 0 ? ret : 0;
}

bool vmm_kvm_prefaulted(const struct vmm *vm) { return vm->kvm_prefaulted; }
