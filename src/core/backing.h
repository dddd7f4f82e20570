/* SPDX-License-Identifier: MIT */
/*
 * Guest memory backings.  struct backing_ops is one table per kind of
 * memory with what differs between kinds: the page size and how the memory
 * is created.  What the engine asks of any backing is the free functions
 * below; each is the userspace side of a step the kernel's guest_memfd
 * userfaultfd series names (its struct vm_uffd_ops):
 *
 *   kernel step                 here
 *   can_userfault(vma, flags)   backing_can_userfault(): UFFDIO_REGISTER
 *   get_folio_noalloc()         backing_is_present(): in the page cache?
 *   filemap_remove()            backing_remove(): undo a fill
 *
 * Filling and mapping are the engine's (src/engine/install.c).
 *
 * Two install styles exist.  COPY backings (anon, and any backing in MISSING
 * mode) fill and map in one UFFDIO_COPY.  Page-cache backings in MINOR mode
 * (memfd, hugetlb memfd, guest_memfd) write the content through a second,
 * unregistered mapping of the same file, then UFFDIO_CONTINUE.  The page is
 * always written before it is continued: on guest_memfd, continuing a page
 * that was never written exposed stale memory (docs/guest-memfd.md).
 */
#ifndef LAZYVM_BACKING_H
#define LAZYVM_BACKING_H

#include <stdbool.h>
#include <stdint.h>

#include "lazyvm.h"

struct lvm_mem;
struct share_cache;

struct backing_ops {
	enum lvm_backing kind;
	const char *name;
	size_t page_size;
	/* Map the memory (and create its file); fill in mem->addr, fd, page_size. */
	int (*create)(struct lvm_mem *mem, int kvm_vm_fd);
	void (*destroy)(struct lvm_mem *mem);
};

struct lvm_mem {
	const struct backing_ops *ops;
	void *addr;
	size_t size;
	size_t page_size;
	int fd;			/* -1 for anon */
	int own_vm_fd;		/* gmem created without a VM: ours to close */
	void *alias;		/* second mapping of fd, for MINOR fills */
	uint64_t fd_off;	/* where addr's mapping starts in fd (lvm_mem_wrap) */
	bool borrowed;		/* lvm_mem_wrap: addr and fd are the caller's */
	struct share_cache *share;	/* a private mapping of the shared cache (core/share.h) */
};

const struct backing_ops *backing_ops_get(enum lvm_backing b);

/* UFFDIO_REGISTER_MODE_* bits lazyvm registers for a served mode.  MINOR adds
 * MISSING so pages absent from the page cache trap too (otherwise the kernel
 * would map a fresh zero page: a silent zero). */
uint64_t backing_register_modes(enum lvm_mode m, bool for_serving);

/* Does the memory take UFFDIO_REGISTER in mode m?  0 or -errno. */
int backing_can_userfault(struct lvm_mem *mem, int uffd, enum lvm_mode m, bool for_serving);
/* get_folio_noalloc: does the file hold data at off (in RAM or swapped)? */
bool backing_is_present(struct lvm_mem *mem, uint64_t off);
/* The second mapping used to write page-cache content (created on first use). */
int backing_alias(struct lvm_mem *mem, uint8_t **alias);
/* filemap_remove: drop [off, off+len) from the page cache (or mapping). */
int backing_remove(struct lvm_mem *mem, uint64_t off, uint64_t len);

/*
 * Put [off, off+len) in writable and populated (MADV_POPULATE_WRITE): the
 * pages exist and are mapped writable before the guest touches them.  On
 * anon memory a first read otherwise maps the shared zero page and the next
 * write takes a second (COW) fault; under nested KVM each host fault is a
 * trip through the outer hypervisor (docs/restore-latency.md).  For memory
 * that is not registered with userfaultfd, or whose range is served already.
 */
int backing_populate(struct lvm_mem *mem, uint64_t off, uint64_t len);

#endif
