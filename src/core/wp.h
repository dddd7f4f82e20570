/* SPDX-License-Identifier: MIT */
/*
 * Write-protect tracker: uffd-WP over guest memory at chunk granularity.
 * Every chunk starts protected; the first write to a chunk (or an explicit
 * wp_tracker_take) calls first_write(chunk) *before* the chunk is unprotected
 * and the writer continues — so first_write sees the chunk as it was when
 * protection started.  That is a point-in-time (live) snapshot; re-protecting
 * chunks gives per-round dirty tracking for pre-copy migration.
 */
#ifndef LAZYVM_WP_H
#define LAZYVM_WP_H

#include <stdint.h>

#include "lazyvm.h"

struct wp_tracker;

typedef void (*wp_first_write_fn)(void *ctx, uint64_t chunk);

/* Register WP on all of mem, protect it, start the fault thread. */
int wp_tracker_start(struct lvm_mem *mem, size_t chunk_size, wp_first_write_fn fn,
		     void *ctx, struct wp_tracker **out);
/* If chunk is still protected: call first_write, unprotect.  1 if this call
 * did it, 0 if it was already released, -errno on failure. */
int wp_tracker_take(struct wp_tracker *t, uint64_t chunk);
/* Protect a released chunk again (start of a dirty-tracking round). */
int wp_tracker_protect(struct wp_tracker *t, uint64_t chunk);
uint64_t wp_tracker_chunks(const struct wp_tracker *t);
/* WP faults served so far. */
uint64_t wp_tracker_faults(const struct wp_tracker *t);
/* Unprotect everything, unregister, stop the thread, free. */
void wp_tracker_stop(struct wp_tracker *t);

#endif
