/* SPDX-License-Identifier: MIT */
/*
 * A restore's working set (docs/prefetch.md): recorded with --record-ws,
 * replayed with --prefetch ws (streamed ahead of the vCPUs in the order the
 * guest touched it), and learnt from (each prefetched restore appends the
 * pages it still had to demand-fault).  The file is src/snapshot/ws.c's.
 */
#ifndef LAZYVM_VMM_RESTORE_WS_H
#define LAZYVM_VMM_RESTORE_WS_H

#include <stdatomic.h>
#include <stdbool.h>

#include "lazyvm.h"
#include "snapshot/ws.h"
#include "vmm/snapshot.h"

struct restore_ws {
	enum vm_prefetch mode;	/* resolved: never VM_PREFETCH_DEFAULT */
	bool recording;
	bool loaded;		/* ws holds DIR/working-set (replay) or the recording */
	struct ws ws;
	uint64_t file_pages;	/* pages DIR/working-set had when opened */
	_Atomic uint64_t misses;	/* demand-faulted pages (replay) */
	char dir[4096];
};

/*
 * Decide what the restore of dir does (record, replay, all, none) and load
 * DIR/working-set when replaying.  -EBADMSG/-EPROTO with err for a bad file
 * (never used then), -ENOENT for --prefetch ws without one, -EINVAL for a
 * combination that cannot work (--record-ws with --eager).
 */
int restore_ws_open(struct restore_ws *w, const char *dir, uint64_t mem_size,
		    const struct vm_restore_opts *o, bool lazy, char *err, size_t errlen);
/* Engine options for the mode: the demand hook, fill on/off, fault-around. */
void restore_ws_engine_opts(struct restore_ws *w, const struct vm_restore_opts *o,
			    struct lvm_engine_opts *eo);
/* Replay: queue the working set on the engine (before it starts). */
int restore_ws_queue(struct restore_ws *w, struct lvm_engine *e, struct lvm_source *src);
/* After the run: write DIR/working-set when recording or when it grew. */
int restore_ws_save(struct restore_ws *w, char *err, size_t errlen);
void restore_ws_close(struct restore_ws *w);

#endif
