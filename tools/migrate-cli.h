/* SPDX-License-Identifier: MIT */
/*
 * The CLI side of post-copy migration (src/migrate/migrate.h): the source half hooks
 * into `lazyvm run` (--migrate-to ...), the destination is `lazyvm
 * migrate-recv`.  Both report the same statistics in --stats-json.
 */
#ifndef LAZYVM_MIGRATE_CLI_H
#define LAZYVM_MIGRATE_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "cli.h"
#include "migrate/auth.h"
#include "migrate/migrate.h"

struct vmm;
struct vm_stats;

struct run_migrate_opts {
	const char *to;			/* --migrate-to HOST:PORT */
	uint64_t after_ms;		/* --migrate-after-ms */
	unsigned precopy_rounds;	/* --precopy-rounds */
	unsigned recover_timeout_s;	/* --recover-timeout (default 60) */
	bool have_key;			/* --auth-psk FILE, loaded */
	struct mig_key key;
};

/* The usage lines of the options below. */
extern const char run_migrate_usage[];
void run_migrate_opts_init(struct run_migrate_opts *o);
enum {
	RUN_MIG_OPT_TO = CLI_OPT_MIGRATE, RUN_MIG_OPT_AFTER_MS, RUN_MIG_OPT_ROUNDS,
	RUN_MIG_OPT_RECOVER, RUN_MIG_OPT_AUTH_PSK,
};
/* getopt_long entries of the migration options of `lazyvm run`. */
#define RUN_MIGRATE_OPTIONS \
	{ "migrate-to", required_argument, NULL, RUN_MIG_OPT_TO }, \
	{ "migrate-after-ms", required_argument, NULL, RUN_MIG_OPT_AFTER_MS }, \
	{ "precopy-rounds", required_argument, NULL, RUN_MIG_OPT_ROUNDS }, \
	{ "recover-timeout", required_argument, NULL, RUN_MIG_OPT_RECOVER }, \
	{ "auth-psk", required_argument, NULL, RUN_MIG_OPT_AUTH_PSK }
/* If code is a migration option, apply val: 1; not one: 0; bad value:
 * EXIT_USAGE after printing the error. */
int run_migrate_apply(struct run_migrate_opts *o, int code, const char *val);
/*
 * The guest runs: after after_ms, migrate it.  Returns the exit status:
 * 0 when the destination has it; 1 when migration failed (if it failed
 * before the destination started the VM, the VM ran on here to completion).
 */
int run_migrate(struct vmm *vm, const struct run_migrate_opts *o, struct vm_stats *st);

/* --auth-psk FILE: load the key (1), or EXIT_BADDATA after saying why. */
int migrate_cli_load_key(const char *cmd, const char *path, struct mig_key *k);

/* Add the migration members to a --stats-json report. */
void migrate_stats_add(struct vm_stats *st, const struct mig_stats *m);

#endif
