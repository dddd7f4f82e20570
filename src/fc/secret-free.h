/* SPDX-License-Identifier: MIT */
/*
 * fc-serve for Firecracker's secret-free VMs (branch feature/secret-hiding;
 * docs/firecracker.md, "Secret-free VMs").  The handshake is one message:
 * the mappings' JSON (with gpa_start and is_guest_memfd) and three fds —
 * the uffd, the guest_memfd, the userfault bitmap memfd.  A short text
 * message follows on the socket (`no_exitless_apf`, or `exitless_apf:N`
 * with 3N fds we close), then FaultRequest frames (bitcode.h) that we
 * answer with FaultReply frames.
 *
 *   sf-handshake.c  receive and validate the handshake and the text
 *   sf-vm.c         serve one such VM: engine regions, the frame loop
 */
#ifndef LAZYVM_FC_SECRET_FREE_H
#define LAZYVM_FC_SECRET_FREE_H

#include "fc/bitcode.h"
#include "fc/fc.h"

#define FC_SF_NFDS 3
#define FC_SF_MAX_APF_VCPUS 1024	/* exitless_apf:N; Firecracker has <= 32 vCPUs */

struct fc_sf_handshake {
	struct fc_mapping m[FC_MAX_MAPPINGS];
	unsigned n;
	int uffd, gmem_fd, bitmap_fd;
	uint64_t gmem_size;	/* = sum of the regions */
	unsigned apf_vcpus;	/* N of exitless_apf:N, 0 for no_exitless_apf */
	/* Bytes that came after the text message: the first frames. */
	uint8_t rest[4 * FC_FRAME_MAX];
	size_t nrest;
};

/* How many fds the first message on sock carries (MSG_PEEK; the peeked
 * copies are closed), waiting up to timeout_ms for it.  -errno on error. */
int fc_peek_nfds(int sock, int timeout_ms);

/*
 * Receive the secret-free handshake and the text message after it, within
 * timeout_ms; validate the three fds (a userfaultfd; a guest_memfd exactly
 * as large as the regions; a memfd of exactly pages/8 bytes) and the
 * mappings (fc_validate_mappings against the memory file, plus: 4 KiB
 * pages, is_guest_memfd, gpa_start given, regions consecutive in the
 * guest_memfd, gpa ranges disjoint).  0, or -errno with err set and every
 * fd closed.
 */
int fc_sf_recv_handshake(int sock, int timeout_ms, uint64_t file_size,
			 struct fc_sf_handshake *h, char *err, size_t errlen);
void fc_sf_handshake_close(struct fc_sf_handshake *h);

/* Where the text message after the JSON ends (exported for its test and
 * fuzzing): > 0 its length, 0 need more bytes, -EBADMSG not a text message.
 * apf_fds: fds that came with it; *vcpus gets N. */
int fc_sf_parse_apf(const uint8_t *s, size_t len, unsigned apf_fds, unsigned *vcpus);
/* Where the JSON array at the start of s ends (the byte after its ']'):
 * > 0, 0 need more bytes, -EBADMSG it does not start with '['. */
int fc_sf_json_end(const char *s, size_t len);

#endif
