/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "snapshot/format.h"
#include "snapshot/zstd.h"
#include "store/chunk.h"

int chunk_encode(const void *data, size_t len, bool compress, int level, uint8_t **obj,
		 size_t *objlen, uint8_t hash[SHA256_LEN])
{
	sha256(data, len, hash);
	bool z = compress && snap_zstd_available();
	size_t cap = CHUNK_HDR_SIZE + (z ? snap_zstd_bound(len) : len);
	uint8_t *o = malloc(cap > CHUNK_HDR_SIZE + len ? cap : CHUNK_HDR_SIZE + len);
	if (!o)
		return -ENOMEM;
	ssize_t n = z ? snap_zstd_compress(o + CHUNK_HDR_SIZE, cap - CHUNK_HDR_SIZE, data, len,
					   level) : -1;
	uint8_t kind = CHUNK_ZSTD;
	if (n < 0 || (size_t)n >= len) {	/* incompressible: keep it raw */
		memcpy(o + CHUNK_HDR_SIZE, data, len);
		n = (ssize_t)len;
		kind = CHUNK_RAW;
	}
	memset(o, 0, CHUNK_HDR_SIZE);
	memcpy(o, CHUNK_MAGIC, 4);
	o[4] = 1;	/* object format version */
	o[5] = kind;
	snap_put32(o + 8, (uint32_t)len);
	snap_put32(o + 12, (uint32_t)n);
	*obj = o;
	*objlen = CHUNK_HDR_SIZE + (size_t)n;
	return 0;
}

static int decode_fail(const char **why, const char *msg)
{
	if (why)
		*why = msg;
	return -EBADMSG;
}

int chunk_decode(const uint8_t *obj, size_t objlen, const uint8_t hash[SHA256_LEN], void *dst,
		 size_t len, const char **why)
{
	if (objlen < CHUNK_HDR_SIZE || memcmp(obj, CHUNK_MAGIC, 4) || obj[4] != 1 ||
	    obj[6] || obj[7])
		return decode_fail(why, "not a chunk object (bad header)");
	uint32_t clen = snap_get32(obj + 8), slen = snap_get32(obj + 12);
	if (clen != len)
		return decode_fail(why, "chunk has the wrong length for its place");
	if ((uint64_t)slen + CHUNK_HDR_SIZE != objlen)
		return decode_fail(why, "chunk object truncated or with trailing bytes");
	const uint8_t *payload = obj + CHUNK_HDR_SIZE;
	if (obj[5] == CHUNK_RAW) {
		if (slen != len)
			return decode_fail(why, "raw chunk of the wrong length");
		memcpy(dst, payload, len);
	} else if (obj[5] == CHUNK_ZSTD) {
		if (!snap_zstd_available())
			return -ENOTSUP;
		if (snap_zstd_decompress(dst, len, payload, slen))
			return decode_fail(why, "zstd chunk does not decompress");
	} else {
		return decode_fail(why, "chunk of an unknown kind");
	}
	uint8_t got[SHA256_LEN];
	sha256(dst, len, got);
	if (memcmp(got, hash, SHA256_LEN))
		return decode_fail(why, "chunk content does not match its SHA-256");
	return 0;
}
