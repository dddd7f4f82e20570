/* SPDX-License-Identifier: MIT */
/*
 * Text from a peer (an ERROR message's reason) goes to a terminal or a log:
 * make it inert first.  Every byte outside printable ASCII (escape
 * sequences, control characters, NUL, bytes >= 0x7f) becomes '?', so the
 * text can neither drive the terminal nor hide behind a NUL.
 */
#ifndef LAZYVM_UTIL_PRINTABLE_H
#define LAZYVM_UTIL_PRINTABLE_H

#include <stddef.h>
#include <stdint.h>

static inline void printable_inplace(uint8_t *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] < 0x20 || s[i] > 0x7e)
			s[i] = '?';
}

#endif
