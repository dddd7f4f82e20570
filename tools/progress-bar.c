/* SPDX-License-Identifier: MIT */
/*
 * The CLI's progress bar on stderr: bytes done / total, rate, ETA.  Drawn
 * only when both stdout and stderr are terminals (a redirected or piped run
 * stays completely quiet).  The library counts (util/progress.c); this
 * draws.
 */
#include <stdio.h>
#include <unistd.h>

#include "cli.h"
#include "util/progress.h"

#define PROGRESS_BAR_WIDTH 24

/* "1.23 GiB" into buf. */
static void fmt_bytes(char *buf, size_t len, double v)
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	unsigned u = 0;
	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	snprintf(buf, len, u ? "%.2f %s" : "%.0f %s", v, unit[u]);
}

static void progress_bar_draw(const char *label, uint64_t done, uint64_t total,
			      uint64_t elapsed_ns, bool final)
{
	double secs = (double)elapsed_ns / 1e9;
	double rate = secs > 0 ? (double)done / secs : 0;
	double frac = total ? (double)done / (double)total : 1;
	if (frac > 1)
		frac = 1;
	char bar[PROGRESS_BAR_WIDTH + 1];
	int fill = (int)(frac * PROGRESS_BAR_WIDTH);
	for (int i = 0; i < PROGRESS_BAR_WIDTH; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[PROGRESS_BAR_WIDTH] = 0;
	char d[16], t[16], r[16], eta[24] = "";
	fmt_bytes(d, sizeof(d), (double)done);
	fmt_bytes(t, sizeof(t), (double)total);
	fmt_bytes(r, sizeof(r), rate);
	if (done < total && rate > 0) {
		unsigned s = (unsigned)((double)(total - done) / rate);
		snprintf(eta, sizeof(eta), "  ETA %u:%02u", s / 60, s % 60);
	}
	fprintf(stderr, "\r%s [%s] %3.0f%%  %s / %s  %s/s%s\033[K%s", label, bar, frac * 100, d,
		t, r, eta, final ? "\n" : "");
	fflush(stderr);
}

void cli_progress_install(void)
{
	if (isatty(STDERR_FILENO) && isatty(STDOUT_FILENO))
		progress_set_default_draw(progress_bar_draw);
}
