/* SPDX-License-Identifier: MIT */
/*
 * DIR/memory: map it, validate header and index before anything is served,
 * and check chunk data (stored CRC, then content CRC after decompression).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snapshot/memfile.h"
#include "snapshot/zstd.h"
#include "util/crc32c.h"
#include "util/progress.h"

static _Atomic uint64_t memfile_next_uid = 1;

static int memfile_fail(char *err, size_t errlen, int ret, const char *path,
			const char *fmt, ...)
{
	if (err && errlen) {
		int n = snprintf(err, errlen, "%s: ", path);
		va_list ap;
		va_start(ap, fmt);
		if (n >= 0 && (size_t)n < errlen)
			vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return ret;
}

bool snapshot_is_memory_file(const char *path)
{
	char magic[8];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	bool yes = pread(fd, magic, 8, 0) == 8 && !memcmp(magic, SNAP_MEM_MAGIC, 8);
	close(fd);
	return yes;
}

/* Header fields that must agree with each other and with the file size. */
static int memfile_check_geometry(const struct snap_mem_hdr *h, uint64_t file_size,
				  const char **why)
{
	uint32_t cs = h->chunk_size;
	if (cs < SNAP_MIN_CHUNK_SIZE || cs > SNAP_MAX_CHUNK_SIZE || (cs & (cs - 1)))
		return *why = "bad chunk size", -EBADMSG;
	if (!h->mem_size || h->mem_size % 4096 || h->mem_size > SNAP_MAX_MEM_SIZE)
		return *why = "bad memory size", -EBADMSG;
	if (h->chunk_count != (h->mem_size + cs - 1) / cs)
		return *why = "chunk count does not match memory size", -EBADMSG;
	if (h->flags & ~SNAP_MEM_FLAGS_KNOWN)
		return *why = "unknown header flags", -EBADMSG;
	if (h->data_offset != SNAP_MEM_DATA_ALIGN || h->index_offset < h->data_offset ||
	    h->index_offset % 8 || h->index_size != h->chunk_count * SNAP_ENTRY_SIZE)
		return *why = "bad index location", -EBADMSG;
	if (h->index_offset > file_size || h->index_size > file_size - h->index_offset)
		return *why = "truncated (the index lies past the end of the file)", -ENODATA;
	return 0;
}

static int memfile_check_entry(const struct snap_mem_hdr *h, uint64_t idx,
			       const struct snap_entry *e)
{
	uint32_t len = snap_chunk_len(h->mem_size, h->chunk_size, idx);
	switch (e->kind) {
	case SNAP_CHUNK_ZERO:
		return e->offset || e->length || e->crc || e->content_crc ? -EBADMSG : 0;
	case SNAP_CHUNK_RAW:
		if (e->length != len || e->offset % SNAP_MEM_DATA_ALIGN || e->crc != e->content_crc)
			return -EBADMSG;
		break;
	case SNAP_CHUNK_ZSTD:
		if (!e->length || e->length > len || !(h->flags & SNAP_MEM_FLAG_ZSTD))
			return -EBADMSG;
		break;
	}
	if (e->offset < h->data_offset || e->offset > h->index_offset ||
	    e->length > h->index_offset - e->offset)
		return -EBADMSG;
	return 0;
}

static int memfile_parse_header(struct snap_memfile *m, char *err, size_t errlen)
{
	const char *why;
	int ret;
	if (m->map_len < SNAP_MEM_HDR_SIZE) {
		bool ours = !memcmp(m->map, SNAP_MEM_MAGIC, 8);
		why = ours ? "truncated (shorter than the header)"
			   : "not a lazyvm snapshot memory file (bad magic)";
		ret = ours ? -ENODATA : -EBADMSG;
	} else if ((ret = snap_mem_hdr_decode(m->map, &m->hdr, &why)) == 0) {
		ret = memfile_check_geometry(&m->hdr, m->map_len, &why);
	}
	return ret ? memfile_fail(err, errlen, ret, m->path, "%s", why) : 0;
}

static int memfile_load_index(struct snap_memfile *m, char *err, size_t errlen)
{
	const struct snap_mem_hdr *h = &m->hdr;
	const uint8_t *index = m->map + h->index_offset;
	if (crc32c(0, index, h->index_size) != h->index_crc)
		return memfile_fail(err, errlen, -EBADMSG, m->path, "index checksum mismatch");
	m->entries = calloc(h->chunk_count, sizeof(*m->entries));
	m->verified = calloc((h->chunk_count + 63) / 64, sizeof(*m->verified));
	if (!m->entries || !m->verified)
		return memfile_fail(err, errlen, -ENOMEM, m->path, "out of memory for the index");
	struct snap_mem_stats *s = &m->stats;
	for (uint64_t i = 0; i < h->chunk_count; i++) {
		struct snap_entry *e = &m->entries[i];
		if (snap_entry_decode(index + i * SNAP_ENTRY_SIZE, e) ||
		    memfile_check_entry(h, i, e))
			return memfile_fail(err, errlen, -EBADMSG, m->path,
					    "chunk %llu: bad index entry", (unsigned long long)i);
		s->zero_chunks += e->kind == SNAP_CHUNK_ZERO;
		s->raw_chunks += e->kind == SNAP_CHUNK_RAW;
		s->zstd_chunks += e->kind == SNAP_CHUNK_ZSTD;
		s->stored_bytes += e->length;
	}
	s->chunks = h->chunk_count;
	s->file_bytes = m->map_len;
	return 0;
}

static int memfile_map(struct snap_memfile *m, char *err, size_t errlen)
{
	int fd = open(m->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return memfile_fail(err, errlen, -errno, m->path, "%s", strerror(errno));
	struct stat st;
	int ret = 0;
	if (fstat(fd, &st))
		ret = memfile_fail(err, errlen, -errno, m->path, "%s", strerror(errno));
	else if (!S_ISREG(st.st_mode))
		ret = memfile_fail(err, errlen, -EINVAL, m->path, "not a regular file");
	else if (st.st_size < 8)
		ret = memfile_fail(err, errlen, -EBADMSG, m->path,
				   "not a lazyvm snapshot memory file (%lld bytes)",
				   (long long)st.st_size);
	if (!ret) {
		void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
		if (p == MAP_FAILED)
			ret = memfile_fail(err, errlen, -errno, m->path, "mmap: %s", strerror(errno));
		else
			m->map = p, m->map_len = (size_t)st.st_size;
	}
	close(fd);
	return ret;
}

int snap_memfile_open(const char *path, struct snap_memfile **out, char *err, size_t errlen)
{
	struct snap_memfile *m = calloc(1, sizeof(*m));
	if (!m || !(m->path = strdup(path))) {
		free(m);
		return memfile_fail(err, errlen, -ENOMEM, path, "out of memory");
	}
	atomic_init(&m->refs, 1);
	m->uid = atomic_fetch_add(&memfile_next_uid, 1);
	int ret = memfile_map(m, err, errlen);
	if (!ret)
		ret = memfile_parse_header(m, err, errlen);
	if (!ret)
		ret = memfile_load_index(m, err, errlen);
	if (!ret && (m->hdr.flags & SNAP_MEM_FLAG_ZSTD) && !snap_zstd_available())
		ret = memfile_fail(err, errlen, -ENOTSUP, path,
				   "chunks are zstd-compressed, but this lazyvm was built without zstd");
	if (ret) {
		snap_memfile_put(m);
		return ret;
	}
	*out = m;
	return 0;
}

struct snap_memfile *snap_memfile_get(struct snap_memfile *m)
{
	atomic_fetch_add(&m->refs, 1);
	return m;
}

void snap_memfile_put(struct snap_memfile *m)
{
	if (!m || atomic_fetch_sub(&m->refs, 1) != 1)
		return;
	if (m->map)
		munmap((void *)m->map, m->map_len);
	free(m->entries);
	free((void *)m->verified);
	free(m->path);
	free(m);
}

int snap_memfile_check_chunk(struct snap_memfile *m, uint64_t idx)
{
	uint64_t bit = 1ull << (idx % 64);
	_Atomic uint64_t *word = &m->verified[idx / 64];
	if (atomic_load_explicit(word, memory_order_acquire) & bit)
		return 0;
	const struct snap_entry *e = &m->entries[idx];
	if (e->kind != SNAP_CHUNK_ZERO && crc32c(0, m->map + e->offset, e->length) != e->crc)
		return -EBADMSG;
	atomic_fetch_or_explicit(word, bit, memory_order_release);
	return 0;
}

int snap_memfile_read_chunk(struct snap_memfile *m, uint64_t idx, void *dst)
{
	const struct snap_entry *e = &m->entries[idx];
	uint32_t len = snap_chunk_len(m->hdr.mem_size, m->hdr.chunk_size, idx);
	int ret = snap_memfile_check_chunk(m, idx);
	if (ret)
		return ret;
	switch (e->kind) {
	case SNAP_CHUNK_ZERO:
		memset(dst, 0, len);
		return 0;
	case SNAP_CHUNK_RAW:
		memcpy(dst, m->map + e->offset, len);
		return 0;
	default:
		ret = snap_zstd_decompress(dst, len, m->map + e->offset, e->length);
		if (!ret && crc32c(0, dst, len) != e->content_crc)
			ret = -EBADMSG;	/* the stored bytes were right: a writer bug */
		return ret;
	}
}

static const char *memfile_chunk_problem(struct snap_memfile *m, uint64_t idx, void *buf)
{
	const struct snap_entry *e = &m->entries[idx];
	if (snap_memfile_check_chunk(m, idx))
		return "checksum mismatch";
	if (e->kind != SNAP_CHUNK_ZSTD)
		return NULL;
	int ret = snap_memfile_read_chunk(m, idx, buf);
	if (ret == -EBADMSG)
		return "decompressed content does not match its checksum";
	return ret ? strerror(-ret) : NULL;
}

int snap_memfile_verify(struct snap_memfile *m,
			void (*report)(void *ctx, uint64_t idx, uint64_t off, const char *msg),
			void *ctx, struct progress *p)
{
	void *buf = malloc(m->hdr.chunk_size);
	if (!buf)
		return -ENOMEM;
	uint64_t bad = 0, done = 0;
	for (uint64_t i = 0; i < m->hdr.chunk_count; i++) {
		const char *why = memfile_chunk_problem(m, i, buf);
		if (why) {
			bad++;
			if (report)
				report(ctx, i, i * m->hdr.chunk_size, why);
		}
		done += snap_chunk_len(m->hdr.mem_size, m->hdr.chunk_size, i);
		progress_update(p, done);
	}
	free(buf);
	return bad ? -EBADMSG : 0;
}
