/* SPDX-License-Identifier: MIT */
/*
 * The working-set file DIR/working-set (docs/snapshot-format.md, docs/prefetch.md):
 * the guest pages a restore touched, in the order it first touched them, as
 * runs of consecutive pages.  Written by `restore --record-ws`, extended by
 * every prefetched restore (the pages it still had to demand-fault), read by
 * `restore --prefetch ws` to stream those pages ahead of the vCPUs.
 *
 * A working set is only a hint about *which* pages to load first: its pages
 * are always read from the snapshot's memory (checksummed), so a wrong or
 * foreign working set costs time, never data.  It is still validated whole
 * (versioned, checksummed, bounded) before use.
 */
#ifndef LAZYVM_SNAPSHOT_WS_H
#define LAZYVM_SNAPSHOT_WS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define WS_FILE_NAME	"working-set"
#define WS_MAGIC	"LVMSNAPW"
#define WS_VERSION	1
#define WS_HDR_SIZE	64
#define WS_RUN_SIZE	16
#define WS_PAGE_SIZE	4096u
/* Learning stops adding pages here (1 GiB of 4 KiB pages): a working set is
 * what a guest needs first, not its whole memory. */
#define WS_MAX_PAGES	(1u << 18)

struct ws_run {
	uint64_t page;		/* first page (guest-physical offset / 4096) */
	uint32_t npages;
};

/* A working set being built: pages appended in first-touch order, each once. */
struct ws {
	uint64_t mem_size;
	uint64_t pages;		/* sum of the runs' npages */
	size_t nruns, cap;
	struct ws_run *runs;
	uint8_t *seen;		/* bitmap of pages already in a run */
	pthread_mutex_t lock;	/* ws_add from several engine threads */
};

/* An empty working set for mem_size bytes of guest memory. */
int ws_init(struct ws *ws, uint64_t mem_size);
void ws_free(struct ws *ws);
/* Append page (first touch order); a page already in the set is ignored, and
 * so is any page once WS_MAX_PAGES are in.  Thread-safe.  1 added, 0 not. */
int ws_add(struct ws *ws, uint64_t page);
/* Is page in the set? */
int ws_has(const struct ws *ws, uint64_t page);

/*
 * Decode a whole file's bytes into ws (initialised here).  mem_size: the
 * snapshot's; a set for another size is refused.  0, -EBADMSG (corrupt,
 * truncated, wrong size, overlapping or out-of-range runs), -EPROTO (another
 * version); err says which, without the file name.
 */
int ws_decode(const uint8_t *buf, size_t len, uint64_t mem_size, struct ws *ws, char *err,
	      size_t errlen);
/* DIR/working-set: -ENOENT when there is none (not an error for callers). */
int ws_load(const char *dir, uint64_t mem_size, struct ws *ws, char *err, size_t errlen);
/* Write DIR/working-set (0600) atomically: a temporary file, fsync, rename. */
int ws_save(const char *dir, struct ws *ws);
/* The encoded file in a malloc'd buffer (ws_save; the fuzz corpus). */
int ws_encode(struct ws *ws, uint8_t **out, size_t *len);

/* Pages per prefetch batch (2 MiB of working set). */
#define WS_BATCH 512
struct lvm_engine;
struct lvm_source;
/*
 * Queue the set on an engine (lvm_engine_prefetch, before it starts), page
 * p of the set being byte p * 4096 of src: in recorded order, WS_BATCH pages
 * at a time, each batch sorted and merged into contiguous runs.  Several
 * vCPUs touching one region interleave their pages in the record; a batch
 * turns that back into a few large COPYs while the order across batches is
 * kept.
 */
int ws_queue_prefetch(const struct ws *ws, struct lvm_engine *e, struct lvm_source *src);

#endif
