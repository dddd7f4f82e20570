/* SPDX-License-Identifier: MIT */
/*
 * Page-state transitions and the uffd's non-fault events.  See engine.h for
 * the state machine and why events are applied under mm_lock held for
 * writing.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "engine/events.h"

static int unresolved_class(uint8_t s)
{
	return s == PG_MISSING || s == PG_CLAIMED;
}

static void account(struct lvm_engine *e, uint8_t from, uint8_t to)
{
	int d = unresolved_class(to) - unresolved_class(from);
	if (d > 0)
		atomic_fetch_add(&e->unresolved, 1);
	else if (d < 0 && atomic_fetch_sub(&e->unresolved, 1) == 1) {
		pthread_mutex_lock(&e->lock);
		pthread_cond_broadcast(&e->cond);
		pthread_mutex_unlock(&e->lock);
	}
}

bool page_cas(struct lvm_engine *e, struct region *r, uint64_t p, uint8_t from, uint8_t to)
{
	uint8_t expect = from;
	if (!atomic_compare_exchange_strong(&r->state[p], &expect, to))
		return false;
	account(e, from, to);
	return true;
}

uint8_t page_xchg(struct lvm_engine *e, struct region *r, uint64_t p, uint8_t to)
{
	uint8_t old = atomic_exchange(&r->state[p], to);
	account(e, old, to);
	return old;
}

void engine_record_error(struct lvm_engine *e, int err, const char *fmt, ...)
{
	char msg[sizeof(e->error)];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < sizeof(msg) && err)
		snprintf(msg + n, sizeof(msg) - (size_t)n, ": %s", strerror(-err));
	pthread_mutex_lock(&e->err_lock);
	bool first = !e->error[0];
	if (first)
		memcpy(e->error, msg, sizeof(msg));
	pthread_mutex_unlock(&e->err_lock);
	if (e->opts.on_error)
		e->opts.on_error(e->opts.on_error_ctx, msg);
}

void engine_warn(struct lvm_engine *e, const char *fmt, ...)
{
	if (!e->opts.on_warning)
		return;
	char msg[sizeof(e->error)];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	e->opts.on_warning(e->opts.on_warning_ctx, msg);
}

struct region *engine_region_of(struct lvm_engine *e, uint64_t addr)
{
	for (unsigned i = 0; i < e->nregions; i++) {
		struct region *r = e->regions[i];
		uint64_t base = atomic_load(&r->base);
		if (addr >= base && addr - base < r->size)
			return r;
	}
	return NULL;
}

/* Apply fn to the pages of every region that [start, end) covers. */
static void for_pages_in(struct lvm_engine *e, uint64_t start, uint64_t end,
			 void (*fn)(struct lvm_engine *, struct region *, uint64_t, uint64_t))
{
	for (unsigned i = 0; i < e->nregions; i++) {
		struct region *r = e->regions[i];
		uint64_t base = atomic_load(&r->base);
		uint64_t lo = start > base ? start : base;
		uint64_t hi = end < base + r->size ? end : base + r->size;
		if (lo >= hi)
			continue;
		/* Partial pages are not discarded by the kernel: round inward. */
		uint64_t first = (lo - base + r->psz - 1) >> r->pshift;
		uint64_t last = (hi - base) >> r->pshift;
		if (first < last)
			fn(e, r, first, last);
	}
}

static void mark_zero(struct lvm_engine *e, struct region *r, uint64_t a, uint64_t b)
{
	for (uint64_t p = a; p < b; p++)
		if (page_get(r, p) != PG_GONE)
			page_xchg(e, r, p, PG_ZERO);
}

static void mark_gone(struct lvm_engine *e, struct region *r, uint64_t a, uint64_t b)
{
	for (uint64_t p = a; p < b; p++)
		page_xchg(e, r, p, PG_GONE);
	if (a == 0 && b == r->npages)
		atomic_store(&r->gone, true);
}

static void apply_remap(struct lvm_engine *e, const struct uffd_msg *m)
{
	uint64_t from = m->arg.remap.from, to = m->arg.remap.to, len = m->arg.remap.len;
	struct region *r = engine_region_of(e, from);
	if (r && from == atomic_load(&r->base) && len == r->size) {
		atomic_store(&r->base, to);	/* the whole region moved */
		return;
	}
	/* Part of a region moved: we cannot follow it page by page. */
	for_pages_in(e, from, from + len, mark_gone);
	engine_warn(e, "partial mremap of guest memory (0x%llx+0x%llx) is not supported; "
		    "those pages are no longer served", (unsigned long long)from,
		    (unsigned long long)len);
}

static void apply_event(struct lvm_engine *e, const struct uffd_msg *m)
{
	switch (m->event) {
	case UFFD_EVENT_REMOVE:
		atomic_fetch_add(&e->st.remove_events, 1);
		for_pages_in(e, m->arg.remove.start, m->arg.remove.end, mark_zero);
		break;
	case UFFD_EVENT_UNMAP:
		atomic_fetch_add(&e->st.unmap_events, 1);
		for_pages_in(e, m->arg.remove.start, m->arg.remove.end, mark_gone);
		break;
	case UFFD_EVENT_REMAP:
		atomic_fetch_add(&e->st.remap_events, 1);
		apply_remap(e, m);
		break;
	case UFFD_EVENT_FORK:	/* not requested; never leak the child's fd */
		close((int)m->arg.fork.ufd);
		break;
	default:
		break;
	}
}

/*
 * Read every pending message (docs/engine.md §4: drain the queue before acting),
 * apply the events at once, and queue the faults on w.  Under the write
 * lock: see engine.h.  Returns the number of faults queued.
 */
int engine_drain_events(struct lvm_engine *e, struct worker *w)
{
	struct uffd_msg msgs[64];
	int queued = 0;

	pthread_rwlock_wrlock(&e->mm_lock);
	while (w->nfaults < ENGINE_MAX_FAULTS) {
		int room = ENGINE_MAX_FAULTS - w->nfaults;
		int n = uffd_read_msgs(e->uffd, msgs, room < 64 ? room : 64);
		if (n <= 0)
			break;
		for (int i = 0; i < n; i++) {
			if (msgs[i].event == UFFD_EVENT_PAGEFAULT) {
				w->faults[w->nfaults++] = msgs[i];
				queued++;
			} else {
				apply_event(e, &msgs[i]);
			}
		}
	}
	pthread_rwlock_unlock(&e->mm_lock);
	return queued;
}
