/* SPDX-License-Identifier: MIT */
/*
 * Pre-shared-key authentication of migration channels (--auth-psk FILE).
 *
 * Every connection (main, request, every resume) proves both ends know the
 * key: the source's HELLO carries a fresh nonce; the destination answers
 * AUTH_CHALLENGE = its own nonce and HMAC(key, "dst" || HELLO || nonce_d);
 * the source checks it and answers AUTH_RESPONSE = HMAC(key, "src" || HELLO
 * || nonce_d).  Each proof is bound to the HELLO (session id, channel,
 * resume flag) and to a nonce the verifier chose, so neither can be replayed
 * nor moved to another channel.  This authenticates the peer, not the bytes
 * that follow: without TLS an attacker on the path can still alter or read
 * the stream (docs/security.md).
 */
#ifndef LAZYVM_MIGRATE_AUTH_H
#define LAZYVM_MIGRATE_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "migrate/wire.h"

#define MIG_KEY_MIN 16
#define MIG_KEY_MAX 1024

struct mig_key {
	uint8_t bytes[MIG_KEY_MAX];
	size_t len;
};

/*
 * Read a key file: a regular file, not readable or writable by group or
 * others, MIG_KEY_MIN..MIG_KEY_MAX bytes once a trailing newline is dropped.
 * 0, or -errno with err saying what is wrong.
 */
int mig_key_load(const char *path, struct mig_key *k, char *err, size_t errlen);

enum mig_auth_role { MIG_AUTH_DST, MIG_AUTH_SRC };

/* The proof of `role` for this HELLO (wire bytes) and the destination's nonce. */
void mig_auth_proof(const struct mig_key *k, enum mig_auth_role role,
		    const struct mig_hello *hello_wire, const uint8_t nonce[MIG_NONCE_LEN],
		    uint8_t mac[MIG_MAC_LEN]);
/* Compare a received proof with the expected one, in constant time. */
int mig_auth_check(const struct mig_key *k, enum mig_auth_role role,
		   const struct mig_hello *hello_wire, const uint8_t nonce[MIG_NONCE_LEN],
		   const uint8_t mac[MIG_MAC_LEN]);

#endif
