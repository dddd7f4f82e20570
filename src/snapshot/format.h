/* SPDX-License-Identifier: MIT */
/*
 * On-disk layout of snapshot files (docs/snapshot-format.md is the spec; keep
 * the two in step).  Every field is little-endian at a fixed offset and is
 * encoded and decoded byte by byte here, so the layout does not depend on
 * the compiler's struct padding or on the host's byte order.
 */
#ifndef LAZYVM_SNAPSHOT_FORMAT_H
#define LAZYVM_SNAPSHOT_FORMAT_H

#include <stdint.h>
#include <string.h>

#define SNAP_VERSION		1
#define SNAP_ID_LEN		16

/* ---- DIR/memory ---- */
#define SNAP_MEM_MAGIC		"LVMSNAPM"
#define SNAP_MEM_HDR_SIZE	128	/* bytes covered by the header CRC (+4) */
#define SNAP_MEM_DATA_ALIGN	4096	/* raw chunks: UFFDIO_COPY wants page-aligned src */
#define SNAP_MEM_FLAG_ZSTD	1u	/* at least one chunk is zstd */
#define SNAP_MEM_FLAGS_KNOWN	SNAP_MEM_FLAG_ZSTD
#define SNAP_MAX_MEM_SIZE	(1ull << 48)

struct snap_mem_hdr {
	uint32_t version, header_size;
	uint8_t id[SNAP_ID_LEN];
	uint64_t mem_size;
	uint32_t chunk_size, flags;
	uint64_t chunk_count, data_offset, index_offset, index_size;
	uint32_t index_crc, header_crc;
};

#define SNAP_ENTRY_SIZE		24
enum snap_chunk_kind { SNAP_CHUNK_ZERO = 0, SNAP_CHUNK_RAW = 1, SNAP_CHUNK_ZSTD = 2 };

struct snap_entry {
	uint64_t offset;	/* in the memory file; 0 for zero chunks */
	uint32_t length;	/* stored bytes */
	uint8_t kind;
	uint32_t crc;		/* CRC32C of the stored bytes */
	uint32_t content_crc;	/* CRC32C of the chunk's memory (== crc for raw) */
};

/* ---- DIR/state ---- */
#define SNAP_STATE_MAGIC	"LVMSNAPS"
#define SNAP_STATE_HDR_SIZE	64
#define SNAP_SECTION_SIZE	32
#define SNAP_MAX_SECTIONS	65536
#define SNAP_MAX_STATE_SIZE	(1ull << 30)

struct snap_state_hdr {
	uint32_t version, header_size;
	uint8_t id[SNAP_ID_LEN];
	uint32_t section_count, table_crc;
	uint64_t table_offset;
	uint32_t header_crc;
};

struct snap_section {
	uint32_t type;
	uint64_t offset, length;
	uint32_t crc;
};

/* ---- little-endian helpers ---- */
static inline void snap_put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void snap_put32(uint8_t *p, uint32_t v)
{
	snap_put16(p, (uint16_t)v);
	snap_put16(p + 2, (uint16_t)(v >> 16));
}
static inline void snap_put64(uint8_t *p, uint64_t v)
{
	snap_put32(p, (uint32_t)v);
	snap_put32(p + 4, (uint32_t)(v >> 32));
}
static inline uint32_t snap_get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t snap_get64(const uint8_t *p)
{
	return (uint64_t)snap_get32(p) | (uint64_t)snap_get32(p + 4) << 32;
}
static inline int snap_all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

/* Encoders fill the whole record (reserved bytes zero, CRCs computed where
 * the record carries its own).  Decoders return 0 or -EBADMSG/-EPROTO. */
void snap_mem_hdr_encode(uint8_t out[SNAP_MEM_HDR_SIZE], const struct snap_mem_hdr *h);
int snap_mem_hdr_decode(const uint8_t in[SNAP_MEM_HDR_SIZE], struct snap_mem_hdr *h,
			const char **why);
void snap_entry_encode(uint8_t out[SNAP_ENTRY_SIZE], const struct snap_entry *e);
int snap_entry_decode(const uint8_t in[SNAP_ENTRY_SIZE], struct snap_entry *e);
void snap_state_hdr_encode(uint8_t out[SNAP_STATE_HDR_SIZE], const struct snap_state_hdr *h);
int snap_state_hdr_decode(const uint8_t in[SNAP_STATE_HDR_SIZE], struct snap_state_hdr *h,
			  const char **why);
void snap_section_encode(uint8_t out[SNAP_SECTION_SIZE], const struct snap_section *s);
int snap_section_decode(const uint8_t in[SNAP_SECTION_SIZE], struct snap_section *s);

/* Length of chunk idx (the last one may be short). */
static inline uint32_t snap_chunk_len(uint64_t mem_size, uint32_t chunk_size, uint64_t idx)
{
	uint64_t start = idx * chunk_size;
	return mem_size - start < chunk_size ? (uint32_t)(mem_size - start) : chunk_size;
}

#endif
