/* SPDX-License-Identifier: MIT */
/*
 * zstd for snapshot chunks.  Each chunk is one independent zstd frame, so any
 * chunk decompresses on its own (random access).  Contexts are per thread
 * (creating one costs more than decompressing a 64 KiB chunk) and freed when
 * the thread exits.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "snapshot/zstd.h"

#ifdef LVM_HAVE_ZSTD
#include <zstd.h>

struct zstd_ctxs {
	ZSTD_CCtx *c;
	ZSTD_DCtx *d;
};

static pthread_key_t zstd_key;
static pthread_once_t zstd_once = PTHREAD_ONCE_INIT;

static void zstd_ctxs_free(void *p)
{
	struct zstd_ctxs *z = p;
	ZSTD_freeCCtx(z->c);
	ZSTD_freeDCtx(z->d);
	free(z);
}

static void zstd_key_init(void)
{
	pthread_key_create(&zstd_key, zstd_ctxs_free);
}

static struct zstd_ctxs *zstd_thread_ctxs(void)
{
	pthread_once(&zstd_once, zstd_key_init);
	struct zstd_ctxs *z = pthread_getspecific(zstd_key);
	if (!z) {
		z = calloc(1, sizeof(*z));
		if (!z || pthread_setspecific(zstd_key, z)) {
			free(z);
			return NULL;
		}
	}
	return z;
}

bool snap_zstd_available(void) { return true; }

size_t snap_zstd_bound(size_t n) { return ZSTD_compressBound(n); }

ssize_t snap_zstd_compress(void *dst, size_t cap, const void *src, size_t n, int level)
{
	struct zstd_ctxs *z = zstd_thread_ctxs();
	if (!z || (!z->c && !(z->c = ZSTD_createCCtx())))
		return -ENOMEM;
	size_t r = ZSTD_compressCCtx(z->c, dst, cap, src, n, level ? level : ZSTD_CLEVEL_DEFAULT);
	if (ZSTD_isError(r))
		return -EIO;	/* dst is compressBound-sized: only a zstd failure gets here */
	return (ssize_t)r;
}

int snap_zstd_decompress(void *dst, size_t n, const void *src, size_t srclen)
{
	struct zstd_ctxs *z = zstd_thread_ctxs();
	if (!z || (!z->d && !(z->d = ZSTD_createDCtx())))
		return -ENOMEM;
	size_t r = ZSTD_decompressDCtx(z->d, dst, n, src, srclen);
	if (ZSTD_isError(r) || r != n)
		return -EBADMSG;
	return 0;
}

#else /* !LVM_HAVE_ZSTD */

bool snap_zstd_available(void) { return false; }

size_t snap_zstd_bound(size_t n) { (void)n; return 0; }

ssize_t snap_zstd_compress(void *dst, size_t cap, const void *src, size_t n, int level)
{
	(void)dst, (void)cap, (void)src, (void)n, (void)level;
	return -ENOTSUP;
}

int snap_zstd_decompress(void *dst, size_t n, const void *src, size_t srclen)
{
	(void)dst, (void)n, (void)src, (void)srclen;
	return -ENOTSUP;
}
#endif
