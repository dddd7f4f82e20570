/* SPDX-License-Identifier: MIT */
/* Guest memory backings: anon, memfd (shmem), hugetlb memfd, guest_memfd. */
#include <errno.h>
#include <fcntl.h>
#include <linux/memfd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/backing.h"
#include "core/uapi-compat.h"
#include "core/uffd.h"
#include "util/abi.h"

#define SZ_4K (4096UL)
#define SZ_2M (2UL << 20)

static int anon_create(struct lvm_mem *mem, int kvm_vm_fd)
{
	(void)kvm_vm_fd;
	void *p = mmap(NULL, mem->size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	mem->addr = p;
	return 0;
}

/*
 * Map a file-backed memory MAP_SHARED: the page cache is what the guest sees,
 * and MINOR mode fills it through a second mapping.  Takes ownership of fd.
 */
static int mem_map_file(struct lvm_mem *mem, int fd)
{
	void *p = mmap(NULL, mem->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		int err = -errno;
		close(fd);
		return err;
	}
	mem->fd = fd;
	mem->addr = p;
	return 0;
}

/* memfd-based backings share everything but the memfd flags. */
static int memfd_map(struct lvm_mem *mem, unsigned int mfd_flags)
{
	int fd = memfd_create("lazyvm-guest", MFD_CLOEXEC | mfd_flags);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)mem->size)) {
		int err = -errno;
		close(fd);
		return err;
	}
	return mem_map_file(mem, fd);
}

static int shmem_create(struct lvm_mem *mem, int kvm_vm_fd)
{
	(void)kvm_vm_fd;
	return memfd_map(mem, 0);
}

static int hugetlb_create(struct lvm_mem *mem, int kvm_vm_fd)
{
	(void)kvm_vm_fd;
	/* A shared hugetlb mapping reserves its pages at mmap time, so a short
	 * pool fails here (ENOMEM) rather than with SIGBUS in the guest. */
	return memfd_map(mem, MFD_HUGETLB | MFD_HUGE_2MB);
}

static int gmem_create(struct lvm_mem *mem, int kvm_vm_fd)
{
	if (kvm_vm_fd < 0) {
		int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
		if (kvm < 0)
			return -errno;
		kvm_vm_fd = ioctl(kvm, KVM_CREATE_VM, 0);
		int err = errno;
		close(kvm);
		if (kvm_vm_fd < 0)
			return -err;
		mem->own_vm_fd = kvm_vm_fd;
	}
	/* INIT_SHARED: the memory starts shared (host-accessible), which is what
	 * lets the host mmap and fill it — and what can_userfault() requires. */
	struct kvm_create_guest_memfd g = {
		.size = mem->size,
		.flags = GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED,
	};
	/* write() where the kernel has it (the secret-free page server
	 * populates with pwrite; core/uapi-compat.h): harmless otherwise. */
	int caps = ioctl(kvm_vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD_FLAGS);
	if (caps > 0 && (caps & LVM_GUEST_MEMFD_FLAG_WRITE))
		g.flags |= LVM_GUEST_MEMFD_FLAG_WRITE;
	int fd = ioctl(kvm_vm_fd, KVM_CREATE_GUEST_MEMFD, &g);
	if (fd < 0)
		return -errno;
	return mem_map_file(mem, fd);
}

static const struct backing_ops backings[LVM_BACKING__COUNT] = {
	[LVM_BACKING_ANON] = { LVM_BACKING_ANON, "anon", SZ_4K, anon_create, NULL },
	[LVM_BACKING_MEMFD] = { LVM_BACKING_MEMFD, "memfd", SZ_4K, shmem_create, NULL },
	[LVM_BACKING_HUGETLB] = { LVM_BACKING_HUGETLB, "hugetlb", SZ_2M, hugetlb_create, NULL },
	[LVM_BACKING_GMEM] = { LVM_BACKING_GMEM, "gmem", SZ_4K, gmem_create, NULL },
};

const struct backing_ops *backing_ops_get(enum lvm_backing b)
{
	return (unsigned)b < LVM_BACKING__COUNT ? &backings[b] : NULL;
}

const char *lvm_backing_name(enum lvm_backing b)
{
	const struct backing_ops *o = backing_ops_get(b);
	return o ? o->name : "?";
}

int lvm_backing_parse(const char *name, enum lvm_backing *out)
{
	for (int b = 0; b < LVM_BACKING__COUNT; b++) {
		if (!strcmp(name, backings[b].name)) {
			*out = (enum lvm_backing)b;
			return 0;
		}
	}
	if (!strcmp(name, "shmem") || !strcmp(name, "memfd")) {
		*out = LVM_BACKING_MEMFD;
		return 0;
	}
	if (!strcmp(name, "guest_memfd")) {
		*out = LVM_BACKING_GMEM;
		return 0;
	}
	return -EINVAL;
}

const char *lvm_mode_name(enum lvm_mode m)
{
	static const char *const names[] = { "MISSING", "MINOR", "WP" };
	return (unsigned)m < LVM_MODE__COUNT ? names[m] : "?";
}

int lvm_mem_create(const struct lvm_mem_opts *caller_opts, struct lvm_mem **out)
{
	struct lvm_mem_opts o = { .kvm_vm_fd = -1 }, *opts = &o;
	int ret = abi_copy_in(&o, sizeof(o), caller_opts, ABI_SIZE_TO(struct lvm_mem_opts, kvm_vm_fd));
	if (ret)
		return ret;
	const struct backing_ops *ops = backing_ops_get(opts->backing);
	if (!ops || !opts->size || opts->size % ops->page_size)
		return -EINVAL;
	struct lvm_mem *mem = calloc(1, sizeof(*mem));
	if (!mem)
		return -ENOMEM;
	mem->ops = ops;
	mem->size = opts->size;
	mem->page_size = ops->page_size;
	mem->fd = -1;
	mem->own_vm_fd = -1;
	ret = ops->create(mem, opts->kvm_vm_fd);
	if (ret) {
		if (mem->own_vm_fd >= 0)
			close(mem->own_vm_fd);
		free(mem);
		return ret;
	}
	*out = mem;
	return 0;
}

int lvm_mem_wrap(const struct lvm_range *caller_range, struct lvm_mem **out)
{
	struct lvm_range r = { .fd = -1 };
	int ret = abi_copy_in(&r, sizeof(r), caller_range, ABI_SIZE_TO(struct lvm_range, fd_offset));
	if (ret)
		return ret;
	const struct backing_ops *ops = backing_ops_get(r.backing);
	if (!ops || !r.addr || !r.length || r.length % ops->page_size ||
	    (uintptr_t)r.addr % ops->page_size || r.fd_offset % ops->page_size ||
	    (r.backing == LVM_BACKING_ANON) != (r.fd < 0))
		return -EINVAL;
	struct lvm_mem *mem = calloc(1, sizeof(*mem));
	if (!mem)
		return -ENOMEM;
	*mem = (struct lvm_mem){ .ops = ops, .addr = r.addr, .size = r.length,
				 .page_size = ops->page_size, .fd = r.fd, .own_vm_fd = -1,
				 .fd_off = r.fd_offset, .borrowed = true };
	*out = mem;
	return 0;
}

void lvm_mem_destroy(struct lvm_mem *mem)
{
	if (!mem)
		return;
	if (mem->alias)
		munmap(mem->alias, mem->size);
	if (mem->borrowed) {
		free(mem);
		return;
	}
	if (mem->addr)
		munmap(mem->addr, mem->size);
	if (mem->fd >= 0)
		close(mem->fd);
	if (mem->own_vm_fd >= 0)
		close(mem->own_vm_fd);
	free(mem);
}

void *lvm_mem_addr(const struct lvm_mem *mem) { return mem->addr; }
size_t lvm_mem_size(const struct lvm_mem *mem) { return mem->size; }
size_t lvm_mem_page_size(const struct lvm_mem *mem) { return mem->page_size; }
enum lvm_backing lvm_mem_backing(const struct lvm_mem *mem) { return mem->ops->kind; }
int lvm_mem_fd(const struct lvm_mem *mem) { return mem->fd; }

int lvm_mem_write(struct lvm_mem *mem, uint64_t off, const void *data, size_t len)
{
	if (off > mem->size || len > mem->size - off)
		return -ERANGE;
	memcpy((uint8_t *)mem->addr + off, data, len);
	return 0;
}

uint64_t backing_register_modes(enum lvm_mode m, bool for_serving)
{
	switch (m) {
	case LVM_MODE_MISSING:
		return UFFDIO_REGISTER_MODE_MISSING;
	case LVM_MODE_MINOR:
		return UFFDIO_REGISTER_MODE_MINOR |
		       (for_serving ? UFFDIO_REGISTER_MODE_MISSING : 0);
	case LVM_MODE_WP:
		return UFFDIO_REGISTER_MODE_WP;
	default:
		return 0;
	}
}

int backing_can_userfault(struct lvm_mem *mem, int uffd, enum lvm_mode m, bool for_serving)
{
	uint64_t modes = backing_register_modes(m, for_serving);
	if (!modes)
		return -EINVAL;
	return uffd_register(uffd, (uint64_t)(uintptr_t)mem->addr, mem->size, modes, NULL);
}

bool backing_is_present(struct lvm_mem *mem, uint64_t off)
{
	uint64_t page = off & ~(uint64_t)(mem->page_size - 1);
	/* File-backed: does the file hold data there?  SEEK_DATA counts
	 * swapped-out shmem pages as data (mapping_seek_hole_data treats a swap
	 * entry like a page; tests/engine-swap checks it), where mincore would
	 * call them absent.  get_folio_noalloc's question is "is there content",
	 * not "is it in RAM". */
	if (mem->fd >= 0) {
		off_t d = lseek(mem->fd, (off_t)page, SEEK_DATA);
		return d >= 0 && (uint64_t)d == page;
	}
	/* anon: a mapped page (nothing else can hold its content) */
	unsigned char vec = 0;
	if (mincore((uint8_t *)mem->addr + page, mem->page_size, &vec))
		return false;
	return vec & 1;
}

int backing_alias(struct lvm_mem *mem, uint8_t **alias)
{
	if (mem->fd < 0)
		return -EINVAL;	/* anon memory has no page cache to fill */
	if (!mem->alias) {
		void *p = mmap(NULL, mem->size, PROT_READ | PROT_WRITE, MAP_SHARED, mem->fd,
			       (off_t)mem->fd_off);
		if (p == MAP_FAILED)
			return -errno;
		mem->alias = p;
	}
	*alias = mem->alias;
	return 0;
}

int backing_remove(struct lvm_mem *mem, uint64_t off, uint64_t len)
{
	/* File-backed (memfd, hugetlb, guest_memfd): punch the page cache;
	 * truncation also zaps every mapping of those pages, so the next access
	 * faults again.  Not MADV_REMOVE: kernels built without
	 * CONFIG_ADVISE_SYSCALLS (tinyconfig, the gmem test kernel) lack
	 * madvise(), and fallocate() is what MADV_REMOVE does underneath. */
	if (mem->fd >= 0) {
		if (fallocate(mem->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			      (off_t)(mem->fd_off + off), (off_t)len))
			return -errno;
		return 0;
	}
	return madvise((uint8_t *)mem->addr + off, len, MADV_DONTNEED) ? -errno : 0;
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23	/* Linux 5.14 */
#endif

int backing_populate(struct lvm_mem *mem, uint64_t off, uint64_t len)
{
	if (off > mem->size || len > mem->size - off)
		return -ERANGE;
	uint8_t *p = (uint8_t *)mem->addr + off;
	if (!madvise(p, len, MADV_POPULATE_WRITE))
		return 0;
	if (errno != EINVAL)
		return -errno;
	/* Before 5.14 (no POPULATE_WRITE): a write per page does the same (each
	 * byte written back as read; nothing runs in the guest yet). */
	volatile uint8_t *v = p;
	for (uint64_t a = 0; a < len; a += mem->page_size)
		v[a] = v[a];
	return 0;
}
