/* SPDX-License-Identifier: MIT */
/* Encode and decode the fixed-size records of snapshot files (little-endian). */
#include <errno.h>

#include "snapshot/format.h"
#include "util/crc32c.h"

void snap_mem_hdr_encode(uint8_t out[SNAP_MEM_HDR_SIZE], const struct snap_mem_hdr *h)
{
	memset(out, 0, SNAP_MEM_HDR_SIZE);
	memcpy(out, SNAP_MEM_MAGIC, 8);
	snap_put32(out + 8, SNAP_VERSION);
	snap_put32(out + 12, SNAP_MEM_HDR_SIZE);
	memcpy(out + 16, h->id, SNAP_ID_LEN);
	snap_put64(out + 32, h->mem_size);
	snap_put32(out + 40, h->chunk_size);
	snap_put32(out + 44, h->flags);
	snap_put64(out + 48, h->chunk_count);
	snap_put64(out + 56, h->data_offset);
	snap_put64(out + 64, h->index_offset);
	snap_put64(out + 72, h->index_size);
	snap_put32(out + 80, h->index_crc);
	snap_put32(out + 124, crc32c(0, out, 124));
}

/*
 * Magic first (is it ours at all?), then the version (a newer layout may move
 * every other field, even the CRC), then the CRC, then the fixed fields.
 */
int snap_mem_hdr_decode(const uint8_t in[SNAP_MEM_HDR_SIZE], struct snap_mem_hdr *h,
			const char **why)
{
	if (memcmp(in, SNAP_MEM_MAGIC, 8))
		return *why = "not a lazyvm snapshot memory file (bad magic)", -EBADMSG;
	h->version = snap_get32(in + 8);
	if (h->version != SNAP_VERSION)
		return *why = "unsupported format version", -EPROTO;
	h->header_crc = snap_get32(in + 124);
	if (crc32c(0, in, 124) != h->header_crc)
		return *why = "header checksum mismatch", -EBADMSG;
	h->header_size = snap_get32(in + 12);
	if (h->header_size != SNAP_MEM_HDR_SIZE || !snap_all_zero(in + 84, 40))
		return *why = "header has unknown fields", -EBADMSG;
	memcpy(h->id, in + 16, SNAP_ID_LEN);
	h->mem_size = snap_get64(in + 32);
	h->chunk_size = snap_get32(in + 40);
	h->flags = snap_get32(in + 44);
	h->chunk_count = snap_get64(in + 48);
	h->data_offset = snap_get64(in + 56);
	h->index_offset = snap_get64(in + 64);
	h->index_size = snap_get64(in + 72);
	h->index_crc = snap_get32(in + 80);
	return 0;
}

void snap_entry_encode(uint8_t out[SNAP_ENTRY_SIZE], const struct snap_entry *e)
{
	memset(out, 0, SNAP_ENTRY_SIZE);
	snap_put64(out, e->offset);
	snap_put32(out + 8, e->length);
	out[12] = e->kind;
	snap_put32(out + 16, e->crc);
	snap_put32(out + 20, e->content_crc);
}

int snap_entry_decode(const uint8_t in[SNAP_ENTRY_SIZE], struct snap_entry *e)
{
	e->offset = snap_get64(in);
	e->length = snap_get32(in + 8);
	e->kind = in[12];
	e->crc = snap_get32(in + 16);
	e->content_crc = snap_get32(in + 20);
	if (!snap_all_zero(in + 13, 3) || e->kind > SNAP_CHUNK_ZSTD)
		return -EBADMSG;
	return 0;
}

void snap_state_hdr_encode(uint8_t out[SNAP_STATE_HDR_SIZE], const struct snap_state_hdr *h)
{
	memset(out, 0, SNAP_STATE_HDR_SIZE);
	memcpy(out, SNAP_STATE_MAGIC, 8);
	snap_put32(out + 8, SNAP_VERSION);
	snap_put32(out + 12, SNAP_STATE_HDR_SIZE);
	memcpy(out + 16, h->id, SNAP_ID_LEN);
	snap_put32(out + 32, h->section_count);
	snap_put32(out + 36, h->table_crc);
	snap_put64(out + 40, h->table_offset);
	snap_put32(out + 60, crc32c(0, out, 60));
}

int snap_state_hdr_decode(const uint8_t in[SNAP_STATE_HDR_SIZE], struct snap_state_hdr *h,
			  const char **why)
{
	if (memcmp(in, SNAP_STATE_MAGIC, 8))
		return *why = "not a lazyvm snapshot state file (bad magic)", -EBADMSG;
	h->version = snap_get32(in + 8);
	if (h->version != SNAP_VERSION)
		return *why = "unsupported format version", -EPROTO;
	h->header_crc = snap_get32(in + 60);
	if (crc32c(0, in, 60) != h->header_crc)
		return *why = "header checksum mismatch", -EBADMSG;
	h->header_size = snap_get32(in + 12);
	if (h->header_size != SNAP_STATE_HDR_SIZE || !snap_all_zero(in + 48, 12))
		return *why = "header has unknown fields", -EBADMSG;
	memcpy(h->id, in + 16, SNAP_ID_LEN);
	h->section_count = snap_get32(in + 32);
	h->table_crc = snap_get32(in + 36);
	h->table_offset = snap_get64(in + 40);
	return 0;
}

void snap_section_encode(uint8_t out[SNAP_SECTION_SIZE], const struct snap_section *s)
{
	memset(out, 0, SNAP_SECTION_SIZE);
	snap_put32(out, s->type);
	snap_put64(out + 8, s->offset);
	snap_put64(out + 16, s->length);
	snap_put32(out + 24, s->crc);
}

int snap_section_decode(const uint8_t in[SNAP_SECTION_SIZE], struct snap_section *s)
{
	s->type = snap_get32(in);
	s->offset = snap_get64(in + 8);
	s->length = snap_get64(in + 16);
	s->crc = snap_get32(in + 24);
	if (!snap_all_zero(in + 4, 4) || !snap_all_zero(in + 28, 4))
		return -EBADMSG;
	return 0;
}
