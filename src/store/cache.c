/* SPDX-License-Identifier: MIT */
/*
 * The per-host chunk cache: DIR/HEX files (0600) holding chunk objects as
 * the store sent them (chunk.h), shared by every process on the host.
 *
 *  - crash-safe: written to a dot temp file, then renamed;
 *  - concurrent: renames are atomic, a reader keeps an open file even if it
 *    is evicted meanwhile, and eviction runs under an exclusive flock on
 *    DIR/.lock so two processes never trim at once;
 *  - bounded, LRU: a hit sets the file's mtime, eviction removes the oldest
 *    first down to 90% of the bound;
 *  - verified: every read is decoded and hashed; a corrupt file is removed
 *    and reported as a miss, so the caller fetches the chunk again.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/chunk.h"
#include "store/store.h"

struct chunk_cache {
	char dir[1024];
	uint64_t max_bytes;
	_Atomic uint64_t added;		/* bytes put since the last trim */
	struct chunk_cache_stats st;
};

int chunk_cache_open(const char *dir, uint64_t max_bytes, struct chunk_cache **out, char *err,
		     size_t errlen)
{
	struct chunk_cache *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	snprintf(c->dir, sizeof(c->dir), "%s", dir);
	c->max_bytes = max_bytes ? max_bytes : CHUNK_CACHE_DEFAULT_MAX;
	int ret = store_mkdirs(dir);
	if (ret) {
		snprintf(err, errlen, "chunk cache %s: %s", dir, strerror(-ret));
		free(c);
		return ret;
	}
	*out = c;
	return 0;
}

void chunk_cache_close(struct chunk_cache *c)
{
	free(c);
}

const struct chunk_cache_stats *chunk_cache_stats(const struct chunk_cache *c)
{
	return &c->st;
}

static void cache_path(const struct chunk_cache *c, const uint8_t hash[SHA256_LEN], char *p,
		       size_t len)
{
	char hex[SHA256_HEX_LEN + 1];
	sha256_hex(hash, hex);
	snprintf(p, len, "%s/%s", c->dir, hex);
}

int chunk_cache_get(struct chunk_cache *c, const uint8_t hash[SHA256_LEN], void *dst, size_t len)
{
	char path[1200];
	cache_path(c, hash, path, sizeof(path));
	uint8_t *obj;
	size_t olen;
	if (store_read_file(path, &obj, &olen)) {
		atomic_fetch_add(&c->st.misses, 1);
		return -ENOENT;
	}
	int ret = chunk_decode(obj, olen, hash, dst, len, NULL);
	free(obj);
	if (ret) {
		unlink(path);	/* fetched again by the caller */
		atomic_fetch_add(&c->st.corrupt, 1);
		atomic_fetch_add(&c->st.misses, 1);
		return -ENOENT;
	}
	utimensat(AT_FDCWD, path, NULL, 0);	/* LRU: now recently used */
	atomic_fetch_add(&c->st.hits, 1);
	atomic_fetch_add(&c->st.hit_bytes, len);
	return 0;
}

int chunk_cache_put(struct chunk_cache *c, const uint8_t hash[SHA256_LEN], const void *obj,
		    size_t len)
{
	char path[1200];
	cache_path(c, hash, path, sizeof(path));
	int ret = store_write_file(path, obj, len, false);
	if (ret)
		return ret;
	if (atomic_fetch_add(&c->added, len) + len > c->max_bytes / 8)
		chunk_cache_trim(c);
	return 0;
}

struct cache_file {
	struct timespec mtime;
	uint64_t bytes;
	char name[SHA256_HEX_LEN + 1];
};

static int older_first(const void *a, const void *b)
{
	const struct cache_file *x = a, *y = b;
	if (x->mtime.tv_sec != y->mtime.tv_sec)
		return x->mtime.tv_sec < y->mtime.tv_sec ? -1 : 1;
	return x->mtime.tv_nsec < y->mtime.tv_nsec ? -1 : x->mtime.tv_nsec > y->mtime.tv_nsec;
}

/* Every cached chunk (name, size, mtime) and their total; *files malloc'd. */
static int cache_scan(DIR *d, struct cache_file **files, size_t *n,
		      uint64_t *total)
{
	size_t cap = 0;
	struct dirent *de;
	*files = NULL;
	*n = 0;
	*total = 0;
	while ((de = readdir(d))) {
		struct stat st;
		if (strlen(de->d_name) != SHA256_HEX_LEN ||
		    fstatat(dirfd(d), de->d_name, &st, 0) || !S_ISREG(st.st_mode))
			continue;
		if (*n == cap) {
			cap = cap ? 2 * cap : 256;
			struct cache_file *f = realloc(*files, cap * sizeof(*f));
			if (!f)
				return -ENOMEM;
			*files = f;
		}
		struct cache_file *f = &(*files)[(*n)++];
		f->mtime = st.st_mtim;
		f->bytes = (uint64_t)st.st_size;
		memcpy(f->name, de->d_name, sizeof(f->name));
		*total += f->bytes;
	}
	return 0;
}

int chunk_cache_trim(struct chunk_cache *c)
{
	char lock[1200];
	snprintf(lock, sizeof(lock), "%s/.lock", c->dir);
	int lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lfd < 0)
		return -errno;
	if (flock(lfd, LOCK_EX)) {
		close(lfd);
		return -errno;
	}
	atomic_store(&c->added, 0);
	DIR *d = opendir(c->dir);
	struct cache_file *files = NULL;
	size_t n = 0;
	uint64_t total = 0;
	int ret = d ? cache_scan(d, &files, &n, &total) : -errno;
	if (!ret && total > c->max_bytes) {
		qsort(files, n, sizeof(*files), older_first);
		for (size_t i = 0; i < n && total > c->max_bytes / 10 * 9; i++) {
			if (!unlinkat(dirfd(d), files[i].name, 0)) {
				total -= files[i].bytes;
				atomic_fetch_add(&c->st.evicted, 1);
			}
		}
	}
	free(files);
	if (d)
		closedir(d);
	close(lfd);	/* drops the lock */
	return ret;
}
