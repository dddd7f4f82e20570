/* SPDX-License-Identifier: MIT */
/*
 * lazyvm — serve virtual-machine guest memory on demand with userfaultfd.
 *
 * This header is the whole public contract of liblazyvm.  Every handle is
 * opaque; every function that can fail returns 0 (or a count) on success and
 * a negative errno value on failure.  Nothing here prints: callers decide how
 * to report an error (the CLI prints once, at its boundary, with context).
 *
 * Growing the ABI.  Every struct the caller allocates and passes in or out
 * (lvm_probe, lvm_mem_opts, lvm_source_ops, lvm_engine_opts, lvm_stats)
 * starts with `size_t struct_size`, which the caller sets to sizeof the
 * struct it has (the _init functions do it; else `.struct_size = sizeof(x)`).
 * The library reads only the bytes struct_size covers (members beyond it
 * take their defaults) and writes no byte past it, so a member added in a
 * later release breaks neither old programs on a new library nor new
 * programs on an old one (members an old library does not know must then be
 * zero, else -E2BIG).  struct_size smaller than the first release's struct:
 * -EINVAL.
 *
 * Ownership.  A handle belongs to whoever created it and is freed by its
 * _destroy.  An engine borrows the lvm_mem and lvm_source objects added to
 * it: they must outlive the engine (destroy the engine first).  Pointers
 * the library returns point into the handle and live as long as it does.
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
	size_t struct_size;	/* caller: sizeof(struct lvm_probe) */
	int err;		/* 0: supported; else -errno the kernel returned */
	char reason[160];	/* "yes" or what failed, e.g. "UFFDIO_REGISTER: EINVAL" */
};

/* Really try: create the backing, register it with uffd in that mode.
 * Returns 0 with the verdict in *out (out->err 0: works), or -EINVAL for a
 * bad backing, mode or out->struct_size. */
LVM_EXPORT int lvm_probe(enum lvm_backing b, enum lvm_mode m, struct lvm_probe *out);

/* ---- guest memory ------------------------------------------------------ */

struct lvm_mem;

struct lvm_mem_opts {
	size_t struct_size;	/* caller: sizeof(struct lvm_mem_opts) */
	enum lvm_backing backing;
	size_t size;		/* multiple of the backing's page size */
	int kvm_vm_fd;		/* gmem: the VM that owns the guest_memfd; else ignored */
};

/* Create and map the memory.  0, -EINVAL (bad opts), -ENOMEM (e.g. the
 * hugetlb pool is short), or the -errno of memfd_create/ioctl/mmap. */
LVM_EXPORT int lvm_mem_create(const struct lvm_mem_opts *opts, struct lvm_mem **out);
/* Unmap the memory and close its file (and the VM the library created for a
 * gmem without kvm_vm_fd).  NULL is a no-op. */
LVM_EXPORT void lvm_mem_destroy(struct lvm_mem *mem);
LVM_EXPORT void *lvm_mem_addr(const struct lvm_mem *mem);
LVM_EXPORT size_t lvm_mem_size(const struct lvm_mem *mem);
LVM_EXPORT size_t lvm_mem_page_size(const struct lvm_mem *mem);
LVM_EXPORT enum lvm_backing lvm_mem_backing(const struct lvm_mem *mem);
/* The file behind the memory (memfd, hugetlb memfd, guest_memfd); -1 for anon. */
LVM_EXPORT int lvm_mem_fd(const struct lvm_mem *mem);
/* Fill [off, off+len) with data without userfaultfd (eager restore,
 * fallback).  0 or -ERANGE. */
LVM_EXPORT int lvm_mem_write(struct lvm_mem *mem, uint64_t off, const void *data, size_t len);

/* ---- sources ---------------------------------------------------------- */

struct lvm_source;

/* Return values of lvm_source_ops.get besides 0 and -errno. */
#define LVM_SOURCE_ZERO    1	/* the range is known to be all zero */
#define LVM_SOURCE_PENDING 2	/* delivered later through lvm_engine_supply() */

struct lvm_source_ops {
	size_t struct_size;	/* caller: sizeof(struct lvm_source_ops) */
	/*
	 * Provide len bytes at offset off.  On 0, *data points at them: either
	 * the source's own memory (e.g. an mmap of the file, zero-copy) or
	 * scratch (len bytes, caller's).  Also LVM_SOURCE_ZERO, LVM_SOURCE_PENDING
	 * or -errno (the engine poisons the range: SIGBUS, never zeros).  Called
	 * from several threads at once.
	 */
	int (*get)(void *ctx, uint64_t off, size_t len, void *scratch,
		   const void **data);
	/* Optional: a fault is about to be served at off (prefetch hint). */
	void (*hint)(void *ctx, uint64_t off, size_t len);
	/* Optional: called once by lvm_source_destroy(). */
	void (*destroy)(void *ctx);
};

/* A source of size bytes over the caller's ops (copied) and ctx (borrowed
 * until destroy).  0, -EINVAL (no get, bad struct_size), -ENOMEM. */
LVM_EXPORT int lvm_source_create(const struct lvm_source_ops *ops, void *ctx,
		      uint64_t size, struct lvm_source **out);
/* A flat file: byte off of the source is byte (offset + off) of path.
 * 0, -ERANGE (offset past the end), -EINVAL (not a regular file), -ENOMEM,
 * or the -errno of open/fstat/mmap. */
LVM_EXPORT int lvm_source_file_open(const char *path, uint64_t offset,
			 struct lvm_source **out);
/* Every page zero (fresh VMs, tests).  0 or -ENOMEM. */
LVM_EXPORT int lvm_source_zero(uint64_t size, struct lvm_source **out);
/* Calls ops.destroy(ctx) and frees the handle.  NULL is a no-op. */
LVM_EXPORT void lvm_source_destroy(struct lvm_source *src);
LVM_EXPORT uint64_t lvm_source_size(const struct lvm_source *src);
/* Copy [off, off+len) into buf, whatever get() returns (eager paths).
 * 0, -ERANGE (outside the source), -EAGAIN (get() said PENDING), or get()'s
 * -errno. */
LVM_EXPORT int lvm_source_read(struct lvm_source *src, uint64_t off, void *buf, size_t len);

/* ---- fault engine ------------------------------------------------------ */

struct lvm_engine;

struct lvm_engine_opts {
	size_t struct_size;	/* set by lvm_engine_opts_init() */
	unsigned threads;	/* handler threads; 0 = one per online CPU */
	size_t fault_around;	/* serve this aligned chunk per fault; 0 = one page */
	bool background_fill;	/* stream missing pages in the background */
	size_t fill_chunk;	/* background COPY size; 0 = 512 KiB */
	/* Background fill: first wait for a demand fault (the guest runs), at
	 * most this long; 0 = start with the engine.  Keeps the fill off the
	 * CPUs while a restore is still getting its vCPUs to run. */
	unsigned fill_delay_ms;
	unsigned spin_us;	/* poll the uffd this long before sleeping */
	/* Adopt this uffd (Firecracker's handshake); -1 = open one.  On success
	 * the engine owns it and lvm_engine_destroy() closes it; when create
	 * fails the caller still owns it. */
	int uffd;
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

/* struct_size = sizeof(*opts); defaults: threads 0, fault_around 0,
 * background_fill false, uffd -1, everything else 0. */
LVM_EXPORT void lvm_engine_opts_init(struct lvm_engine_opts *opts);
/* opts NULL: the defaults.  0, -EINVAL/-E2BIG (struct_size), -ENOMEM,
 * -EBADF/-EINVAL (opts->uffd is not an open userfaultfd), or the -errno of
 * userfaultfd(2)/UFFDIO_API (e.g. -EPERM without vm.unprivileged_userfaultfd). */
LVM_EXPORT int lvm_engine_create(const struct lvm_engine_opts *opts, struct lvm_engine **out);

/*
 * Serve mem lazily in mode m from src, source byte src_off onward.  MISSING
 * and MINOR are served modes; the memory must be untouched.  Before start
 * only.  Returns the region index (>= 0), or -EBUSY (started), -ENOSPC (64
 * regions already: the cap), -EINVAL (bad mode, not page aligned, or an
 * adopted uffd: add_remote is for that), -ERANGE (the region runs past the
 * end of src), -EEXIST (overlaps a region), -ENOMEM, or the -errno of
 * UFFDIO_REGISTER / the MINOR alias mmap.  mem and src are borrowed.
 */
LVM_EXPORT int lvm_engine_add_mem(struct lvm_engine *e, struct lvm_mem *mem, enum lvm_mode m,
		       struct lvm_source *src, uint64_t src_off);
/*
 * A range of another process's memory, already registered MISSING on the
 * adopted uffd (Firecracker's protocol).  Filled with UFFDIO_COPY only.
 * Same returns as add_mem; -EINVAL also when the engine opened its own uffd.
 */
LVM_EXPORT int lvm_engine_add_remote(struct lvm_engine *e, uint64_t base, size_t size,
			  size_t page_size, struct lvm_source *src, uint64_t src_off);

/* Before start: [off, off+len) of src is already in the memory (pre-copied,
 * pre-filled); never fetch it.  0, -EBUSY (started) or -EINVAL (not page
 * aligned, or no region serves that range of src). */
LVM_EXPORT int lvm_engine_mark_present(struct lvm_engine *e, struct lvm_source *src, uint64_t off,
			    size_t len);
/* Start the handler threads (and the background fill).  0, -EBUSY (already
 * started), -EINVAL (no region), -ENOMEM, or pthread_create's -errno. */
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
/* Deliver data for a range whose get() returned LVM_SOURCE_PENDING (pages
 * already present are skipped).  0, -EINVAL (not started, not page aligned,
 * or not a served range of src), or the install's -errno (the pages are then
 * poisoned). */
LVM_EXPORT int lvm_engine_supply(struct lvm_engine *e, struct lvm_source *src, uint64_t off,
		      const void *data, size_t len);
/* Mark a source range failed: faulting threads get SIGBUS, never zeros.
 * Pages already present stay.  0 or -EINVAL (no region serves it, len 0). */
LVM_EXPORT int lvm_engine_fail(struct lvm_engine *e, struct lvm_source *src, uint64_t off,
		    size_t len, int err);
/* Wait until every page is resolved (present, discarded, failed or gone),
 * or timeout_ms passes (-1: no limit; measured on CLOCK_MONOTONIC).  0,
 * -ETIMEDOUT, -ECANCELED (lvm_engine_stop() ran while pages were still
 * missing), or the first fill error (a page was poisoned). */
LVM_EXPORT int lvm_engine_wait_filled(struct lvm_engine *e, int timeout_ms);
/* Is the source page at (src, off) already installed?  (migration resume) */
LVM_EXPORT bool lvm_engine_is_present(struct lvm_engine *e, struct lvm_source *src, uint64_t off);
/* Stop and join the threads; memory stays mapped and registered until
 * destroy (a fault then blocks until destroy unregisters it).  Always 0;
 * stopping a stopped engine is a no-op. */
LVM_EXPORT int lvm_engine_stop(struct lvm_engine *e);
/* Stop, unregister the engine's own memory, free, and close the uffd —
 * the adopted one too (opts.uffd).  The lvm_mem and lvm_source objects are
 * not touched.  NULL is a no-op. */
LVM_EXPORT void lvm_engine_destroy(struct lvm_engine *e);
/* The uffd the engine reads (owned by the engine). */
LVM_EXPORT int lvm_engine_uffd(const struct lvm_engine *e);

struct lvm_latency {
	uint64_t p50_ns, p90_ns, p99_ns, max_ns;
	uint64_t count;
};

struct lvm_stats {
	size_t struct_size;		/* caller: sizeof(struct lvm_stats) */
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

/* Counters are updated as pages land; exact once lvm_engine_stop()
 * returned.  0 or -EINVAL (out->struct_size). */
LVM_EXPORT int lvm_engine_stats(struct lvm_engine *e, struct lvm_stats *out);
/* The first error the engine hit, with context; "" when none.  Safe from
 * any thread; the text never changes once set and lives until destroy. */
LVM_EXPORT const char *lvm_engine_error(const struct lvm_engine *e);

#ifdef __cplusplus
}
#endif
#endif /* LAZYVM_H */
