/* SPDX-License-Identifier: MIT */
/*
 * HMAC-SHA256 (RFC 2104) over src/util/sha256.c, so that authenticating
 * migration needs no library.  Checked against the RFC 4231 vectors by
 * tests/migrate-auth.
 */
#include <string.h>

#include "migrate/hmac.h"

void hmac_sha256_init(struct hmac_sha256 *m, const void *key, size_t keylen)
{
	uint8_t k[64] = { 0 }, pad[64];
	if (keylen > 64) {
		struct sha256 c;
		sha256_init(&c);
		sha256_update(&c, key, keylen);
		sha256_final(&c, k);
	} else {
		memcpy(k, key, keylen);
	}
	for (int i = 0; i < 64; i++)
		pad[i] = k[i] ^ 0x36;
	sha256_init(&m->inner);
	sha256_update(&m->inner, pad, 64);
	for (int i = 0; i < 64; i++)
		pad[i] = k[i] ^ 0x5c;
	sha256_init(&m->outer);
	sha256_update(&m->outer, pad, 64);
}

void hmac_sha256_update(struct hmac_sha256 *m, const void *data, size_t len)
{
	sha256_update(&m->inner, data, len);
}

void hmac_sha256_final(struct hmac_sha256 *m, uint8_t out[SHA256_LEN])
{
	uint8_t inner[SHA256_LEN];
	sha256_final(&m->inner, inner);
	sha256_update(&m->outer, inner, sizeof(inner));
	sha256_final(&m->outer, out);
}

bool mac_equal(const uint8_t *a, const uint8_t *b, size_t len)
{
	uint8_t diff = 0;
	for (size_t i = 0; i < len; i++)
		diff |= a[i] ^ b[i];
	return !diff;
}
