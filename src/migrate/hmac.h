/* SPDX-License-Identifier: MIT */
/* HMAC-SHA256 for migration authentication (no library needed), over the
 * in-tree SHA-256 of src/util/sha256.c that the chunk store uses too. */
#ifndef LAZYVM_MIGRATE_HMAC_H
#define LAZYVM_MIGRATE_HMAC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/sha256.h"

struct hmac_sha256 {
	struct sha256 inner, outer;
};

void hmac_sha256_init(struct hmac_sha256 *m, const void *key, size_t keylen);
void hmac_sha256_update(struct hmac_sha256 *m, const void *data, size_t len);
void hmac_sha256_final(struct hmac_sha256 *m, uint8_t out[SHA256_LEN]);

/* Constant-time comparison (a MAC check must not leak how much matched). */
bool mac_equal(const uint8_t *a, const uint8_t *b, size_t len);

#endif
