/* SPDX-License-Identifier: MIT */
/*
 * lvm_source over a snapshot memory file.  get() may ask for any range: one
 * page of a chunk (a fault), or many chunks at once (fault-around, the
 * background fill, a 2 MiB hugetlb page).  Raw chunks are served zero-copy
 * from the mapping, and a range of raw chunks that sit back to back in the
 * file is served zero-copy too; anything else is assembled in scratch.  No
 * byte reaches the caller before its chunk's CRC was checked.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "snapshot/memfile.h"
#include "snapshot/snapshot.h"
#include "snapshot/zstd.h"
#include "util/crc32c.h"
#include "util/errmsg.h"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22	/* Linux 5.14 */
#endif

/* ---- per-thread cache of decompressed chunks (page faults inside one) ---- */

#define CACHE_SLOTS 4

struct chunk_cache {
	struct {
		uint64_t uid, idx;	/* uid 0: empty */
		uint8_t *buf;
		size_t cap;
	} slot[CACHE_SLOTS];
	unsigned next;			/* round-robin victim */
};

static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;

static void chunk_cache_free(void *p)
{
	struct chunk_cache *c = p;
	for (unsigned i = 0; i < CACHE_SLOTS; i++)
		free(c->slot[i].buf);
	free(c);
}

static void chunk_cache_key_init(void)
{
	pthread_key_create(&cache_key, chunk_cache_free);
}

/* Chunk idx of m, decompressed, from this thread's cache; NULL + *err. */
static const uint8_t *chunk_cache_get(struct snap_memfile *m, uint64_t idx, int *err)
{
	pthread_once(&cache_once, chunk_cache_key_init);
	struct chunk_cache *c = pthread_getspecific(cache_key);
	if (!c) {
		c = calloc(1, sizeof(*c));
		if (!c || pthread_setspecific(cache_key, c)) {
			free(c);
			*err = -ENOMEM;
			return NULL;
		}
	}
	for (unsigned i = 0; i < CACHE_SLOTS; i++)
		if (c->slot[i].uid == m->uid && c->slot[i].idx == idx)
			return c->slot[i].buf;
	unsigned v = c->next++ % CACHE_SLOTS;
	c->slot[v].uid = 0;
	if (c->slot[v].cap < m->hdr.chunk_size) {
		free(c->slot[v].buf);
		c->slot[v].cap = 0;
		if (!(c->slot[v].buf = malloc(m->hdr.chunk_size))) {
			*err = -ENOMEM;
			return NULL;
		}
		c->slot[v].cap = m->hdr.chunk_size;
	}
	*err = snap_memfile_read_chunk(m, idx, c->slot[v].buf);
	if (*err)
		return NULL;
	c->slot[v].uid = m->uid;
	c->slot[v].idx = idx;
	return c->slot[v].buf;
}

/* ---- get ---- */

/* [off, off + len) lies inside chunk idx. */
static int snap_get_in_chunk(struct snap_memfile *m, uint64_t idx, uint64_t off,
			     size_t len, void *scratch, const void **data)
{
	const struct snap_entry *e = &m->entries[idx];
	uint64_t in = off - idx * m->hdr.chunk_size;
	int ret = snap_memfile_check_chunk(m, idx);
	if (ret)
		return ret;
	if (e->kind == SNAP_CHUNK_ZERO)
		return LVM_SOURCE_ZERO;
	if (e->kind == SNAP_CHUNK_RAW) {
		*data = m->map + e->offset + in;
		return 0;
	}
	if (!in && len == snap_chunk_len(m->hdr.mem_size, m->hdr.chunk_size, idx)) {
		ret = snap_memfile_read_chunk(m, idx, scratch);
		*data = scratch;
		return ret;
	}
	const uint8_t *chunk = chunk_cache_get(m, idx, &ret);
	if (chunk)
		*data = chunk + in;
	return ret;
}

/* Copy [off, off + len) of chunk idx into dst (the range lies in the chunk). */
static int snap_copy_from_chunk(struct snap_memfile *m, uint64_t idx, uint64_t off,
				size_t len, uint8_t *dst)
{
	const struct snap_entry *e = &m->entries[idx];
	uint64_t in = off - idx * m->hdr.chunk_size;
	int ret = 0;
	if (e->kind == SNAP_CHUNK_ZERO)
		memset(dst, 0, len);
	else if (e->kind == SNAP_CHUNK_RAW)
		memcpy(dst, m->map + e->offset + in, len);
	else if (!in && len == snap_chunk_len(m->hdr.mem_size, m->hdr.chunk_size, idx))
		ret = snap_memfile_read_chunk(m, idx, dst);
	else {
		const uint8_t *chunk = chunk_cache_get(m, idx, &ret);
		if (chunk)
			memcpy(dst, chunk + in, len);
	}
	return ret;
}

/* A range over chunks first..last (first < last). */
static int snap_get_span(struct snap_memfile *m, uint64_t first, uint64_t last,
			 uint64_t off, size_t len, void *scratch, const void **data)
{
	const uint64_t cs = m->hdr.chunk_size;
	bool all_zero = true, contiguous_raw = true;
	for (uint64_t i = first; i <= last; i++) {
		const struct snap_entry *e = &m->entries[i];
		int ret = snap_memfile_check_chunk(m, i);
		if (ret)
			return ret;
		all_zero &= e->kind == SNAP_CHUNK_ZERO;
		contiguous_raw &= e->kind == SNAP_CHUNK_RAW &&
			(i == first || e->offset == m->entries[i - 1].offset + cs);
	}
	if (all_zero)
		return LVM_SOURCE_ZERO;
	if (contiguous_raw) {
		*data = m->map + m->entries[first].offset + (off - first * cs);
		return 0;
	}
	uint8_t *dst = scratch;
	for (uint64_t i = first, pos = off; i <= last; i++) {
		uint64_t end = (i + 1) * cs < off + len ? (i + 1) * cs : off + len;
		int ret = snap_copy_from_chunk(m, i, pos, (size_t)(end - pos), dst + (pos - off));
		if (ret)
			return ret;
		pos = end;
	}
	*data = scratch;
	return 0;
}

static int snap_source_get(void *ctx, uint64_t off, size_t len, void *scratch,
			   const void **data)
{
	struct snap_memfile *m = ctx;
	if (!len)
		return LVM_SOURCE_ZERO;
	if (off > m->hdr.mem_size || len > m->hdr.mem_size - off)
		return -ERANGE;
	uint64_t first = off / m->hdr.chunk_size, last = (off + len - 1) / m->hdr.chunk_size;
	if (first == last)
		return snap_get_in_chunk(m, first, off, len, scratch, data);
	return snap_get_span(m, first, last, off, len, scratch, data);
}

/*
 * Map the page-table entries of the stored chunks of a large range in one
 * call per run of back-to-back chunks, as the flat-file source does: the CRC
 * check and the COPY then take no per-64 KiB minor faults.
 */
static void snap_source_hint(void *ctx, uint64_t off, size_t len)
{
	struct snap_memfile *m = ctx;
	if (len < (64u << 10) || off >= m->hdr.mem_size || !len)
		return;
	uint64_t end = off + len < m->hdr.mem_size ? off + len : m->hdr.mem_size;
	uint64_t first = off / m->hdr.chunk_size, last = (end - 1) / m->hdr.chunk_size;
	uint64_t run_start = 0, run_end = 0;
	for (uint64_t i = first; i <= last + 1; i++) {
		const struct snap_entry *e = i <= last ? &m->entries[i] : NULL;
		if (e && e->kind != SNAP_CHUNK_ZERO && run_end && e->offset == run_end) {
			run_end += e->length;
			continue;
		}
		if (run_end > run_start) {
			uint64_t a = run_start & ~4095ull;
			madvise((void *)(m->map + a), run_end - a, MADV_POPULATE_READ);
		}
		run_start = run_end = 0;
		if (e && e->kind != SNAP_CHUNK_ZERO)
			run_start = e->offset, run_end = e->offset + e->length;
	}
}

static void snap_source_destroy(void *ctx)
{
	snap_memfile_put(ctx);
}

int snap_memfile_source(struct snap_memfile *m, struct lvm_source **out)
{
	static const struct lvm_source_ops ops = {
		.struct_size = sizeof(ops),
		.get = snap_source_get,
		.hint = snap_source_hint,
		.destroy = snap_source_destroy,
	};
	int ret = lvm_source_create(&ops, snap_memfile_get(m), m->hdr.mem_size, out);
	if (ret)
		snap_memfile_put(m);
	return ret;
}

int snapshot_memory_file_source(const char *path, struct lvm_source **out, char *err,
				size_t errlen)
{
	struct snap_memfile *m;
	int ret = snap_memfile_open(path, &m, err, errlen);
	if (ret)
		return ret;
	ret = snap_memfile_source(m, out);
	snap_memfile_put(m);	/* the source holds its own reference */
	return ret;
}

int lvm_source_snapshot_open(const char *path, struct lvm_source **out)
{
	char err[256] = "", file[4096];
	struct stat st;
	if (!path || !out)
		return errmsg_publish(-EINVAL, "lvm_source_snapshot_open: no path");
	/* A directory is a snapshot: its memory is DIR/memory. */
	if (!stat(path, &st) && S_ISDIR(st.st_mode) &&
	    (size_t)snprintf(file, sizeof(file), "%s/memory", path) < sizeof(file))
		path = file;
	int ret = snapshot_memory_file_source(path, out, err, sizeof(err));
	return errmsg_publish(ret, err);
}
