/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store.h"

int store_read_file(const char *path, uint8_t **buf, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		int e = errno ? -errno : -EINVAL;
		close(fd);
		return e;
	}
	uint8_t *b = malloc(st.st_size ? (size_t)st.st_size : 1);
	size_t got = 0;
	while (b && got < (size_t)st.st_size) {
		ssize_t n = read(fd, b + got, (size_t)st.st_size - got);
		if (n <= 0) {
			free(b);
			close(fd);
			return n < 0 ? -errno : -ENODATA;
		}
		got += (size_t)n;
	}
	close(fd);
	if (!b)
		return -ENOMEM;
	*buf = b;
	*len = got;
	return 0;
}

static int write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int store_write_file(const char *path, const void *buf, size_t len, bool sync)
{
	static _Atomic unsigned seq;
	char tmp[2100];
	const char *slash = strrchr(path, '/');
	int dlen = slash ? (int)(slash - path + 1) : 0;
	/* A dot name: listings and the cache's eviction skip it. */
	snprintf(tmp, sizeof(tmp), "%.*s.tmp.%d.%u.%s", dlen, path, (int)getpid(),
		 atomic_fetch_add(&seq, 1), slash ? slash + 1 : path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	int ret = write_all(fd, buf, len);
	if (!ret && sync && fdatasync(fd))
		ret = -errno;
	if (close(fd) && !ret)
		ret = -errno;
	if (!ret && rename(tmp, path))
		ret = -errno;
	if (ret)
		unlink(tmp);
	return ret;
}

int store_mkdirs(const char *path)
{
	char p[2048];
	if (snprintf(p, sizeof(p), "%s", path) >= (int)sizeof(p))
		return -ENAMETOOLONG;
	for (char *s = p + 1; ; s++) {
		if (*s && *s != '/')
			continue;
		char c = *s;
		*s = 0;
		if (mkdir(p, 0700) && errno != EEXIST)
			return -errno;
		*s = c;
		if (!c)
			return 0;
	}
}
