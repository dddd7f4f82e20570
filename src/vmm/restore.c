/* SPDX-License-Identifier: MIT */
/*
 * Restoring a VM from a snapshot directory.  Lazy: the fault engine serves
 * guest memory from the snapshot as the vCPUs touch it (plus a background
 * fill), so the guest runs before its memory is there; a page the engine
 * cannot serve stops the VM (vmm_abort), never a zero page.  Eager: all
 * memory is read (and checksummed) first.  Either way the snapshot's state
 * is validated and loaded before any guest instruction.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/backing.h"
#include "fc/fc.h"
#include "fc/sf-client.h"
#include "snapshot/snapshot.h"
#include "util/progress.h"
#include "util/timeline.h"
#include "util/zero.h"
#include "vmm/restore-ws.h"
#include "vmm/restore-share.h"
#include "vmm/snapshot.h"
#include "vmm/vmm.h"

#define RESTORE_FILL_STEP (2u << 20)
#define RESTORE_ZERO_STEP (64u << 10)
#define RESTORE_FILL_DELAY_MS 100	/* at most: a guest faults at once */

struct vm_restore {
	struct snap_reader *r;
	struct vmm *vm;
	struct lvm_engine *e;
	struct lvm_source *src;
	struct fc_client *fc;	/* --uffd-socket: an external page server serves memory */
	struct fc_sf_client *sf;	/* --uffd-socket --secret-free */
	enum lvm_backing backing;
	const char *mode;
	bool eager;		/* asked for, or gmem without uffd */
	enum lvm_mode lazy_mode;
	struct hugetlb_reservation res;
	bool source_failed;
	uint64_t vm_created_ns;	/* KVM VM + vCPUs exist (CLOCK_MONOTONIC) */
	uint64_t meta_mem;	/* memory size the state's metadata gives */
	struct timeline *tl;
	struct restore_ws ws;	/* --record-ws / --prefetch */
	uint64_t guest_done_ns;
	bool started;		/* vm_restore_start done */
	const char *dir;
	struct restore_share share;
	unsigned share_sync;
};

uint64_t vm_restore_vm_created_ns(const struct vm_restore *rs) { return rs->vm_created_ns; }

struct vmm *vm_restore_vmm(struct vm_restore *rs) { return rs->vm; }
enum lvm_backing vm_restore_backing(const struct vm_restore *rs) { return rs->backing; }
const char *vm_restore_mode(const struct vm_restore *rs) { return rs->mode; }

static int meta_u64(struct snap_reader *r, const char *key, uint64_t *out, char *err,
		    size_t errlen)
{
	char buf[64], *end;
	if (snapshot_meta_get(r, key, buf, sizeof(buf))) {
		snprintf(err, errlen, "snapshot state: metadata '%s' missing", key);
		return -EBADMSG;
	}
	*out = strtoull(buf, &end, 10);
	if (*end || end == buf) {
		snprintf(err, errlen, "snapshot state: metadata %s='%s' is not a number", key, buf);
		return -EBADMSG;
	}
	return 0;
}

/* Secret-free: guest_memfd memory, the server decides how pages go in. */
static int restore_check_secret_free(struct vm_restore *rs, const struct vm_restore_opts *o,
				     char *err, size_t errlen)
{
	if (!o->backing_set)
		rs->backing = LVM_BACKING_GMEM;
	if (rs->backing != LVM_BACKING_GMEM || o->eager || o->mode_set || o->memory_file ||
	    o->memory_source) {
		snprintf(err, errlen, "--secret-free: guest_memfd memory (--backing gmem) served "
			 "by the page server; --eager, --mode and --memory-file do not apply");
		return -EINVAL;
	}
	return 0;
}

static int restore_userfault(void *ctx, unsigned vcpu, uint64_t gpa, uint64_t flags)
{
	struct vm_restore *rs = ctx;
	return fc_sf_client_fault(rs->sf, vcpu, gpa, flags);
}

/* Firecracker's page-server protocol: anonymous (or hugetlb) memory, MISSING. */
static int restore_check_uffd_socket(struct vm_restore *rs, const struct vm_restore_opts *o,
				     char *err, size_t errlen)
{
	if (o->secret_free)
		return restore_check_secret_free(rs, o, err, errlen);
	if (!o->backing_set)
		rs->backing = LVM_BACKING_ANON;	/* what Firecracker maps */
	if (o->eager || (o->mode_set && o->mode != LVM_MODE_MISSING) || o->memory_file ||
	    o->memory_source) {
		snprintf(err, errlen, "--uffd-socket: the page server has the memory and fills "
			 "it on demand (MISSING); --eager, --mode minor and --memory-file do not apply");
		return -EINVAL;
	}
	if (rs->backing != LVM_BACKING_ANON && rs->backing != LVM_BACKING_HUGETLB) {
		snprintf(err, errlen, "--uffd-socket: --backing anon or hugetlb (as Firecracker), "
			 "not %s", lvm_backing_name(rs->backing));
		return -EINVAL;
	}
	return 0;
}

/*
 * Lazy in the asked mode where the kernel can; gmem without uffd: eager.
 * Probed before the VM's memory exists (a probe allocates memory too, and a
 * hugetlb pool is reserved for the VM alone).
 */
static int restore_choose_mode(struct vm_restore *rs, const struct vm_restore_opts *o,
			       char *err, size_t errlen)
{
	rs->eager = o->eager;
	rs->lazy_mode = o->mode_set ? o->mode : LVM_MODE_MISSING;
	if (o->uffd_socket)
		return restore_check_uffd_socket(rs, o, err, errlen);
	if (rs->eager)
		return 0;
	struct lvm_probe pr = { .struct_size = sizeof(pr) };
	lvm_probe(rs->backing, rs->lazy_mode, &pr);
	if (pr.err && rs->backing == LVM_BACKING_GMEM) {
		fprintf(stderr, "lazyvm restore: gmem: userfaultfd %s not supported by this kernel "
			"(%s): restoring eagerly\n", lvm_mode_name(rs->lazy_mode), pr.reason);
		rs->eager = true;
		return 0;
	}
	if (pr.err) {
		snprintf(err, errlen, "%s memory in %s mode: %s", lvm_backing_name(rs->backing),
			 lvm_mode_name(rs->lazy_mode), pr.reason);
		return pr.err == -EBADMSG ? -EINVAL : pr.err;
	}
	return 0;
}

/* Does the memory (DIR/memory's index, or --memory-file) have the size the
 * state's metadata says?  After the index was loaded (restore_index_thread). */
static int restore_check_mem_size(struct vm_restore *rs, const struct vm_restore_opts *o,
				  char *err, size_t errlen)
{
	struct stat st;
	uint64_t have = snapshot_mem_size(rs->r);
	if (o->memory_file && stat(o->memory_file, &st)) {
		snprintf(err, errlen, "%s: %s", o->memory_file, strerror(errno));
		return -errno;
	}
	if (o->memory_file)
		have = (uint64_t)st.st_size;
	if (o->memory_source)
		have = lvm_source_size(o->memory_source);
	if (rs->meta_mem != have) {
		snprintf(err, errlen, "snapshot state: metadata (%llu bytes of memory) does not match "
			 "the memory file (%llu bytes)", (unsigned long long)rs->meta_mem,
			 (unsigned long long)have);
		return -EBADMSG;
	}
	return 0;
}

/*
 * The mem= line sizes a hugetlb pool and the VM: a crafted one must not grow
 * anything (issue 9).  It must be a size this VMM takes and the one the VM
 * state was saved with (the memory file is checked against it before the
 * guest runs).
 */
static int restore_check_meta_mem(uint64_t mem, const void *blob, size_t len, char *err,
				  size_t errlen)
{
	char why[160];
	if (!vmm_check_mem_size(mem, why, sizeof(why)) && mem == vmm_state_mem_size(blob, len))
		return 0;
	if (mem != vmm_state_mem_size(blob, len))
		snprintf(why, sizeof(why), "the VM state was saved with %llu",
			 (unsigned long long)vmm_state_mem_size(blob, len));
	snprintf(err, errlen, "snapshot state: metadata mem=%llu: %s", (unsigned long long)mem, why);
	return -EBADMSG;
}

/* The VM the snapshot describes, with its state loaded; memory untouched. */
static int restore_create_vm(struct vm_restore *rs, const struct vm_restore_opts *o, char *err,
			     size_t errlen)
{
	uint64_t mem, vcpus;
	char backing[32];
	int ret = meta_u64(rs->r, "mem", &mem, err, errlen);
	if (!ret)
		ret = meta_u64(rs->r, "vcpus", &vcpus, err, errlen);
	if (ret)
		return ret;
	if (!vcpus || vcpus > VMM_MAX_VCPUS) {
		snprintf(err, errlen, "snapshot state: metadata: %llu vCPUs", (unsigned long long)vcpus);
		return -EBADMSG;
	}
	rs->meta_mem = mem;
	rs->backing = o->backing;
	if (!o->backing_set && (snapshot_meta_get(rs->r, "backing", backing, sizeof(backing)) ||
				lvm_backing_parse(backing, &rs->backing))) {
		snprintf(err, errlen, "snapshot state: bad or missing backing");
		return -EBADMSG;
	}
	const void *blob;
	size_t len;
	if (snapshot_section(rs->r, SNAP_SEC_VM_STATE, &blob, &len)) {
		snprintf(err, errlen, "snapshot state: no VM state section");
		return -EBADMSG;
	}
	if ((ret = restore_check_meta_mem(mem, blob, len, err, errlen)))
		return ret;
	if ((ret = restore_choose_mode(rs, o, err, errlen)))
		return ret;
	timeline_mark(rs->tl, "mode_probe");
	if (rs->backing == LVM_BACKING_HUGETLB && (ret = hugetlb_reserve((long)(mem >> 21), &rs->res))) {
		snprintf(err, errlen, "hugetlb: cannot reserve %llu 2 MiB pages: %s",
			 (unsigned long long)(mem >> 21), strerror(-ret));
		return ret == -EBADMSG ? -ENOMEM : ret;
	}
	struct vmm_opts vo = { .mem_size = mem, .vcpus = (unsigned)vcpus, .backing = rs->backing,
			       .serial_fd = o->serial_fd, .timeline = rs->tl,
			       .secret_free = o->secret_free };
	if (o->share && (ret = restore_share_prepare(rs->dir, o, mem, &rs->share, &vo.mem, err,
						     errlen)))
		return ret;
	if (o->share) {	/* shared: a private mapping of the cache, or anon + COPY */
		rs->backing = vo.backing = rs->share.true_sharing ? LVM_BACKING_MEMFD
								  : LVM_BACKING_ANON;
		rs->lazy_mode = rs->share.true_sharing ? LVM_MODE_MINOR : LVM_MODE_MISSING;
		rs->share_sync = o->share_sync;
	}
	ret = vmm_create(&vo, &rs->vm, err, errlen);
	if (ret)
		return ret == -EBADMSG ? -EINVAL : ret;
	rs->vm_created_ns = mono_now_ns();
	ret = vmm_load_state(rs->vm, blob, len, err, errlen);
	timeline_mark(rs->tl, "state_load");
	return ret;
}

static void restore_on_error(void *ctx, const char *msg)
{
	struct vm_restore *rs = ctx;
	char line[300];
	rs->source_failed = true;
	snprintf(line, sizeof(line), "guest memory could not be served: %s", msg);
	vmm_abort(rs->vm, line);
}

static int restore_lazy(struct vm_restore *rs, const struct vm_restore_opts *o, enum lvm_mode m,
			char *err, size_t errlen)
{
	struct lvm_engine_opts eo;
	lvm_engine_opts_init(&eo);
	eo.fault_around = o->fault_around ? o->fault_around : 256u << 10;
	eo.background_fill = !o->no_background;
	/* The fill starts when the guest runs (its first fault), not while the
	 * vCPU threads are still being started: on a busy host it took a CPU
	 * from them for milliseconds (docs/restore-latency.md). */
	eo.fill_delay_ms = RESTORE_FILL_DELAY_MS;
	restore_ws_engine_opts(&rs->ws, o, &eo);
	eo.on_error = restore_on_error;
	eo.on_error_ctx = rs;
	int ret = lvm_engine_create(&eo, &rs->e);
	timeline_mark(rs->tl, "engine_create");
	if (!ret)
		ret = lvm_engine_add_mem(rs->e, vmm_mem(rs->vm), m, rs->src, 0);
	if (ret >= 0)
		ret = restore_ws_queue(&rs->ws, rs->e, rs->src);
	timeline_mark(rs->tl, "engine_register");
	if (ret >= 0)
		ret = lvm_engine_start(rs->e);
	timeline_mark(rs->tl, "engine_start");
	if (ret < 0)
		snprintf(err, errlen, "fault engine (%s, %s): %s", lvm_backing_name(rs->backing),
			 lvm_mode_name(m), strerror(-ret));
	rs->mode = m == LVM_MODE_MINOR ? "minor" : "missing";
	return ret < 0 ? (ret == -EBADMSG ? -EIO : ret) : 0;
}

static int restore_populate(struct lvm_mem *mem, uint64_t lo, uint64_t hi, char *err,
			    size_t errlen)
{
	int ret = backing_populate(mem, lo, hi - lo);
	if (ret)
		snprintf(err, errlen, "populating memory at 0x%llx+0x%llx: %s",
			 (unsigned long long)lo, (unsigned long long)(hi - lo), strerror(-ret));
	return ret;
}

/*
 * One RESTORE_ZERO_STEP piece of memory.  Data is written (a write fault
 * puts the page in writable); a zero piece joins the zero run that starts at
 * *zero_from, and a run is populated writable when data ends it.  Left
 * alone, zero pieces would cost the guest two host faults per page later
 * (the zero page, then its COW: docs/restore-latency.md).
 */
static int restore_eager_piece(struct lvm_mem *mem, uint64_t off, const uint8_t *data,
			       uint64_t *zero_from, char *err, size_t errlen)
{
	if (buf_is_zero(data, RESTORE_ZERO_STEP)) {
		if (*zero_from == UINT64_MAX)
			*zero_from = off;
		return 0;
	}
	int ret = 0;
	if (*zero_from != UINT64_MAX)
		ret = restore_populate(mem, *zero_from, off, err, errlen);
	*zero_from = UINT64_MAX;
	return ret ? ret : lvm_mem_write(mem, off, data, RESTORE_ZERO_STEP);
}

/* Read every chunk (checksummed) into guest memory before the first
 * instruction; every page ends up writable and populated, zero ones too. */
static int restore_eager(struct vm_restore *rs, char *err, size_t errlen)
{
	struct lvm_mem *mem = vmm_mem(rs->vm);
	uint64_t size = lvm_mem_size(mem);
	uint8_t *buf = malloc(RESTORE_FILL_STEP);
	if (!buf)
		return -ENOMEM;
	struct progress p;
	progress_init(&p, "restore", size);
	int ret = 0;
	uint64_t zero_from = UINT64_MAX;	/* start of the zero run being collected */
	for (uint64_t off = 0; off < size && !ret; off += RESTORE_FILL_STEP) {
		size_t len = size - off < RESTORE_FILL_STEP ? size - off : RESTORE_FILL_STEP;
		ret = lvm_source_read(rs->src, off, buf, len);
		if (ret) {
			uint32_t cs = snapshot_chunk_size(rs->r);	/* 0: a flat image */
			snprintf(err, errlen, "memory at 0x%llx (chunk %llu): %s",
				 (unsigned long long)off, (unsigned long long)(cs ? off / cs : 0),
				 ret == -EBADMSG ? "checksum mismatch" : strerror(-ret));
			break;
		}
		for (size_t i = 0; i < len && !ret; i += RESTORE_ZERO_STEP)
			ret = restore_eager_piece(mem, off + i, buf + i, &zero_from, err, errlen);
		progress_update(&p, off + len);
	}
	if (!ret && zero_from < size)
		ret = restore_populate(mem, zero_from, size, err, errlen);
	progress_done(&p);
	free(buf);
	rs->mode = "eager";
	return ret;
}

static void restore_on_server_lost(void *ctx, const char *msg)
{
	struct vm_restore *rs = ctx;
	vmm_abort(rs->vm, msg);
}

/* Fill the memory eagerly or serve it lazily (restore_choose_mode said which),
 * or let the page server on --uffd-socket serve it. */
static int restore_memory(struct vm_restore *rs, const struct vm_restore_opts *o, char *err,
			  size_t errlen)
{
	if (o->uffd_socket && o->secret_free) {
		rs->mode = "uffd-socket-secret-free";
		vmm_set_userfault_handler(rs->vm, restore_userfault, rs);
		int ret = fc_sf_client_connect(o->uffd_socket, vmm_mem(rs->vm),
					       vmm_userfault_bitmap_fd(rs->vm),
					       restore_on_server_lost, rs, &rs->sf, err, errlen);
		return ret == -ENOENT ? -ECONNREFUSED : ret;
	}
	if (o->uffd_socket) {
		rs->mode = "uffd-socket";
		int ret = fc_client_connect(o->uffd_socket, vmm_mem(rs->vm), restore_on_server_lost,
					    rs, &rs->fc, err, errlen);
		/* err names the cause; the snapshot itself is fine (not exit 2). */
		return ret == -ENOENT ? -ECONNREFUSED : ret;
	}
	int ret = 0;
	if (!rs->src)	/* else o->memory_source, taken at open */
		ret = o->memory_file ? lvm_source_file_open(o->memory_file, 0, &rs->src)
				     : snapshot_memory_source(rs->r, &rs->src);
	if (!ret && o->wrap_source) {
		struct lvm_source *inner = rs->src;
		rs->src = NULL;
		ret = o->wrap_source(o->wrap_ctx, inner, &rs->src);
	}
	if (!ret && rs->share.cache)
		ret = restore_share_wrap(&rs->share, &rs->src);
	if (ret) {
		snprintf(err, errlen, "snapshot memory source: %s", strerror(-ret));
		return ret == -EBADMSG ? -EIO : ret;
	}
	timeline_mark(rs->tl, "memory_source");
	if (rs->eager) {
		ret = restore_eager(rs, err, errlen);
		timeline_mark(rs->tl, "memory_filled");
		return ret;
	}
	return restore_lazy(rs, o, rs->lazy_mode, err, errlen);
}

/* DIR/memory's index, on its own thread while the VM is created. */
struct restore_index_job {
	struct snap_reader *r;
	const char *dir;
	int ret;
	char err[512];
};

static void *restore_index_thread(void *arg)
{
	struct restore_index_job *j = arg;
	j->ret = snapshot_open_memory(j->r, j->dir, j->err, sizeof(j->err));
	return NULL;
}

/*
 * The snapshot's memory index (a CRC over 32 bytes per 64 KiB chunk: 0.4 ms
 * at 1 GiB, more at 4 GiB) is loaded while the VM is created, which mostly
 * waits for the kernel's SRCU grace periods (docs/restore-latency.md).
 * Neither needs the other; both are done before any vCPU runs, and a bad
 * index still fails the restore (its error first) before the guest starts.
 */
static int restore_open_overlapped(struct vm_restore *rs, const char *dir,
				   const struct vm_restore_opts *o, char *err, size_t errlen)
{
	int ret = snapshot_open_state(dir, &rs->r, err, errlen);
	timeline_mark(rs->tl, "snapshot_state");
	if (ret)
		return ret;
	uint8_t id[16];
	snapshot_id(rs->r, id);
	if (o->memory_source && memcmp(id, o->memory_source_id, sizeof(id))) {
		snprintf(err, errlen, "snapshot state and memory manifest are of different snapshots");
		return -EBADMSG;
	}
	struct restore_index_job job = { .r = rs->r, .dir = dir };
	pthread_t t;
	bool own_index = !o->memory_file && !o->memory_source;
	bool threaded = own_index && !pthread_create(&t, NULL, restore_index_thread, &job);
	if (own_index && !threaded)
		restore_index_thread(&job);
	ret = restore_create_vm(rs, o, err, errlen);
	if (threaded)
		pthread_join(t, NULL);
	timeline_mark(rs->tl, "snapshot_index");
	if (job.ret) {
		snprintf(err, errlen, "%s", job.err);
		return job.ret;
	}
	/* A size mismatch explains a failed VM creation better than its error. */
	int size_ret = rs->meta_mem ? restore_check_mem_size(rs, o, err, errlen) : 0;
	return size_ret ? size_ret : ret;
}

int vm_restore_open(const char *dir, const struct vm_restore_opts *o, struct vm_restore **out,
		    char *err, size_t errlen)
{
	struct vm_restore *rs = calloc(1, sizeof(*rs));
	if (!rs) {
		lvm_source_destroy(o->memory_source);
		return -ENOMEM;
	}
	rs->res = (struct hugetlb_reservation)HUGETLB_RESERVATION_INIT;
	rs->mode = "";
	rs->tl = o->timeline;
	rs->dir = dir;
	rs->src = o->memory_source;
	int ret = restore_open_overlapped(rs, dir, o, err, errlen);
	if (!ret)
		ret = restore_ws_open(&rs->ws, dir, rs->meta_mem, o, !rs->eager, err, errlen);
	if (!ret)
		ret = restore_memory(rs, o, err, errlen);
	if (ret) {
		vm_restore_close(rs);
		return ret;
	}
	*out = rs;
	return 0;
}

int vm_restore_start(struct vm_restore *rs, char *err, size_t errlen)
{
	int ret = vmm_start(rs->vm);
	rs->started = true;
	timeline_mark(rs->tl, "vcpu_threads_start");
	if (ret && ret != -EIO) {	/* -EIO: already stopped; vmm_wait says why */
		snprintf(err, errlen, "starting vCPUs: %s", strerror(-ret));
		return ret;
	}
	return 0;
}

int vm_restore_run(struct vm_restore *rs, char *err, size_t errlen)
{
	int ret = rs->started ? 0 : vm_restore_start(rs, err, errlen);
	if (ret)
		return ret;
	ret = vmm_wait(rs->vm, err, errlen);
	if (!ret)
		rs->guest_done_ns = mono_now_ns();
	if (rs->e)
		lvm_engine_stop(rs->e);
	if (!ret)	/* only a run that completed: a partial set would mislead */
		ret = restore_ws_save(&rs->ws, err, errlen);
	/* The engine poisons a page before it reports it, so a vCPU may stop
	 * first (SIGBUS, or a fault on an unreadable page table): the engine's
	 * error, complete once it stopped, is the cause worth printing. */
	if (ret && rs->e && *lvm_engine_error(rs->e)) {
		snprintf(err, errlen, "guest memory could not be served: %s", lvm_engine_error(rs->e));
		return -EBADMSG;
	}
	return ret && rs->source_failed ? -EBADMSG : ret;
}

void vm_restore_stats(struct vm_restore *rs, struct lvm_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->struct_size = sizeof(*out);
	if (rs->e)
		lvm_engine_stats(rs->e, out);
}

void vm_restore_ws_stats(struct vm_restore *rs, struct vm_restore_ws_stats *out)
{
	out->prefetch = vm_prefetch_name(rs->ws.mode);
	out->recorded = rs->ws.recording;
	out->ws_pages = rs->ws.recording ? rs->ws.ws.pages : rs->ws.file_pages;
	out->ws_misses = atomic_load(&rs->ws.misses);
	out->guest_done_ns = rs->guest_done_ns;
}

int vm_restore_share_usage(struct vm_restore *rs, struct share_usage *out)
{
	return restore_share_usage(&rs->share, rs->share_sync, lvm_mem_addr(vmm_mem(rs->vm)), out);
}

void vm_restore_close(struct vm_restore *rs)
{
	if (!rs)
		return;
	/* The vCPUs first: none may be left waiting on a fault nobody serves. */
	struct vmm *vm = rs->vm;
	if (vm) {
		vmm_abort(vm, "restore closed");
		fc_sf_client_cancel(rs->sf);	/* a vCPU waiting for a FaultReply */
		vmm_wait(vm, NULL, 0);
	}
	lvm_engine_destroy(rs->e);
	fc_client_close(rs->fc);	/* the page server then finishes this VM */
	fc_sf_client_close(rs->sf);
	vmm_destroy(vm);
	lvm_source_destroy(rs->src);
	snapshot_close(rs->r);
	restore_ws_close(&rs->ws);
	restore_share_close(&rs->share);	/* after the VM: nothing maps it now */
	hugetlb_release(&rs->res);
	free(rs);
}

struct lvm_engine *vm_restore_engine(struct vm_restore *rs)
{
	return rs->e;
}

struct lvm_source *vm_restore_source(struct vm_restore *rs)
{
	return rs->src;
}

int vm_restore_info(struct vm_restore *rs, struct vm_snapshot_info *info, char *guest,
		    size_t guestlen)
{
	char err[128];
	int ret = snapshot_meta_get(rs->r, "guest", guest, guestlen);
	if (!ret)
		ret = meta_u64(rs->r, "seed", &info->seed, err, sizeof(err));
	if (!ret)
		ret = meta_u64(rs->r, "iterations", &info->iterations, err, sizeof(err));
	info->guest = guest;
	return ret;
}
