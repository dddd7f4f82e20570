/* SPDX-License-Identifier: MIT */
/*
 * bitcode 0.6 encoding of FaultRequest / FaultReply (see bitcode.h).  A
 * cursor over the payload; every read is bounds-checked and every byte
 * with a fixed meaning (packing, Option tag, bool) is checked against the
 * values bitcode writes.
 */
#include <errno.h>
#include <string.h>

#include "fc/bitcode.h"

struct bc_reader {
	const uint8_t *p;
	size_t len, pos;
	bool bad;
};

struct bc_writer {
	uint8_t *p;
	size_t len, pos;
	bool full;
};

/* ---- reading ------------------------------------------------------------- */

static uint8_t bc_byte(struct bc_reader *r)
{
	if (r->pos >= r->len) {
		r->bad = true;
		return 0;
	}
	return r->p[r->pos++];
}

static uint64_t bc_le(struct bc_reader *r, unsigned nbytes)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < nbytes; i++)
		v |= (uint64_t)bc_byte(r) << (8 * i);
	return v;
}

/* Packing byte -> value width in bytes; 0 for a byte bitcode never writes. */
static unsigned bc_width(uint8_t packing, bool u64)
{
	switch (packing) {
	case 0: return u64 ? 8 : 4;
	case 2: return u64 ? 4 : 2;
	case 4: return u64 ? 2 : 1;
	case 6: return u64 ? 1 : 0;
	default: return 0;
	}
}

static uint64_t bc_uint(struct bc_reader *r, bool u64)
{
	unsigned w = bc_width(bc_byte(r), u64);
	if (!w) {
		r->bad = true;
		return 0;
	}
	return bc_le(r, w);
}

/* An Option tag or a bool: 0 or 1, nothing else. */
static bool bc_flag(struct bc_reader *r)
{
	uint8_t b = bc_byte(r);
	if (b > 1)
		r->bad = true;
	return b == 1;
}

static int bc_finish(const struct bc_reader *r)
{
	return r->bad || r->pos != r->len ? -EBADMSG : 0;
}

int fc_decode_fault_request(const uint8_t *p, size_t len, struct fc_fault_request *out)
{
	struct bc_reader r = { p, len, 0, false };
	struct fc_fault_request q = { 0 };
	q.vcpu = (uint32_t)bc_uint(&r, false);
	q.offset = bc_uint(&r, true);
	q.flags = bc_uint(&r, true);
	q.has_gpa = bc_flag(&r);
	if (q.has_gpa)
		q.gpa = bc_uint(&r, true);
	int ret = bc_finish(&r);
	if (!ret)
		*out = q;
	return ret;
}

int fc_decode_fault_reply(const uint8_t *p, size_t len, struct fc_fault_reply *out)
{
	struct bc_reader r = { p, len, 0, false };
	struct fc_fault_reply a = { 0 };
	a.has_vcpu = bc_flag(&r);
	if (a.has_vcpu)
		a.vcpu = (uint32_t)bc_uint(&r, false);
	a.offset = bc_uint(&r, true);
	a.len = bc_uint(&r, true);
	a.flags = bc_uint(&r, true);
	a.has_gpa = bc_flag(&r);
	if (a.has_gpa)
		a.gpa = bc_uint(&r, true);
	a.zero = bc_flag(&r);
	int ret = bc_finish(&r);
	if (!ret)
		*out = a;
	return ret;
}

int fc_frame_complete(const uint8_t *buf, size_t len, size_t *payload_len)
{
	if (len < FC_FRAME_HDR)
		return 0;
	uint32_t n = (uint32_t)buf[0] | (uint32_t)buf[1] << 8 | (uint32_t)buf[2] << 16 |
		     (uint32_t)buf[3] << 24;
	if (n == 0 || n > FC_FRAME_MAX_PAYLOAD)
		return -EMSGSIZE;
	if (len < FC_FRAME_HDR + (size_t)n)
		return 0;
	*payload_len = n;
	return (int)(FC_FRAME_HDR + n);
}

/* ---- writing ------------------------------------------------------------- */

static void bc_put(struct bc_writer *w, uint8_t b)
{
	if (w->pos >= w->len) {
		w->full = true;
		return;
	}
	w->p[w->pos++] = b;
}

/* The smallest width, as bitcode's encoder picks it; the packing byte for
 * that width is the inverse of bc_width(). */
static void bc_put_uint(struct bc_writer *w, uint64_t v, bool u64)
{
	unsigned nbytes = 1, max = u64 ? 8 : 4;
	while (nbytes < max && v >> (8 * nbytes))
		nbytes *= 2;
	uint8_t packing = 0;
	while (bc_width(packing, u64) != nbytes)
		packing += 2;
	bc_put(w, packing);
	for (unsigned i = 0; i < nbytes; i++)
		bc_put(w, (uint8_t)(v >> (8 * i)));
}

static void bc_put_flag(struct bc_writer *w, bool b)
{
	bc_put(w, b ? 1 : 0);
}

/* Payload written after the 4-byte header; fill the header in at the end. */
static int bc_frame_done(struct bc_writer *w)
{
	if (w->full)
		return -ENOSPC;
	uint32_t n = (uint32_t)(w->pos - FC_FRAME_HDR);
	for (unsigned i = 0; i < 4; i++)
		w->p[i] = (uint8_t)(n >> (8 * i));
	return (int)w->pos;
}

static bool bc_frame_start(struct bc_writer *w, uint8_t *buf, size_t buflen)
{
	*w = (struct bc_writer){ buf, buflen, FC_FRAME_HDR, buflen < FC_FRAME_HDR };
	return !w->full;
}

int fc_encode_fault_request(const struct fc_fault_request *q, uint8_t *buf, size_t buflen)
{
	struct bc_writer w;
	if (!bc_frame_start(&w, buf, buflen))
		return -ENOSPC;
	bc_put_uint(&w, q->vcpu, false);
	bc_put_uint(&w, q->offset, true);
	bc_put_uint(&w, q->flags, true);
	bc_put_flag(&w, q->has_gpa);
	if (q->has_gpa)
		bc_put_uint(&w, q->gpa, true);
	return bc_frame_done(&w);
}

int fc_encode_fault_reply(const struct fc_fault_reply *a, uint8_t *buf, size_t buflen)
{
	struct bc_writer w;
	if (!bc_frame_start(&w, buf, buflen))
		return -ENOSPC;
	bc_put_flag(&w, a->has_vcpu);
	if (a->has_vcpu)
		bc_put_uint(&w, a->vcpu, false);
	bc_put_uint(&w, a->offset, true);
	bc_put_uint(&w, a->len, true);
	bc_put_uint(&w, a->flags, true);
	bc_put_flag(&w, a->has_gpa);
	if (a->has_gpa)
		bc_put_uint(&w, a->gpa, true);
	bc_put_flag(&w, a->zero);
	return bc_frame_done(&w);
}
