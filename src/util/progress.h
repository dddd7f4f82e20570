/* SPDX-License-Identifier: MIT */
/*
 * Progress of a long operation (snapshot write, verify, restore): bytes done
 * of a total, reported after every chunk from any number of threads.  The
 * library only counts and rate-limits (one draw per 100 ms at most); drawing
 * is the program's: the library never prints.  The CLI installs its
 * terminal bar (tools/progress-bar.c) with progress_set_default_draw(); with
 * none installed, as in a program that embeds the library, nothing is drawn.
 */
#ifndef LAZYVM_PROGRESS_H
#define LAZYVM_PROGRESS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* Draw label at done of total bytes, elapsed_ns since the start; final:
 * the last call (done == total), after which the line is the caller's. */
typedef void (*progress_draw_fn)(const char *label, uint64_t done, uint64_t total,
				 uint64_t elapsed_ns, bool final);

struct progress {
	char label[32];
	uint64_t total;
	_Atomic uint64_t done;
	_Atomic uint64_t next_draw_ns;	/* rate limit; also the draw lock */
	uint64_t start_ns;
	progress_draw_fn draw;		/* NULL: quiet */
};

/* The drawer every progress_init() picks up (NULL: none, the default). */
void progress_set_default_draw(progress_draw_fn fn);
void progress_init(struct progress *p, const char *label, uint64_t total_bytes);
/* done: bytes finished so far (absolute). */
void progress_update(struct progress *p, uint64_t done);
/* Add delta to done (for several workers sharing one bar). */
void progress_add(struct progress *p, uint64_t delta);
/* Final draw at 100% (nothing when quiet). */
void progress_done(struct progress *p);
/* End the line where the count is (a phase that stops short of 100%). */
void progress_end(struct progress *p);
/* Force drawing off, or back on with the default drawer (tests, --quiet). */
void progress_set_enabled(struct progress *p, bool on);

#endif
