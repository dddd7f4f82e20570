/* SPDX-License-Identifier: MIT */
/*
 * Growing the ABI (lazyvm.h): the library reads only what a struct's
 * struct_size covers and writes nothing past it.  A program built against an
 * older, smaller struct is simulated by a smaller struct_size; one built
 * against a newer header by a bigger struct with zero (accepted) or non-zero
 * (-E2BIG) members the library does not know.
 */
#include <stddef.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lazyvm.h"
#include "tap.h"

/* A newer program's struct: ours plus a member this library has never seen. */
struct newer_engine_opts {
	struct lvm_engine_opts cur;
	uint64_t future;
};

struct padded_stats {
	struct lvm_stats st;
	uint8_t canary[64];
};

static int create_with(const void *opts)
{
	struct lvm_engine *e = NULL;
	int ret = lvm_engine_create(opts, &e);
	lvm_engine_destroy(e);
	return ret;
}

static void engine_opts_sizes(void)
{
	struct newer_engine_opts n = { 0 };
	lvm_engine_opts_init(&n.cur);
	tap_ok(n.cur.struct_size == sizeof(struct lvm_engine_opts),
	       "lvm_engine_opts_init sets struct_size");
	tap_ok(create_with(&n.cur) == 0, "engine opts of this release: accepted");
	n.cur.struct_size = sizeof(n);
	tap_ok(create_with(&n) == 0, "bigger engine opts, unknown member zero: accepted");
	n.future = 1;
	tap_ok(create_with(&n) == -E2BIG, "bigger engine opts, unknown member set: -E2BIG");
	n.cur.struct_size = 0;
	tap_ok(create_with(&n) == -EINVAL, "struct_size 0: -EINVAL");
}

static void stats_written_within_size(void)
{
	struct lvm_engine *e = NULL;
	if (lvm_engine_create(NULL, &e))
		tap_bail("engine");
	struct padded_stats p;
	memset(&p, 0xa5, sizeof(p));
	/* An older program whose lvm_stats ended before fault_latency. */
	p.st.struct_size = offsetof(struct lvm_stats, fault_latency);
	int ret = lvm_engine_stats(e, &p.st);
	tap_ok(ret == -EINVAL, "stats smaller than the first release's: -EINVAL (%d)", ret);

	memset(&p, 0xa5, sizeof(p));
	p.st.struct_size = sizeof(p);	/* a newer program's, bigger struct */
	ret = lvm_engine_stats(e, &p.st);
	bool zeroed = true;
	for (size_t i = 0; i < sizeof(p.canary); i++)
		zeroed &= p.canary[i] == 0;
	tap_ok(!ret && p.st.faults == 0 && zeroed,
	       "bigger stats: known members written, unknown ones zeroed");

	memset(&p, 0xa5, sizeof(p));
	p.st.struct_size = sizeof(p.st);
	ret = lvm_engine_stats(e, &p.st);
	bool untouched = true;
	for (size_t i = 0; i < sizeof(p.canary); i++)
		untouched &= p.canary[i] == 0xa5;
	tap_ok(!ret && p.st.pages_total == 0 && untouched,
	       "stats: nothing written past struct_size");
	lvm_engine_destroy(e);
}

static void probe_and_source_sizes(void)
{
	struct lvm_probe p = { .struct_size = 3 };
	tap_ok(lvm_probe(LVM_BACKING_ANON, LVM_MODE_MISSING, &p) == -EINVAL,
	       "probe with a bad struct_size: -EINVAL");
	struct lvm_source_ops ops = { 0 };
	struct lvm_source *src = NULL;
	tap_ok(lvm_source_create(&ops, NULL, 4096, &src) == -EINVAL,
	       "source ops without struct_size: -EINVAL");
	struct lvm_mem_opts mo = { .backing = LVM_BACKING_ANON, .size = 4096 };
	struct lvm_mem *mem = NULL;
	tap_ok(lvm_mem_create(&mo, &mem) == -EINVAL, "mem opts without struct_size: -EINVAL");
}

int main(void)
{
	tap_plan(11);
	engine_opts_sizes();
	stats_written_within_size();
	probe_and_source_sizes();
	return tap_done();
}
