/* SPDX-License-Identifier: MIT */
/*
 * The shared-cache source: pages already in the per-host cache are served
 * from it (no fetch); a miss is fetched once from the real source and
 * written into the cache (pwrite, then its mark), so every VM after the
 * first finds it there.  The engine maps a served page with UFFDIO_CONTINUE
 * (share mode) or copies it (the fallback where the kernel cannot share).
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/share.h"
#include "source/source.h"

struct share_source {
	struct share_cache *c;
	struct lvm_source *inner;
};

static bool marks_all(struct share_cache *c, uint64_t p, uint64_t n, uint8_t v)
{
	for (uint64_t i = p; i < p + n; i++)
		if (atomic_load_explicit(&c->marks[i], memory_order_acquire) != v)
			return false;
	return true;
}

/* pwrite until done: a short write leaves the page unmarked, never half used. */
static int share_write(int fd, const uint8_t *buf, size_t len, uint64_t off)
{
	while (len) {
		ssize_t n = pwrite(fd, buf, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		buf += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/* Put the fetched pages the cache lacks into it, then mark them filled. */
static int share_fill(struct share_cache *c, uint64_t off, size_t len, const uint8_t *data)
{
	uint64_t p0 = off / 4096, n = len / 4096;
	for (uint64_t a = p0; a < p0 + n;) {
		if (atomic_load(&c->marks[a]) == SHARE_MARK_FILLED) {
			a++;
			continue;
		}
		uint64_t b = a + 1;
		while (b < p0 + n && atomic_load(&c->marks[b]) != SHARE_MARK_FILLED)
			b++;
		int ret = share_write(c->fd, data + ((a - p0) * 4096), (b - a) * 4096, a * 4096);
		if (ret)
			return ret;
		for (uint64_t i = a; i < b; i++)
			atomic_store_explicit(&c->marks[i], SHARE_MARK_FILLED, memory_order_release);
		a = b;
	}
	return 0;
}

static int share_get(void *ctx, uint64_t off, size_t len, void *scratch, const void **data)
{
	struct share_source *s = ctx;
	struct share_cache *c = s->c;
	uint64_t p0 = off / 4096, n = (len + 4095) / 4096;
	if (off % 4096 || len % 4096 || off + len > c->size)
		return -EINVAL;
	if (marks_all(c, p0, n, SHARE_MARK_FILLED)) {
		*data = c->view + off;
		return 0;
	}
	if (marks_all(c, p0, n, SHARE_MARK_ZERO))
		return LVM_SOURCE_ZERO;
	int ret = source_get(s->inner, off, len, scratch, data);
	if (ret == LVM_SOURCE_PENDING)
		return -EOPNOTSUPP;	/* the cache is filled synchronously only */
	if (ret == LVM_SOURCE_ZERO) {
		for (uint64_t i = p0; i < p0 + n; i++) {
			uint8_t expect = SHARE_MARK_UNKNOWN;
			atomic_compare_exchange_strong(&c->marks[i], &expect, SHARE_MARK_ZERO);
		}
		return ret;
	}
	return ret < 0 ? ret : share_fill(c, off, len, *data);
}

static void share_hint(void *ctx, uint64_t off, size_t len)
{
	struct share_source *s = ctx;
	if (s->inner->ops.hint)
		s->inner->ops.hint(s->inner->ctx, off, len);
}

static void share_destroy(void *ctx)
{
	struct share_source *s = ctx;
	lvm_source_destroy(s->inner);
	free(s);
}

int share_source_create(struct share_cache *c, struct lvm_source *inner,
			struct lvm_source **out)
{
	if (lvm_source_size(inner) != c->size)
		return -EINVAL;
	struct share_source *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	*s = (struct share_source){ c, inner };
	static const struct lvm_source_ops ops = { sizeof(ops), share_get, share_hint, share_destroy };
	int ret = lvm_source_create(&ops, s, c->size, out);
	if (ret)
		free(s);
	return ret;
}
