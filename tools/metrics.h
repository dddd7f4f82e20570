/* SPDX-License-Identifier: MIT */
/*
 * --metrics-listen HOST:PORT: a minimal HTTP endpoint answering every GET
 * with Prometheus' text format (version 0.0.4), on its own thread.  Any
 * path is answered the same (/metrics by convention); one request per
 * connection, read with a deadline, so a stuck client cannot hold it.
 */
#ifndef LAZYVM_METRICS_H
#define LAZYVM_METRICS_H

#include <stdio.h>

struct metrics;

/* render(ctx, f) writes the metrics text; it runs on the metrics thread. */
int metrics_start(const char *hostport, void (*render)(void *ctx, FILE *f), void *ctx,
		  struct metrics **out, char *err, size_t errlen);
void metrics_stop(struct metrics *m);
/* The port bound (useful with PORT 0). */
unsigned metrics_port(const struct metrics *m);

#endif
