/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the JSON of Firecracker's handler message (src/fc/json.c)
 * and the validation behind it.  Whatever the bytes, the parser must return
 * a count or an error, never read outside the input, and anything it accepts
 * must survive validation and re-format/re-parse unchanged.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fc/fc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fc_mapping m[FC_MAX_MAPPINGS], again[FC_MAX_MAPPINGS];
	char err[160];
	/* An exact-size heap copy: ASan catches a single byte read past the end. */
	char *buf = malloc(size ? size : 1);
	memcpy(buf, data, size);
	int n = fc_parse_mappings(buf, size, m, FC_MAX_MAPPINGS, err, sizeof(err));
	free(buf);
	if (n <= 0)
		return 0;
	fc_validate_mappings(m, (unsigned)n, 1ull << 40, err, sizeof(err));
	static char text[FC_MAX_MSG];
	int len = fc_format_mappings(m, (unsigned)n, text, sizeof(text));
	if (len < 0)
		abort();
	if (fc_parse_mappings(text, (size_t)len, again, FC_MAX_MAPPINGS, err, sizeof(err)) != n)
		abort();
	for (int i = 0; i < n; i++)	/* field by field: the struct has padding */
		if (m[i].base != again[i].base || m[i].size != again[i].size ||
		    m[i].offset != again[i].offset || m[i].page_size != again[i].page_size ||
		    m[i].gpa_start != again[i].gpa_start ||
		    m[i].has_gpa_start != again[i].has_gpa_start ||
		    m[i].is_guest_memfd != again[i].is_guest_memfd)
			abort();
	return 0;
}
