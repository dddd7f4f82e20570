/* SPDX-License-Identifier: MIT */
/* Progress bar on stderr for long snapshot writes, verifies and restores. */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/clock.h"
#include "util/progress.h"

#define PROGRESS_REDRAW_NS 100000000ull	/* 10 redraws a second at most */
#define PROGRESS_BAR_WIDTH 24

void progress_init(struct progress *p, const char *label, uint64_t total_bytes)
{
	memset(p, 0, sizeof(*p));
	snprintf(p->label, sizeof(p->label), "%s", label ? label : "");
	p->total = total_bytes;
	p->start_ns = mono_now_ns();
	atomic_init(&p->done, 0);
	atomic_init(&p->next_draw_ns, p->start_ns + PROGRESS_REDRAW_NS);
	p->enabled = isatty(STDERR_FILENO) && isatty(STDOUT_FILENO);
}

void progress_set_enabled(struct progress *p, bool on)
{
	p->enabled = on;
}

/* "1.23 GiB" into buf. */
static void progress_fmt_bytes(char *buf, size_t len, double v)
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	unsigned u = 0;
	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	snprintf(buf, len, u ? "%.2f %s" : "%.0f %s", v, unit[u]);
}

static void progress_draw(struct progress *p, uint64_t done, uint64_t now)
{
	double secs = (double)(now - p->start_ns) / 1e9;
	double rate = secs > 0 ? (double)done / secs : 0;
	double frac = p->total ? (double)done / (double)p->total : 1;
	if (frac > 1)
		frac = 1;
	char bar[PROGRESS_BAR_WIDTH + 1];
	int fill = (int)(frac * PROGRESS_BAR_WIDTH);
	for (int i = 0; i < PROGRESS_BAR_WIDTH; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[PROGRESS_BAR_WIDTH] = 0;
	char d[16], t[16], r[16], eta[24] = "";
	progress_fmt_bytes(d, sizeof(d), (double)done);
	progress_fmt_bytes(t, sizeof(t), (double)p->total);
	progress_fmt_bytes(r, sizeof(r), rate);
	if (done < p->total && rate > 0) {
		unsigned s = (unsigned)((double)(p->total - done) / rate);
		snprintf(eta, sizeof(eta), "  ETA %u:%02u", s / 60, s % 60);
	}
	fprintf(stderr, "\r%s [%s] %3.0f%%  %s / %s  %s/s%s\033[K", p->label, bar,
		frac * 100, d, t, r, eta);
	fflush(stderr);
	p->drawn = true;
}

static void progress_maybe_draw(struct progress *p, uint64_t done)
{
	if (!p->enabled)
		return;
	uint64_t now = mono_now_ns();
	uint64_t due = atomic_load_explicit(&p->next_draw_ns, memory_order_relaxed);
	if (now < due)
		return;
	/* Whoever moves the deadline draws; the others skip this round. */
	if (!atomic_compare_exchange_strong(&p->next_draw_ns, &due, now + PROGRESS_REDRAW_NS))
		return;
	progress_draw(p, done, now);
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

void progress_done(struct progress *p)
{
	if (!p || !p->enabled)
		return;
	progress_draw(p, p->total, mono_now_ns());
	fputc('\n', stderr);
	p->drawn = false;
}
