/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the migration message validator (src/migrate/wire.c).
 * The input is a byte stream as a destination or source would receive it:
 * headers and payloads back to back.  Whatever the bytes, validation must
 * return 0 or -EPROTO, never read outside a message, and anything it accepts
 * must be safe to act on: page ranges inside guest memory, data lengths that
 * match the unit count, bitmaps of exactly the right size.
 */
#include <endian.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "migrate/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_accepted(uint16_t type, const uint8_t *p, uint32_t len,
			   const struct mig_limits *lim)
{
	struct mig_pages pg;
	switch (type) {
	case MIG_PAGES:
	case MIG_REQUEST:
		if (len < sizeof(pg))
			abort();
		memcpy(&pg, p, sizeof(pg));
		mig_pages_from_wire(&pg);
		if (!lim->unit || !pg.count || pg.offset % lim->unit ||
		    pg.offset + (uint64_t)pg.count * lim->unit > lim->mem_size)
			abort();
		if (type == MIG_PAGES && !(pg.flags & MIG_PAGES_ZERO) &&
		    len != sizeof(pg) + (uint64_t)pg.count * lim->unit)
			abort();
		break;
	case MIG_DISCARD:
	case MIG_RECV_BITMAP:
		if (!lim->unit || len != (lim->mem_size / lim->unit + 7) / 8)
			abort();
		break;
	default:
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* The limits a destination has after a HELLO for 1 MiB of 4 KiB pages;
	 * a valid HELLO in the stream replaces them, as the session would. */
	struct mig_limits lim = { 1u << 20, 4096 };
	char why[160];
	while (size >= sizeof(struct mig_hdr)) {
		uint16_t type;
		uint32_t len;
		if (mig_check_header(data, &type, &len, why, sizeof(why)) != 0)
			return 0;
		data += sizeof(struct mig_hdr);
		size -= sizeof(struct mig_hdr);
		if (len > size)
			return 0;	/* truncated: mig_recv reports the cut */
		/* An exact-size heap copy: ASan catches a single byte read past it. */
		uint8_t *p = malloc(len ? len : 1);
		memcpy(p, data, len);
		int ret = mig_check_payload(type, p, len, &lim, why, sizeof(why));
		if (ret && ret != -EPROTO)
			abort();
		if (!ret)
			check_accepted(type, p, len, &lim);
		if (!ret && type == MIG_HELLO) {
			struct mig_hello h;
			memcpy(&h, p, sizeof(h));
			mig_hello_from_wire(&h);
			/* Keep the fuzzer's bitmaps small enough to be found. */
			if (h.mem_size / h.unit <= (1u << 16))
				lim = (struct mig_limits){ h.mem_size, h.unit };
		}
		free(p);
		data += len;
		size -= len;
	}
	return 0;
}
