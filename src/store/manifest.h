/* SPDX-License-Identifier: MIT */
/*
 * A snapshot's memory as a manifest (docs/snapshot-format.md, "Chunk store"):
 * guest memory cut into fixed-size chunks, each non-zero chunk named by the
 * SHA-256 of its content; zero chunks are not listed.  The chunks themselves
 * live in a chunk store (chunk.h) keyed by that hash, so snapshots that
 * share memory share its chunks.
 */
#ifndef LAZYVM_STORE_MANIFEST_H
#define LAZYVM_STORE_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include "util/sha256.h"

#define MANIFEST_MAGIC		"LVMMANIF"
#define MANIFEST_VERSION	1
#define MANIFEST_HDR_SIZE	64
#define MANIFEST_ENTRY_SIZE	(8 + SHA256_LEN)
#define MANIFEST_HASH_SHA256	1
#define MANIFEST_ID_LEN		16
#define MANIFEST_MIN_CHUNK	(4u << 10)
#define MANIFEST_MAX_CHUNK	(64u << 20)
#define MANIFEST_MAX_MEM	(1ull << 48)

struct manifest {
	uint8_t id[MANIFEST_ID_LEN];	/* the snapshot id of the state it pairs with */
	uint64_t mem_size;
	uint32_t chunk_size;
	uint64_t chunk_count;		/* ceil(mem_size / chunk_size) */
	/* hash[i] of chunk i; present[i] 0 for a zero chunk. */
	uint8_t (*hash)[SHA256_LEN];
	uint8_t *present;
	uint64_t present_count;
};

/* An empty manifest (every chunk zero) for this geometry; -EINVAL if bad. */
int manifest_init(struct manifest *m, const uint8_t id[MANIFEST_ID_LEN], uint64_t mem_size,
		  uint32_t chunk_size);
void manifest_free(struct manifest *m);
void manifest_set(struct manifest *m, uint64_t idx, const uint8_t hash[SHA256_LEN]);
/* Bytes of chunk idx (the last chunk may be shorter). */
uint64_t manifest_chunk_len(const struct manifest *m, uint64_t idx);

/* The encoded manifest (malloc'd, *len bytes); -ENOMEM. */
int manifest_encode(const struct manifest *m, uint8_t **out, size_t *len);
/*
 * Parse untrusted bytes.  -EBADMSG (why says what) on any inconsistency:
 * magic, header CRC, sizes, unsorted or out-of-range entries, trailing hash;
 * -EPROTO for another version or hash algorithm.
 */
int manifest_parse(const uint8_t *buf, size_t len, struct manifest *m, const char **why);

#endif
