/* SPDX-License-Identifier: MIT */
/*
 * A running VM (src/vmm/) into a snapshot directory (snapshot.h) and back:
 * stop-and-copy snapshots, live point-in-time snapshots (uffd-WP), and
 * restores that serve guest memory lazily through the fault engine or fill
 * it eagerly first.
 */
#ifndef LAZYVM_VM_SNAPSHOT_H
#define LAZYVM_VM_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lazyvm.h"
#include "core/hugetlb.h"

struct vmm;
struct timeline;

/* Guest metadata recorded in the snapshot's META section. */
struct vm_snapshot_info {
	const char *guest;
	uint64_t seed, iterations;
};

/* Pause the VM (it stays paused) and write state + all memory to dir. */
int vm_snapshot_take(struct vmm *vm, const char *dir, const struct vm_snapshot_info *info,
		     char *err, size_t errlen);
/*
 * Point-in-time snapshot while the guest runs: pause, save the state,
 * write-protect all memory, resume; each chunk is written before the guest's
 * first write to it lands (or by the copy loop, whichever comes first).
 * Returns with the guest running.
 */
int vm_snapshot_live(struct vmm *vm, const char *dir, const struct vm_snapshot_info *info,
		     char *err, size_t errlen);

/* The state file of a snapshot of vm (paused) without its memory: what a
 * chunk-store snapshot keeps as NAME/state.  *state malloc'd. */
int vm_snapshot_state(struct vmm *vm, const struct vm_snapshot_info *info, uint8_t **state,
		      size_t *len, char *err, size_t errlen);

/* ---- restore ---- */

/* --prefetch: what a lazy restore loads ahead of the vCPUs (docs/prefetch.md). */
enum vm_prefetch {
	VM_PREFETCH_DEFAULT,	/* ws when DIR has a working set, else all */
	VM_PREFETCH_WS,		/* the working set in recorded order, then the rest */
	VM_PREFETCH_ALL,	/* everything, in address order (background fill) */
	VM_PREFETCH_NONE,	/* nothing: demand faults only */
};
const char *vm_prefetch_name(enum vm_prefetch p);
int vm_prefetch_parse(const char *s, enum vm_prefetch *out);

struct vm_restore_opts {
	bool eager;			/* fill all memory, then run */
	bool backing_set;		/* else the snapshot's backing */
	enum lvm_backing backing;
	bool mode_set;			/* else MISSING */
	enum lvm_mode mode;
	int serial_fd;
	bool no_background;		/* lazy: no background fill */
	size_t fault_around;		/* lazy: 0 = 256 KiB */
	enum vm_prefetch prefetch;
	/* Record DIR/working-set: the pages the guest touches, in order (one
	 * fault per page, nothing prefetched, no background fill). */
	bool record_ws;
	/* Memory served by the page server on this socket, Firecracker's way
	 * (src/fc/client.c); anon (default) or hugetlb backing only. */
	const char *uffd_socket;
	/* With uffd_socket and gmem: Firecracker's secret-free protocol (a
	 * KVM_MEM_USERFAULT guest_memfd memslot, FaultRequests; fc/sf-client.c). */
	bool secret_free;
	/* Guest memory from this flat image (Firecracker style) instead of
	 * DIR/memory; DIR then needs only its state file. */
	const char *memory_file;
	/* Guest memory from this source (taken, also on failure) instead of
	 * DIR/memory, e.g. a manifest in a chunk store (src/store/); its
	 * memory_source_id (16 bytes) must be the state's snapshot id. */
	struct lvm_source *memory_source;
	const uint8_t *memory_source_id;
	/* Tests: replace the memory source (takes ownership of src). */
	int (*wrap_source)(void *ctx, struct lvm_source *src, struct lvm_source **out);
	void *wrap_ctx;
	/* Optional: where the restore marks its steps (timeline.h); must
	 * outlive the restore. */
	struct timeline *timeline;
	/* --share: memory from the per-host shared page cache (restore-share.c);
	 * linger: seconds it outlives its last user; dir: NULL = /dev/shm;
	 * sync: sample memory use when this many VMs of the cache ended. */
	bool share;
	unsigned share_linger_s;
	const char *share_dir;
	unsigned share_sync;
};

struct vm_restore;
struct share_usage;

/*
 * Open dir, create the VM it describes, load its state, and make memory
 * ready (engine started, or filled).  No guest instruction runs yet.
 * -ENOENT/-EBADMSG/-EPROTO/-ENODATA: the snapshot is missing or bad.
 */
int vm_restore_open(const char *dir, const struct vm_restore_opts *o, struct vm_restore **out,
		    char *err, size_t errlen);
struct vmm *vm_restore_vmm(struct vm_restore *rs);
enum lvm_backing vm_restore_backing(const struct vm_restore *rs);
/* "missing", "minor" or "eager" (also when gmem had to fall back). */
const char *vm_restore_mode(const struct vm_restore *rs);
/* Start the vCPUs only (then vm_restore_run waits for the end), for a
 * caller that acts on the running VM first (a snapshot of it). */
int vm_restore_start(struct vm_restore *rs, char *err, size_t errlen);
/* Run to the end.  -EIO: the VM stopped (err says why); -EBADMSG when a page
 * could not be served from the snapshot. */
int vm_restore_run(struct vm_restore *rs, char *err, size_t errlen);
/* When the KVM VM and its vCPUs were created (CLOCK_MONOTONIC ns): what
 * precedes it is snapshot opening, what follows memory setup. */
uint64_t vm_restore_vm_created_ns(const struct vm_restore *rs);
/* Engine counters (zero for eager). */
void vm_restore_stats(struct vm_restore *rs, struct lvm_stats *out);
/* The working set: what was prefetched (mode), its pages when opened (or
 * recorded), pages demand-faulted outside what prefetch had brought. */
struct vm_restore_ws_stats {
	const char *prefetch;	/* "ws", "all", "none" */
	bool recorded;
	uint64_t ws_pages, ws_misses;
	uint64_t guest_done_ns;	/* the guest's end (CLOCK_MONOTONIC); 0 if it did not */
};
void vm_restore_ws_stats(struct vm_restore *rs, struct vm_restore_ws_stats *out);
/* Memory use of the guest (smaps), sampled now (--share-sync: with its peers). */
int vm_restore_share_usage(struct vm_restore *rs, struct share_usage *out);
void vm_restore_close(struct vm_restore *rs);
/* For a snapshot of the restored VM: its engine and memory source (NULL
 * when eager or served over --uffd-socket), and the guest metadata of the
 * snapshot it came from (guest names up to guestlen bytes). */
struct lvm_engine *vm_restore_engine(struct vm_restore *rs);
struct lvm_source *vm_restore_source(struct vm_restore *rs);
int vm_restore_info(struct vm_restore *rs, struct vm_snapshot_info *info, char *guest,
		    size_t guestlen);

#endif
