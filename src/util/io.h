/* SPDX-License-Identifier: MIT */
/*
 * Whole-buffer file I/O: the one loop over short transfers and EINTR that
 * snapshot files, state files and the serial console share.  Sockets with
 * deadlines have their own loops (src/migrate/wire.c, src/fc/message.c).
 */
#ifndef LAZYVM_IO_H
#define LAZYVM_IO_H

#include <stddef.h>
#include <stdint.h>

/* Write all len bytes (off < 0: at the file position).  0 or -errno. */
int io_write_full(int fd, const void *buf, size_t len, int64_t off);
/* Read exactly len bytes (off < 0: from the file position).  0, -errno, or
 * -ENODATA when the file ends first. */
int io_read_full(int fd, void *buf, size_t len, int64_t off);

#endif
