/* SPDX-License-Identifier: MIT */
/*
 * Probe: which backing x uffd mode works on the running kernel.  Measured by
 * really trying (create the memory, register it), never by version guesses:
 * the same kernel version can carry or lack the guest_memfd uffd series.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/backing.h"
#include "core/hugetlb.h"
#include "util/abi.h"
#include "core/uffd.h"

/* The ioctl a served mode needs on the registered range. */
static uint64_t mode_needs_ioctl(enum lvm_mode m)
{
	switch (m) {
	case LVM_MODE_MISSING: return 1ULL << _UFFDIO_COPY;
	case LVM_MODE_MINOR: return 1ULL << _UFFDIO_CONTINUE;
	default: return 1ULL << _UFFDIO_WRITEPROTECT;
	}
}

static int probe_fail(struct lvm_probe *out, int err, const char *what)
{
	out->err = err;
	snprintf(out->reason, sizeof(out->reason), "%s: %s (%s)", what,
		 strerrorname_np(-err) ? strerrorname_np(-err) : "?", strerror(-err));
	return 0;
}

static int probe_registered(struct lvm_mem *mem, enum lvm_mode m, struct lvm_probe *out)
{
	uint64_t got = 0;
	int uffd = uffd_open(UFFD_WANT_FEATURES, &got);
	if (uffd < 0)
		return probe_fail(out, uffd, "userfaultfd");
	uint64_t modes = backing_register_modes(m, false), ioctls = 0;
	int ret = uffd_register(uffd, (uint64_t)(uintptr_t)mem->addr, mem->size, modes, &ioctls);
	if (ret) {
		close(uffd);
		return probe_fail(out, ret, "UFFDIO_REGISTER");
	}
	uffd_unregister(uffd, (uint64_t)(uintptr_t)mem->addr, mem->size);
	close(uffd);
	if (!(ioctls & mode_needs_ioctl(m)))
		return probe_fail(out, -EOPNOTSUPP, "registered, but the range lacks the ioctl");
	out->err = 0;
	snprintf(out->reason, sizeof(out->reason), "yes");
	return 0;
}

static void probe_try(const struct backing_ops *ops, enum lvm_mode m, struct lvm_probe *out)
{
	enum lvm_backing b = ops->kind;

	struct hugetlb_reservation res = HUGETLB_RESERVATION_INIT;
	if (b == LVM_BACKING_HUGETLB) {
		/* One free huge page is enough to try; borrow it if the pool is
		 * empty and give it back afterwards. */
		int ret = hugetlb_reserve(1, &res);
		if (ret) {
			probe_fail(out, ret, "reserving a 2 MiB huge page");
			return;
		}
	}
	struct lvm_mem *mem = NULL;
	struct lvm_mem_opts o = { .struct_size = sizeof(o), .backing = b,
				  .size = ops->page_size * 2, .kvm_vm_fd = -1 };
	if (b == LVM_BACKING_HUGETLB)
		o.size = ops->page_size;
	int ret = lvm_mem_create(&o, &mem);
	if (ret) {
		const char *what = b == LVM_BACKING_GMEM ?
			"KVM_CREATE_GUEST_MEMFD(MMAP|INIT_SHARED) + mmap" : "creating the memory";
		probe_fail(out, ret, what);
	} else {
		probe_registered(mem, m, out);
		lvm_mem_destroy(mem);
	}
	hugetlb_release(&res);
}

int lvm_probe(enum lvm_backing b, enum lvm_mode m, struct lvm_probe *out)
{
	const struct backing_ops *ops = backing_ops_get(b);
	if (!ops || (unsigned)m >= LVM_MODE__COUNT || !out)
		return -EINVAL;
	struct lvm_probe p = { .struct_size = sizeof(p) };
	probe_try(ops, m, &p);
	return abi_copy_out(out, &p, sizeof(p), ABI_SIZE_TO(struct lvm_probe, reason));
}
