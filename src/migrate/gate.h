/* SPDX-License-Identifier: MIT */
/*
 * The destination's gate: a thread that owns the listening socket for the
 * whole migration.  It accepts every connection, runs its handshake (HELLO,
 * and with a key the HMAC challenge) concurrently with the others and with
 * the migration, each message under its own deadline, and asks the
 * destination whether to admit it.  Stray, wrong, silent or slow peers are
 * refused with an ERROR and logged; only admitted channels reach the
 * migration, through a small queue.
 */
#ifndef LAZYVM_MIGRATE_GATE_H
#define LAZYVM_MIGRATE_GATE_H

#include <stddef.h>

#include "migrate/auth.h"
#include "migrate/wire.h"

struct mig_gate_opts {
	int lfd;			/* listening, owned by the caller */
	const struct mig_key *key;	/* NULL: no authentication */
	int handshake_ms;		/* per handshake message; 0 = MIG_MSG_DEADLINE_MS */
	/* On the gate's thread, for a HELLO that passed validation (and the
	 * key): 0 admits it, else why says why not. */
	int (*admit)(void *ctx, const struct mig_hello *h, char *why, size_t whylen);
	void *ctx;
	/* A refused connection, one line (NULL: stderr). */
	void (*log)(void *ctx, const char *msg);
	void *log_ctx;
};

struct mig_gate_conn {
	int fd;				/* blocking, tuned */
	struct mig_hello hello;		/* host order */
};

struct mig_gate;

int mig_gate_start(const struct mig_gate_opts *o, struct mig_gate **out);
/* Readable while an admitted connection waits (for poll). */
int mig_gate_fd(struct mig_gate *g);
/* The next admitted connection; -ETIMEDOUT after timeout_ms (< 0: wait). */
int mig_gate_take(struct mig_gate *g, int timeout_ms, struct mig_gate_conn *c);
/* The reason the last connection was refused ("" if none). */
void mig_gate_last_refusal(struct mig_gate *g, char *buf, size_t len);
/* Stop the thread; close pending and queued connections. */
void mig_gate_stop(struct mig_gate *g);

#endif
