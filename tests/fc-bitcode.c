/* SPDX-License-Identifier: MIT */
/*
 * The bitcode codec of Firecracker's secret-free frames (src/fc/bitcode.c)
 * against the byte-exact vectors of the protocol (taken from Firecracker's
 * code and the bitcode 0.6.9 crate), round trips over every integer width,
 * and every malformed payload refused: an Option or bool byte >= 2, a
 * packing byte bitcode never writes, a short payload, trailing bytes, a
 * frame header announcing 0 or more than 48 bytes.
 */
#include <errno.h>
#include <string.h>

#include "tap.h"
#include "fc/bitcode.h"

/* FaultRequest{vcpu 0, offset 0, flags 0x10, gpa Some(0x12345000)} */
static const uint8_t req1[] = { 0x0c, 0, 0, 0, 0x04, 0x00, 0x06, 0x00, 0x06, 0x10, 0x01,
				0x02, 0x00, 0x50, 0x34, 0x12 };
/* FaultRequest{vcpu 300, offset 0x1000, flags 0, gpa None} */
static const uint8_t req2[] = { 0x09, 0, 0, 0, 0x02, 0x2c, 0x01, 0x04, 0x00, 0x10, 0x06,
				0x00, 0x00 };
/* FaultReply{vcpu Some(0), offset 0, len 4096, flags 0x10, gpa Some(0x12345000), zero false} */
static const uint8_t rep1[] = { 0x11, 0, 0, 0, 0x01, 0x04, 0x00, 0x06, 0x00, 0x04, 0x00,
				0x10, 0x06, 0x10, 0x01, 0x02, 0x00, 0x50, 0x34, 0x12, 0x00 };

static bool req_eq(const struct fc_fault_request *a, const struct fc_fault_request *b)
{
	return a->vcpu == b->vcpu && a->offset == b->offset && a->flags == b->flags &&
	       a->has_gpa == b->has_gpa && (!a->has_gpa || a->gpa == b->gpa);
}

static bool rep_eq(const struct fc_fault_reply *a, const struct fc_fault_reply *b)
{
	return a->has_vcpu == b->has_vcpu && (!a->has_vcpu || a->vcpu == b->vcpu) &&
	       a->offset == b->offset && a->len == b->len && a->flags == b->flags &&
	       a->has_gpa == b->has_gpa && (!a->has_gpa || a->gpa == b->gpa) &&
	       a->zero == b->zero;
}

static void check_vectors(void)
{
	uint8_t buf[FC_FRAME_MAX];
	struct fc_fault_request q1 = { 0, 0, 0x10, true, 0x12345000 }, q2 = { 300, 0x1000, 0, false, 0 };
	struct fc_fault_reply a1 = { true, 0, 0, 4096, 0x10, true, 0x12345000, false };
	struct fc_fault_request gq;
	struct fc_fault_reply ga;

	int n = fc_encode_fault_request(&q1, buf, sizeof(buf));
	tap_ok(n == (int)sizeof(req1) && !memcmp(buf, req1, sizeof(req1)),
	       "FaultRequest{0, 0, 0x10, Some(0x12345000)} encodes as in PROTOCOL.md");
	n = fc_encode_fault_request(&q2, buf, sizeof(buf));
	tap_ok(n == (int)sizeof(req2) && !memcmp(buf, req2, sizeof(req2)),
	       "FaultRequest{300, 0x1000, 0, None} encodes as in PROTOCOL.md");
	n = fc_encode_fault_reply(&a1, buf, sizeof(buf));
	tap_ok(n == (int)sizeof(rep1) && !memcmp(buf, rep1, sizeof(rep1)),
	       "FaultReply{Some(0), 0, 4096, 0x10, Some(0x12345000), false} encodes as in PROTOCOL.md");

	size_t plen = 0;
	tap_ok(fc_frame_complete(req1, sizeof(req1), &plen) == (int)sizeof(req1) && plen == 12 &&
	       !fc_decode_fault_request(req1 + 4, plen, &gq) && req_eq(&gq, &q1),
	       "vector 1 decodes to the FaultRequest it encodes");
	tap_ok(fc_frame_complete(req2, sizeof(req2), &plen) == (int)sizeof(req2) && plen == 9 &&
	       !fc_decode_fault_request(req2 + 4, plen, &gq) && req_eq(&gq, &q2),
	       "vector 2 decodes to the FaultRequest it encodes");
	tap_ok(fc_frame_complete(rep1, sizeof(rep1), &plen) == (int)sizeof(rep1) && plen == 17 &&
	       !fc_decode_fault_reply(rep1 + 4, plen, &ga) && rep_eq(&ga, &a1),
	       "vector 3 decodes to the FaultReply it encodes");
}

/* Values at every width boundary survive encode + decode. */
static void check_round_trips(void)
{
	static const uint64_t v64[] = { 0, 1, 0xff, 0x100, 0xffff, 0x10000, 0xffffffffull,
					0x100000000ull, ~0ull };
	static const uint32_t v32[] = { 0, 0xff, 0x100, 0xffff, 0x10000, 0xffffffffu };
	uint8_t buf[FC_FRAME_MAX];
	unsigned bad = 0, cases = 0, maxlen = 0;
	for (unsigned i = 0; i < sizeof(v64) / 8; i++)
		for (unsigned j = 0; j < sizeof(v32) / 4; j++) {
			struct fc_fault_request q = { v32[j], v64[i], ~v64[i], i & 1, v64[i] }, g;
			struct fc_fault_reply a = { j & 1, v32[j], v64[i], ~v64[i], v64[i] >> 1,
						    !(i & 1), v64[i], (i + j) & 1 }, h;
			int n = fc_encode_fault_request(&q, buf, sizeof(buf));
			bad += n < 0 || fc_decode_fault_request(buf + 4, (size_t)n - 4, &g) ||
			       !req_eq(&g, &q);
			maxlen = n > (int)maxlen ? (unsigned)n : maxlen;
			n = fc_encode_fault_reply(&a, buf, sizeof(buf));
			bad += n < 0 || fc_decode_fault_reply(buf + 4, (size_t)n - 4, &h) ||
			       !rep_eq(&h, &a);
			maxlen = n > (int)maxlen ? (unsigned)n : maxlen;
			cases += 2;
		}
	tap_ok(!bad, "%u round trips over every integer width (%u wrong)", cases, bad);
	tap_ok(maxlen <= FC_FRAME_MAX, "largest frame %u bytes <= %d", maxlen, FC_FRAME_MAX);
	struct fc_fault_reply full = { true, ~0u, ~0ull, ~0ull, ~0ull, true, ~0ull, true };
	tap_ok(fc_encode_fault_reply(&full, buf, 20) == -ENOSPC,
	       "encoding into a short buffer: -ENOSPC");
}

/* A decoder must accept any width, not only the smallest. */
static void check_wide_widths(void)
{
	/* vcpu 7 as 4 bytes, offset 0 as 8, flags 0x10 as 4, gpa 0x1000 as 2 */
	static const uint8_t wide[] = { 0x00, 7, 0, 0, 0, 0x00, 0, 0, 0, 0, 0, 0, 0, 0,
					0x02, 0x10, 0, 0, 0, 0x01, 0x04, 0x00, 0x10 };
	struct fc_fault_request g;
	tap_ok(!fc_decode_fault_request(wide, sizeof(wide), &g) && g.vcpu == 7 && !g.offset &&
	       g.flags == 0x10 && g.has_gpa && g.gpa == 0x1000,
	       "integers in wider encodings than the smallest are accepted");
}

static void check_refused(void)
{
	struct fc_fault_request g;
	struct fc_fault_reply h;
	uint8_t b[64];

	memcpy(b, req1 + 4, 12);
	b[6] = 2;	/* gpa's Option byte */
	tap_ok(fc_decode_fault_request(b, 12, &g) == -EBADMSG, "Option byte 2 refused");
	b[6] = 0xff;
	tap_ok(fc_decode_fault_request(b, 12, &g) == -EBADMSG, "Option byte 0xff refused");
	memcpy(b, rep1 + 4, 17);
	b[16] = 2;	/* zero: bool */
	tap_ok(fc_decode_fault_reply(b, 17, &h) == -EBADMSG, "bool byte 2 refused");
	b[16] = 0;
	b[0] = 3;	/* vcpu's Option byte */
	tap_ok(fc_decode_fault_reply(b, 17, &h) == -EBADMSG, "reply Option byte 3 refused");

	memcpy(b, req1 + 4, 12);
	b[12] = 0;
	tap_ok(fc_decode_fault_request(b, 13, &g) == -EBADMSG, "one trailing byte refused");
	memcpy(b, rep1 + 4, 17);
	tap_ok(fc_decode_fault_reply(b, 18, &h) == -EBADMSG, "trailing byte after a reply refused");
	unsigned shortok = 0;
	for (size_t n = 0; n < 12; n++)
		shortok += fc_decode_fault_request(req1 + 4, n, &g) == -EBADMSG;
	for (size_t n = 0; n < 17; n++)
		shortok += fc_decode_fault_reply(rep1 + 4, n, &h) == -EBADMSG;
	tap_ok(shortok == 12 + 17, "every truncated payload refused (%u of 29)", shortok);

	unsigned packok = 0, packs = 0;
	for (unsigned pk = 0; pk < 256; pk++) {
		if (pk == 0 || pk == 2 || pk == 4 || pk == 6)
			continue;
		memcpy(b, req1 + 4, 12);
		b[2] = (uint8_t)pk;	/* offset's packing byte */
		packok += fc_decode_fault_request(b, 12, &g) == -EBADMSG;
		packs++;
	}
	memcpy(b, req1 + 4, 12);
	b[0] = 6;	/* 1-byte packing is a u64's; a u32 has no 6 */
	packok += fc_decode_fault_request(b, 12, &g) == -EBADMSG;
	tap_ok(packok == packs + 1, "packing bytes bitcode never writes refused (%u of %u)",
	       packok, packs + 1);

	/* Frames */
	size_t plen;
	uint8_t hdr[FC_FRAME_HDR + 64] = { 49, 0, 0, 0 };
	tap_ok(fc_frame_complete(hdr, sizeof(hdr), &plen) == -EMSGSIZE,
	       "frame announcing 49 bytes refused");
	memcpy(hdr, (uint8_t[]){ 0, 0, 0, 1 }, 4);
	tap_ok(fc_frame_complete(hdr, 4, &plen) == -EMSGSIZE, "frame announcing 16 MiB refused");
	memcpy(hdr, (uint8_t[]){ 0, 0, 0, 0 }, 4);
	tap_ok(fc_frame_complete(hdr, 4, &plen) == -EMSGSIZE, "empty frame refused");
	unsigned partial = 0;
	for (size_t n = 0; n < sizeof(req1); n++)
		partial += fc_frame_complete(req1, n, &plen) == 0;
	tap_ok(partial == sizeof(req1), "a frame cut anywhere asks for more bytes");
	uint8_t two[2 * sizeof(req1)];
	memcpy(two, req1, sizeof(req1));
	memcpy(two + sizeof(req1), req1, sizeof(req1));
	tap_ok(fc_frame_complete(two, sizeof(two), &plen) == (int)sizeof(req1),
	       "two frames glued: the first one's length");
}

int main(void)
{
	tap_plan(23);
	check_vectors();
	check_round_trips();
	check_wide_widths();
	check_refused();
	return tap_done();
}
