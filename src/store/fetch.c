/* SPDX-License-Identifier: MIT */
/*
 * One chunk from the cache or the store, checked against its SHA-256.  The
 * remote backend already retries failed requests (5xx, resets, timeouts);
 * here a body that arrived but is wrong (truncated, altered) is fetched
 * again, a bounded number of times.  Nothing unverified reaches the caller.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/chunk.h"
#include "store/store.h"
#include "util/clock.h"

#define FETCH_BAD_BODY_TRIES 4

const double chunk_fetch_bucket_s[CHUNK_FETCH_BUCKETS - 1] = {
	0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1, 5,
};

static void fetch_latency(struct chunk_fetch_stats *st, uint64_t t0)
{
	uint64_t ns = mono_now_ns() - t0;
	unsigned b = 0;
	while (b < CHUNK_FETCH_BUCKETS - 1 && (double)ns / 1e9 > chunk_fetch_bucket_s[b])
		b++;
	atomic_fetch_add(&st->latency[b], 1);
	atomic_fetch_add(&st->fetch_ns_total, ns);
}

int store_fetch_chunk(struct objstore *s, struct chunk_cache *c, const uint8_t hash[SHA256_LEN],
		      void *dst, size_t len, struct chunk_fetch_stats *st, char *err,
		      size_t errlen)
{
	uint64_t t0 = mono_now_ns();
	if (c && !chunk_cache_get(c, hash, dst, len)) {
		atomic_fetch_add(&st->cache_chunks, 1);
		atomic_fetch_add(&st->cache_bytes, len);
		fetch_latency(st, t0);
		return 0;
	}
	char key[80], why[512] = "";
	objstore_chunk_key(hash, key);
	int ret = -EBADMSG;
	for (int attempt = 0; attempt < FETCH_BAD_BODY_TRIES; attempt++) {
		uint8_t *obj;
		size_t olen;
		ret = objstore_get(s, key, &obj, &olen, why, sizeof(why));
		if (ret)
			break;	/* the backend's own retries are spent */
		const char *bad = NULL;
		ret = chunk_decode(obj, olen, hash, dst, len, &bad);
		if (!ret) {
			if (c)
				chunk_cache_put(c, hash, obj, olen);
			free(obj);
			atomic_fetch_add(&st->store_chunks, 1);
			atomic_fetch_add(&st->store_bytes, olen);
			atomic_fetch_add(&st->store_content_bytes, len);
			fetch_latency(st, t0);
			return 0;
		}
		free(obj);
		atomic_fetch_add(&st->bad_bodies, 1);
		snprintf(why, sizeof(why), "%s", bad ? bad : strerror(-ret));
		if (ret == -ENOTSUP)
			break;
		struct timespec ts = { 0, (long)(20000000L << attempt) };	/* backoff */
		nanosleep(&ts, NULL);
	}
	atomic_fetch_add(&st->errors, 1);
	snprintf(err, errlen, "chunk %.16s… at %s/%s: %s", key + 7, s->base, key, why);
	return ret;
}

int store_load_manifest(struct objstore *s, const char *name, struct manifest *m, char *err,
			size_t errlen)
{
	char key[1100], why[512];
	snprintf(key, sizeof(key), "%s/manifest", name);
	uint8_t *buf;
	size_t len;
	int ret = objstore_get(s, key, &buf, &len, why, sizeof(why));
	if (ret) {
		snprintf(err, errlen, "%s", why);
		return ret;
	}
	const char *bad = "";
	ret = manifest_parse(buf, len, m, &bad);
	free(buf);
	if (ret)
		snprintf(err, errlen, "%s/%s: %s", s->base, key, bad);
	return ret;
}

int store_load_state(struct objstore *s, const char *name, uint8_t **state, size_t *len,
		     char *err, size_t errlen)
{
	char key[1100];
	snprintf(key, sizeof(key), "%s/state", name);
	return objstore_get(s, key, state, len, err, errlen);
}

int store_verify(struct objstore *s, const struct manifest *m,
		 void (*report)(void *ctx, uint64_t idx, const char *msg), void *ctx)
{
	uint8_t *buf = malloc(m->chunk_size);
	if (!buf)
		return -ENOMEM;
	struct chunk_fetch_stats st = { 0 };
	int bad = 0;
	char err[1024];
	for (uint64_t i = 0; i < m->chunk_count; i++) {
		if (!m->present[i])
			continue;
		int ret = store_fetch_chunk(s, NULL, m->hash[i], buf, manifest_chunk_len(m, i), &st,
					    err, sizeof(err));
		if (ret == -ENOMEM) {
			free(buf);
			return ret;
		}
		if (ret) {
			bad = 1;
			report(ctx, i, err);
		}
	}
	free(buf);
	return bad ? -EBADMSG : 0;
}
