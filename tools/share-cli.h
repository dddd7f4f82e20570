/* SPDX-License-Identifier: MIT */
/* The CLI side of restore --share (docs/sharing.md): options and stats. */
#ifndef LAZYVM_SHARE_CLI_H
#define LAZYVM_SHARE_CLI_H

#include "cli.h"
#include "vm-common.h"
#include "vmm/snapshot.h"

/* --share, --share-linger S, --share-dir DIR, --share-sync N in a getopt_long table. */
enum { SHARE_OPT_SHARE = CLI_OPT_CMD + 0xc0, SHARE_OPT_LINGER, SHARE_OPT_DIR, SHARE_OPT_SYNC };
#define SHARE_CLI_OPTIONS \
	{ "share", no_argument, NULL, SHARE_OPT_SHARE }, \
	{ "share-linger", required_argument, NULL, SHARE_OPT_LINGER }, \
	{ "share-dir", required_argument, NULL, SHARE_OPT_DIR }, \
	{ "share-sync", required_argument, NULL, SHARE_OPT_SYNC }
#define SHARE_CLI_USAGE \
	"  --share              the snapshot's memory once per host: VMs restored from\n" \
	"                       it map one page cache privately (reads share, writes\n" \
	"                       copy); see docs/sharing.md\n" \
	"  --share-linger SECONDS  keep the cache this long after its last VM (default 0)\n" \
	"  --share-dir DIR      where caches live (a tmpfs; default $LAZYVM_SHARE_DIR or\n" \
	"                       /dev/shm)\n" \
	"  --share-sync N       tests, benchmarks: sample memory use when N VMs of the\n" \
	"                       cache have ended, so each Pss is taken with all N mapped\n"
#define SHARE_CLI_SYNOPSIS \
	"                      [--share [--share-linger SECONDS] [--share-dir DIR]]\n"

/* 1 if ch was one of them (applied), 0 if not, EXIT_USAGE after an error. */
int share_cli_apply(struct vm_restore_opts *ro, const char *cmd, int ch, const char *val);
/* shared_pages, private_pages, pss_kib, guest_rss_kib, guest_pss_kib from
 * smaps, after the guest ended and before teardown. */
void share_cli_stats(struct vm_restore *rs, struct vm_stats *st);

#endif
