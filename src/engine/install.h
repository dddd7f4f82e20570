/* SPDX-License-Identifier: MIT */
/* Claiming pages and putting their content in place (install.c). */
#ifndef LAZYVM_ENGINE_INSTALL_H
#define LAZYVM_ENGINE_INSTALL_H

#include "engine/events.h"

/* Claim the run of MISSING pages around page p within [win_lo, win_hi). */
bool engine_claim_run(struct lvm_engine *e, struct region *r, uint64_t p,
		      uint64_t win_lo, uint64_t win_hi, struct run *out);
/* Ask the run's source for its content: source_get()'s return (0,
 * LVM_SOURCE_ZERO, LVM_SOURCE_PENDING or -errno), *data set on 0. */
int engine_fetch(struct worker *w, const struct run *run, const void **data);
/* Fetch the run's content and install it; background selects the counter. */
int engine_fetch_install(struct worker *w, struct run *run, bool background);
/* Install given content (NULL: zeros) into the CLAIMED pages of run. */
int engine_install(struct worker *w, struct run *run, const uint8_t *data, bool background);
/* Serve a page the guest discarded (ZERO) with zeros. */
int engine_serve_zero(struct worker *w, struct region *r, uint64_t p);
/* MINOR fault on a page the page cache already has: map it. */
int engine_continue_only(struct worker *w, struct region *r, uint64_t p);
/* CLAIMED pages of [a, b) are now in place: PRESENT, counted. */
void engine_mark_present(struct lvm_engine *e, struct region *r, uint64_t a, uint64_t b,
			 _Atomic uint64_t *counter, bool zero);
/* Source failed for the claimed run: poison its CLAIMED pages so the guest
 * gets SIGBUS, and wake every page of it.  w: where faults read while
 * waiting out an EAGAIN are queued (NULL: leave them to the handlers). */
void engine_fail_run(struct lvm_engine *e, struct worker *w, struct run *run, int err,
		     const char *why);

#endif
