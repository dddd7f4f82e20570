/* SPDX-License-Identifier: MIT */
/*
 * Post-copy migration, source side: the state shared by its two files.
 * src.c runs the phases (pre-copy, stop, state, push); src-link.c owns the
 * connections: opening and authenticating channels, the request channel's
 * server, and reconnecting after a cut.
 */
#ifndef LAZYVM_MIGRATE_SRC_H
#define LAZYVM_MIGRATE_SRC_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "migrate/migrate.h"
#include "migrate/wire.h"
#include "util/histogram.h"
#include "util/progress.h"

#define BATCH_BYTES (256u << 10)	/* one PAGES message of the background push */
#define WP_CHUNK (64u << 10)
#define PUSH_NEAR_BYTES (1u << 20)	/* pushed first after each fault */
/* A cut while waiting for READY: the VM is stopped here, so try to resume
 * only briefly before running it here again. */
#define SRC_READY_RECOVER_S 10

struct mig_src {
	const struct mig_src_opts *o;
	struct lvm_mem *mem;
	const struct mig_src_vm *vm;
	const uint8_t *base;
	struct mig_limits lim;
	uint8_t session[MIG_SESSION_LEN];
	uint64_t nunits;
	int main_fd, req_fd;
	_Atomic uint8_t *sent;		/* per unit: the destination has (or gets) it */
	_Atomic uint8_t *dirty;		/* per WP chunk: written since last sent */
	size_t chunk;
	struct lvm_wp *wp;
	pthread_t req_thread;
	bool req_running;
	_Atomic bool req_broken;
	uint8_t *buf;
	uint64_t t0, stop_realtime_ns, started_realtime_ns;
	_Atomic uint64_t nsent;		/* units with sent[] set */
	struct progress bar;		/* units the destination has (or gets) */
	struct histogram req_lat;	/* request received -> answer sent */
	struct mig_stats st;
	_Atomic uint64_t n_req, wire_bytes;
	_Atomic uint64_t push_hint;	/* unit after the latest request; ~0: none */
	char *err;
	size_t errlen;
	char why[200];			/* detail of the last failed exchange */
};

/* Record the first error (printf-style) and return ret. */
int src_fail(struct mig_src *s, int ret, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Send units [u, u+n) on fd (split at the PAGES limit; zero runs flagged). */
int src_send_units(struct mig_src *s, int fd, uint64_t u, uint64_t n);

/* ---- src-link.c ---- */
/* Both channels, the request server started; sizes the per-unit state. */
int src_connect(struct mig_src *s);
void src_close_link(struct mig_src *s);
/* After a cut: 0 resumed, 1 the destination has everything, or -errno;
 * *go_needed: the destination still waits for GO. */
int src_recover(struct mig_src *s, unsigned timeout_s, bool *go_needed);

#endif
