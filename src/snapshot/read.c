/* SPDX-License-Identifier: MIT */
/*
 * Snapshot reader: DIR/state is read whole and every section checked at
 * open (it is small: metadata and device state); DIR/memory is mapped and
 * its index checked at open, its chunks when first read (source) or all at
 * once (verify).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snapshot/memfile.h"
#include "util/crc32c.h"
#include "util/errmsg.h"
#include "util/io.h"

struct snap_reader {
	uint8_t *state;		/* all of DIR/state */
	size_t state_len;
	struct snap_section *secs;
	unsigned nsecs;
	uint8_t id[SNAP_ID_LEN];
	struct snap_memfile *mem;
};

static int read_whole_file(const char *path, uint8_t **out, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	int ret = 0;
	uint8_t *buf = NULL;
	if (fstat(fd, &st))
		ret = -errno;
	else if (!S_ISREG(st.st_mode))
		ret = -EINVAL;
	else if ((uint64_t)st.st_size > SNAP_MAX_STATE_SIZE)
		ret = -EFBIG;
	else if (!(buf = malloc((size_t)st.st_size + 1)))
		ret = -ENOMEM;
	if (!ret)
		ret = io_read_full(fd, buf, (size_t)st.st_size, -1);
	close(fd);
	if (ret) {
		free(buf);
		return ret;
	}
	*out = buf;
	*len = (size_t)st.st_size;
	return 0;
}

static int reader_parse_sections(struct snap_reader *r, const struct snap_state_hdr *h,
				 const char *path, char *err, size_t errlen)
{
	uint64_t table_size = (uint64_t)h->section_count * SNAP_SECTION_SIZE;
	if (h->section_count > SNAP_MAX_SECTIONS || h->table_offset < SNAP_STATE_HDR_SIZE)
		return errmsg_set(err, errlen, -EBADMSG, "%s: bad section table", path);
	if (h->table_offset > r->state_len || table_size > r->state_len - h->table_offset)
		return errmsg_set(err, errlen, -ENODATA,
				   "%s: truncated (the section table lies past the end)", path);
	const uint8_t *table = r->state + h->table_offset;
	if (crc32c(0, table, table_size) != h->table_crc)
		return errmsg_set(err, errlen, -EBADMSG, "%s: section table checksum mismatch", path);
	r->secs = calloc(h->section_count ? h->section_count : 1, sizeof(*r->secs));
	if (!r->secs)
		return errmsg_set(err, errlen, -ENOMEM, "%s: out of memory", path);
	for (unsigned i = 0; i < h->section_count; i++) {
		struct snap_section *s = &r->secs[i];
		if (snap_section_decode(table + (size_t)i * SNAP_SECTION_SIZE, s) ||
		    s->offset < SNAP_STATE_HDR_SIZE || s->offset % 8 ||
		    s->offset > h->table_offset || s->length > h->table_offset - s->offset)
			return errmsg_set(err, errlen, -EBADMSG, "%s: section %u: bad table entry",
					   path, i);
		if (crc32c(0, r->state + s->offset, s->length) != s->crc)
			return errmsg_set(err, errlen, -EBADMSG,
					   "%s: section %u (type %u): checksum mismatch", path, i,
					   s->type);
	}
	r->nsecs = h->section_count;
	return 0;
}

static int reader_load_state(struct snap_reader *r, const char *path, char *err, size_t errlen)
{
	int ret = read_whole_file(path, &r->state, &r->state_len);
	if (ret)
		return errmsg_set(err, errlen, ret, "%s: %s", path,
				   ret == -EFBIG ? "too large for a state file" : strerror(-ret));
	if (r->state_len < SNAP_STATE_HDR_SIZE) {
		bool ours = r->state_len >= 8 && !memcmp(r->state, SNAP_STATE_MAGIC, 8);
		return errmsg_set(err, errlen, ours ? -ENODATA : -EBADMSG, "%s: %s", path,
				   ours ? "truncated (shorter than the header)"
					: "not a lazyvm snapshot state file");
	}
	struct snap_state_hdr h;
	const char *why;
	ret = snap_state_hdr_decode(r->state, &h, &why);
	if (ret == -EPROTO)
		return errmsg_set(err, errlen, ret, "%s: format version %u, this lazyvm reads %u",
				   path, h.version, SNAP_VERSION);
	if (ret)
		return errmsg_set(err, errlen, ret, "%s: %s", path, why);
	memcpy(r->id, h.id, SNAP_ID_LEN);
	return reader_parse_sections(r, &h, path, err, errlen);
}

/* DIR/state into a new reader; with_memory: DIR/memory too. */
static int reader_open(const char *dir, bool with_memory, struct snap_reader **out, char *err,
		       size_t errlen)
{
	char path[PATH_MAX];
	struct stat st;
	if (stat(dir, &st))
		return errmsg_set(err, errlen, -errno, "%s: %s", dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return errmsg_set(err, errlen, -ENOTDIR, "%s: not a snapshot directory", dir);
	struct snap_reader *r = calloc(1, sizeof(*r));
	if (!r)
		return errmsg_set(err, errlen, -ENOMEM, "%s: out of memory", dir);
	snprintf(path, sizeof(path), "%s/state", dir);
	int ret = reader_load_state(r, path, err, errlen);
	if (!ret && with_memory)
		ret = snapshot_open_memory(r, dir, err, errlen);
	if (ret) {
		snapshot_close(r);
		return ret;
	}
	*out = r;
	return 0;
}

int snapshot_open_memory(struct snap_reader *r, const char *dir, char *err, size_t errlen)
{
	char path[PATH_MAX];
	struct snap_memfile *m;
	snprintf(path, sizeof(path), "%s/memory", dir);
	int ret = snap_memfile_open(path, &m, err, errlen);
	if (ret == -EPROTO)	/* the memfile says which version; say which we read */
		errmsg_set(err, errlen, ret, "%s: unsupported format version, this lazyvm reads %u",
			    path, SNAP_VERSION);
	if (ret)
		return ret;
	if (memcmp(r->id, m->hdr.id, SNAP_ID_LEN)) {
		snap_memfile_put(m);
		return errmsg_set(err, errlen, -EBADMSG,
				   "%s: state and memory belong to different snapshots", dir);
	}
	m->stats.sections = r->nsecs;
	r->mem = m;
	return 0;
}

int snapshot_open(const char *dir, struct snap_reader **out, char *err, size_t errlen)
{
	return reader_open(dir, true, out, err, errlen);
}

int snapshot_open_state(const char *dir, struct snap_reader **out, char *err, size_t errlen)
{
	return reader_open(dir, false, out, err, errlen);
}

void snapshot_close(struct snap_reader *r)
{
	if (!r)
		return;
	snap_memfile_put(r->mem);
	free(r->secs);
	free(r->state);
	free(r);
}

int snapshot_section_nth(struct snap_reader *r, uint32_t type, unsigned n,
			 const void **data, size_t *len)
{
	for (unsigned i = 0; i < r->nsecs; i++) {
		if (r->secs[i].type != type || n--)
			continue;
		*data = r->state + r->secs[i].offset;
		*len = (size_t)r->secs[i].length;
		return 0;
	}
	return -ENOENT;
}

int snapshot_section(struct snap_reader *r, uint32_t type, const void **data, size_t *len)
{
	return snapshot_section_nth(r, type, 0, data, len);
}

unsigned snapshot_section_count(const struct snap_reader *r, uint32_t type)
{
	unsigned n = 0;
	for (unsigned i = 0; i < r->nsecs; i++)
		n += r->secs[i].type == type;
	return n;
}

int snapshot_meta_get(struct snap_reader *r, const char *key, char *buf, size_t len)
{
	const void *data;
	size_t size;
	if (snapshot_section(r, SNAP_SEC_META, &data, &size))
		return -ENOENT;
	const char *p = data, *end = p + size;
	size_t klen = strlen(key);
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl ? nl : end;
		if ((size_t)(eol - p) > klen && !memcmp(p, key, klen) && p[klen] == '=') {
			size_t vlen = (size_t)(eol - p) - klen - 1;
			if (vlen >= len)
				return -ENOSPC;
			memcpy(buf, p + klen + 1, vlen);
			buf[vlen] = 0;
			return 0;
		}
		p = eol + 1;
	}
	return -ENOENT;
}

/* A reader from snapshot_open_state has no memory: zeros and -ENODATA. */
void snapshot_id(const struct snap_reader *r, uint8_t id[16])
{
	memcpy(id, r->id, SNAP_ID_LEN);
}

uint64_t snapshot_mem_size(const struct snap_reader *r)
{
	return r->mem ? r->mem->hdr.mem_size : 0;
}

uint32_t snapshot_chunk_size(const struct snap_reader *r)
{
	return r->mem ? r->mem->hdr.chunk_size : 0;
}

void snapshot_mem_stats(const struct snap_reader *r, struct snap_mem_stats *out)
{
	if (r->mem)
		*out = r->mem->stats;
	else
		*out = (struct snap_mem_stats){ .sections = r->nsecs };
}

int snapshot_verify_progress(struct snap_reader *r,
			     void (*report)(void *ctx, uint64_t idx, uint64_t off, const char *msg),
			     void *ctx, struct progress *p)
{
	return r->mem ? snap_memfile_verify(r->mem, report, ctx, p) : -ENODATA;
}

int snapshot_verify(struct snap_reader *r,
		    void (*report)(void *ctx, uint64_t idx, uint64_t off, const char *msg),
		    void *ctx)
{
	return snapshot_verify_progress(r, report, ctx, NULL);
}

int snapshot_memory_source(struct snap_reader *r, struct lvm_source **out)
{
	return r->mem ? snap_memfile_source(r->mem, out) : -ENODATA;
}
