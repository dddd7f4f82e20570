/* SPDX-License-Identifier: MIT */
/*
 * The per-host shared page cache (docs/sharing.md): one tmpfs file per
 * snapshot identity, holding the snapshot's memory once for every VM
 * restored from it.  Each VM maps the file MAP_PRIVATE and registers
 * MINOR|MISSING: a read is served with UFFDIO_CONTINUE, which maps the
 * cache's own page (no copy); a guest write then copies that page for this VM
 * alone (the kernel's COW on a private file mapping).
 *
 * File layout: [0, size) the memory; then one mark byte per 4 KiB page
 * (SHARE_MARK_*), then a small header for peers (struct share_peers).  A mark
 * is set only after the page's pwrite() returned in full, so a VM killed
 * mid-fill leaves at worst an unmarked page, which the next VM rewrites with
 * the same bytes; nobody maps a page that is not marked.
 *
 * Lifetime: every user holds flock(LOCK_SH).  The last one out (LOCK_EX
 * succeeds) unlinks the file, or with a linger time stamps its expiry in the
 * file's mtime; any later --share sweeps expired, unused caches.
 */
#ifndef LAZYVM_SHARE_H
#define LAZYVM_SHARE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "lazyvm.h"

enum { SHARE_MARK_UNKNOWN = 0, SHARE_MARK_FILLED = 1, SHARE_MARK_ZERO = 2 };

struct share_cache {
	int fd;
	uint64_t size;		/* memory bytes (multiple of 4 KiB) */
	uint64_t npages;
	_Atomic uint8_t *marks;	/* MAP_SHARED, npages bytes */
	struct share_peers *peers;
	uint8_t *view;		/* MAP_SHARED read-only view of the memory */
	unsigned linger_s;
	char path[256];
};

/* Counters every user of one cache sees (in the file, after the marks). */
struct share_peers {
	_Atomic uint32_t ended;		/* VMs whose guest finished (share_sync) */
	_Atomic uint32_t sampled;	/* ... and that sampled their memory use */
};

/*
 * Identity of a memory file: a hash of (device, inode, size, mtime, ctime),
 * so a snapshot rewritten on disk gets a new cache, never a mix.
 */
int share_identity(const char *path, uint64_t *out);

/*
 * Open (or create) the cache for identity in dir (NULL: $LAZYVM_SHARE_DIR,
 * else /dev/shm); 0600, owned by us, checked.  First sweeps expired unused
 * caches of this user.  0 or -errno; err gets one line.
 */
int share_cache_open(const char *dir, uint64_t identity, uint64_t size, unsigned linger_s,
		     struct share_cache **out, char *err, size_t errlen);
void share_cache_close(struct share_cache *c);

/* Guest memory over the cache: MAP_PRIVATE, page size 4 KiB. */
int share_mem_create(struct share_cache *c, struct lvm_mem **out);

/* A source that serves from the cache and fills it from inner on a miss
 * (takes ownership of inner). */
int share_source_create(struct share_cache *c, struct lvm_source *inner,
			struct lvm_source **out);

/*
 * Does this kernel give true sharing: MINOR on a MAP_PRIVATE memfd mapping,
 * UFFDIO_CONTINUE maps the page-cache page itself (pagemap: file page, not
 * anon) and a write copies it (cache unchanged)?  0 = yes; else -errno and
 * why in out->reason.
 */
int share_probe(struct lvm_probe *out);

/* Memory use of the mapping that contains addr (smaps) and the whole
 * process's Pss (smaps_rollup), in KiB. */
struct share_usage {
	uint64_t rss_kib, anon_kib, guest_pss_kib;	/* the guest mapping */
	uint64_t pss_kib;				/* the whole process */
};
int share_usage_sample(const void *addr, struct share_usage *out);

/*
 * Rendezvous of n VMs on one cache (tests, bench): wait until n guests
 * ended, sample, wait until n sampled (each wait at most timeout_ms), so
 * every Pss is taken while all n map the cache.  -ETIMEDOUT if peers are
 * missing (the sample is still taken).
 */
int share_sync_sample(struct share_cache *c, unsigned n, int timeout_ms, const void *addr,
		      struct share_usage *out);

#endif
