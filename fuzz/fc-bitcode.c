/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the bitcode frames of Firecracker's secret-free protocol
 * (src/fc/bitcode.c).  The input is a byte stream as it arrives on the
 * socket: split into frames, each payload decoded as a FaultRequest and as
 * a FaultReply.  Nothing may read outside the input, and whatever decodes
 * must re-encode to a frame that decodes to the same value.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fc/bitcode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_request(const uint8_t *p, size_t n)
{
	struct fc_fault_request q, again;
	uint8_t buf[FC_FRAME_MAX];
	if (fc_decode_fault_request(p, n, &q))
		return;
	int len = fc_encode_fault_request(&q, buf, sizeof(buf));
	if (len < FC_FRAME_HDR || (size_t)len - FC_FRAME_HDR > n ||
	    fc_decode_fault_request(buf + FC_FRAME_HDR, (size_t)len - FC_FRAME_HDR, &again) ||
	    again.vcpu != q.vcpu || again.offset != q.offset || again.flags != q.flags ||
	    again.has_gpa != q.has_gpa || again.gpa != q.gpa)
		abort();
}

static void check_reply(const uint8_t *p, size_t n)
{
	struct fc_fault_reply a, again;
	uint8_t buf[FC_FRAME_MAX];
	if (fc_decode_fault_reply(p, n, &a))
		return;
	int len = fc_encode_fault_reply(&a, buf, sizeof(buf));
	if (len < FC_FRAME_HDR || (size_t)len - FC_FRAME_HDR > n ||
	    fc_decode_fault_reply(buf + FC_FRAME_HDR, (size_t)len - FC_FRAME_HDR, &again) ||
	    memcmp(&a, &again, sizeof(a)))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* An exact-size heap copy: ASan catches a single byte read past the end. */
	uint8_t *buf = malloc(size ? size : 1);
	memcpy(buf, data, size);
	size_t at = 0;
	while (at < size) {
		size_t plen = 0;
		int n = fc_frame_complete(buf + at, size - at, &plen);
		if (n <= 0)
			break;
		uint8_t *p = malloc(plen);
		memcpy(p, buf + at + FC_FRAME_HDR, plen);
		check_request(p, plen);
		check_reply(p, plen);
		free(p);
		at += (size_t)n;
	}
	free(buf);
	return 0;
}
