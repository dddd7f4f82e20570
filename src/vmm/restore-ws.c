/* SPDX-License-Identifier: MIT */
/*
 * Working-set record / replay / learning for lazy restore (docs/prefetch.md).
 *
 * Recording serves every fault one page at a time with the background fill
 * off, so each page the guest touches raises exactly one fault, in the order
 * it touches them, and nothing else is installed: the set is what the guest
 * used, not what a fill or a fault-around block happened to bring.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "vmm/restore-ws.h"

static const char *const prefetch_names[] = {
	[VM_PREFETCH_DEFAULT] = "default", [VM_PREFETCH_WS] = "ws",
	[VM_PREFETCH_ALL] = "all", [VM_PREFETCH_NONE] = "none",
};

const char *vm_prefetch_name(enum vm_prefetch p)
{
	return p <= VM_PREFETCH_NONE ? prefetch_names[p] : "?";
}

int vm_prefetch_parse(const char *s, enum vm_prefetch *out)
{
	for (int p = VM_PREFETCH_WS; p <= VM_PREFETCH_NONE; p++)
		if (!strcmp(s, prefetch_names[p])) {
			*out = (enum vm_prefetch)p;
			return 0;
		}
	return -EINVAL;
}

static int restore_ws_load(struct restore_ws *w, uint64_t mem_size, bool asked, char *err,
			   size_t errlen)
{
	int ret = ws_load(w->dir, mem_size, &w->ws, err, errlen);
	if (ret == -ENOENT && !asked) {
		w->mode = VM_PREFETCH_ALL;	/* no working set: stream everything */
		return 0;
	}
	if (ret == -ENOENT) {
		snprintf(err, errlen, "--prefetch ws: %s/%s does not exist (record one with "
			 "--record-ws)", w->dir, WS_FILE_NAME);
		return -ENOENT;
	}
	if (ret)
		return ret == -EPROTO ? -EPROTO : -EBADMSG;
	w->loaded = true;
	w->file_pages = w->ws.pages;
	return 0;
}

int restore_ws_open(struct restore_ws *w, const char *dir, uint64_t mem_size,
		    const struct vm_restore_opts *o, bool lazy, char *err, size_t errlen)
{
	memset(w, 0, sizeof(*w));
	snprintf(w->dir, sizeof(w->dir), "%s", dir);
	w->recording = o->record_ws;
	w->mode = o->prefetch;
	if (w->recording && (!lazy || o->uffd_socket || o->prefetch == VM_PREFETCH_WS)) {
		snprintf(err, errlen, "--record-ws records the faults of a lazy restore with nothing "
			 "prefetched: not with --eager, --uffd-socket or --prefetch ws");
		return -EINVAL;
	}
	if (!lazy || o->uffd_socket) {
		if (o->prefetch == VM_PREFETCH_WS) {
			snprintf(err, errlen, "--prefetch ws: only for a lazy restore served here "
				 "(not --eager, gmem without userfaultfd, or --uffd-socket)");
			return -EINVAL;
		}
		w->mode = VM_PREFETCH_ALL;
		return 0;
	}
	if (w->recording) {
		w->mode = VM_PREFETCH_NONE;
		int ret = ws_init(&w->ws, mem_size);
		w->loaded = !ret;
		return ret;
	}
	if (w->mode == VM_PREFETCH_DEFAULT || w->mode == VM_PREFETCH_WS) {
		bool asked = w->mode == VM_PREFETCH_WS;
		w->mode = VM_PREFETCH_WS;
		return restore_ws_load(w, mem_size, asked, err, errlen);
	}
	return 0;
}

/* Engine hook: a page the guest needed that nothing had brought. */
static void restore_ws_on_demand(void *ctx, struct lvm_source *src, uint64_t off)
{
	struct restore_ws *w = ctx;
	(void)src;
	if (!w->recording)
		atomic_fetch_add(&w->misses, 1);
	ws_add(&w->ws, off / WS_PAGE_SIZE);
}

void restore_ws_engine_opts(struct restore_ws *w, const struct vm_restore_opts *o,
			    struct lvm_engine_opts *eo)
{
	eo->background_fill = !o->no_background && w->mode != VM_PREFETCH_NONE;
	if (w->recording) {
		eo->background_fill = false;
		eo->fault_around = 0;	/* one fault per page touched */
	}
	if (w->loaded) {
		eo->on_demand = restore_ws_on_demand;
		eo->on_demand_ctx = w;
	}
	if (w->mode == VM_PREFETCH_WS)
		eo->fill_delay_ms = 0;	/* the rest follows the working set at once */
}

int restore_ws_queue(struct restore_ws *w, struct lvm_engine *e, struct lvm_source *src)
{
	if (w->mode != VM_PREFETCH_WS || !w->loaded)
		return 0;
	return ws_queue_prefetch(&w->ws, e, src);
}

int restore_ws_save(struct restore_ws *w, char *err, size_t errlen)
{
	if (!w->loaded || (!w->recording && w->ws.pages == w->file_pages))
		return 0;
	int ret = ws_save(w->dir, &w->ws);
	if (ret)
		snprintf(err, errlen, "%s/%s: %s", w->dir, WS_FILE_NAME, strerror(-ret));
	return ret;
}

void restore_ws_close(struct restore_ws *w)
{
	ws_free(&w->ws);
	w->loaded = false;
}
