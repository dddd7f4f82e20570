/* SPDX-License-Identifier: MIT */
/*
 * The frames of Firecracker's secret-free UFFD protocol (branch
 * feature/secret-hiding): FaultRequest from the VMM, FaultReply from the
 * page server, on the same Unix socket as the handshake.  A frame is a u32
 * little-endian payload length and a payload in Rust's `bitcode` 0.6
 * encoding of
 *
 *   FaultRequest { vcpu: u32, offset: u64, flags: u64, gpa: Option<u64> }
 *   FaultReply   { vcpu: Option<u32>, offset: u64, len: u64, flags: u64,
 *                  gpa: Option<u64>, zero: bool }
 *
 * Fields in declaration order, no header.  An integer is one packing byte
 * then the value little-endian (u64: 6 = 1 byte, 4 = 2, 2 = 4, 0 = 8;
 * u32: 4 = 1, 2 = 2, 0 = 4); an Option one byte 0/1 then the value; a bool
 * one byte 0/1.  The decoders are strict: an unknown packing byte, an
 * Option or bool byte >= 2, a short payload or trailing bytes are refused
 * (-EBADMSG).  The bytes come from another process: fuzz/fc-bitcode.c.
 */
#ifndef LAZYVM_FC_BITCODE_H
#define LAZYVM_FC_BITCODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FC_FRAME_HDR		4
/* Firecracker's limit; the largest of our two structs encodes in 44 bytes. */
#define FC_FRAME_MAX_PAYLOAD	48
#define FC_FRAME_MAX		(FC_FRAME_HDR + FC_FRAME_MAX_PAYLOAD)

struct fc_fault_request {
	uint32_t vcpu;
	uint64_t offset;	/* 0 from KVM exits; kept and echoed */
	uint64_t flags;		/* KVM's memory_fault.flags */
	bool has_gpa;
	uint64_t gpa;		/* page-aligned guest physical address */
};

struct fc_fault_reply {
	bool has_vcpu;		/* Firecracker panics on None: we always send Some */
	uint32_t vcpu;
	uint64_t offset, len, flags;
	bool has_gpa;
	uint64_t gpa;
	bool zero;
};

/* Encode a whole frame (header + payload) into buf (>= FC_FRAME_MAX bytes
 * to be safe).  Returns the frame length or -ENOSPC. */
int fc_encode_fault_request(const struct fc_fault_request *q, uint8_t *buf, size_t buflen);
int fc_encode_fault_reply(const struct fc_fault_reply *r, uint8_t *buf, size_t buflen);

/* Decode exactly one payload (no header).  0 or -EBADMSG. */
int fc_decode_fault_request(const uint8_t *p, size_t len, struct fc_fault_request *out);
int fc_decode_fault_reply(const uint8_t *p, size_t len, struct fc_fault_reply *out);

/*
 * Where the first frame in buf[0..len) ends: its total length (header
 * included) when complete, 0 when more bytes are needed, -EMSGSIZE when the
 * header announces a payload of 0 or more than FC_FRAME_MAX_PAYLOAD bytes.
 * *payload_len gets the payload length when the return is > 0.
 */
int fc_frame_complete(const uint8_t *buf, size_t len, size_t *payload_len);

#endif
