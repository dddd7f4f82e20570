/* SPDX-License-Identifier: MIT */
/*
 * Writing a VM's snapshot: META (guest, sizes, backing), the VM state blob,
 * then memory — copied from a paused VM, or, live, chunk by chunk under
 * uffd write-protection while the guest keeps running (wp.h).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/wp.h"
#include "snapshot/snapshot.h"
#include "util/progress.h"
#include "vmm/snapshot.h"
#include "vmm/vmm.h"

static uint32_t vm_snapshot_chunk(struct vmm *vm)
{
	size_t ps = lvm_mem_page_size(vmm_mem(vm));
	return ps > SNAP_DEFAULT_CHUNK_SIZE ? (uint32_t)ps : SNAP_DEFAULT_CHUNK_SIZE;
}

/* Open the writer and write everything but memory; the VM must be paused. */
static int vm_snapshot_begin(struct vmm *vm, const char *dir, const struct vm_snapshot_info *in,
			     struct snap_writer **out, char *err, size_t errlen)
{
	struct lvm_mem *mem = vmm_mem(vm);
	void *blob = NULL;
	size_t len = 0;
	int ret = vmm_save_state(vm, &blob, &len);
	if (ret) {
		snprintf(err, errlen, "saving VM state: %s", strerror(-ret));
		return ret;
	}
	char meta[512];
	int n = snprintf(meta, sizeof(meta),
			 "guest=%s\nmem=%zu\nvcpus=%u\nbacking=%s\nseed=%llu\niterations=%llu\n",
			 in->guest, lvm_mem_size(mem), vmm_vcpus(vm),
			 lvm_backing_name(lvm_mem_backing(mem)), (unsigned long long)in->seed,
			 (unsigned long long)in->iterations);
	struct snap_write_opts wo = { .chunk_size = vm_snapshot_chunk(vm) };
	struct snap_writer *w = NULL;
	ret = snapshot_writer_open(dir, &wo, &w);
	if (!ret)
		ret = snapshot_write_section(w, SNAP_SEC_META, meta, (size_t)n);
	if (!ret)
		ret = snapshot_write_section(w, SNAP_SEC_VM_STATE, blob, len);
	if (!ret)
		ret = snapshot_mem_begin(w, lvm_mem_size(mem));
	free(blob);
	if (ret) {
		snprintf(err, errlen, "writing %s: %s", dir, strerror(-ret));
		if (w)
			snapshot_writer_abort(w);
		return ret;
	}
	*out = w;
	return 0;
}

static int vm_snapshot_finish(struct snap_writer *w, int ret, const char *dir, char *err,
			      size_t errlen)
{
	if (ret) {
		snapshot_writer_abort(w);
		snprintf(err, errlen, "writing memory to %s: %s", dir, strerror(-ret));
		return ret;
	}
	ret = snapshot_writer_close(w);
	if (ret)
		snprintf(err, errlen, "publishing %s: %s", dir, strerror(-ret));
	return ret;
}

int vm_snapshot_take(struct vmm *vm, const char *dir, const struct vm_snapshot_info *info,
		     char *err, size_t errlen)
{
	struct snap_writer *w;
	vmm_pause(vm);
	int ret = vm_snapshot_begin(vm, dir, info, &w, err, errlen);
	if (ret)
		return ret;
	struct lvm_mem *mem = vmm_mem(vm);
	struct progress p;
	progress_init(&p, "snapshot", lvm_mem_size(mem));
	ret = snapshot_write_memory(w, lvm_mem_addr(mem), lvm_mem_size(mem), &p);
	progress_done(&p);
	return vm_snapshot_finish(w, ret, dir, err, errlen);
}

struct live_ctx {
	struct snap_writer *w;
	const uint8_t *base;
	uint32_t chunk;
	struct progress p;
	_Atomic int err;
};

/* Called with the chunk still write-protected: its content is the snapshot's. */
static void live_first_write(void *arg, uint64_t c)
{
	struct live_ctx *l = arg;
	int ret = snapshot_mem_chunk(l->w, c, l->base + c * l->chunk);
	if (ret) {
		int zero = 0;
		atomic_compare_exchange_strong(&l->err, &zero, ret);
	}
	progress_add(&l->p, l->chunk);
}

int vm_snapshot_live(struct vmm *vm, const char *dir, const struct vm_snapshot_info *info,
		     char *err, size_t errlen)
{
	struct lvm_mem *mem = vmm_mem(vm);
	struct live_ctx l = { .base = lvm_mem_addr(mem), .chunk = vm_snapshot_chunk(vm) };
	struct lvm_wp *t = NULL;
	vmm_pause(vm);
	int ret = vm_snapshot_begin(vm, dir, info, &l.w, err, errlen);
	if (ret)
		return ret;
	progress_init(&l.p, "live snapshot", lvm_mem_size(mem));
	ret = lvm_wp_start(mem, l.chunk, live_first_write, &l, &t);
	vmm_resume(vm);
	if (ret) {
		snapshot_writer_abort(l.w);
		snprintf(err, errlen, "write-protecting %s memory: %s (live snapshots need uffd-WP)",
			 lvm_backing_name(lvm_mem_backing(mem)), strerror(-ret));
		return ret;
	}
	uint64_t chunks = lvm_wp_chunks(t);
	for (uint64_t c = 0; c < chunks && !ret; c++) {
		int r = lvm_wp_take(t, c);
		ret = r < 0 ? r : 0;
	}
	lvm_wp_stop(t);
	progress_done(&l.p);
	if (!ret)
		ret = atomic_load(&l.err);
	return vm_snapshot_finish(l.w, ret, dir, err, errlen);
}

/*
 * The state file alone, for a snapshot whose memory goes elsewhere (a diff
 * snapshot into a chunk store).  The writer always writes both files, so
 * it gets memory that is all zero chunks (elided: nothing is read from the
 * guest) in a private temp dir, and only DIR/state is kept.
 */
int vm_snapshot_state(struct vmm *vm, const struct vm_snapshot_info *info, uint8_t **state,
		      size_t *len, char *err, size_t errlen)
{
	char dir[] = "/tmp/lazyvm-state.XXXXXX", path[64];
	if (!mkdtemp(dir)) {
		snprintf(err, errlen, "mkdtemp: %s", strerror(errno));
		return -errno;
	}
	struct snap_writer *w = NULL;
	int ret = vm_snapshot_begin(vm, dir, info, &w, err, errlen);
	uint32_t cs = vm_snapshot_chunk(vm);
	uint8_t *zero = ret ? NULL : calloc(1, cs);
	uint64_t n = (lvm_mem_size(vmm_mem(vm)) + cs - 1) / cs;
	if (!ret && !zero)
		ret = -ENOMEM;
	for (uint64_t i = 0; i < n && !ret; i++)
		ret = snapshot_mem_chunk(w, i, zero);
	free(zero);
	if (w)
		ret = vm_snapshot_finish(w, ret, dir, err, errlen);
	snprintf(path, sizeof(path), "%s/state", dir);
	if (!ret) {
		FILE *f = fopen(path, "rb");
		long sz = f && !fseek(f, 0, SEEK_END) ? ftell(f) : -1;
		*state = sz > 0 ? malloc((size_t)sz) : NULL;
		if (!*state || fseek(f, 0, SEEK_SET) || fread(*state, 1, (size_t)sz, f) != (size_t)sz) {
			free(*state);
			*state = NULL;
			ret = -EIO;
			snprintf(err, errlen, "reading back %s", path);
		}
		*len = (size_t)sz;
		if (f)
			fclose(f);
	}
	unlink(path);
	snprintf(path, sizeof(path), "%s/memory", dir);
	unlink(path);
	rmdir(dir);
	return ret;
}
