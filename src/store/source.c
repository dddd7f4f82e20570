/* SPDX-License-Identifier: MIT */
/*
 * An lvm_source over a manifest: a chunk is fetched (cache, then store,
 * verified) the first time any byte of it is asked for, by the thread that
 * asks.  A fault therefore fetches its own chunk at once, on its own
 * connection, never queued behind prefetch; prefetch threads (optional)
 * walk the manifest in order on connections of their own, so the
 * background fill mostly finds chunks already here.  A chunk that cannot
 * be fetched within the retry bounds fails get() with -EIO (the engine then
 * stops the VM); no byte is served that did not match its hash.
 *
 * Fetched chunks stay decoded in this process until the source is
 * destroyed (the engine copies from them; a diff snapshot reads them).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "source/source.h"
#include "store/store.h"

enum { CH_NONE, CH_LOADING, CH_READY, CH_FAILED };

#define STORE_MAX_PREFETCH 16
#define STORE_MAX_HANDLES 64

struct store_source {
	struct manifest m;
	struct objstore *store;
	struct chunk_cache *cache;
	struct store_source_opts o;
	_Atomic uint8_t *state;
	uint8_t **buf;
	pthread_mutex_t lock;		/* handles; the condvar */
	pthread_cond_t changed;
	struct objstore *handles[STORE_MAX_HANDLES];	/* idle per-thread clones */
	unsigned nhandles;
	pthread_t prefetch[STORE_MAX_PREFETCH];
	unsigned nprefetch;
	_Atomic uint64_t cursor;	/* next chunk a prefetch thread looks at */
	_Atomic bool stop;
	_Atomic bool failed_once;
	struct chunk_fetch_stats st;
};

/* A store handle for this call: an idle clone, a new one, or (when the
 * backend has no clones) the shared store under the lock. */
static struct objstore *handle_get(struct store_source *s)
{
	pthread_mutex_lock(&s->lock);
	struct objstore *h = s->nhandles ? s->handles[--s->nhandles] : NULL;
	pthread_mutex_unlock(&s->lock);
	if (!h && objstore_clone(s->store, &h))
		h = NULL;
	return h;
}

static void handle_put(struct store_source *s, struct objstore *h)
{
	pthread_mutex_lock(&s->lock);
	if (s->nhandles < STORE_MAX_HANDLES)
		s->handles[s->nhandles++] = h, h = NULL;
	pthread_mutex_unlock(&s->lock);
	objstore_close(h);
}

static int chunk_load(struct store_source *s, uint64_t idx)
{
	size_t len = manifest_chunk_len(&s->m, idx);
	uint8_t *b = malloc(len);
	struct objstore *h = handle_get(s);
	char err[1400];
	int ret = !b ? -ENOMEM : !h ? -ENOMEM :
		  store_fetch_chunk(h, s->cache, s->m.hash[idx], b, len, &s->st, err, sizeof(err));
	if (h)
		handle_put(s, h);
	if (ret && b && s->o.on_error && !atomic_exchange(&s->failed_once, true)) {
		char line[1600];
		snprintf(line, sizeof(line), "guest memory 0x%llx: %s",
			 (unsigned long long)(idx * s->m.chunk_size), err);
		s->o.on_error(s->o.on_error_ctx, line);
	}
	pthread_mutex_lock(&s->lock);
	if (ret)
		free(b);
	else
		s->buf[idx] = b;
	atomic_store(&s->state[idx], ret ? CH_FAILED : CH_READY);
	pthread_cond_broadcast(&s->changed);
	pthread_mutex_unlock(&s->lock);
	return ret;
}

/* Chunk idx decoded in s->buf[idx]: fetched by this thread or by another. */
static int chunk_ensure(struct store_source *s, uint64_t idx)
{
	uint8_t st = atomic_load(&s->state[idx]);
	if (st == CH_READY)
		return 0;
	uint8_t none = CH_NONE;
	if (st == CH_NONE && atomic_compare_exchange_strong(&s->state[idx], &none, CH_LOADING))
		return chunk_load(s, idx) ? -EIO : 0;
	pthread_mutex_lock(&s->lock);
	while ((st = atomic_load(&s->state[idx])) == CH_LOADING)
		pthread_cond_wait(&s->changed, &s->lock);
	pthread_mutex_unlock(&s->lock);
	return st == CH_READY ? 0 : -EIO;
}

static int store_get(void *ctx, uint64_t off, size_t len, void *scratch, const void **data)
{
	struct store_source *s = ctx;
	uint32_t cs = s->m.chunk_size;
	uint64_t first = off / cs, last = (off + len - 1) / cs;
	bool any = false;
	for (uint64_t i = first; i <= last; i++)
		any |= s->m.present[i];
	if (!any)
		return LVM_SOURCE_ZERO;
	if (first == last) {	/* zero-copy from the decoded chunk */
		int ret = chunk_ensure(s, first);
		if (!ret)
			*data = s->buf[first] + (off - first * cs);
		return ret;
	}
	uint8_t *out = scratch;
	for (uint64_t i = first; i <= last; i++) {
		uint64_t cstart = i * cs, from = off > cstart ? off - cstart : 0;
		uint64_t to = manifest_chunk_len(&s->m, i);
		if (cstart + to > off + len)
			to = off + len - cstart;
		uint8_t *dst = out + (cstart + from - off);
		if (!s->m.present[i]) {
			memset(dst, 0, to - from);
			continue;
		}
		int ret = chunk_ensure(s, i);
		if (ret)
			return ret;
		memcpy(dst, s->buf[i] + from, to - from);
	}
	*data = scratch;
	return 0;
}

static void *prefetch_thread(void *arg)
{
	struct store_source *s = arg;
	while (!atomic_load(&s->stop)) {
		uint64_t i = atomic_fetch_add(&s->cursor, 1);
		if (i >= s->m.chunk_count)
			break;
		uint8_t none = CH_NONE;
		if (s->m.present[i] &&
		    atomic_compare_exchange_strong(&s->state[i], &none, CH_LOADING))
			chunk_load(s, i);
	}
	return NULL;
}

static void store_destroy(void *ctx)
{
	struct store_source *s = ctx;
	atomic_store(&s->stop, true);
	for (unsigned i = 0; i < s->nprefetch; i++)
		pthread_join(s->prefetch[i], NULL);
	for (unsigned i = 0; i < s->nhandles; i++)
		objstore_close(s->handles[i]);
	if (s->buf)
		for (uint64_t i = 0; i < s->m.chunk_count; i++)
			free(s->buf[i]);
	free(s->buf);
	free((void *)s->state);
	manifest_free(&s->m);
	pthread_cond_destroy(&s->changed);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

static const struct lvm_source_ops store_ops = {
	.struct_size = sizeof(struct lvm_source_ops), .get = store_get, .destroy = store_destroy,
};

int store_source_create(struct manifest *m, struct objstore *st, struct chunk_cache *c,
			const struct store_source_opts *o, struct lvm_source **out,
			struct store_source **handle)
{
	struct store_source *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->m = *m;
	memset(m, 0, sizeof(*m));
	s->store = st;
	s->cache = c;
	if (o)
		s->o = *o;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->changed, NULL);
	s->state = calloc(s->m.chunk_count, 1);
	s->buf = calloc(s->m.chunk_count, sizeof(*s->buf));
	int ret = s->state && s->buf ? lvm_source_create(&store_ops, s, s->m.mem_size, out)
				     : -ENOMEM;
	if (ret) {
		store_destroy(s);
		return ret;
	}
	unsigned n = s->o.prefetch_threads < STORE_MAX_PREFETCH ? s->o.prefetch_threads
								 : STORE_MAX_PREFETCH;
	for (; s->nprefetch < n; s->nprefetch++)
		if (pthread_create(&s->prefetch[s->nprefetch], NULL, prefetch_thread, s))
			break;
	if (handle)
		*handle = s;
	return 0;
}

const struct chunk_fetch_stats *store_source_stats(const struct store_source *h)
{
	return &h->st;
}

bool store_source_chunk_loaded(const struct store_source *h, uint64_t idx)
{
	return idx < h->m.chunk_count && atomic_load(&h->state[idx]) == CH_READY;
}

const struct manifest *store_source_manifest(const struct store_source *h)
{
	return &h->m;
}
