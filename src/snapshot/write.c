/* SPDX-License-Identifier: MIT */
/*
 * Snapshot writer.  Sections are appended to DIR/.state.tmp and chunks to
 * DIR/.memory.tmp as they come (chunks from any thread, in any order: a
 * mutex only reserves the file range, the copy runs outside it); the index
 * and both headers are written on close, then the files are fsynced and
 * renamed into place.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "snapshot/format.h"
#include "snapshot/snapshot.h"
#include "snapshot/zstd.h"
#include "util/crc32c.h"
#include "util/io.h"
#include "util/progress.h"
#include "util/zero.h"

#define STATE_TMP  ".state.tmp"
#define MEMORY_TMP ".memory.tmp"

struct snap_writer {
	int dirfd, state_fd, mem_fd;
	struct snap_write_opts o;
	uint8_t id[SNAP_ID_LEN];

	pthread_mutex_t lock;		/* everything below */
	uint64_t state_pos;
	struct snap_section *secs;
	unsigned nsecs, secs_cap;

	bool mem_begun, any_zstd;
	uint64_t mem_size, chunk_count;
	uint64_t append_pos;		/* next free byte of the memory file */
	struct snap_entry *entries;
	uint8_t *written;		/* one byte per chunk */
	int err;			/* first failure; close refuses to publish */
};

static int write_full(int fd, const void *buf, size_t len, uint64_t off)
{
	return io_write_full(fd, buf, len, (int64_t)off);
}

static void writer_set_error(struct snap_writer *w, int err)
{
	pthread_mutex_lock(&w->lock);
	if (!w->err)
		w->err = err;
	pthread_mutex_unlock(&w->lock);
}

static void snapshot_new_id(uint8_t id[SNAP_ID_LEN])
{
	if (getrandom(id, SNAP_ID_LEN, GRND_NONBLOCK) == SNAP_ID_LEN)
		return;
	/* No entropy yet (early boot): time and pid still tell snapshots apart. */
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t a = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	uint64_t b = (uint64_t)getpid() << 32 ^ (uint64_t)(uintptr_t)id;
	memcpy(id, &a, 8);
	memcpy(id + 8, &b, 8);
}

static int writer_check_opts(const struct snap_write_opts *o)
{
	uint32_t cs = o->chunk_size;
	if (cs < SNAP_MIN_CHUNK_SIZE || cs > SNAP_MAX_CHUNK_SIZE || (cs & (cs - 1)))
		return -EINVAL;
	if (o->compress && !snap_zstd_available())
		return -ENOTSUP;
	return 0;
}

int snapshot_writer_open(const char *dir, const struct snap_write_opts *o,
			 struct snap_writer **out)
{
	struct snap_write_opts opts = { .chunk_size = SNAP_DEFAULT_CHUNK_SIZE };
	if (o)
		opts = *o;
	if (!opts.chunk_size)
		opts.chunk_size = SNAP_DEFAULT_CHUNK_SIZE;
	int ret = writer_check_opts(&opts);
	if (ret)
		return ret;
	if (mkdir(dir, 0755) && errno != EEXIST)
		return -errno;
	struct snap_writer *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->o = opts;
	w->state_fd = w->mem_fd = -1;
	pthread_mutex_init(&w->lock, NULL);
	snapshot_new_id(w->id);
	w->state_pos = SNAP_STATE_HDR_SIZE;
	w->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (w->dirfd >= 0)
		w->state_fd = openat(w->dirfd, STATE_TMP,
				     O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (w->state_fd >= 0)
		w->mem_fd = openat(w->dirfd, MEMORY_TMP,
				   O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (w->mem_fd < 0) {
		ret = -errno;
		snapshot_writer_abort(w);
		return ret;
	}
	*out = w;
	return 0;
}

int snapshot_write_section(struct snap_writer *w, uint32_t type, const void *data,
			   size_t len)
{
	if (!w || (len && !data))
		return -EINVAL;
	pthread_mutex_lock(&w->lock);
	int ret = 0;
	if (w->nsecs == SNAP_MAX_SECTIONS || w->state_pos + len > SNAP_MAX_STATE_SIZE) {
		ret = -E2BIG;
		goto out;
	}
	if (w->nsecs == w->secs_cap) {
		unsigned cap = w->secs_cap ? w->secs_cap * 2 : 16;
		struct snap_section *s = realloc(w->secs, cap * sizeof(*s));
		if (!s) {
			ret = -ENOMEM;
			goto out;
		}
		w->secs = s;
		w->secs_cap = cap;
	}
	struct snap_section *s = &w->secs[w->nsecs];
	*s = (struct snap_section){ type, w->state_pos, len, crc32c(0, data, len) };
	ret = write_full(w->state_fd, data, len, w->state_pos);
	if (!ret) {
		w->nsecs++;
		w->state_pos = (w->state_pos + len + 7) & ~7ull;	/* 8-aligned blobs */
	}
out:
	if (ret && !w->err)
		w->err = ret;
	pthread_mutex_unlock(&w->lock);
	return ret;
}

int snapshot_mem_begin(struct snap_writer *w, uint64_t mem_size)
{
	if (!w || !mem_size || mem_size % 4096 || mem_size > SNAP_MAX_MEM_SIZE)
		return -EINVAL;
	if (w->mem_begun)
		return -EALREADY;
	uint64_t n = (mem_size + w->o.chunk_size - 1) / w->o.chunk_size;
	w->entries = calloc(n, sizeof(*w->entries));
	w->written = calloc(n, 1);
	if (!w->entries || !w->written)
		return -ENOMEM;
	w->mem_size = mem_size;
	w->chunk_count = n;
	w->append_pos = SNAP_MEM_DATA_ALIGN;
	w->mem_begun = true;
	return 0;
}

/*
 * Decide how chunk data is stored: zero, raw, or zstd when that saves at
 * least an eighth (otherwise raw: it is served zero-copy, zstd is not).
 * *stored points at data or at the malloc'ed *zbuf.
 */
static int chunk_encode(struct snap_writer *w, const uint8_t *data, uint32_t len,
			struct snap_entry *e, const uint8_t **stored, uint8_t **zbuf)
{
	*zbuf = NULL;
	*stored = data;
	if (buf_is_zero(data, len)) {
		*e = (struct snap_entry){ .kind = SNAP_CHUNK_ZERO };
		return 0;
	}
	e->kind = SNAP_CHUNK_RAW;
	e->length = len;
	e->content_crc = crc32c(0, data, len);
	e->crc = e->content_crc;
	if (!w->o.compress)
		return 0;
	size_t cap = snap_zstd_bound(len);
	*zbuf = malloc(cap);
	if (!*zbuf)
		return -ENOMEM;
	ssize_t z = snap_zstd_compress(*zbuf, cap, data, len, w->o.zstd_level);
	if (z < 0)
		return (int)z;
	if ((size_t)z <= len - len / 8) {
		e->kind = SNAP_CHUNK_ZSTD;
		e->length = (uint32_t)z;
		e->crc = crc32c(0, *zbuf, (size_t)z);
		*stored = *zbuf;
	}
	return 0;
}

/* Reserve where chunk idx goes (raw chunks page-aligned) and claim idx. */
static int chunk_reserve(struct snap_writer *w, uint64_t idx, struct snap_entry *e)
{
	int ret = 0;
	pthread_mutex_lock(&w->lock);
	if (w->written[idx]) {
		ret = -EEXIST;
	} else {
		w->written[idx] = 1;
		if (e->kind != SNAP_CHUNK_ZERO) {
			uint64_t align = e->kind == SNAP_CHUNK_RAW ? SNAP_MEM_DATA_ALIGN : 8;
			e->offset = (w->append_pos + align - 1) & ~(align - 1);
			w->append_pos = e->offset + e->length;
		}
		if (e->kind == SNAP_CHUNK_ZSTD)
			w->any_zstd = true;
		w->entries[idx] = *e;
	}
	pthread_mutex_unlock(&w->lock);
	return ret;
}

int snapshot_mem_chunk(struct snap_writer *w, uint64_t idx, const void *data)
{
	if (!w || !data || !w->mem_begun)
		return -EINVAL;
	if (idx >= w->chunk_count)
		return -ERANGE;
	uint32_t len = snap_chunk_len(w->mem_size, w->o.chunk_size, idx);
	struct snap_entry e = { 0 };
	const uint8_t *stored;
	uint8_t *zbuf;
	int ret = chunk_encode(w, data, len, &e, &stored, &zbuf);
	if (!ret)
		ret = chunk_reserve(w, idx, &e);
	if (!ret && e.kind != SNAP_CHUNK_ZERO)
		ret = write_full(w->mem_fd, stored, e.length, e.offset);
	free(zbuf);
	if (ret && ret != -EEXIST)
		writer_set_error(w, ret);
	return ret;
}

/* ---- whole memory, with worker threads when compressing ---- */

struct write_job {
	struct snap_writer *w;
	const uint8_t *mem;
	struct progress *p;
	_Atomic uint64_t next;	/* next chunk to take */
	_Atomic int err;
};

#define WRITE_BATCH 16	/* chunks a worker takes at once: keeps raw runs contiguous */

static void *write_worker(void *arg)
{
	struct write_job *j = arg;
	struct snap_writer *w = j->w;
	for (;;) {
		uint64_t first = atomic_fetch_add(&j->next, WRITE_BATCH);
		if (first >= w->chunk_count || atomic_load(&j->err))
			break;
		uint64_t end = first + WRITE_BATCH < w->chunk_count ? first + WRITE_BATCH
								 : w->chunk_count;
		for (uint64_t i = first; i < end; i++) {
			int ret = snapshot_mem_chunk(w, i, j->mem + i * w->o.chunk_size);
			if (ret) {
				int zero = 0;
				atomic_compare_exchange_strong(&j->err, &zero, ret);
				return NULL;
			}
			progress_add(j->p, snap_chunk_len(w->mem_size, w->o.chunk_size, i));
		}
	}
	return NULL;
}

int snapshot_write_memory(struct snap_writer *w, const void *mem, uint64_t size,
			  struct progress *p)
{
	if (!w || !mem)
		return -EINVAL;
	if (!w->mem_begun) {
		int ret = snapshot_mem_begin(w, size);
		if (ret)
			return ret;
	}
	if (size != w->mem_size)
		return -EINVAL;
	struct write_job j = { .w = w, .mem = mem, .p = p };
	/* Compression is CPU-bound: one worker per CPU.  Plain copies are
	 * bound by the page cache; one thread keeps the file sequential. */
	long cpus = w->o.compress ? sysconf(_SC_NPROCESSORS_ONLN) : 1;
	unsigned n = cpus < 1 ? 1 : cpus > 16 ? 16 : (unsigned)cpus;
	pthread_t tid[16];
	unsigned started = 0;
	for (unsigned i = 1; i < n; i++)
		if (!pthread_create(&tid[started], NULL, write_worker, &j))
			started++;
	write_worker(&j);
	for (unsigned i = 0; i < started; i++)
		pthread_join(tid[i], NULL);
	return atomic_load(&j.err);
}

/* ---- publish ---- */

static int writer_finish_memory(struct snap_writer *w)
{
	for (uint64_t i = 0; i < w->chunk_count; i++)
		if (!w->written[i])
			return -ENODATA;	/* publishing would invent zeros */
	uint64_t index_off = (w->append_pos + 7) & ~7ull;
	size_t index_size = (size_t)w->chunk_count * SNAP_ENTRY_SIZE;
	uint8_t *index = malloc(index_size);
	if (!index)
		return -ENOMEM;
	for (uint64_t i = 0; i < w->chunk_count; i++)
		snap_entry_encode(index + i * SNAP_ENTRY_SIZE, &w->entries[i]);
	struct snap_mem_hdr h = {
		.mem_size = w->mem_size, .chunk_size = w->o.chunk_size,
		.flags = w->any_zstd ? SNAP_MEM_FLAG_ZSTD : 0,
		.chunk_count = w->chunk_count, .data_offset = SNAP_MEM_DATA_ALIGN,
		.index_offset = index_off, .index_size = index_size,
		.index_crc = crc32c(0, index, index_size),
	};
	memcpy(h.id, w->id, SNAP_ID_LEN);
	uint8_t hdr[SNAP_MEM_HDR_SIZE];
	snap_mem_hdr_encode(hdr, &h);
	int ret = write_full(w->mem_fd, index, index_size, index_off);
	free(index);
	if (!ret)
		ret = write_full(w->mem_fd, hdr, sizeof(hdr), 0);
	if (!ret && fsync(w->mem_fd))
		ret = -errno;
	return ret;
}

static int writer_finish_state(struct snap_writer *w)
{
	size_t table_size = (size_t)w->nsecs * SNAP_SECTION_SIZE;
	uint8_t *table = malloc(table_size ? table_size : 1);
	if (!table)
		return -ENOMEM;
	for (unsigned i = 0; i < w->nsecs; i++)
		snap_section_encode(table + (size_t)i * SNAP_SECTION_SIZE, &w->secs[i]);
	struct snap_state_hdr h = {
		.section_count = w->nsecs, .table_offset = w->state_pos,
		.table_crc = crc32c(0, table, table_size),
	};
	memcpy(h.id, w->id, SNAP_ID_LEN);
	uint8_t hdr[SNAP_STATE_HDR_SIZE];
	snap_state_hdr_encode(hdr, &h);
	int ret = write_full(w->state_fd, table, table_size, w->state_pos);
	free(table);
	if (!ret)
		ret = write_full(w->state_fd, hdr, sizeof(hdr), 0);
	if (!ret && fsync(w->state_fd))
		ret = -errno;
	return ret;
}

int snapshot_writer_close(struct snap_writer *w)
{
	if (!w)
		return -EINVAL;
	int ret = w->err;
	if (!ret && !w->mem_begun)
		ret = -ENODATA;
	if (!ret)
		ret = writer_finish_memory(w);
	if (!ret)
		ret = writer_finish_state(w);
	/* Memory first: a crash between the renames leaves an old state next to
	 * new memory, which the snapshot ids then refuse to pair. */
	if (!ret && renameat(w->dirfd, MEMORY_TMP, w->dirfd, "memory"))
		ret = -errno;
	if (!ret && renameat(w->dirfd, STATE_TMP, w->dirfd, "state"))
		ret = -errno;
	if (!ret && fsync(w->dirfd))
		ret = -errno;
	snapshot_writer_abort(w);	/* frees; the tmp names are gone on success */
	return ret;
}

void snapshot_writer_abort(struct snap_writer *w)
{
	if (!w)
		return;
	if (w->state_fd >= 0)
		close(w->state_fd);
	if (w->mem_fd >= 0)
		close(w->mem_fd);
	if (w->dirfd >= 0) {
		unlinkat(w->dirfd, STATE_TMP, 0);
		unlinkat(w->dirfd, MEMORY_TMP, 0);
		close(w->dirfd);
	}
	pthread_mutex_destroy(&w->lock);
	free(w->secs);
	free(w->entries);
	free(w->written);
	free(w);
}
