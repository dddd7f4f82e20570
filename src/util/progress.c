/* SPDX-License-Identifier: MIT */
/* Progress counting and rate limiting; the drawing is the program's. */
#include <stdio.h>
#include <string.h>

#include "util/clock.h"
#include "util/progress.h"

#define PROGRESS_REDRAW_NS 100000000ull	/* 10 redraws a second at most */

static _Atomic(progress_draw_fn) default_draw;

void progress_set_default_draw(progress_draw_fn fn)
{
	atomic_store(&default_draw, fn);
}

void progress_init(struct progress *p, const char *label, uint64_t total_bytes)
{
	memset(p, 0, sizeof(*p));
	snprintf(p->label, sizeof(p->label), "%s", label ? label : "");
	p->total = total_bytes;
	p->start_ns = mono_now_ns();
	atomic_init(&p->done, 0);
	atomic_init(&p->next_draw_ns, p->start_ns + PROGRESS_REDRAW_NS);
	p->draw = atomic_load(&default_draw);
}

void progress_set_enabled(struct progress *p, bool on)
{
	p->draw = on ? atomic_load(&default_draw) : NULL;
}

static void progress_maybe_draw(struct progress *p, uint64_t done)
{
	if (!p->draw)
		return;
	uint64_t now = mono_now_ns();
	uint64_t due = atomic_load_explicit(&p->next_draw_ns, memory_order_relaxed);
	if (now < due)
		return;
	/* Whoever moves the deadline draws; the others skip this round. */
	if (!atomic_compare_exchange_strong(&p->next_draw_ns, &due, now + PROGRESS_REDRAW_NS))
		return;
	p->draw(p->label, done, p->total, now - p->start_ns, false);
}

void progress_update(struct progress *p, uint64_t done)
{
	if (!p)
		return;
	atomic_store_explicit(&p->done, done, memory_order_relaxed);
	progress_maybe_draw(p, done);
}

void progress_add(struct progress *p, uint64_t delta)
{
	if (!p)
		return;
	uint64_t done = atomic_fetch_add_explicit(&p->done, delta, memory_order_relaxed) + delta;
	progress_maybe_draw(p, done);
}

void progress_end(struct progress *p)
{
	if (p && p->draw)
		p->draw(p->label, atomic_load(&p->done), p->total, mono_now_ns() - p->start_ns, true);
}

void progress_done(struct progress *p)
{
	if (p && p->draw)
		p->draw(p->label, p->total, p->total, mono_now_ns() - p->start_ns, true);
}
