/* SPDX-License-Identifier: MIT */
/*
 * The memory of a diff snapshot: a VM restored lazily from snapshot B, as
 * it is now, read without faulting in anything that was never fetched
 * (Cloud Hypervisor #8525: a re-snapshot that read guest memory through
 * the lazy mapping corrupted the new snapshot).  Per page:
 *
 *   present in guest memory (fetched, maybe written since)  -> guest memory
 *   never fetched                                           -> B's content
 *
 * A chunk with no present page is "clean": its hash is B's, and it is not
 * read at all (store_push references it).  A dirty chunk is composed page
 * by page and hashed: unchanged content gives B's hash again and is not
 * uploaded, so only chunks that really changed go up.  With copy (live
 * snapshots) the dirty chunks are composed now, while the VM is paused, so
 * the guest may run on while they are pushed.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "source/source.h"
#include "store/store.h"

struct store_diff {
	struct store_diff_opts o;
	uint32_t chunk_size;
	uint64_t chunks;
	uint8_t *dirty;
	uint8_t **copy;			/* copy mode: composed dirty chunks */
	uint64_t dirty_count;
};

/* [off, off + len) of the diff's memory (within one chunk) into dst. */
static int diff_compose(struct store_diff *d, uint64_t off, size_t len, uint8_t *dst)
{
	size_t ps = d->o.page_size;
	for (size_t done = 0; done < len; ) {
		uint64_t page = (off + done) / ps * ps;
		size_t n = page + ps - (off + done);
		if (n > len - done)
			n = len - done;
		int ret = 0;
		if (d->o.is_present(d->o.ctx, page))
			memcpy(dst + done, d->o.mem + off + done, n);
		else
			ret = lvm_source_read(d->o.base, off + done, dst + done, n);
		if (ret)
			return ret;
		done += n;
	}
	return 0;
}

static int diff_get(void *ctx, uint64_t off, size_t len, void *scratch, const void **data)
{
	struct store_diff *d = ctx;
	uint8_t *out = scratch;
	for (size_t done = 0; done < len; ) {
		uint64_t i = (off + done) / d->chunk_size, in = (off + done) % d->chunk_size;
		size_t n = d->chunk_size - in < len - done ? d->chunk_size - in : len - done;
		int ret = 0;
		if (d->copy && d->copy[i])
			memcpy(out + done, d->copy[i] + in, n);
		else if (!d->dirty[i])
			ret = lvm_source_read(d->o.base, off + done, out + done, n);
		else
			ret = diff_compose(d, off + done, n, out + done);
		if (ret)
			return ret;
		done += n;
	}
	*data = scratch;
	return 0;
}

static void diff_destroy(void *ctx)
{
	struct store_diff *d = ctx;
	if (d->copy)
		for (uint64_t i = 0; i < d->chunks; i++)
			free(d->copy[i]);
	free(d->copy);
	free(d->dirty);
	free(d);
}

static const struct lvm_source_ops diff_ops = {
	.struct_size = sizeof(struct lvm_source_ops), .get = diff_get, .destroy = diff_destroy,
};

static int diff_find_dirty(struct store_diff *d)
{
	const struct manifest *m = d->o.base_manifest;
	for (uint64_t i = 0; i < d->chunks; i++) {
		uint64_t start = i * d->chunk_size, end = start + manifest_chunk_len(m, i);
		for (uint64_t p = start; p < end && !d->dirty[i]; p += d->o.page_size)
			d->dirty[i] = d->o.is_present(d->o.ctx, p);
		d->dirty_count += d->dirty[i];
	}
	if (!d->o.copy)
		return 0;
	if (!(d->copy = calloc(d->chunks, sizeof(*d->copy))))
		return -ENOMEM;
	for (uint64_t i = 0; i < d->chunks; i++) {
		if (!d->dirty[i])
			continue;
		size_t len = manifest_chunk_len(m, i);
		if (!(d->copy[i] = malloc(len)))
			return -ENOMEM;
		int ret = diff_compose(d, i * d->chunk_size, len, d->copy[i]);
		if (ret)
			return ret;
	}
	return 0;
}

int store_diff_create(const struct store_diff_opts *o, struct lvm_source **out,
		      const uint8_t **dirty, uint64_t *dirty_count)
{
	struct store_diff *d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->o = *o;
	d->chunk_size = o->base_manifest->chunk_size;
	d->chunks = o->base_manifest->chunk_count;
	int ret = o->base_manifest->mem_size != o->size || !o->page_size ||
		  d->chunk_size % o->page_size ? -EINVAL : 0;
	if (!ret)
		ret = (d->dirty = calloc(d->chunks, 1)) ? diff_find_dirty(d) : -ENOMEM;
	if (!ret)
		ret = lvm_source_create(&diff_ops, d, o->size, out);
	if (ret) {
		diff_destroy(d);
		return ret;
	}
	*dirty = d->dirty;
	*dirty_count = d->dirty_count;
	return 0;
}
