/* SPDX-License-Identifier: MIT */
/* restore --share (restore-share.c): the shared page cache of a restore. */
#ifndef LAZYVM_RESTORE_SHARE_H
#define LAZYVM_RESTORE_SHARE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/share.h"
#include "vmm/snapshot.h"

struct restore_share {
	struct share_cache *cache;	/* NULL: not sharing */
	bool true_sharing;		/* MINOR on the private mapping; else COPY */
};

/* Open the cache for the snapshot's memory; *mem gets the private mapping
 * when the kernel shares (else stays NULL: anonymous memory, MISSING). */
int restore_share_prepare(const char *dir, const struct vm_restore_opts *o, uint64_t mem_size,
			  struct restore_share *sh, struct lvm_mem **mem, char *err, size_t errlen);
/* Replace *src by the cache-filling source over it. */
int restore_share_wrap(struct restore_share *sh, struct lvm_source **src);
/* Memory use of the guest mapping at addr (also without a cache); sync_n > 1:
 * with that many peers of the cache. */
int restore_share_usage(struct restore_share *sh, unsigned sync_n, const void *addr,
			struct share_usage *out);
void restore_share_close(struct restore_share *sh);

#endif
