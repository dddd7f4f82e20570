/* SPDX-License-Identifier: MIT */
/* Pre-shared-key authentication of migration channels (see auth.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "migrate/auth.h"
#include "migrate/hmac.h"

int mig_key_load(const char *path, struct mig_key *k, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	struct stat st;
	int ret = 0;
	if (fd < 0 || fstat(fd, &st))
		ret = -errno, snprintf(err, errlen, "%s: %s", path, strerror(errno));
	else if (!S_ISREG(st.st_mode))
		ret = -EINVAL, snprintf(err, errlen, "%s: not a regular file", path);
	else if (st.st_mode & 077)
		ret = -EPERM, snprintf(err, errlen, "%s: readable or writable by others (mode %03o;"
				       " chmod 600 it)", path, (unsigned)(st.st_mode & 0777));
	ssize_t n = 0;
	if (!ret && (n = read(fd, k->bytes, sizeof(k->bytes))) < 0)
		ret = -errno, snprintf(err, errlen, "%s: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	if (ret)
		return ret;
	k->len = (size_t)n;
	while (k->len && (k->bytes[k->len - 1] == '\n' || k->bytes[k->len - 1] == '\r'))
		k->len--;
	if (k->len < MIG_KEY_MIN || (size_t)n == sizeof(k->bytes)) {
		snprintf(err, errlen, "%s: a key must be %d..%d bytes (e.g. `head -c 32 "
			 "/dev/urandom | base64`)", path, MIG_KEY_MIN, MIG_KEY_MAX - 1);
		memset(k, 0, sizeof(*k));
		return -EINVAL;
	}
	return 0;
}

void mig_auth_proof(const struct mig_key *k, enum mig_auth_role role,
		    const struct mig_hello *hello_wire, const uint8_t nonce[MIG_NONCE_LEN],
		    uint8_t mac[MIG_MAC_LEN])
{
	static const char *const label[] = { "lazyvm-migrate-2 dst", "lazyvm-migrate-2 src" };
	struct hmac_sha256 m;
	hmac_sha256_init(&m, k->bytes, k->len);
	hmac_sha256_update(&m, label[role], strlen(label[role]) + 1);
	hmac_sha256_update(&m, hello_wire, sizeof(*hello_wire));
	hmac_sha256_update(&m, nonce, MIG_NONCE_LEN);
	hmac_sha256_final(&m, mac);
}

int mig_auth_check(const struct mig_key *k, enum mig_auth_role role,
		   const struct mig_hello *hello_wire, const uint8_t nonce[MIG_NONCE_LEN],
		   const uint8_t mac[MIG_MAC_LEN])
{
	uint8_t want[MIG_MAC_LEN];
	mig_auth_proof(k, role, hello_wire, nonce, want);
	return mac_equal(want, mac, sizeof(want)) ? 0 : -EACCES;
}
