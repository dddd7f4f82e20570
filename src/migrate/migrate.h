/* SPDX-License-Identifier: MIT */
/*
 * Post-copy live migration (docs/migration-protocol.md), over lazyvm's engine.
 *
 * Source: optional pre-copy rounds (all units, then the units dirtied since,
 * tracked with uffd-WP), stop, send the state and the stale set, wait for
 * READY, send GO; then push the rest on the main channel while a separate
 * request channel answers the destination's faults ahead of that stream
 * (QEMU's preempt channel).  Destination: memory written directly during
 * pre-copy, then served by the engine whose source asks the peer and returns
 * LVM_SOURCE_PENDING; answers and pushed units are installed with
 * lvm_engine_supply().  A link cut in post-copy pauses nothing but the
 * faulting vCPUs: the destination keeps listening, the source reconnects,
 * the destination says which units it has, and both resume.
 *
 * The VM itself is reached through callbacks, so the protocol is tested on
 * plain memory as well as on real guests.
 *
 * Scheduling: the threads on a remote fault's path ask for a short slice.
 * The bulk push (source) and its installs (destination) keep the normal
 * priority: at nice +10 they starved behind every other process of a busy
 * host (1 GiB guest, 512 MiB dirty set, load average 23 on 2 CPUs: total
 * 6.9-7.9 s and blocktime 0.5-1.4 s at nice +10, 4.1 s and 0.3-0.55 s
 * without), which costs the vCPUs more faults than the slice they gain.
 */
#ifndef LAZYVM_MIGRATE_H
#define LAZYVM_MIGRATE_H

#include <stdbool.h>
#include <stdint.h>

#include "lazyvm.h"

struct mig_key;

struct mig_stats {
	uint64_t total_ms, downtime_ms;
	uint64_t precopy_rounds, pages_precopy, pages_postcopy_push, pages_postcopy_request;
	uint64_t blocktime_ms, reconnects;	/* blocktime: destination only */
	uint64_t wire_bytes;			/* source: PAGES and STATE bytes sent */
	/* destination: fault's request -> page installed (what a vCPU waits);
	 * source: request received -> answer sent (its share of that) */
	struct lvm_latency remote_fault;
	uint64_t first_vcpu_entry_realtime_ns;	/* destination */
};

/* ---- source ------------------------------------------------------------- */

struct mig_src_vm {
	void *ctx;
	/* Stop every vCPU; the memory must not change after this returns. */
	int (*pause)(void *ctx);
	/* Let the VM run on here (migration failed before the destination ran). */
	int (*resume)(void *ctx);
	/* The state blob (malloc'd; freed by the caller). */
	int (*save_state)(void *ctx, void **blob, size_t *len);
};

/* precopy_rounds: estimate the dirty rate and stop when another round
 * would not shrink what remains by a quarter (at most MIG_AUTO_MAX_ROUNDS). */
#define MIG_PRECOPY_AUTO (~0u)
#define MIG_AUTO_MAX_ROUNDS 16

struct mig_src_opts {
	const char *addr;		/* destination host:port */
	unsigned precopy_rounds;	/* or MIG_PRECOPY_AUTO */
	unsigned recover_timeout_s;	/* give up reconnecting after this; 0 = 60 */
	unsigned vcpus;			/* told to the destination (0: memory only) */
	const struct mig_key *auth_key;	/* --auth-psk (NULL: none) */
	bool progress;			/* progress bar on stderr (when a terminal) */
};

/*
 * Migrate the VM whose guest memory is mem.  Returns 0 when the destination
 * has every unit; -ECANCELED when migration failed before the destination
 * started (the VM was resumed here); another -errno when it failed after
 * (err says what).  stats filled in either case.
 */
int mig_src_run(const struct mig_src_opts *o, struct lvm_mem *mem, const struct mig_src_vm *vm,
		struct mig_stats *stats, char *err, size_t errlen);

/* ---- destination --------------------------------------------------------- */

struct mig_dst_vm {
	void *ctx;
	/* Create the VM with guest memory of size bytes, untouched. */
	int (*create)(void *ctx, uint64_t size, unsigned vcpus, struct lvm_mem **mem);
	/* Load the state; memory is served by the engine already; do not run. */
	int (*load_state)(void *ctx, const void *blob, size_t len);
	/* Start the vCPUs. */
	int (*start)(void *ctx);
};

struct mig_dst_opts {
	const char *listen;		/* host:port */
	unsigned handler_threads;	/* engine threads; 0 = one per CPU */
	int accept_timeout_ms;		/* first connection; -1 = wait forever */
	unsigned recover_timeout_s;	/* wait this long for the source after a cut */
	/* The engine's error callback: a page that cannot be had (the source is
	 * gone for good) is poisoned and reported here; a VMM stops the VM. */
	void (*on_error)(void *ctx, const char *msg);
	void *on_error_ctx;
	const struct mig_key *auth_key;	/* --auth-psk: every channel proves it */
	/* A connection refused while the migration goes on (NULL: stderr). */
	void (*on_log)(void *ctx, const char *msg);
	void *on_log_ctx;
};

struct mig_dst;

/* Listen (returns once the socket is bound, so callers can connect). */
int mig_dst_listen(const struct mig_dst_opts *o, struct mig_dst **out);
/*
 * Receive a VM: blocks until the VM runs here and every unit arrived (0), or
 * migration failed (-errno, err says what).  Call from a thread of its own if
 * the caller must do something while the VM runs.
 */
int mig_dst_run(struct mig_dst *d, const struct mig_dst_vm *vm, struct mig_stats *stats,
		char *err, size_t errlen);
/* The TCP port the destination listens on (for "host:0"). */
int mig_dst_port(struct mig_dst *d);
/* Close the listener and free; stop the VM before (the engine goes too). */
void mig_dst_destroy(struct mig_dst *d);
/* The engine serving the memory (for its stats), once the VM runs. */
struct lvm_engine *mig_dst_engine(struct mig_dst *d);

#endif
