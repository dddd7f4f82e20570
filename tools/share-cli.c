/* SPDX-License-Identifier: MIT */
/* restore --share options and the memory-use stats (share-cli.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/share.h"
#include "share-cli.h"

int share_cli_apply(struct vm_restore_opts *ro, const char *cmd, int ch, const char *val)
{
	unsigned long n;
	switch (ch) {
	case SHARE_OPT_SHARE:
		ro->share = true;
		return 1;
	case SHARE_OPT_LINGER:
	case SHARE_OPT_SYNC:
		if (cli_parse_uint(val, 86400ul * 365, &n))
			return cli_fail(EXIT_USAGE, cmd, "%s: bad number '%s'",
					ch == SHARE_OPT_SYNC ? "--share-sync" : "--share-linger", val);
		*(ch == SHARE_OPT_SYNC ? &ro->share_sync : &ro->share_linger_s) = (unsigned)n;
		return 1;
	case SHARE_OPT_DIR:
		ro->share_dir = val;
		return 1;
	default:
		return 0;
	}
}

void share_cli_stats(struct vm_restore *rs, struct vm_stats *st)
{
	struct share_usage u;
	int ret = vm_restore_share_usage(rs, &u);
	if (ret)
		fprintf(stderr, "lazyvm restore: memory use: %s (%s)\n", strerror(-ret),
			ret == -ETIMEDOUT ? "--share-sync: peers missing; sampled anyway" : "not sampled");
	if (ret && ret != -ETIMEDOUT)
		return;
	vm_stats_add(st, "shared_pages", "%llu", (unsigned long long)((u.rss_kib - u.anon_kib) / 4));
	vm_stats_add(st, "private_pages", "%llu", (unsigned long long)(u.anon_kib / 4));
	vm_stats_add(st, "pss_kib", "%llu", (unsigned long long)u.pss_kib);
	vm_stats_add(st, "guest_rss_kib", "%llu", (unsigned long long)u.rss_kib);
	vm_stats_add(st, "guest_pss_kib", "%llu", (unsigned long long)u.guest_pss_kib);
}
