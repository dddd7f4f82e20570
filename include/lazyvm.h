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
 * Signals.  The library installs no signal handler and changes no signal
 * mask.  A page the engine cannot serve is poisoned (UFFDIO_POISON): the
 * thread that touches it gets SIGBUS (BUS_MCEERR_AR; KVM forwards it to the
 * vCPU thread), and what happens then is the program's: install a SIGBUS
 * handler to stop the VM with a message (lazyvm's own VMM does so in
 * vmm_create(), src/vmm/vcpu.c), or let the default action end the process.
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

/*
 * Errors.  A call that fails returns -errno; where it can say more (which
 * file, which chunk, which offset), the text is in lvm_last_error() for the
 * calling thread until its next failing lazyvm call.  Errors the engine's
 * threads meet while serving go to lvm_engine_opts.on_error and
 * lvm_engine_error() instead.
 */
LVM_EXPORT const char *lvm_last_error(void);

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
/*
 * Memory the caller already owns (a VMM's guest RAM): its mapping, and for
 * page-cache backings the file behind it, which MINOR mode fills.
 */
struct lvm_range {
	size_t struct_size;	/* caller: sizeof(struct lvm_range) */
	void *addr;		/* start of the caller's mapping, page aligned */
	size_t length;		/* a multiple of the backing's page size */
	enum lvm_backing backing; /* what addr maps: ANON = private anonymous
				   * memory, MEMFD = shared shmem, HUGETLB =
				   * shared 2 MiB hugetlb, GMEM = guest_memfd */
	int fd;			/* the file mapped at addr; -1 for ANON */
	uint64_t fd_offset;	/* offset in fd at which addr's mapping starts */
};

/* An lvm_mem over the caller's memory: lvm_mem_destroy() frees the handle
 * (and the second mapping MINOR mode made) but never unmaps addr nor closes
 * fd.  0, -EINVAL (unaligned, no fd for a file backing or one for ANON),
 * -ENOMEM. */
LVM_EXPORT int lvm_mem_wrap(const struct lvm_range *range, struct lvm_mem **out);

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
/* A lazyvm snapshot's memory (path: the snapshot directory or its memory
 * file): chunks checked against their CRC32C and decompressed on demand.
 * 0, -ENOENT, -EBADMSG (corrupt), -EPROTO (unknown version), -ENODATA
 * (truncated), -ENOTSUP (compressed, library built without zstd); where
 * and why: lvm_last_error().  A chunk that turns out corrupt when read
 * makes get() fail: the engine poisons those pages, never serves zeros. */
LVM_EXPORT int lvm_source_snapshot_open(const char *path, struct lvm_source **out);
/* Every page zero (fresh VMs, tests).  0 or -ENOMEM. */
LVM_EXPORT int lvm_source_zero(uint64_t size, struct lvm_source **out);
/* Calls ops.destroy(ctx) and frees the handle.  NULL is a no-op. */
LVM_EXPORT void lvm_source_destroy(struct lvm_source *src);
LVM_EXPORT uint64_t lvm_source_size(const struct lvm_source *src);
/* Copy [off, off+len) into buf, whatever get() returns (eager paths).
 * 0, -ERANGE (outside the source), -EAGAIN (get() said PENDING), or get()'s
 * -errno. */
LVM_EXPORT int lvm_source_read(struct lvm_source *src, uint64_t off, void *buf, size_t len);

/* ---- write-protect tracker ---------------------------------------------- */

/*
 * uffd-WP over a whole lvm_mem at chunk granularity (live snapshots, dirty
 * tracking for pre-copy migration).  Every chunk starts protected; the
 * first write to a chunk (or an explicit lvm_wp_take) calls first_write(ctx,
 * chunk) *before* the chunk is unprotected and the writer continues, so
 * first_write sees the chunk as it was when protection started.  The
 * tracker runs one thread of its own, which calls first_write for faults.
 */
struct lvm_wp;

typedef void (*lvm_wp_first_write_fn)(void *ctx, uint64_t chunk);

/* Register WP on all of mem (its own uffd), protect it, start the thread.
 * chunk_size: a multiple of the page size.  0, -EINVAL, -ENOMEM, or the
 * -errno of userfaultfd/UFFDIO_REGISTER/UFFDIO_WRITEPROTECT (-EINVAL or
 * -EOPNOTSUPP where the kernel lacks WP for this backing: lvm_probe says).
 * mem is borrowed until lvm_wp_stop(). */
LVM_EXPORT int lvm_wp_start(struct lvm_mem *mem, size_t chunk_size, lvm_wp_first_write_fn fn,
			    void *ctx, struct lvm_wp **out);
/* If chunk is still protected: call first_write, unprotect.  1 if this call
 * did it, 0 if it was already released, -EINVAL (no such chunk) or the
 * -errno of UFFDIO_WRITEPROTECT. */
LVM_EXPORT int lvm_wp_take(struct lvm_wp *t, uint64_t chunk);
/* Protect a released chunk again (start of a dirty-tracking round).  0 or
 * -errno. */
LVM_EXPORT int lvm_wp_protect(struct lvm_wp *t, uint64_t chunk);
LVM_EXPORT uint64_t lvm_wp_chunks(const struct lvm_wp *t);
/* WP faults served so far (writes that hit a protected chunk). */
LVM_EXPORT uint64_t lvm_wp_faults(const struct lvm_wp *t);
/* Unprotect everything, unregister, stop the thread, free.  NULL: no-op. */
LVM_EXPORT void lvm_wp_stop(struct lvm_wp *t);

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
	/* --- 0.2 --- */
	/* Run no handler threads: the caller polls lvm_engine_uffd() for POLLIN
	 * in its own event loop and calls lvm_engine_process().  The background
	 * fill, when asked for, still runs on its own thread.  An adopted uffd
	 * is switched to O_NONBLOCK. */
	bool caller_driven;
	/* Optional: called with a one-line message for what is worth telling
	 * but is no failure to serve (a partial mremap of served memory, a fill
	 * that could not restart), from an engine thread.  The library never
	 * prints; unset, warnings are dropped. */
	void (*on_warning)(void *ctx, const char *msg);
	void *on_warning_ctx;
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
 * or while the engine runs (memory hotplug): there is no cap on the number
 * of regions.  Returns the region's id (>= 0, never reused within the
 * engine; for lvm_engine_remove()), or -EINVAL (bad mode, not page aligned,
 * or an adopted uffd: add_remote is for that), -ERANGE (the region runs past
 * the end of src), -EEXIST (overlaps a region), -ENOMEM, or the -errno of
 * UFFDIO_REGISTER / the MINOR alias mmap.  mem and src are borrowed.
 */
LVM_EXPORT int lvm_engine_add_mem(struct lvm_engine *e, struct lvm_mem *mem, enum lvm_mode m,
		       struct lvm_source *src, uint64_t src_off);
/*
 * Serve memory the caller owns (see struct lvm_range) without creating an
 * lvm_mem: as add_mem otherwise.  MINOR needs range->fd.  The engine keeps
 * its own handle for the range and frees it with the region; the caller's
 * mapping and fd are never unmapped or closed.
 */
LVM_EXPORT int lvm_engine_add_range(struct lvm_engine *e, const struct lvm_range *range,
				    enum lvm_mode m, struct lvm_source *src, uint64_t src_off);
/*
 * Stop serving region id (memory unplug), before start or while running.
 * Own memory is unregistered from the uffd (a thread faulting there is
 * woken and then sees the memory as it is, unserved); a remote region is
 * only forgotten (the other process unmaps it).  Its unresolved pages no
 * longer count for wait_filled.  0 or -ENOENT.
 */
LVM_EXPORT int lvm_engine_remove(struct lvm_engine *e, int id);
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
/* Start the handler threads (none when opts.caller_driven) and the
 * background fill.  0, -EBUSY (already started), -EINVAL (no region),
 * -ENOMEM, or pthread_create's -errno. */
LVM_EXPORT int lvm_engine_start(struct lvm_engine *e);
/*
 * opts.caller_driven: read everything the uffd has now, apply the events
 * and serve the faults, without blocking beyond the source's get().  Call
 * it when lvm_engine_uffd() polls readable (spurious calls are cheap).
 * Returns the number of faults read (>= 0), or -EINVAL (not started, not
 * caller-driven).  Calls from several threads are serialised.
 */
LVM_EXPORT int lvm_engine_process(struct lvm_engine *e);
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
/* The uffd the engine reads (owned by the engine): with opts.caller_driven,
 * the fd to poll for POLLIN. */
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
