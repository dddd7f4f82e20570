/* SPDX-License-Identifier: MIT */
/*
 * Step timestamps of one operation (CLOCK_MONOTONIC), so a restore can say
 * where its time to the first instruction goes (--stats-json "steps_us",
 * bench/restore-steps, docs/restore-latency.md).  A mark is "this step is
 * done"; marks may come from several threads (the VMM's memslot thread).
 * Every function accepts a NULL timeline and then does nothing, so code
 * paths that nobody measures pay one test.
 */
#ifndef LAZYVM_TIMELINE_H
#define LAZYVM_TIMELINE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "util/clock.h"

#define TIMELINE_MAX 48

struct timeline_mark {
	const char *step;	/* a string literal: the name of the step just done */
	uint64_t ns;
};

struct timeline {
	uint64_t start_ns;
	atomic_uint n;		/* marks taken (may exceed TIMELINE_MAX: extra ones dropped) */
	struct timeline_mark marks[TIMELINE_MAX];
};

/* Start at now (marks are reported relative to it). */
void timeline_init(struct timeline *t);
void timeline_mark(struct timeline *t, const char *step);
/* The marks so far, sorted by time: count written to *n (<= max). */
unsigned timeline_sorted(const struct timeline *t, struct timeline_mark *out, unsigned max);
/*
 * {"step": us since start, ...} in time order, into buf (always
 * NUL-terminated); "{}" when there is nothing or no room.
 */
void timeline_json(const struct timeline *t, char *buf, size_t len);

#endif
