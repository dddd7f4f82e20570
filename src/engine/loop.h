/* SPDX-License-Identifier: MIT */
/* Serving faults and the engine's threads (loop.c). */
#ifndef LAZYVM_ENGINE_LOOP_H
#define LAZYVM_ENGINE_LOOP_H

#include "engine/install.h"

/* The background fill's chunk when opts.fill_chunk is 0. */
#define ENGINE_DEFAULT_FILL_CHUNK (512u << 10)

void *engine_handler_thread(void *worker);
void *engine_fill_thread(void *worker);
/* Serve every fault queued on w (any thread that drained must serve). */
void engine_serve_queued(struct worker *w);

#endif
