/* SPDX-License-Identifier: MIT */
/*
 * One chunk as a stored object: a 16-byte header then the payload, raw or
 * zstd.  The object is named by the SHA-256 of the chunk's *content*
 * (uncompressed), so a raw and a zstd copy of the same memory are one chunk
 * and every read is checked against its name after decompression.
 */
#ifndef LAZYVM_STORE_CHUNK_H
#define LAZYVM_STORE_CHUNK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/sha256.h"

#define CHUNK_MAGIC	"LVMC"
#define CHUNK_HDR_SIZE	16
#define CHUNK_RAW	1
#define CHUNK_ZSTD	2

/* Encode len bytes (compressed when compress and zstd is built in and it
 * helps); *obj is malloc'd.  hash gets SHA-256(data). */
int chunk_encode(const void *data, size_t len, bool compress, int level, uint8_t **obj,
		 size_t *objlen, uint8_t hash[SHA256_LEN]);
/*
 * Decode an untrusted object into dst (exactly len bytes) and check its
 * content hashes to hash.  -EBADMSG (why says what) for anything else:
 * a truncated, altered or foreign object; -ENOTSUP zstd without zstd.
 */
int chunk_decode(const uint8_t *obj, size_t objlen, const uint8_t hash[SHA256_LEN], void *dst,
		 size_t len, const char **why);

#endif
