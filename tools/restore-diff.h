/* SPDX-License-Identifier: MIT */
#ifndef LAZYVM_RESTORE_DIFF_H
#define LAZYVM_RESTORE_DIFF_H

#include <stdbool.h>
#include <stddef.h>

#include "store-cli.h"

struct vm_restore;

/*
 * Pause the VM restored from b and push a diff snapshot of it to dest.
 * live: the VM runs on once the changed chunks are copied; else it stays
 * paused.  0 or -errno with err.
 */
int restore_diff_snapshot(struct vm_restore *rs, struct store_cli *b, const char *dest,
			  bool live, char *err, size_t errlen);

#endif
