/* SPDX-License-Identifier: MIT */
/*
 * The bottom of the engine: per-page state transitions (with the count of
 * unresolved pages kept exact), the region lookup, error recording, and
 * reading the uffd (faults queued, REMOVE/UNMAP/REMAP applied at once).
 */
#ifndef LAZYVM_ENGINE_EVENTS_H
#define LAZYVM_ENGINE_EVENTS_H

#include "engine/engine.h"

bool page_cas(struct lvm_engine *e, struct region *r, uint64_t p, uint8_t from, uint8_t to);
uint8_t page_xchg(struct lvm_engine *e, struct region *r, uint64_t p, uint8_t to);
static inline uint8_t page_get(struct region *r, uint64_t p)
{
	return atomic_load_explicit(&r->state[p], memory_order_acquire);
}

/* Keep the first error for lvm_engine_error() and tell opts.on_error. */
void engine_record_error(struct lvm_engine *e, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Something the caller may want to know that is not a failure to serve
 * (opts.on_warning; nothing when unset). */
void engine_warn(struct lvm_engine *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
struct region *engine_region_of(struct lvm_engine *e, uint64_t addr);
/* Read every pending message: apply events, queue faults on w.  Returns the
 * number of faults queued. */
int engine_drain_events(struct lvm_engine *e, struct worker *w);

#endif
