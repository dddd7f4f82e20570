/* SPDX-License-Identifier: MIT */
/*
 * What every VM-running subcommand shares (run, restore, migrate-recv,
 * fc-serve): the VM options and the --stats-json report.
 */
#ifndef LAZYVM_VM_COMMON_H
#define LAZYVM_VM_COMMON_H

#include <stdbool.h>
#include <stdint.h>

#include "lazyvm.h"
#include "cli.h"
#include "util/clock.h"

struct vm_cli_opts {
	const char *guest;	/* --guest (default workload) */
	uint64_t mem;		/* --mem SIZE (default 256M) */
	uint64_t seed;		/* --seed (default 1) */
	uint64_t iterations;	/* --iterations (default 200000) */
	unsigned vcpus;		/* --vcpus (default 2) */
	enum lvm_backing backing;	/* --backing (default anon) */
	bool backing_set;
	enum lvm_mode mode;	/* --mode missing|minor */
	bool mode_set;
	const char *stats_json;	/* --stats-json FILE */
};

enum {
	VM_OPT_GUEST = CLI_OPT_VM, VM_OPT_MEM, VM_OPT_SEED, VM_OPT_ITERATIONS,
	VM_OPT_VCPUS, VM_OPT_BACKING, VM_OPT_MODE, VM_OPT_STATS_JSON,
};
/* getopt_long entries of the VM options, one by one and all together. */
#define VM_OPT_ENTRY_BACKING { "backing", required_argument, NULL, VM_OPT_BACKING }
#define VM_OPT_ENTRY_STATS_JSON { "stats-json", required_argument, NULL, VM_OPT_STATS_JSON }
#define VM_CLI_OPTIONS \
	{ "guest", required_argument, NULL, VM_OPT_GUEST }, \
	{ "mem", required_argument, NULL, VM_OPT_MEM }, \
	{ "seed", required_argument, NULL, VM_OPT_SEED }, \
	{ "iterations", required_argument, NULL, VM_OPT_ITERATIONS }, \
	{ "vcpus", required_argument, NULL, VM_OPT_VCPUS }, \
	VM_OPT_ENTRY_BACKING, \
	{ "mode", required_argument, NULL, VM_OPT_MODE }, \
	VM_OPT_ENTRY_STATS_JSON

void vm_cli_opts_init(struct vm_cli_opts *o);
/*
 * If code (from cli_getopt) is a VM option, apply its value and return 1;
 * 0 when it is not one; EXIT_USAGE after printing the error.
 */
int vm_cli_apply(struct vm_cli_opts *o, const char *cmd, int code, const char *val);
/* The usage lines of the options above. */
extern const char vm_cli_usage[];

/* The --stats-json report. */
struct vm_stats {
	uint64_t start_ns;		/* command start (restore: before the snapshot is opened) */
	uint64_t first_entry_ns;	/* first KVM_RUN; 0 if none */
	uint64_t end_ns;
	struct lvm_stats engine;	/* zero when no engine served memory */
	const char *backing, *mode;
	const char *result;		/* the guest's RESULT line or "" */
	char extra[2048];		/* more ", \"key\": value" members */
};

void vm_stats_init(struct vm_stats *s);
/* Add one member; value is printf'd raw (quote strings yourself). */
void vm_stats_add(struct vm_stats *s, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Write the JSON object to path ("-" = stdout); 0 or -errno. */
int vm_stats_write(const char *path, const struct vm_stats *s);

#endif
