/* SPDX-License-Identifier: MIT */
/* SHA-256 and HMAC-SHA256 for migration authentication (no library needed). */
#ifndef LAZYVM_MIGRATE_HMAC_H
#define LAZYVM_MIGRATE_HMAC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SHA256_LEN 32

struct sha256 {
	uint32_t h[8];
	uint64_t len;
	uint8_t buf[64];
};

struct hmac_sha256 {
	struct sha256 inner, outer;
};

void sha256_init(struct sha256 *c);
void sha256_update(struct sha256 *c, const void *data, size_t len);
void sha256_final(struct sha256 *c, uint8_t out[SHA256_LEN]);

void hmac_sha256_init(struct hmac_sha256 *m, const void *key, size_t keylen);
void hmac_sha256_update(struct hmac_sha256 *m, const void *data, size_t len);
void hmac_sha256_final(struct hmac_sha256 *m, uint8_t out[SHA256_LEN]);

/* Constant-time comparison (a MAC check must not leak how much matched). */
bool mac_equal(const uint8_t *a, const uint8_t *b, size_t len);

#endif
