/* SPDX-License-Identifier: MIT */
/* Whole-buffer file I/O (see io.h). */
#include <errno.h>
#include <unistd.h>

#include "util/io.h"

int io_write_full(int fd, const void *buf, size_t len, int64_t off)
{
	const char *p = buf;
	while (len) {
		ssize_t n = off < 0 ? write(fd, p, len) : pwrite(fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
		if (off >= 0)
			off += n;
	}
	return 0;
}

int io_read_full(int fd, void *buf, size_t len, int64_t off)
{
	char *p = buf;
	while (len) {
		ssize_t n = off < 0 ? read(fd, p, len) : pread(fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ENODATA;
		p += n;
		len -= (size_t)n;
		if (off >= 0)
			off += n;
	}
	return 0;
}
