/* SPDX-License-Identifier: MIT */
/* CRC32C (Castagnoli): the checksum of every snapshot chunk, index and header. */
#ifndef LAZYVM_CRC32C_H
#define LAZYVM_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/*
 * Continue a CRC32C over len more bytes: crc32c(0, buf, n) is the standard
 * CRC32C of buf (init and final xor with 0xffffffff included), and
 * crc32c(crc32c(0, a, na), b, nb) == crc32c(0, a||b, na+nb).
 * Uses the SSE4.2 crc32 instruction when the CPU has it.
 */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len);
/* The portable table-driven path (slicing-by-8); same results. */
uint32_t crc32c_sw(uint32_t crc, const void *buf, size_t len);
/* "sse4.2" or "slicing-by-8": what crc32c() uses on this CPU. */
const char *crc32c_impl(void);

#endif
