/* SPDX-License-Identifier: MIT */
/*
 * Snapshot directories (byte layout in docs/snapshot-format.md).
 *
 *   DIR/state    header + typed sections (metadata, VM and vCPU state blobs)
 *   DIR/memory   guest memory in fixed-size chunks: zero chunks elided, each
 *                chunk CRC32C-checked, optionally zstd-compressed, indexed
 *
 * Writing goes to DIR/.state.tmp and DIR/.memory.tmp, which are fsynced and
 * renamed into place on close: a reader sees the old snapshot or the new one,
 * never half of one.  Both files carry the same random snapshot id, so a
 * state from one snapshot never pairs with memory from another.
 */
#ifndef LAZYVM_SNAPSHOT_H
#define LAZYVM_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lazyvm.h"

struct progress;

/* Section types of DIR/state.  Blobs are opaque here; the VMM defines them. */
enum snap_section_type {
	SNAP_SEC_META = 1,	   /* text, "key=value\n" lines (guest, mem, backing, ...) */
	SNAP_SEC_VM_STATE = 2,	   /* VM-wide state (irqchip, clock, devices) */
	SNAP_SEC_VCPU_STATE = 3,   /* one per vCPU, in vCPU order */
	SNAP_SEC_DEVICE_STATE = 4, /* device models (serial, ...) */
	SNAP_SEC_VMM_PRIVATE = 0x1000, /* first of the types free for VMM use */
};

#define SNAP_DEFAULT_CHUNK_SIZE (64u << 10)
#define SNAP_MIN_CHUNK_SIZE	(4u << 10)
#define SNAP_MAX_CHUNK_SIZE	(64u << 20)

/* ---- writing ----------------------------------------------------------- */

struct snap_writer;
struct snap_write_opts {
	uint32_t chunk_size;	/* power of two, 4 KiB .. 64 MiB; 0 = 64 KiB */
	bool compress;		/* zstd per chunk (-ENOTSUP when built without zstd) */
	int zstd_level;		/* 0 = zstd's default (3); 1 is the fast choice */
};

/* Creates DIR if needed.  opts may be NULL (defaults). */
int snapshot_writer_open(const char *dir, const struct snap_write_opts *o,
			 struct snap_writer **out);
/* Any number, any order, before close; several of one type are kept in order. */
int snapshot_write_section(struct snap_writer *w, uint32_t type, const void *data,
			   size_t len);
/* Once, before the first chunk.  mem_size: a multiple of 4 KiB. */
int snapshot_mem_begin(struct snap_writer *w, uint64_t mem_size);
/*
 * Write chunk idx (bytes idx * chunk_size .. +chunk_size of memory; the last
 * chunk may be shorter).  Any order, from any number of threads, each chunk
 * exactly once (-EEXIST on a repeat).  Zero chunks are detected and elided.
 */
int snapshot_mem_chunk(struct snap_writer *w, uint64_t idx, const void *data);
/* Every chunk of mem[0, size) (size == mem_size), with progress (p may be NULL). */
int snapshot_write_memory(struct snap_writer *w, const void *mem, uint64_t size,
			  struct progress *p);
/*
 * Write index and headers, fsync, rename into place, fsync DIR; frees w.
 * Fails (and publishes nothing) if a chunk was never written or any earlier
 * write failed.
 */
int snapshot_writer_close(struct snap_writer *w);
/* Drop everything written so far; the previous snapshot in DIR is untouched. */
void snapshot_writer_abort(struct snap_writer *w);

/* ---- reading ----------------------------------------------------------- */

struct snap_reader;

/*
 * Open DIR and validate both headers, the chunk index and every section
 * checksum (chunk data is checked lazily, see below).  -ENOENT missing,
 * -EBADMSG corrupt, -EPROTO unknown version, -ENODATA truncated, -ENOTSUP
 * compressed but built without zstd; err gets one line naming the file.
 */
int snapshot_open(const char *dir, struct snap_reader **out, char *err, size_t errlen);
/* DIR/state alone, for a snapshot whose memory is a flat image elsewhere
 * (Firecracker style): sections as above; memory size and chunk size 0,
 * verify and the memory source -ENODATA. */
int snapshot_open_state(const char *dir, struct snap_reader **out, char *err, size_t errlen);
/* Add DIR/memory to a reader from snapshot_open_state (what snapshot_open
 * does in one go; a restore loads the index while it creates the VM).  Only
 * the memory getters and sources need it; nothing else reads r meanwhile. */
int snapshot_open_memory(struct snap_reader *r, const char *dir, char *err, size_t errlen);
void snapshot_close(struct snap_reader *r);

/* The first section of a type; -ENOENT if absent.  Valid until close. */
int snapshot_section(struct snap_reader *r, uint32_t type, const void **data, size_t *len);
/* The n-th (0-based) section of a type, e.g. vCPU n's state. */
int snapshot_section_nth(struct snap_reader *r, uint32_t type, unsigned n,
			 const void **data, size_t *len);
unsigned snapshot_section_count(const struct snap_reader *r, uint32_t type);
/* Value of key in the META section, NUL-terminated; -ENOENT, -ENOSPC. */
int snapshot_meta_get(struct snap_reader *r, const char *key, char *buf, size_t len);

uint64_t snapshot_mem_size(const struct snap_reader *r);
/* The random id both files of the snapshot carry (16 bytes). */
void snapshot_id(const struct snap_reader *r, uint8_t id[16]);
uint32_t snapshot_chunk_size(const struct snap_reader *r);

struct snap_mem_stats {
	uint64_t chunks, zero_chunks, raw_chunks, zstd_chunks;
	uint64_t stored_bytes;	/* chunk data in DIR/memory */
	uint64_t file_bytes;	/* size of DIR/memory */
	unsigned sections;	/* in DIR/state */
};
void snapshot_mem_stats(const struct snap_reader *r, struct snap_mem_stats *out);

/*
 * An lvm_source over the memory: random access at any granularity.  Each
 * chunk's CRC is checked the first time it is read; a mismatch makes get()
 * return -EBADMSG (the engine poisons the range, never zeros).  Zero chunks
 * return LVM_SOURCE_ZERO; raw chunks are served zero-copy from an mmap of
 * the file; zstd chunks are decompressed into scratch or a small per-thread
 * cache.  The source holds its own reference to the file: it stays valid
 * after snapshot_close() until lvm_source_destroy().
 */
int snapshot_memory_source(struct snap_reader *r, struct lvm_source **out);

/*
 * Check every chunk (stored CRC; zstd chunks also decompressed and their
 * content CRC checked).  report(ctx, idx, guest offset, message) once per
 * bad chunk.  0 intact, -EBADMSG if any bad.  p (may be NULL) shows progress.
 */
int snapshot_verify_progress(struct snap_reader *r,
			     void (*report)(void *ctx, uint64_t idx, uint64_t off, const char *msg),
			     void *ctx, struct progress *p);
int snapshot_verify(struct snap_reader *r,
		    void (*report)(void *ctx, uint64_t idx, uint64_t off, const char *msg),
		    void *ctx);

/* Is this a lazyvm snapshot memory file (by its magic)?  Never fails loudly. */
bool snapshot_is_memory_file(const char *path);
/* A source over one memory file, without DIR/state (Firecracker server). */
int snapshot_memory_file_source(const char *path, struct lvm_source **out, char *err,
				size_t errlen);

#endif
