/* SPDX-License-Identifier: MIT */
/* Serving faults and the engine's threads (loop.c). */
#ifndef LAZYVM_ENGINE_LOOP_H
#define LAZYVM_ENGINE_LOOP_H

#include "engine/install.h"

/* The background fill's chunk when opts.fill_chunk is 0. */
#define ENGINE_DEFAULT_FILL_CHUNK (512u << 10)

void *engine_handler_thread(void *worker);
/* Start the background fill thread on e->fill_worker; restart: join the
 * finished one first (a region was added after it ran out of work). */
int engine_fill_start(struct lvm_engine *e);
void engine_fill_restart(struct lvm_engine *e);
/* Join the fill thread (after stopping is set). */
void engine_fill_join(struct lvm_engine *e);
/* regions.c: retire every region (destroy). */
void engine_regions_free(struct lvm_engine *e);
/* Read what the uffd has now and serve it on w (one handler batch; also
 * lvm_engine_process()).  Returns the number of faults read. */
int engine_serve_pending(struct worker *w);
/* Serve every fault queued on w (any thread that drained must serve). */
void engine_serve_queued(struct worker *w);

#endif
