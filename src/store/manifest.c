/* SPDX-License-Identifier: MIT */
/*
 * Manifest encoding.  Layout (little-endian, docs/snapshot-format.md):
 *   header  64 bytes: magic, version, header size, snapshot id, memory size,
 *           chunk size, hash algorithm, entry count, reserved, CRC32C
 *   entries 40 bytes each, chunk index strictly increasing: index, SHA-256
 *   trailer SHA-256 of everything before it
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "snapshot/format.h"
#include "store/manifest.h"
#include "util/crc32c.h"

int manifest_init(struct manifest *m, const uint8_t id[MANIFEST_ID_LEN], uint64_t mem_size,
		  uint32_t chunk_size)
{
	memset(m, 0, sizeof(*m));
	if (chunk_size < MANIFEST_MIN_CHUNK || chunk_size > MANIFEST_MAX_CHUNK ||
	    (chunk_size & (chunk_size - 1)) || !mem_size || mem_size % 4096 ||
	    mem_size > MANIFEST_MAX_MEM)
		return -EINVAL;
	memcpy(m->id, id, MANIFEST_ID_LEN);
	m->mem_size = mem_size;
	m->chunk_size = chunk_size;
	m->chunk_count = (mem_size + chunk_size - 1) / chunk_size;
	m->hash = calloc(m->chunk_count, SHA256_LEN);
	m->present = calloc(m->chunk_count, 1);
	if (!m->hash || !m->present) {
		manifest_free(m);
		return -ENOMEM;
	}
	return 0;
}

void manifest_free(struct manifest *m)
{
	free(m->hash);
	free(m->present);
	m->hash = NULL;
	m->present = NULL;
}

void manifest_set(struct manifest *m, uint64_t idx, const uint8_t hash[SHA256_LEN])
{
	if (!m->present[idx])	/* push threads set distinct chunks, the count together */
		__atomic_add_fetch(&m->present_count, 1, __ATOMIC_RELAXED);
	m->present[idx] = 1;
	memcpy(m->hash[idx], hash, SHA256_LEN);
}

uint64_t manifest_chunk_len(const struct manifest *m, uint64_t idx)
{
	uint64_t off = idx * m->chunk_size;
	return m->mem_size - off < m->chunk_size ? m->mem_size - off : m->chunk_size;
}

int manifest_encode(const struct manifest *m, uint8_t **out, size_t *len)
{
	size_t n = MANIFEST_HDR_SIZE + m->present_count * MANIFEST_ENTRY_SIZE + SHA256_LEN;
	uint8_t *b = calloc(1, n), *p;
	if (!b)
		return -ENOMEM;
	memcpy(b, MANIFEST_MAGIC, 8);
	snap_put32(b + 8, MANIFEST_VERSION);
	snap_put32(b + 12, MANIFEST_HDR_SIZE);
	memcpy(b + 16, m->id, MANIFEST_ID_LEN);
	snap_put64(b + 32, m->mem_size);
	snap_put32(b + 40, m->chunk_size);
	snap_put32(b + 44, MANIFEST_HASH_SHA256);
	snap_put64(b + 48, m->present_count);
	snap_put32(b + 60, crc32c(0, b, 60));
	p = b + MANIFEST_HDR_SIZE;
	for (uint64_t i = 0; i < m->chunk_count; i++) {
		if (!m->present[i])
			continue;
		snap_put64(p, i);
		memcpy(p + 8, m->hash[i], SHA256_LEN);
		p += MANIFEST_ENTRY_SIZE;
	}
	sha256(b, (size_t)(p - b), p);
	*out = b;
	*len = n;
	return 0;
}

static int parse_fail(const char **why, const char *msg, int err)
{
	if (why)
		*why = msg;
	return err;
}

static int parse_header(const uint8_t *b, size_t len, uint64_t *count, const char **why)
{
	if (len < MANIFEST_HDR_SIZE + SHA256_LEN || memcmp(b, MANIFEST_MAGIC, 8))
		return parse_fail(why, "not a lazyvm manifest (bad magic or too short)", -EBADMSG);
	if (snap_get32(b + 60) != crc32c(0, b, 60))
		return parse_fail(why, "manifest header checksum mismatch", -EBADMSG);
	if (snap_get32(b + 8) != MANIFEST_VERSION)
		return parse_fail(why, "manifest of another format version", -EPROTO);
	if (snap_get32(b + 44) != MANIFEST_HASH_SHA256)
		return parse_fail(why, "manifest uses an unknown hash algorithm", -EPROTO);
	if (snap_get32(b + 12) != MANIFEST_HDR_SIZE || snap_get32(b + 56))
		return parse_fail(why, "manifest header size or reserved field wrong", -EBADMSG);
	*count = snap_get64(b + 48);
	if (*count > (len - MANIFEST_HDR_SIZE - SHA256_LEN) / MANIFEST_ENTRY_SIZE ||
	    len != MANIFEST_HDR_SIZE + *count * MANIFEST_ENTRY_SIZE + SHA256_LEN)
		return parse_fail(why, "manifest length does not match its entry count", -EBADMSG);
	return 0;
}

int manifest_parse(const uint8_t *b, size_t len, struct manifest *m, const char **why)
{
	uint64_t count;
	int ret = parse_header(b, len, &count, why);
	if (ret)
		return ret;
	uint8_t digest[SHA256_LEN];
	size_t body = len - SHA256_LEN;
	sha256(b, body, digest);
	if (memcmp(digest, b + body, SHA256_LEN))
		return parse_fail(why, "manifest hash mismatch (corrupt or truncated)", -EBADMSG);
	ret = manifest_init(m, b + 16, snap_get64(b + 32), snap_get32(b + 40));
	if (ret == -EINVAL)
		return parse_fail(why, "manifest memory or chunk size out of range", -EBADMSG);
	if (ret)
		return ret;
	if (count > m->chunk_count) {
		manifest_free(m);
		return parse_fail(why, "manifest lists more chunks than memory has", -EBADMSG);
	}
	const uint8_t *p = b + MANIFEST_HDR_SIZE;
	for (uint64_t i = 0, next = 0; i < count; i++, p += MANIFEST_ENTRY_SIZE) {
		uint64_t idx = snap_get64(p);
		if (idx < next || idx >= m->chunk_count) {
			manifest_free(m);
			return parse_fail(why, "manifest entries out of order or out of range",
					  -EBADMSG);
		}
		manifest_set(m, idx, p + 8);
		next = idx + 1;
	}
	return 0;
}
