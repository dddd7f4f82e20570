/* SPDX-License-Identifier: MIT */
/*
 * DIR/working-set: build, encode, decode, load and save (layout in
 * docs/snapshot-format.md; why and how it is used in docs/prefetch.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lazyvm.h"
#include "snapshot/format.h"
#include "snapshot/ws.h"
#include "util/crc32c.h"
#include "util/errmsg.h"

#define WS_MAX_FILE (WS_HDR_SIZE + (uint64_t)WS_MAX_PAGES * WS_RUN_SIZE)

int ws_init(struct ws *ws, uint64_t mem_size)
{
	memset(ws, 0, sizeof(*ws));
	if (!mem_size || mem_size % WS_PAGE_SIZE || mem_size > SNAP_MAX_MEM_SIZE)
		return -EINVAL;
	ws->mem_size = mem_size;
	ws->seen = calloc((mem_size / WS_PAGE_SIZE + 7) / 8, 1);
	if (!ws->seen)
		return -ENOMEM;
	pthread_mutex_init(&ws->lock, NULL);
	return 0;
}

void ws_free(struct ws *ws)
{
	if (!ws->seen)
		return;
	free(ws->runs);
	free(ws->seen);
	pthread_mutex_destroy(&ws->lock);
	memset(ws, 0, sizeof(*ws));
}

int ws_has(const struct ws *ws, uint64_t page)
{
	return page < ws->mem_size / WS_PAGE_SIZE && (ws->seen[page / 8] >> (page % 8) & 1);
}

static int ws_append_locked(struct ws *ws, uint64_t page)
{
	if (page >= ws->mem_size / WS_PAGE_SIZE || ws_has(ws, page) || ws->pages >= WS_MAX_PAGES)
		return 0;
	struct ws_run *last = ws->nruns ? &ws->runs[ws->nruns - 1] : NULL;
	if (last && last->page + last->npages == page) {
		last->npages++;
	} else {
		if (ws->nruns == ws->cap) {
			size_t cap = ws->cap ? ws->cap * 2 : 256;
			struct ws_run *n = realloc(ws->runs, cap * sizeof(*n));
			if (!n)
				return 0;	/* a shorter working set, still a correct one */
			ws->runs = n;
			ws->cap = cap;
		}
		ws->runs[ws->nruns++] = (struct ws_run){ page, 1 };
	}
	ws->seen[page / 8] |= (uint8_t)(1u << (page % 8));
	ws->pages++;
	return 1;
}

int ws_add(struct ws *ws, uint64_t page)
{
	pthread_mutex_lock(&ws->lock);
	int added = ws_append_locked(ws, page);
	pthread_mutex_unlock(&ws->lock);
	return added;
}

int ws_encode(struct ws *ws, uint8_t **out, size_t *len)
{
	pthread_mutex_lock(&ws->lock);
	size_t n = WS_HDR_SIZE + ws->nruns * WS_RUN_SIZE;
	uint8_t *b = calloc(1, n);
	if (!b) {
		pthread_mutex_unlock(&ws->lock);
		return -ENOMEM;
	}
	for (size_t i = 0; i < ws->nruns; i++) {
		snap_put64(b + WS_HDR_SIZE + i * WS_RUN_SIZE, ws->runs[i].page);
		snap_put32(b + WS_HDR_SIZE + i * WS_RUN_SIZE + 8, ws->runs[i].npages);
	}
	memcpy(b, WS_MAGIC, 8);
	snap_put32(b + 8, WS_VERSION);
	snap_put32(b + 12, WS_HDR_SIZE);
	snap_put32(b + 16, WS_PAGE_SIZE);
	snap_put64(b + 24, ws->mem_size);
	snap_put64(b + 32, ws->nruns);
	snap_put64(b + 40, ws->pages);
	snap_put32(b + 48, crc32c(0, b + WS_HDR_SIZE, n - WS_HDR_SIZE));
	snap_put32(b + 60, crc32c(0, b, 60));
	pthread_mutex_unlock(&ws->lock);
	*out = b;
	*len = n;
	return 0;
}

static int ws_decode_header(const uint8_t *b, size_t len, uint64_t mem_size, uint64_t *nruns,
			    uint64_t *pages, char *err, size_t errlen)
{
	if (len < WS_HDR_SIZE || memcmp(b, WS_MAGIC, 8))
		return errmsg_set(err, errlen, -EBADMSG, len < WS_HDR_SIZE ? "truncated header" :
				  "not a working-set file (bad magic)");
	if (snap_get32(b + 60) != crc32c(0, b, 60))
		return errmsg_set(err, errlen, -EBADMSG, "header checksum mismatch");
	if (snap_get32(b + 8) != WS_VERSION)
		return errmsg_set(err, errlen, -EPROTO, "format version %u (this lazyvm reads %u)",
				  snap_get32(b + 8), WS_VERSION);
	if (snap_get32(b + 12) != WS_HDR_SIZE || snap_get32(b + 16) != WS_PAGE_SIZE ||
	    snap_get32(b + 20) || !snap_all_zero(b + 52, 8))
		return errmsg_set(err, errlen, -EBADMSG, "bad header size, page size or reserved bytes");
	if (snap_get64(b + 24) != mem_size)
		return errmsg_set(err, errlen, -EBADMSG, "recorded for %llu bytes of memory, the "
				  "snapshot has %llu", (unsigned long long)snap_get64(b + 24),
				  (unsigned long long)mem_size);
	*nruns = snap_get64(b + 32);
	*pages = snap_get64(b + 40);
	if (*nruns > WS_MAX_PAGES || *pages > WS_MAX_PAGES || *nruns > *pages ||
	    len != WS_HDR_SIZE + *nruns * WS_RUN_SIZE)
		return errmsg_set(err, errlen, -EBADMSG, "%llu runs in %zu bytes: truncated or "
				  "oversized", (unsigned long long)*nruns, len);
	if (snap_get32(b + 48) != crc32c(0, b + WS_HDR_SIZE, len - WS_HDR_SIZE))
		return errmsg_set(err, errlen, -EBADMSG, "runs checksum mismatch");
	return 0;
}

int ws_decode(const uint8_t *b, size_t len, uint64_t mem_size, struct ws *ws, char *err,
	      size_t errlen)
{
	uint64_t nruns = 0, pages = 0;
	int ret = ws_decode_header(b, len, mem_size, &nruns, &pages, err, errlen);
	if (ret || (ret = ws_init(ws, mem_size)))
		return ret == -EINVAL ? errmsg_set(err, errlen, -EBADMSG, "bad memory size") : ret;
	uint64_t mem_pages = mem_size / WS_PAGE_SIZE;
	for (uint64_t i = 0; i < nruns && !ret; i++) {
		const uint8_t *p = b + WS_HDR_SIZE + i * WS_RUN_SIZE;
		uint64_t first = snap_get64(p), n = snap_get32(p + 8);
		if (!n || snap_get32(p + 12) || first >= mem_pages || n > mem_pages - first)
			ret = errmsg_set(err, errlen, -EBADMSG, "run %llu (page %llu +%llu) is empty, "
					 "out of memory or has reserved bits", (unsigned long long)i,
					 (unsigned long long)first, (unsigned long long)n);
		for (uint64_t q = first; !ret && q < first + n; q++)
			if (!ws_append_locked(ws, q))
				ret = errmsg_set(err, errlen, -EBADMSG, "page %llu listed twice",
						 (unsigned long long)q);
	}
	if (!ret && ws->pages != pages)
		ret = errmsg_set(err, errlen, -EBADMSG, "page count %llu, runs hold %llu",
				 (unsigned long long)pages, (unsigned long long)ws->pages);
	if (ret)
		ws_free(ws);
	return ret;
}

static int ws_read_file(int fd, uint8_t **out, size_t *len)
{
	struct stat st;
	if (fstat(fd, &st))
		return -errno;
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > WS_MAX_FILE)
		return -EFBIG;
	uint8_t *b = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!b)
		return -ENOMEM;
	size_t got = 0;
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, b + got, (size_t)st.st_size - got);
		if (n <= 0) {
			free(b);
			return n < 0 ? -errno : -EIO;
		}
		got += (size_t)n;
	}
	*out = b;
	*len = got;
	return 0;
}

int ws_load(const char *dir, uint64_t mem_size, struct ws *ws, char *err, size_t errlen)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, WS_FILE_NAME);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errmsg_set(err, errlen, -errno, "%s: %s", path, strerror(errno));
	uint8_t *b = NULL;
	size_t len = 0;
	int ret = ws_read_file(fd, &b, &len);
	close(fd);
	if (ret)
		return errmsg_set(err, errlen, ret == -EFBIG ? -EBADMSG : ret, "%s: %s", path,
				  ret == -EFBIG ? "not a regular file or too large" : strerror(-ret));
	char why[256] = "";
	ret = ws_decode(b, len, mem_size, ws, why, sizeof(why));
	free(b);
	return ret ? errmsg_set(err, errlen, ret, "%s: %s", path, why) : 0;
}

static int ws_write_all(int fd, const uint8_t *b, size_t len)
{
	while (len) {
		ssize_t n = write(fd, b, len);
		if (n < 0)
			return -errno;
		b += n;
		len -= (size_t)n;
	}
	return fsync(fd) ? -errno : 0;
}

int ws_save(const char *dir, struct ws *ws)
{
	char tmp[4096], path[4096];
	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, WS_FILE_NAME);
	snprintf(path, sizeof(path), "%s/%s", dir, WS_FILE_NAME);
	uint8_t *b;
	size_t len;
	int ret = ws_encode(ws, &b, &len);
	if (ret)
		return ret;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	ret = fd < 0 ? -errno : ws_write_all(fd, b, len);
	if (fd >= 0)
		close(fd);
	free(b);
	if (!ret && rename(tmp, path))
		ret = -errno;
	if (ret)
		unlink(tmp);
	return ret;
}

static int page_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* One batch: its pages in address order, consecutive ones as one range. */
static int ws_queue_batch(struct lvm_engine *e, struct lvm_source *src, uint64_t *pg, size_t n)
{
	qsort(pg, n, sizeof(*pg), page_cmp);
	for (size_t i = 0; i < n; ) {
		size_t j = i + 1;
		while (j < n && pg[j] == pg[j - 1] + 1)
			j++;
		int ret = lvm_engine_prefetch(e, src, pg[i] * WS_PAGE_SIZE, (j - i) * WS_PAGE_SIZE);
		if (ret)
			return ret;
		i = j;
	}
	return 0;
}

int ws_queue_prefetch(const struct ws *ws, struct lvm_engine *e, struct lvm_source *src)
{
	uint64_t batch[WS_BATCH];
	size_t n = 0;
	int ret = 0;
	for (size_t i = 0; i < ws->nruns && !ret; i++)
		for (uint32_t k = 0; k < ws->runs[i].npages && !ret; k++) {
			batch[n++] = ws->runs[i].page + k;
			if (n == WS_BATCH) {
				ret = ws_queue_batch(e, src, batch, n);
				n = 0;
			}
		}
	return ret ? ret : ws_queue_batch(e, src, batch, n);
}
