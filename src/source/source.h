/* SPDX-License-Identifier: MIT */
#ifndef LAZYVM_SOURCE_H
#define LAZYVM_SOURCE_H

#include "lazyvm.h"

struct lvm_source {
	struct lvm_source_ops ops;
	void *ctx;
	uint64_t size;
};

/* get() with the bounds check every caller needs. */
int source_get(struct lvm_source *src, uint64_t off, size_t len, void *scratch,
	       const void **data);

#endif
