/* SPDX-License-Identifier: MIT */
/*
 * Kernel uapi definitions newer than the system headers (Debian 12 ships
 * Linux 6.1 uapi).  Values are copied from upstream include/uapi/linux/
 * userfaultfd.h and kvm.h; each is guarded so newer headers win.
 */
#ifndef LAZYVM_UAPI_COMPAT_H
#define LAZYVM_UAPI_COMPAT_H

#include <linux/types.h>
#include <linux/ioctl.h>
#include <linux/userfaultfd.h>
#include <linux/kvm.h>

/* ---- userfaultfd (6.4: WP_UNPOPULATED, 6.6: POISON, 6.7: WP_ASYNC, 6.8: MOVE) */
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED	(1 << 13)
#endif
#ifndef UFFD_FEATURE_POISON
#define UFFD_FEATURE_POISON		(1 << 14)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC		(1 << 15)
#endif
#ifndef UFFD_FEATURE_MOVE
#define UFFD_FEATURE_MOVE		(1 << 16)
#endif

#ifndef _UFFDIO_MOVE
#define _UFFDIO_MOVE			(0x05)
#endif
#ifndef _UFFDIO_POISON
#define _UFFDIO_POISON			(0x08)
#endif

#ifndef UFFDIO_CONTINUE_MODE_WP
#define UFFDIO_CONTINUE_MODE_WP		((__u64)1 << 1)
#endif

#ifndef UFFDIO_POISON
struct uffdio_poison {
	struct uffdio_range range;
#define UFFDIO_POISON_MODE_DONTWAKE	((__u64)1 << 0)
	__u64 mode;
	__s64 updated;	/* bytes poisoned, or -errno */
};
#define UFFDIO_POISON	_IOWR(UFFDIO, _UFFDIO_POISON, struct uffdio_poison)
#endif

#ifndef UFFDIO_MOVE
struct uffdio_move {
	__u64 dst;
	__u64 src;
	__u64 len;
#define UFFDIO_MOVE_MODE_DONTWAKE		((__u64)1 << 0)
#define UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES	((__u64)1 << 1)
	__u64 mode;
	__s64 move;	/* bytes moved, or -errno */
};
#define UFFDIO_MOVE	_IOWR(UFFDIO, _UFFDIO_MOVE, struct uffdio_move)
#endif

/* /dev/userfaultfd (6.1 has it, but older headers may not name the ioctl). */
#ifndef USERFAULTFD_IOC
#define USERFAULTFD_IOC		0xAA
#define USERFAULTFD_IOC_NEW	_IO(USERFAULTFD_IOC, 0x00)
#endif

/* ---- KVM guest_memfd (6.8) and mmap-able guest_memfd (6.18) ------------- */
#ifndef KVM_CAP_USER_MEMORY2
#define KVM_CAP_USER_MEMORY2		231
#endif
#ifndef KVM_CAP_MEMORY_ATTRIBUTES
#define KVM_CAP_MEMORY_ATTRIBUTES	233
#endif
#ifndef KVM_CAP_GUEST_MEMFD
#define KVM_CAP_GUEST_MEMFD		234
#endif
#ifndef KVM_CAP_GUEST_MEMFD_FLAGS
#define KVM_CAP_GUEST_MEMFD_FLAGS	244
#endif

#ifndef KVM_MEM_GUEST_MEMFD
#define KVM_MEM_GUEST_MEMFD		(1UL << 2)
#endif

#ifndef GUEST_MEMFD_FLAG_MMAP
#define GUEST_MEMFD_FLAG_MMAP		(1ULL << 0)
#endif
#ifndef GUEST_MEMFD_FLAG_INIT_SHARED
#define GUEST_MEMFD_FLAG_INIT_SHARED	(1ULL << 1)
#endif

#ifndef KVM_CREATE_GUEST_MEMFD
struct kvm_create_guest_memfd {
	__u64 size;
	__u64 flags;
	__u64 reserved[6];
};
#define KVM_CREATE_GUEST_MEMFD	_IOWR(KVMIO, 0xd4, struct kvm_create_guest_memfd)
#endif

#ifndef KVM_SET_USER_MEMORY_REGION2
struct kvm_userspace_memory_region2 {
	__u32 slot;
	__u32 flags;
	__u64 guest_phys_addr;
	__u64 memory_size;
	__u64 userspace_addr;
	__u64 guest_memfd_offset;
	__u32 guest_memfd;
	__u32 pad1;
	__u64 pad2[14];
};
#define KVM_SET_USER_MEMORY_REGION2 \
	_IOW(KVMIO, 0x49, struct kvm_userspace_memory_region2)
#endif

#ifndef KVM_PRE_FAULT_MEMORY	/* Linux 6.10 */
#define KVM_CAP_PRE_FAULT_MEMORY 236
struct kvm_pre_fault_memory {
	__u64 gpa;
	__u64 size;
	__u64 flags;
	__u64 padding[5];
};
#define KVM_PRE_FAULT_MEMORY	_IOWR(KVMIO, 0xd5, struct kvm_pre_fault_memory)
#endif

/*
 * KVM userfault (KVM_MEM_USERFAULT + userfault bitmap) and guest_memfd
 * write(): not upstream.  The numbers are those of the test kernel's port
 * to Linux 7.3 (shared/gmem-kernel/patches/0003-*): KVM_CAP_USERFAULT is
 * 252 there because 7.3 uses 245-247, the numbers of Firecracker's 6.18
 * series, for other features.  Probe before use (lazyvm probe).
 */
#define LVM_KVM_CAP_USERFAULT		252
#define LVM_KVM_MEM_USERFAULT		(1UL << 3)
#define LVM_GUEST_MEMFD_FLAG_WRITE	(1ULL << 3)
#define LVM_KVM_MEMORY_EXIT_FLAG_USERFAULT	(1ULL << 4)
#ifndef KVM_EXIT_MEMORY_FAULT	/* Linux 6.8 */
#define KVM_EXIT_MEMORY_FAULT		39
#endif
/* kvm_run's memory_fault exit (in the exit union). */
struct lvm_kvm_memory_fault {
	__u64 flags;
	__u64 gpa;
	__u64 size;
};
/* kvm_userspace_memory_region2 with the port's userfault_bitmap (the u64
 * after pad1), for KVM_SET_USER_MEMORY_REGION2. */
struct lvm_kvm_memory_region2_uf {
	__u32 slot;
	__u32 flags;
	__u64 guest_phys_addr;
	__u64 memory_size;
	__u64 userspace_addr;
	__u64 guest_memfd_offset;
	__u32 guest_memfd;
	__u32 pad1;
	__u64 userfault_bitmap;
	__u64 pad2[13];
};

#endif /* LAZYVM_UAPI_COMPAT_H */
