/* SPDX-License-Identifier: MIT */
/*
 * Secret-free guest memory (Firecracker's feature/secret-hiding; see
 * docs/firecracker.md): the guest's memory is a guest_memfd that KVM maps
 * through a KVM_MEM_USERFAULT memslot, and a userfault bitmap (one bit per
 * guest_memfd page, set = not populated yet) decides which vCPU accesses
 * exit to the VMM (KVM_EXIT_MEMORY_FAULT, sent to us as a FaultRequest).
 * The VMM's own accesses go through its mapping of the guest_memfd, which
 * is registered with userfaultfd MISSING|MINOR.
 *
 *   FaultRequest / background fill: pwrite the content into the guest_memfd,
 *                then clear the bits (release: KVM reads the bit, then the
 *                page), then wake any VMM thread faulting on it
 *   uffd fault, bit set:    UFFDIO_COPY, then clear the bits
 *   uffd fault, bit clear:  UFFDIO_CONTINUE (the page cache has it)
 *
 * A page is written once: the engine's per-page claim makes one writer, and
 * a bit found clear before a pwrite means someone else populated it (the
 * VMM itself, e.g. Firecracker's kvm-clock page): skipped, never rewritten.
 * Without NO_DIRECT_MAP a second pwrite would silently replace live guest
 * data; with it the kernel answers EEXIST.
 */
#ifndef LAZYVM_ENGINE_USERFAULT_H
#define LAZYVM_ENGINE_USERFAULT_H

#include "engine/install.h"

struct engine_sf_stats {
	uint64_t requests;		/* FaultRequests served */
	uint64_t pwrites;		/* pwrite calls into the guest_memfd */
	uint64_t pages_written;		/* pages those wrote */
	uint64_t pages_copied;		/* pages installed by UFFDIO_COPY (uffd path) */
	uint64_t continues;		/* UFFDIO_CONTINUE of populated pages */
	uint64_t already_populated;	/* bit found clear: not written again */
};

/*
 * Make region id (lvm_engine_add_remote's return, before start) a
 * secret-free one: gmem_fd at gmem_off, bits in the shared bitmap (whose
 * bit 0 is guest_memfd page 0).  Pages whose bit is already clear are the
 * VMM's and are never written.  0 or -EINVAL.
 */
int engine_sf_attach(struct lvm_engine *e, int id, int gmem_fd, uint64_t gmem_off,
		     _Atomic uint64_t *bitmap);
/*
 * A vCPU's userfault exit on guest_memfd offset off: populate that page and
 * its fault-around block (pwrite), clear the bits.  *populated gets the
 * bytes this call wrote (0 when the page already was).  0, -ERANGE when no
 * secret-free region holds off, or -errno of the source / the pwrite (the
 * caller stops serving the VM).
 */
int engine_sf_serve_request(struct lvm_engine *e, uint64_t off, uint64_t *populated);
/* loop.c: a uffd fault on a secret-free region.  true when it was served
 * here; false: serve it as any MISSING-registered page (COPY), then call
 * engine_sf_after_copy. */
bool engine_sf_serve_fault(struct worker *w, struct region *r, uint64_t p);
void engine_sf_after_copy(struct lvm_engine *e, const struct run *run);
/* loop.c: the background fill's install for a secret-free region. */
int engine_sf_install(struct worker *w, struct run *run, const uint8_t *data,
		      bool background);
void engine_sf_stats(struct lvm_engine *e, struct engine_sf_stats *out);

#endif
