/* SPDX-License-Identifier: MIT */
/* Page sources: the generic wrapper, a flat file (zero-copy mmap), zero. */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22	/* Linux 5.14 */
#endif

#include "source/source.h"
#include "util/abi.h"

int lvm_source_create(const struct lvm_source_ops *ops, void *ctx, uint64_t size,
		      struct lvm_source **out)
{
	struct lvm_source_ops o = { 0 };
	if (!ops)
		return -EINVAL;
	int ret = abi_copy_in(&o, sizeof(o), ops, ABI_SIZE_TO(struct lvm_source_ops, destroy));
	if (ret)
		return ret;
	if (!o.get)
		return -EINVAL;
	struct lvm_source *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->ops = o;
	s->ctx = ctx;
	s->size = size;
	*out = s;
	return 0;
}

void lvm_source_destroy(struct lvm_source *src)
{
	if (!src)
		return;
	if (src->ops.destroy)
		src->ops.destroy(src->ctx);
	free(src);
}

uint64_t lvm_source_size(const struct lvm_source *src)
{
	return src->size;
}

int source_get(struct lvm_source *src, uint64_t off, size_t len, void *scratch,
	       const void **data)
{
	if (off > src->size || len > src->size - off)
		return -ERANGE;
	return src->ops.get(src->ctx, off, len, scratch, data);
}

int lvm_source_read(struct lvm_source *src, uint64_t off, void *buf, size_t len)
{
	const void *data = NULL;
	int ret = source_get(src, off, len, buf, &data);
	if (ret == LVM_SOURCE_ZERO) {
		memset(buf, 0, len);
		return 0;
	}
	if (ret == LVM_SOURCE_PENDING)
		return -EAGAIN;
	if (ret < 0)
		return ret;
	if (data != buf)
		memcpy(buf, data, len);
	return 0;
}

/* ---- flat file ---------------------------------------------------------- */

/* Granularity of the "page tables already populated" map of a file source. */
#define POP_UNIT_SHIFT 16

struct file_source {
	const uint8_t *map;	/* the whole file, read-only, shared */
	size_t map_len;
	uint64_t offset;
	_Atomic uint8_t *populated;	/* per 64 KiB of map: MADV_POPULATE_READ done */
};

static int file_get(void *ctx, uint64_t off, size_t len, void *scratch, const void **data)
{
	struct file_source *f = ctx;
	(void)scratch;
	/* Zero-copy: UFFDIO_COPY reads straight from the page cache through this
	 * mapping.  A file truncated under us makes that copy fail with EFAULT
	 * (reported), not SIGBUS in the handler. */
	*data = f->map + f->offset + off;
	(void)len;
	return 0;
}

/*
 * Map the page-table entries of a large range in one call: otherwise the
 * COPY that reads it takes a minor fault every 64 KiB inside copy_from_user
 * (measured: ~25% of background-fill throughput).  Also reads a cold file
 * range in one go.  Single pages are left to the COPY's own fault.
 */
static void file_hint(void *ctx, uint64_t off, size_t len)
{
	struct file_source *f = ctx;
	if (len < (1u << POP_UNIT_SHIFT))
		return;
	uint64_t start = (f->offset + off) & ~4095ull;
	uint64_t end = f->offset + off + len;
	/* Populating a populated range still walks every page (GUP): measured
	 * ~5% of background-fill time when one source serves a range again
	 * (several VMs from one snapshot file, a refill after REMOVE).  The map
	 * is only a hint: if reclaim unmapped pages since, COPY faults them in. */
	uint64_t u = start >> POP_UNIT_SHIFT, u_end = (end - 1) >> POP_UNIT_SHIFT;
	while (u <= u_end && atomic_load_explicit(&f->populated[u], memory_order_relaxed))
		u++;
	if (u > u_end)
		return;
	madvise((void *)(f->map + start), end - start, MADV_POPULATE_READ);
	/* Mark only the units the range covered whole. */
	for (u = (start + (1u << POP_UNIT_SHIFT) - 1) >> POP_UNIT_SHIFT;
	     u < end >> POP_UNIT_SHIFT; u++)
		atomic_store_explicit(&f->populated[u], 1, memory_order_relaxed);
}

static void file_destroy(void *ctx)
{
	struct file_source *f = ctx;
	if (f->map_len)
		munmap((void *)f->map, f->map_len);
	free((void *)f->populated);
	free(f);
}

int lvm_source_file_open(const char *path, uint64_t offset, struct lvm_source **out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st)) {
		int err = -errno;
		close(fd);
		return err;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size < offset) {
		close(fd);
		return S_ISREG(st.st_mode) ? -ERANGE : -EINVAL;
	}
	struct file_source *f = calloc(1, sizeof(*f));
	if (!f) {
		close(fd);
		return -ENOMEM;
	}
	f->offset = offset;
	f->map_len = (size_t)st.st_size;
	f->populated = calloc((f->map_len >> POP_UNIT_SHIFT) + 1, 1);
	if (!f->populated) {
		close(fd);
		free(f);
		return -ENOMEM;
	}
	if (f->map_len) {
		void *p = mmap(NULL, f->map_len, PROT_READ, MAP_SHARED, fd, 0);
		if (p == MAP_FAILED) {
			int err = -errno;
			close(fd);
			free((void *)f->populated);
			free(f);
			return err;
		}
		f->map = p;
	}
	close(fd);
	static const struct lvm_source_ops ops = {
		.struct_size = sizeof(ops),
		.get = file_get, .hint = file_hint, .destroy = file_destroy,
	};
	int ret = lvm_source_create(&ops, f, (uint64_t)st.st_size - offset, out);
	if (ret)
		file_destroy(f);
	return ret;
}

/* ---- zero --------------------------------------------------------------- */

static int zero_get(void *ctx, uint64_t off, size_t len, void *scratch, const void **data)
{
	(void)ctx, (void)off, (void)len, (void)scratch, (void)data;
	return LVM_SOURCE_ZERO;
}

int lvm_source_zero(uint64_t size, struct lvm_source **out)
{
	static const struct lvm_source_ops ops = { .struct_size = sizeof(ops), .get = zero_get };
	return lvm_source_create(&ops, NULL, size, out);
}
