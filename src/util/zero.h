/* SPDX-License-Identifier: MIT */
/* Is a buffer all zero?  (Snapshot chunks, migration units, eager restore.) */
#ifndef LAZYVM_ZERO_H
#define LAZYVM_ZERO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline bool buf_is_zero(const void *p, size_t len)
{
	const uint8_t *b = p;
	/* b[0] == 0 and every byte equals the next: memcmp runs at memory speed. */
	return !len || (b[0] == 0 && !memcmp(b, b + 1, len - 1));
}

#endif
