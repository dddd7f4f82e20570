/* SPDX-License-Identifier: MIT */
/*
 * Push a snapshot into a store: cut its memory into chunks, hash each, and
 * upload only those the store does not list yet (one listing of chunks/ up
 * front, then a set shared by the upload threads so a chunk that occurs
 * twice goes up once).  State, then manifest, go last: a manifest is only
 * visible once everything it names is there.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/chunk.h"
#include "store/store.h"
#include "util/zero.h"

#define PUSH_DEFAULT_CHUNK (512u << 10)
#define PUSH_MAX_THREADS 16

/* A set of hashes (open addressing; the first 8 bytes of a SHA-256 are as
 * good a slot index as any). */
struct hashset {
	uint8_t (*slot)[SHA256_LEN];
	uint8_t *used;
	size_t cap, n;
	pthread_mutex_t lock;
};

static int hashset_init(struct hashset *h, size_t cap)
{
	h->cap = 1024;
	while (h->cap < cap * 2)
		h->cap *= 2;
	h->n = 0;
	h->slot = calloc(h->cap, SHA256_LEN);
	h->used = calloc(h->cap, 1);
	pthread_mutex_init(&h->lock, NULL);
	return h->slot && h->used ? 0 : -ENOMEM;
}

static void hashset_free(struct hashset *h)
{
	free(h->slot);
	free(h->used);
	pthread_mutex_destroy(&h->lock);
}

/* Insert; true if it was new.  Callers keep n < cap / 2 (sized up front,
 * grown by the listing). */
static bool hashset_add_locked(struct hashset *h, const uint8_t k[SHA256_LEN])
{
	uint64_t i;
	memcpy(&i, k, sizeof(i));
	for (i &= h->cap - 1; h->used[i]; i = (i + 1) & (h->cap - 1))
		if (!memcmp(h->slot[i], k, SHA256_LEN))
			return false;
	h->used[i] = 1;
	memcpy(h->slot[i], k, SHA256_LEN);
	h->n++;
	return true;
}

static int hashset_grow(struct hashset *h)
{
	struct hashset g;
	if (hashset_init(&g, h->cap)) {
		hashset_free(&g);
		return -ENOMEM;
	}
	for (size_t i = 0; i < h->cap; i++)
		if (h->used[i])
			hashset_add_locked(&g, h->slot[i]);
	free(h->slot);
	free(h->used);
	h->slot = g.slot;
	h->used = g.used;
	h->cap = g.cap;
	pthread_mutex_destroy(&g.lock);
	return 0;
}

static bool hashset_add(struct hashset *h, const uint8_t k[SHA256_LEN])
{
	pthread_mutex_lock(&h->lock);
	bool added = hashset_add_locked(h, k);
	pthread_mutex_unlock(&h->lock);
	return added;
}

struct push_job {
	struct objstore *store;
	struct lvm_source *src;
	const struct store_push_opts *o;
	struct manifest *m;
	struct hashset known;
	_Atomic uint64_t next;
	_Atomic int err;
	_Atomic uint64_t zero, uploaded, present, up_bytes;
	pthread_mutex_t err_lock;
	char errmsg[1024];
};

static void listed_chunk(void *arg, const char *key)
{
	struct push_job *j = arg;
	uint8_t h[SHA256_LEN];
	if (strlen(key) != 7 + SHA256_HEX_LEN || sha256_from_hex(key + 7, h))
		return;
	if (j->known.n + 1 > j->known.cap / 2 && hashset_grow(&j->known))
		return;	/* at worst, uploaded again */
	hashset_add_locked(&j->known, h);
}

static void push_fail(struct push_job *j, int err, const char *msg)
{
	pthread_mutex_lock(&j->err_lock);
	if (!atomic_load(&j->err)) {
		atomic_store(&j->err, err);
		snprintf(j->errmsg, sizeof(j->errmsg), "%s", msg);
	}
	pthread_mutex_unlock(&j->err_lock);
}

static bool hashset_has(struct hashset *h, const uint8_t k[SHA256_LEN])
{
	uint64_t i;
	memcpy(&i, k, sizeof(i));
	pthread_mutex_lock(&h->lock);
	for (i &= h->cap - 1; h->used[i]; i = (i + 1) & (h->cap - 1))
		if (!memcmp(h->slot[i], k, SHA256_LEN))
			break;
	bool has = h->used[i];
	pthread_mutex_unlock(&h->lock);
	return has;
}

/* A diff's clean chunk keeps the base's hash without being read, when the
 * destination has that chunk (else it is read and uploaded like any). */
static bool push_from_base(struct push_job *j, uint64_t i)
{
	const struct store_push_opts *o = j->o;
	if (!o->base || o->dirty[i])
		return false;
	if (o->base->present[i] && !hashset_has(&j->known, o->base->hash[i]))
		return false;
	if (o->base->present[i])
		manifest_set(j->m, i, o->base->hash[i]);
	else
		atomic_fetch_add(&j->zero, 1);
	atomic_fetch_add(&j->present, o->base->present[i]);
	return true;
}

static int push_chunk(struct push_job *j, struct objstore *h, uint64_t i, uint8_t *buf)
{
	if (push_from_base(j, i))
		return 0;
	size_t len = manifest_chunk_len(j->m, i);
	int ret = lvm_source_read(j->src, i * j->m->chunk_size, buf, len);
	char err[1024];
	if (ret) {
		snprintf(err, sizeof(err), "reading memory at 0x%llx: %s",
			 (unsigned long long)(i * j->m->chunk_size), strerror(-ret));
		push_fail(j, ret, err);
		return ret;
	}
	if (buf_is_zero(buf, len)) {
		atomic_fetch_add(&j->zero, 1);
		return 0;
	}
	uint8_t *obj, hash[SHA256_LEN];
	size_t olen;
	sha256(buf, len, hash);
	manifest_set(j->m, i, hash);	/* distinct i per thread; the count is atomic */
	if (!hashset_add(&j->known, hash)) {
		atomic_fetch_add(&j->present, 1);
		return 0;
	}
	if ((ret = chunk_encode(buf, len, j->o->compress, 1, &obj, &olen, hash)))
		return push_fail(j, ret, "out of memory"), ret;
	char key[80];
	objstore_chunk_key(hash, key);
	ret = objstore_put(h, key, obj, olen, err, sizeof(err));
	free(obj);
	if (ret)
		return push_fail(j, ret, err), ret;
	atomic_fetch_add(&j->uploaded, 1);
	atomic_fetch_add(&j->up_bytes, olen);
	return 0;
}

static void *push_thread(void *arg)
{
	struct push_job *j = arg;
	struct objstore *h = NULL;
	uint8_t *buf = malloc(j->m->chunk_size);
	if (!buf || objstore_clone(j->store, &h)) {
		push_fail(j, -ENOMEM, "out of memory");
		free(buf);
		return NULL;
	}
	uint64_t i;
	while (!atomic_load(&j->err) && (i = atomic_fetch_add(&j->next, 1)) < j->m->chunk_count)
		if (push_chunk(j, h, i, buf))
			break;
	objstore_close(h);
	free(buf);
	return NULL;
}

static int push_chunks(struct push_job *j, unsigned threads)
{
	pthread_t t[PUSH_MAX_THREADS];
	unsigned n = 0;
	for (; n < threads; n++)
		if (pthread_create(&t[n], NULL, push_thread, j))
			break;
	if (!n)
		push_thread(j);
	for (unsigned i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	return atomic_load(&j->err);
}

static int push_publish(struct objstore *s, const char *name, const uint8_t *state,
			size_t state_len, const struct manifest *m, char *err, size_t errlen)
{
	char key[1100];
	uint8_t *enc;
	size_t elen;
	snprintf(key, sizeof(key), "%s/state", name);
	int ret = objstore_put(s, key, state, state_len, err, errlen);
	if (ret)
		return ret;
	if ((ret = manifest_encode(m, &enc, &elen)))
		return ret;
	snprintf(key, sizeof(key), "%s/manifest", name);
	ret = objstore_put(s, key, enc, elen, err, errlen);
	free(enc);
	return ret;
}

int store_push(struct objstore *s, const char *name, const uint8_t *state, size_t state_len,
	       struct lvm_source *src, const struct store_push_opts *o,
	       struct store_push_stats *st, char *err, size_t errlen)
{
	/* The state file's snapshot id (docs/snapshot-format.md, DIR/state). */
	if (state_len < 32) {
		snprintf(err, errlen, "state file too short");
		return -EBADMSG;
	}
	uint32_t cs = o->base ? o->base->chunk_size : o->chunk_size ? o->chunk_size
							       : PUSH_DEFAULT_CHUNK;
	struct manifest m;
	int ret = manifest_init(&m, state + 16, lvm_source_size(src), cs);
	if (ret) {
		snprintf(err, errlen, "memory of %llu bytes in %u-byte chunks: %s",
			 (unsigned long long)lvm_source_size(src), cs, strerror(-ret));
		return ret;
	}
	struct push_job j = { .store = s, .src = src, .o = o, .m = &m };
	pthread_mutex_init(&j.err_lock, NULL);
	ret = hashset_init(&j.known, m.chunk_count);
	if (!ret)
		ret = objstore_list(s, "chunks/", listed_chunk, &j, err, errlen);
	if (ret == -ENOTSUP)	/* a backend that cannot list: upload all */
		ret = 0;
	while (!ret && (j.known.n + m.chunk_count) * 2 > j.known.cap)
		ret = hashset_grow(&j.known);
	if (!ret) {
		ret = push_chunks(&j, o->threads ? (o->threads > PUSH_MAX_THREADS ? PUSH_MAX_THREADS
										    : o->threads) : 4);
		if (ret)
			snprintf(err, errlen, "%s", j.errmsg);
	}
	if (!ret)
		ret = push_publish(s, name, state, state_len, &m, err, errlen);
	*st = (struct store_push_stats){
		.chunks = m.chunk_count, .zero_chunks = j.zero, .uploaded = j.uploaded,
		.present = j.present, .uploaded_bytes = j.up_bytes,
		.content_bytes = m.present_count * (uint64_t)cs,
	};
	hashset_free(&j.known);
	pthread_mutex_destroy(&j.err_lock);
	manifest_free(&m);
	return ret;
}
