/* SPDX-License-Identifier: MIT */
/*
 * Structs the caller allocates start with size_t struct_size (lazyvm.h,
 * "Growing the ABI").  These two helpers are the only place that reads or
 * writes such a struct across the boundary: in, the library takes the
 * prefix the caller's struct_size covers over its defaults; out, it writes
 * no byte past the caller's struct_size.  A struct from a newer header than
 * the library knows is accepted when the members the library does not know
 * are zero (as openat2(2) does), else -E2BIG.
 */
#ifndef LAZYVM_ABI_H
#define LAZYVM_ABI_H

#include <errno.h>
#include <stddef.h>
#include <string.h>

/* The size of a struct up to and including member m: the minimum a caller
 * may pass for the layout whose last member is m. */
#define ABI_SIZE_TO(type, m) (offsetof(type, m) + sizeof(((type *)0)->m))

/* dst (ours, dst_size bytes, defaults filled in) takes the caller's src. */
static inline int abi_copy_in(void *dst, size_t dst_size, const void *src, size_t min_size)
{
	size_t n = *(const size_t *)src;
	if (n < min_size)
		return -EINVAL;
	for (size_t i = dst_size; i < n; i++)
		if (((const unsigned char *)src)[i])
			return -E2BIG;
	memcpy((char *)dst + sizeof(size_t), (const char *)src + sizeof(size_t),
	       (n < dst_size ? n : dst_size) - sizeof(size_t));
	*(size_t *)dst = dst_size;
	return 0;
}

/* The caller's dst (its struct_size set) takes our src (src_size bytes). */
static inline int abi_copy_out(void *dst, const void *src, size_t src_size, size_t min_size)
{
	size_t n = *(const size_t *)dst;
	if (n < min_size)
		return -EINVAL;
	if (n > src_size) {
		memset((char *)dst + src_size, 0, n - src_size);
		n = src_size;
	}
	memcpy((char *)dst + sizeof(size_t), (const char *)src + sizeof(size_t),
	       n - sizeof(size_t));
	return 0;
}

#endif
