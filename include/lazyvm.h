/* SPDX-License-Identifier: MIT */
/*
 * lazyvm — serve virtual-machine guest memory on demand with userfaultfd.
 *
 * This header is the whole public contract of liblazyvm.  Every handle is
 * opaque; every function that can fail returns 0 (or a count) on success and
 * a negative errno value on failure.  Nothing here prints: callers decide how
 * to report an error (the CLI prints once, at its boundary, with context).
 *
 * The pieces:
 *   lvm_probe      which backing x uffd mode works on the running kernel
 *   lvm_mem        guest memory on one backing (anon, memfd, hugetlb, guest_memfd)
 *   lvm_source     where page contents come from (file, zero, custom, remote)
 *   lvm_engine     the fault engine: serves registered memory from sources
 */
#ifndef LAZYVM_H
#define LAZYVM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LAZYVM_VERSION_MAJOR 0
#define LAZYVM_VERSION_MINOR 2
#define LAZYVM_VERSION_PATCH 0
#define LAZYVM_VERSION "0.2.0"
/* One number that orders releases: (major << 16) | (minor << 8) | patch. */
#define LAZYVM_VERSION_NUMBER \
	((LAZYVM_VERSION_MAJOR << 16) | (LAZYVM_VERSION_MINOR << 8) | LAZYVM_VERSION_PATCH)

/* Marks the API; the library is built -fvisibility=hidden and lazyvm.map is
 * the export list. */
#if defined(__GNUC__)
#define LVM_EXPORT __attribute__((visibility("default")))
#else
#define LVM_EXPORT
#endif

/* The library's version at run time (LAZYVM_VERSION_NUMBER of the build that
 * produced the .so, which may be newer than the header a program was built
 * against); version_str, when non-NULL, gets "0.2.0". */
LVM_EXPORT unsigned lvm_version(const char **version_str);

enum lvm_backing {
	LVM_BACKING_ANON,	/* MAP_PRIVATE|MAP_ANONYMOUS */
	LVM_BACKING_MEMFD,	/* memfd_create (shmem), MAP_SHARED */
	LVM_BACKING_HUGETLB,	/* memfd_create(MFD_HUGETLB), 2 MiB pages */
	LVM_BACKING_GMEM,	/* KVM guest_memfd, MMAP|INIT_SHARED */
	LVM_BACKING__COUNT
};

enum lvm_mode {
	LVM_MODE_MISSING,	/* fault on pages never populated; fill with COPY */
	LVM_MODE_MINOR,		/* fault on page-cache pages not mapped; CONTINUE */
	LVM_MODE_WP,		/* fault on writes to write-protected pages */
	LVM_MODE__COUNT
};

LVM_EXPORT const char *lvm_backing_name(enum lvm_backing b);
LVM_EXPORT int lvm_backing_parse(const char *name, enum lvm_backing *out);
LVM_EXPORT const char *lvm_mode_name(enum lvm_mode m);

/* ---- probe ------------------------------------------------------------ */

struct lvm_probe {
	int err;		/* 0: supported; else -errno the kernel returned */
	char reason[160];	/* "yes" or what failed, e.g. "UFFDIO_REGISTER: EINVAL" */
};

/* Really try: create the backing, register it with uffd in that mode. */
LVM_EXPORT int lvm_probe(enum lvm_backing b, enum lvm_mode m, struct lvm_probe *out);

/* ---- guest memory ------------------------------------------------------ */

struct lvm_mem;

struct lvm_mem_opts {
	enum lvm_backing backing;
	size_t size;		/* multiple of the backing's page size */
	int kvm_vm_fd;		/* gmem: the VM that owns the guest_memfd; else ignored */
};

LVM_EXPORT int lvm_mem_create(const struct lvm_mem_opts *opts, struct lvm_mem **out);
LVM_EXPORT void lvm_mem_destroy(struct lvm_mem *mem);
LVM_EXPORT void *lvm_mem_addr(const struct lvm_mem *mem);
LVM_EXPORT size_t lvm_mem_size(const struct lvm_mem *mem);
LVM_EXPORT size_t lvm_mem_page_size(const struct lvm_mem *mem);
LVM_EXPORT enum lvm_backing lvm_mem_backing(const struct lvm_mem *mem);
/* The file behind the memory (memfd, hugetlb memfd, guest_memfd); -1 for anon. */
LVM_EXPORT int lvm_mem_fd(const struct lvm_mem *mem);
/* Fill [off, off+len) with data without userfaultfd (eager restore, fallback). */
LVM_EXPORT int lvm_mem_write(struct lvm_mem *mem, uint64_t off, const void *data, size_t len);

/* ---- sources ---------------------------------------------------------- */

struct lvm_source;

/* Return values of lvm_source_ops.get besides 0 and -errno. */
#define LVM_SOURCE_ZERO    1	/* the range is known to be all zero */
#define LVM_SOURCE_PENDING 2	/* delivered later through lvm_engine_supply() */

struct lvm_source_ops {
	/*
	 * Provide len bytes at offset off.  On 0, *data points at them: either
	 * the source's own memory (e.g. an mmap of the file, zero-copy) or
	 * scratch (len bytes, caller's).  Called from several threads at once.
	 */
	int (*get)(void *ctx, uint64_t off, size_t len, void *scratch,
		   const void **data);
	/* Optional: a fault is about to be served at off (prefetch hint). */
	void (*hint)(void *ctx, uint64_t off, size_t len);
	void (*destroy)(void *ctx);
};

LVM_EXPORT int lvm_source_create(const struct lvm_source_ops *ops, void *ctx,
		      uint64_t size, struct lvm_source **out);
/* A flat file: byte off of the source is byte (offset + off) of path. */
LVM_EXPORT int lvm_source_file_open(const char *path, uint64_t offset,
			 struct lvm_source **out);
/* Every page zero (fresh VMs, tests). */
LVM_EXPORT int lvm_source_zero(uint64_t size, struct lvm_source **out);
LVM_EXPORT void lvm_source_destroy(struct lvm_source *src);
LVM_EXPORT uint64_t lvm_source_size(const struct lvm_source *src);
/* Copy [off, off+len) into buf, whatever get() returns (eager paths). */
LVM_EXPORT int lvm_source_read(struct lvm_source *src, uint64_t off, void *buf, size_t len);

/* ---- fault engine ------------------------------------------------------ */

struct lvm_engine;

struct lvm_engine_opts {
	unsigned threads;	/* handler threads; 0 = one per online CPU */
	size_t fault_around;	/* serve this aligned chunk per fault; 0 = one page */
	bool background_fill;	/* stream missing pages in the background */
	size_t fill_chunk;	/* background COPY size; 0 = 512 KiB */
	/* Background fill: first wait for a demand fault (the guest runs), at
	 * most this long; 0 = start with the engine.  Keeps the fill off the
	 * CPUs while a restore is still getting its vCPUs to run. */
	unsigned fill_delay_ms;
	unsigned spin_us;	/* poll the uffd this long before sleeping */
	int uffd;		/* adopt this uffd (Firecracker); -1 = open one */
	/* Called once per error (source failure, poisoned page), from an engine
	 * thread, with a one-line message: a VMM stops the VM here. */
	void (*on_error)(void *ctx, const char *msg);
	void *on_error_ctx;
	/* Optional: called from a handler thread, after the install, for each
	 * fault on a page nothing had brought yet, with the source and the
	 * offset of the faulting page (not of the fault-around block): the
	 * pages a guest needed, in the order it touched them (working sets). */
	void (*on_demand)(void *ctx, struct lvm_source *src, uint64_t off);
	void *on_demand_ctx;
};

/* Defaults: threads 0, fault_around 0, background_fill false, uffd -1. */
LVM_EXPORT void lvm_engine_opts_init(struct lvm_engine_opts *opts);
LVM_EXPORT int lvm_engine_create(const struct lvm_engine_opts *opts, struct lvm_engine **out);

/*
 * Serve mem lazily in mode m from src, source byte src_off onward.  MISSING
 * and MINOR are served modes; the memory must be untouched.  Returns the
 * region index (>= 0).
 */
LVM_EXPORT int lvm_engine_add_mem(struct lvm_engine *e, struct lvm_mem *mem, enum lvm_mode m,
		       struct lvm_source *src, uint64_t src_off);
/*
 * A range of another process's memory, already registered MISSING on the
 * adopted uffd (Firecracker's protocol).  Filled with UFFDIO_COPY only.
 */
LVM_EXPORT int lvm_engine_add_remote(struct lvm_engine *e, uint64_t base, size_t size,
			  size_t page_size, struct lvm_source *src, uint64_t src_off);

/* Before start: [off, off+len) of src is already in the memory (pre-copied,
 * pre-filled); never fetch it.  0 or -errno. */
LVM_EXPORT int lvm_engine_mark_present(struct lvm_engine *e, struct lvm_source *src, uint64_t off,
			    size_t len);
LVM_EXPORT int lvm_engine_start(struct lvm_engine *e);
/*
 * Before start: load [off, off+len) of src ahead of everything else, at once
 * and in the order of the calls (a working set, in the order the guest
 * touched it), then the background fill if on.  Demand faults still go
 * first.  Works with background_fill off: then only these ranges are loaded.
 * Adjacent calls merge into one run.  0, -EBUSY after start, -EINVAL.
 */
LVM_EXPORT int lvm_engine_prefetch(struct lvm_engine *e, struct lvm_source *src, uint64_t off,
				   size_t len);
/* Deliver data for a range whose get() returned LVM_SOURCE_PENDING. */
LVM_EXPORT int lvm_engine_supply(struct lvm_engine *e, struct lvm_source *src, uint64_t off,
		      const void *data, size_t len);
/* Mark a source range failed: faulting threads get SIGBUS, never zeros. */
LVM_EXPORT int lvm_engine_fail(struct lvm_engine *e, struct lvm_source *src, uint64_t off,
		    size_t len, int err);
/* Wait until every page is present (background fill done), or timeout_ms
 * passes (-1: no limit).  0, -ETIMEDOUT, or the first fill error. */
LVM_EXPORT int lvm_engine_wait_filled(struct lvm_engine *e, int timeout_ms);
/* Is the source page at (src, off) already installed?  (migration resume) */
LVM_EXPORT bool lvm_engine_is_present(struct lvm_engine *e, struct lvm_source *src, uint64_t off);
/* Stop threads; memory stays mapped and registered until destroy. */
LVM_EXPORT int lvm_engine_stop(struct lvm_engine *e);
LVM_EXPORT void lvm_engine_destroy(struct lvm_engine *e);
LVM_EXPORT int lvm_engine_uffd(const struct lvm_engine *e);

struct lvm_latency {
	uint64_t p50_ns, p90_ns, p99_ns, max_ns;
	uint64_t count;
};

struct lvm_stats {
	uint64_t faults;		/* fault messages read */
	uint64_t faults_dup;		/* faults on a page already being served */
	uint64_t pages_demand;		/* pages installed because of a fault */
	uint64_t pages_background;	/* pages installed by the background fill */
	uint64_t pages_zero;		/* pages served as zero (source zero / removed) */
	uint64_t pages_failed;		/* pages poisoned after a source error */
	uint64_t remove_events;		/* UFFD_EVENT_REMOVE seen */
	uint64_t unmap_events, remap_events;
	uint64_t eagain_retries;	/* COPY/CONTINUE retried after EAGAIN */
	uint64_t pages_total, pages_present;
	uint64_t pages_prefetch;	/* pages installed from the lvm_engine_prefetch list */
	struct lvm_latency fault_latency; /* read of the fault -> page installed */
};

/* Counters are updated as pages land; exact once lvm_engine_stop() returned. */
LVM_EXPORT int lvm_engine_stats(struct lvm_engine *e, struct lvm_stats *out);
/* The first error the engine hit, with context; "" when none. */
LVM_EXPORT const char *lvm_engine_error(const struct lvm_engine *e);

#ifdef __cplusplus
}
#endif
#endif /* LAZYVM_H */
