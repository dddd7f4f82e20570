/* SPDX-License-Identifier: MIT */
/*
 * Post-copy migration, destination side: the state shared by its two files.
 * dst.c runs the phases (pre-copy, serving memory, post-copy) and takes the
 * units; dst-link.c owns the connections: accepting channels, the request
 * channel's reader, dropping the link after a cut and taking the source
 * back (recovery), and the final DONE exchange.
 */
#ifndef LAZYVM_MIGRATE_DST_H
#define LAZYVM_MIGRATE_DST_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#include "migrate/migrate.h"
#include "migrate/wire.h"
#include "util/histogram.h"

#define BUF_CAP (MIG_MAX_STATE + 64)

struct mig_dst {
	struct mig_dst_opts o;
	int lfd, main_fd, req_fd, wake_fd;
	pthread_mutex_t req_lock;	/* req_fd writes; link_up changes */
	_Atomic bool link_up;
	struct mig_limits lim;
	struct mig_gate *gate;		/* owns lfd's connections */
	pthread_mutex_t admit_lock;	/* what the gate admits (below) */
	uint8_t session[MIG_SESSION_LEN];
	bool have_session, req_admitted, want_resume_req;
	uint64_t nunits;
	unsigned vcpus;
	_Atomic int phase;		/* enum mig_phase; read by the request reader */
	_Atomic bool served;		/* the engine serves memory: install, never write */
	_Atomic bool frozen;		/* fetched all without the engine: memory is the
					 * VM's, any late unit is dropped */
	struct lvm_mem *mem;
	struct lvm_source *src;
	struct lvm_engine *e;
	_Atomic uint8_t *have;		/* per unit: in guest memory */
	_Atomic uint64_t *asked_ns;	/* per unit: when first requested, 0 = not */
	_Atomic uint64_t nhave, n_pre, n_push, n_req, blocktime_ns;
	struct histogram remote_lat;
	uint8_t *zero;			/* one unit of zeros */
	uint8_t *buf;			/* main channel */
	pthread_t req_thread;
	bool req_running;
	uint64_t stop_realtime_ns, rounds, reconnects;
	char *err;
	size_t errlen;
};

/* Record the first error (printf-style) and return ret. */
int dst_fail(struct mig_dst *d, int ret, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Wake the main thread (a unit arrived, the link dropped). */
void dst_wake(struct mig_dst *d);
/* Ask the source for units [u0, u0 + n) on the request channel. */
void dst_send_request(struct mig_dst *d, uint64_t u0, uint64_t n);
/* Take the units of a PAGES message (answer: from the request channel). */
int dst_take_pages(struct mig_dst *d, const struct mig_msg *m, bool answer);

/* ---- dst-link.c ---- */
/* The gate's admission rule (struct mig_gate_opts.admit). */
int dst_admit(void *ctx, const struct mig_hello *h, char *why, size_t whylen);
int dst_accept_channel(struct mig_dst *d, uint32_t channel, bool resume, int timeout_ms,
		       char *why, size_t whylen);
int dst_ack(struct mig_dst *d, int fd);
int dst_open_request_channel(struct mig_dst *d, bool resume, char *why, size_t whylen);
void dst_drop_link(struct mig_dst *d);
/* After a cut: take this session's source back within the recovery timeout. */
int dst_recover(struct mig_dst *d);
/* Every unit is here: DONE both ways, answering resumes with phase DONE. */
void dst_finish(struct mig_dst *d);

#endif
