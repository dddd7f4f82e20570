/* SPDX-License-Identifier: MIT */
/*
 * SHA-256 (FIPS 180-4), in-tree so that the chunk store (src/store/) needs
 * no crypto library: chunks are named by the SHA-256 of their content.
 */
#ifndef LAZYVM_SHA256_H
#define LAZYVM_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_LEN 32
#define SHA256_HEX_LEN 64

struct sha256 {
	uint32_t h[8];
	uint64_t len;		/* bytes hashed so far */
	uint8_t buf[64];
	size_t fill;
};

void sha256_init(struct sha256 *s);
void sha256_update(struct sha256 *s, const void *data, size_t len);
void sha256_final(struct sha256 *s, uint8_t out[SHA256_LEN]);
/* One call: out = SHA-256(data). */
void sha256(const void *data, size_t len, uint8_t out[SHA256_LEN]);
/* Lower-case hex, NUL-terminated (hex has SHA256_HEX_LEN + 1 bytes). */
void sha256_hex(const uint8_t d[SHA256_LEN], char *hex);
/* Parse 64 hex digits; 0 or -EINVAL. */
int sha256_from_hex(const char *hex, uint8_t d[SHA256_LEN]);

#endif
