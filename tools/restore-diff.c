/* SPDX-License-Identifier: MIT */
/*
 * lazyvm restore SRC --snapshot DEST: a diff snapshot of a VM restored
 * lazily from a chunk-store snapshot B (src/store/diff.c): only chunks with
 * a fetched page are read, only chunks whose content changed are uploaded,
 * every other entry of the new manifest is B's hash.  DEST is a URL or
 * BASE/NAME, or a bare NAME beside B (same store: B's chunks are there).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "restore-diff.h"
#include "vmm/snapshot.h"
#include "vmm/vmm.h"

struct present_ctx {
	struct lvm_engine *e;
	struct lvm_source *src;
	uint8_t *mem;
	size_t page_size;
};

/*
 * Is the page in guest memory?  The engine marks a page present only after
 * its UFFDIO_COPY returned, and the copy wakes the vCPU first: a vCPU may
 * write the page in between, then be paused, and the engine's map still
 * say "not yet".  mincore() sees the page mapped (it never faults), so
 * either answer counts; a page installed long ago and swapped out since is
 * present for the engine.
 */
static bool page_present(void *ctx, uint64_t off)
{
	struct present_ctx *p = ctx;
	unsigned char vec = 0;
	return lvm_engine_is_present(p->e, p->src, off) ||
	       (!mincore(p->mem + off, p->page_size, &vec) && (vec & 1));
}

/* Where the diff goes: B's own store for a bare name. */
static int diff_dest(struct store_cli *b, const char *dest, struct objstore **out,
		     bool *own, char *name, size_t namelen, char *err, size_t errlen)
{
	*own = strchr(dest, '/') || objstore_is_url(dest);
	if (*own)
		return objstore_open(dest, out, name, namelen, err, errlen);
	snprintf(name, namelen, "%s", dest);
	*out = b->store;
	return 0;
}

static int diff_push(struct vm_restore *rs, struct store_cli *b, const char *dest,
		     const uint8_t *state, size_t state_len, bool live, char *err, size_t errlen)
{
	struct vmm *vm = vm_restore_vmm(rs);
	struct lvm_mem *mem = vmm_mem(vm);
	struct present_ctx pc = { vm_restore_engine(rs), vm_restore_source(rs), lvm_mem_addr(mem),
				  lvm_mem_page_size(mem) };
	const struct manifest *bm = store_source_manifest(b->source);
	struct store_diff_opts o = {
		.mem = lvm_mem_addr(mem), .size = lvm_mem_size(mem),
		.page_size = lvm_mem_page_size(mem), .is_present = page_present, .ctx = &pc,
		.base = pc.src, .base_manifest = bm, .copy = live,
	};
	struct lvm_source *dsrc;
	const uint8_t *dirty;
	uint64_t ndirty;
	int ret = store_diff_create(&o, &dsrc, &dirty, &ndirty);
	if (live)
		vmm_resume(vm);	/* the dirty chunks are copied: the guest may write */
	if (ret) {
		snprintf(err, errlen, "reading the VM's memory: %s", strerror(-ret));
		return ret;
	}
	struct objstore *s;
	bool own;
	char name[256];
	ret = diff_dest(b, dest, &s, &own, name, sizeof(name), err, errlen);
	if (!ret) {
		struct store_push_opts po = { .compress = true, .base = bm, .dirty = dirty };
		struct store_push_stats st;
		ret = store_push(s, name, state, state_len, dsrc, &po, &st, err, errlen);
		if (!ret)
			fprintf(stderr, "lazyvm restore: diff snapshot %s: %llu chunks, %llu with a "
				"fetched page, %llu uploaded, %llu referenced (of %s)\n", dest,
				(unsigned long long)st.chunks, (unsigned long long)ndirty,
				(unsigned long long)st.uploaded,
				(unsigned long long)(st.chunks - st.zero_chunks - st.uploaded),
				b->name);
		if (own)
			objstore_close(s);
	}
	lvm_source_destroy(dsrc);
	return ret;
}

int restore_diff_snapshot(struct vm_restore *rs, struct store_cli *b, const char *dest,
			  bool live, char *err, size_t errlen)
{
	if (!b->source || !vm_restore_engine(rs)) {
		snprintf(err, errlen, "--snapshot: the VM must be restored lazily from a "
			 "chunk-store snapshot (a URL or BASE/NAME)");
		return -EINVAL;
	}
	struct vmm *vm = vm_restore_vmm(rs);
	char guest[64];
	struct vm_snapshot_info info;
	int ret = vm_restore_info(rs, &info, guest, sizeof(guest));
	if (ret) {
		snprintf(err, errlen, "the snapshot's metadata: %s", strerror(-ret));
		return ret;
	}
	vmm_pause(vm);
	uint8_t *state;
	size_t state_len;
	ret = vm_snapshot_state(vm, &info, &state, &state_len, err, errlen);
	if (ret) {
		if (live)
			vmm_resume(vm);
		return ret;
	}
	ret = diff_push(rs, b, dest, state, state_len, live, err, errlen);
	free(state);
	return ret;
}
