/* SPDX-License-Identifier: MIT */
/*
 * A one-line progress bar on stderr: bytes done / total, rate, ETA.  It draws
 * only when both stdout and stderr are terminals (a redirected or piped run
 * stays completely quiet) and redraws at most every 100 ms, so callers may
 * report after every chunk, from several threads.
 */
#ifndef LAZYVM_PROGRESS_H
#define LAZYVM_PROGRESS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct progress {
	char label[32];
	uint64_t total;
	_Atomic uint64_t done;
	_Atomic uint64_t next_draw_ns;	/* rate limit; also the draw lock */
	uint64_t start_ns;
	bool enabled;			/* stdout and stderr are terminals */
	bool drawn;			/* something is on the line */
};

void progress_init(struct progress *p, const char *label, uint64_t total_bytes);
/* done: bytes finished so far (absolute). */
void progress_update(struct progress *p, uint64_t done);
/* Add delta to done (for several workers sharing one bar). */
void progress_add(struct progress *p, uint64_t delta);
/* Final draw at 100% and a newline (nothing when quiet). */
void progress_done(struct progress *p);
/* Force the bar off or on (tests, --quiet). */
void progress_set_enabled(struct progress *p, bool on);

#endif
