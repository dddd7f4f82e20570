/* SPDX-License-Identifier: MIT */
/* Step timestamps: see timeline.h. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "util/timeline.h"

void timeline_init(struct timeline *t)
{
	memset(t, 0, sizeof(*t));
	t->start_ns = mono_now_ns();
}

void timeline_mark(struct timeline *t, const char *step)
{
	if (!t)
		return;
	uint64_t now = mono_now_ns();
	unsigned i = atomic_fetch_add(&t->n, 1);
	if (i < TIMELINE_MAX)
		t->marks[i] = (struct timeline_mark){ .step = step, .ns = now };
}

unsigned timeline_sorted(const struct timeline *t, struct timeline_mark *out, unsigned max)
{
	unsigned n = atomic_load(&t->n);
	if (n > TIMELINE_MAX)
		n = TIMELINE_MAX;
	if (n > max)
		n = max;
	/* A handful of marks, nearly in order already: insertion sort. */
	for (unsigned i = 0; i < n; i++) {
		struct timeline_mark m = t->marks[i];
		unsigned j = i;
		for (; j > 0 && out[j - 1].ns > m.ns; j--)
			out[j] = out[j - 1];
		out[j] = m;
	}
	return n;
}

void timeline_json(const struct timeline *t, char *buf, size_t len)
{
	struct timeline_mark m[TIMELINE_MAX];
	unsigned n = timeline_sorted(t, m, TIMELINE_MAX);
	size_t used = 0;
	if (len < 3)
		return;
	snprintf(buf, len, "{");
	used = 1;
	for (unsigned i = 0; i < n; i++) {
		double us = m[i].ns >= t->start_ns ? (double)(m[i].ns - t->start_ns) / 1000.0
						   : -(double)(t->start_ns - m[i].ns) / 1000.0;
		int k = snprintf(buf + used, len - used, "%s\"%s\": %.1f", i ? ", " : "", m[i].step, us);
		if (k < 0 || (size_t)k >= len - used - 1) {
			snprintf(buf, len, "{}");
			return;
		}
		used += (size_t)k;
	}
	snprintf(buf + used, len - used, "}");
}
