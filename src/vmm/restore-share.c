/* SPDX-License-Identifier: MIT */
/*
 * restore --share: the snapshot's memory once per host (core/share.h).  The
 * cache is found by the memory file's identity; where the kernel maps a page
 * cache into private mappings (share_probe), the VM's memory is a private
 * mapping of the cache served in MINOR mode (reads share, writes copy);
 * elsewhere it says so and falls back to anonymous memory filled with
 * UFFDIO_COPY from the cache: one fetch per host, a copy per VM.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/share.h"
#include "vmm/restore-share.h"

int restore_share_prepare(const char *dir, const struct vm_restore_opts *o, uint64_t mem_size,
			  struct restore_share *sh, struct lvm_mem **mem, char *err, size_t errlen)
{
	char path[4096];
	uint64_t id;
	if (o->memory_source && !o->memory_file) {
		snprintf(err, errlen, "--share: the memory must be DIR/memory or --memory-file "
			 "(not yet a chunk store)");
		return -EINVAL;
	}
	if (o->eager || o->uffd_socket) {
		snprintf(err, errlen, "--share serves memory lazily from the shared cache; "
			 "--eager and --uffd-socket do not apply");
		return -EINVAL;
	}
	snprintf(path, sizeof(path), "%s%s", o->memory_file ? o->memory_file : dir,
		 o->memory_file ? "" : "/memory");
	int ret = share_identity(path, &id);
	if (ret) {
		snprintf(err, errlen, "%s: %s", path, strerror(-ret));
		return ret;
	}
	struct lvm_probe pr;
	sh->true_sharing = !share_probe(&pr);
	if (getenv("LAZYVM_SHARE_NO_MINOR")) {	/* tests: take the fallback path */
		sh->true_sharing = false;
		snprintf(pr.reason, sizeof(pr.reason), "LAZYVM_SHARE_NO_MINOR is set");
	}
	if (!sh->true_sharing)
		fprintf(stderr, "lazyvm restore: --share: this kernel does not share a page cache "
			"between private mappings (%s): each VM copies the pages it touches from "
			"the shared cache (one fetch per host, MISSING + UFFDIO_COPY)\n", pr.reason);
	ret = share_cache_open(o->share_dir, id, mem_size, o->share_linger_s, &sh->cache, err,
			       errlen);
	if (!ret && sh->true_sharing && (ret = share_mem_create(sh->cache, mem)))
		snprintf(err, errlen, "shared cache mapping: %s", strerror(-ret));
	return ret;
}

int restore_share_wrap(struct restore_share *sh, struct lvm_source **src)
{
	struct lvm_source *wrapped;
	int ret = share_source_create(sh->cache, *src, &wrapped);
	if (!ret)
		*src = wrapped;
	return ret;
}

int restore_share_usage(struct restore_share *sh, unsigned sync_n, const void *addr,
			struct share_usage *out)
{
	if (!sh->cache)	/* not shared: the same counts, for comparison */
		return share_usage_sample(addr, out);
	/* A peer that died never arrives: sample anyway after the wait. */
	if (sync_n > 1)
		return share_sync_sample(sh->cache, sync_n, 120 * 1000, addr, out);
	return share_usage_sample(addr, out);
}

void restore_share_close(struct restore_share *sh)
{
	share_cache_close(sh->cache);
	sh->cache = NULL;
}
