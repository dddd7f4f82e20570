/* SPDX-License-Identifier: MIT */
/* zstd for snapshot chunks: per-thread contexts; -ENOTSUP when built without. */
#ifndef LAZYVM_SNAPSHOT_ZSTD_H
#define LAZYVM_SNAPSHOT_ZSTD_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

bool snap_zstd_available(void);
/* Worst-case compressed size of n bytes (0 without zstd). */
size_t snap_zstd_bound(size_t n);
/* Compressed length, or -errno. */
ssize_t snap_zstd_compress(void *dst, size_t cap, const void *src, size_t n, int level);
/* 0 when src decompresses to exactly n bytes; -EBADMSG otherwise. */
int snap_zstd_decompress(void *dst, size_t n, const void *src, size_t srclen);

#endif
