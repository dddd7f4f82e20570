/* SPDX-License-Identifier: MIT */
/*
 * The chunk store (docs/snapshot-format.md, "Chunk store"): snapshots kept
 * as NAME/state + NAME/manifest with their memory in content-addressed
 * chunks/HEX objects (objstore.h), read through a per-host chunk cache
 * (cache.c) and served lazily as an lvm_source.  Functions return 0 or
 * -errno with one line in err where given.
 */
#ifndef LAZYVM_STORE_H
#define LAZYVM_STORE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lazyvm.h"
#include "store/manifest.h"
#include "store/objstore.h"

/* ---- files ---- */
int store_read_file(const char *path, uint8_t **buf, size_t *len);
/* Temp file beside path, fsync if sync, rename over path; mode 0600. */
int store_write_file(const char *path, const void *buf, size_t len, bool sync);
/* mkdir -p with mode 0700 for what it creates. */
int store_mkdirs(const char *path);

/* ---- the per-host chunk cache ---- */
struct chunk_cache;
#define CHUNK_CACHE_DEFAULT_DIR "/var/cache/lazyvm/chunks"
#define CHUNK_CACHE_DEFAULT_MAX (8ull << 30)

struct chunk_cache_stats {
	_Atomic uint64_t hits, misses, corrupt, evicted, hit_bytes;
};

/* DIR is created 0700 if missing; max_bytes bounds what it keeps (LRU). */
int chunk_cache_open(const char *dir, uint64_t max_bytes, struct chunk_cache **out, char *err,
		     size_t errlen);
void chunk_cache_close(struct chunk_cache *c);
/* Chunk hash decoded and verified into dst (len bytes): 0 on a hit;
 * -ENOENT on a miss or when the cached copy was corrupt (then removed). */
int chunk_cache_get(struct chunk_cache *c, const uint8_t hash[SHA256_LEN], void *dst, size_t len);
/* Keep an (already verified) object; failures are not errors for callers. */
int chunk_cache_put(struct chunk_cache *c, const uint8_t hash[SHA256_LEN], const void *obj,
		    size_t len);
const struct chunk_cache_stats *chunk_cache_stats(const struct chunk_cache *c);
/* Evict down to the bound now (normally done as chunks are added). */
int chunk_cache_trim(struct chunk_cache *c);

/* ---- fetching one chunk: cache, then the store, verified, retried ---- */
/* Upper bounds (seconds) of the chunk-fetch latency histogram's buckets;
 * the last bucket is +Inf. */
#define CHUNK_FETCH_BUCKETS 12
extern const double chunk_fetch_bucket_s[CHUNK_FETCH_BUCKETS - 1];

struct chunk_fetch_stats {
	/* store_bytes as received (compressed objects); the others content. */
	_Atomic uint64_t store_chunks, store_bytes, store_content_bytes;
	_Atomic uint64_t cache_chunks, cache_bytes, bad_bodies, errors;
	_Atomic uint64_t fetch_ns_total;	/* all fetches, cache or store */
	_Atomic uint64_t latency[CHUNK_FETCH_BUCKETS];	/* not cumulative */
};

/* dst gets the chunk's content (len bytes), checked against hash.  A body
 * that fails the check is fetched again (bounded); err names chunk and URL. */
int store_fetch_chunk(struct objstore *s, struct chunk_cache *c, const uint8_t hash[SHA256_LEN],
		      void *dst, size_t len, struct chunk_fetch_stats *st, char *err,
		      size_t errlen);

/* ---- a snapshot in a store ---- */
/* NAME/manifest, parsed; NAME/state into *state (malloc'd). */
int store_load_manifest(struct objstore *s, const char *name, struct manifest *m, char *err,
			size_t errlen);
int store_load_state(struct objstore *s, const char *name, uint8_t **state, size_t *len,
		     char *err, size_t errlen);

struct store_push_opts {
	uint32_t chunk_size;		/* 0: 512 KiB */
	bool compress;			/* zstd where built */
	unsigned threads;		/* 0: 4 */
	/* A diff snapshot (store_push_diff): chunks not in dirty are base's. */
	const struct manifest *base;
	const uint8_t *dirty;		/* one byte per chunk of base's geometry */
};

struct store_push_stats {
	uint64_t chunks, zero_chunks, uploaded, present, uploaded_bytes, content_bytes;
};

/* Push a snapshot whose state file is state and memory src to s as name:
 * chunks the store lacks, then NAME/state, then NAME/manifest (last, so a
 * reader never sees a manifest whose chunks are not there yet). */
int store_push(struct objstore *s, const char *name, const uint8_t *state, size_t state_len,
	       struct lvm_source *src, const struct store_push_opts *o,
	       struct store_push_stats *st, char *err, size_t errlen);

/* Check every chunk of the manifest against its hash; report once per bad
 * one.  0 intact, -EBADMSG if any bad. */
int store_verify(struct objstore *s, const struct manifest *m,
		 void (*report)(void *ctx, uint64_t idx, const char *msg), void *ctx);

/* ---- the lazy memory source ---- */
struct store_source;
struct store_source_opts {
	unsigned prefetch_threads;	/* 0: faults only */
	/* Called once on the first chunk that cannot be served (one line). */
	void (*on_error)(void *ctx, const char *msg);
	void *on_error_ctx;
};

/* Serve m's memory from s through c (may be NULL).  Takes m (freed with the
 * source) but not s or c, which must outlive the source. */
int store_source_create(struct manifest *m, struct objstore *s, struct chunk_cache *c,
			const struct store_source_opts *o, struct lvm_source **out,
			struct store_source **handle);
const struct chunk_fetch_stats *store_source_stats(const struct store_source *h);
/* Is chunk idx in this process already (fetched)?  For diff snapshots. */
bool store_source_chunk_loaded(const struct store_source *h, uint64_t idx);
const struct manifest *store_source_manifest(const struct store_source *h);

/* ---- diff snapshots (diff.c) ---- */
struct store_diff_opts {
	const uint8_t *mem;		/* guest memory (the VM paused) */
	uint64_t size;
	size_t page_size;
	/* Was the page at guest offset off installed (fetched)?  Never faults. */
	bool (*is_present)(void *ctx, uint64_t off);
	void *ctx;
	struct lvm_source *base;	/* B's memory (the restore's source) */
	const struct manifest *base_manifest;
	bool copy;			/* compose dirty chunks now (live snapshot) */
};

/* A source over the VM's memory as it is, and which of B's chunks are dirty
 * (have a fetched page); both valid until the source is destroyed.  For
 * store_push with .base = base_manifest, .dirty = *dirty. */
int store_diff_create(const struct store_diff_opts *o, struct lvm_source **out,
		      const uint8_t **dirty, uint64_t *dirty_count);

#endif
