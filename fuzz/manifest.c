/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: what a chunk store sends back, which lazyvm does not
 * trust: a manifest (src/store/manifest.c) and a chunk object
 * (src/store/chunk.c).  The input is tried as both.  A manifest either
 * fails with -errno or parses into entries inside its memory; a chunk
 * object decodes only when its content hashes to the name it was asked
 * for (here: the hash in the input's last 32 bytes), never otherwise.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/chunk.h"
#include "store/manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct manifest m;
	const char *why;
	if (!manifest_parse(data, size, &m, &why)) {
		for (uint64_t i = 0; i < m.chunk_count; i++)
			if (m.present[i] && manifest_chunk_len(&m, i) > m.chunk_size)
				abort();
		manifest_free(&m);
	}
	if (size < 32 + 16)
		return 0;
	const uint8_t *name = data + size - 32;
	size_t olen = size - 32;
	uint32_t len = (uint32_t)data[8] | (uint32_t)data[9] << 8 | (uint32_t)data[10] << 16 |
		       (uint32_t)data[11] << 24;
	if (len > (1u << 20))
		return 0;
	uint8_t *dst = malloc(len ? len : 1);
	if (!dst)
		return 0;
	if (!chunk_decode(data, olen, name, dst, len, &why)) {
		uint8_t h[SHA256_LEN];
		sha256(dst, len, h);
		if (memcmp(h, name, SHA256_LEN))
			abort();	/* decoded to content of another name */
	}
	free(dst);
	return 0;
}
