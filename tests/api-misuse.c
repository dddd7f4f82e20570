/* SPDX-License-Identifier: MIT */
/* API misuse gets a clear -errno, never a crash or a half-set-up engine. */
#include <fcntl.h>
#include <stdlib.h>

#include "lazyvm.h"
#include "tap.h"
#include "testlib.h"

static struct lvm_engine *new_engine(int uffd)
{
	struct lvm_engine_opts o;
	struct lvm_engine *e = NULL;
	lvm_engine_opts_init(&o);
	o.uffd = uffd;
	o.threads = 1;
	int ret = lvm_engine_create(&o, &e);
	return ret ? NULL : e;
}

int main(void)
{
	tap_plan(14);
	struct lvm_mem *mem = NULL, *bad = NULL;
	struct lvm_source *src = NULL, *small = NULL;
	struct lvm_mem_opts mo = { .struct_size = sizeof(mo), .backing = LVM_BACKING_ANON, .size = 1 << 20, .kvm_vm_fd = -1 };
	if (lvm_mem_create(&mo, &mem) || lvm_source_zero(1 << 20, &src) ||
	    lvm_source_zero(4096, &small))
		tap_bail("setup");

	mo.size = 5000;
	tap_ok(lvm_mem_create(&mo, &bad) == -EINVAL, "memory size not a page multiple: -EINVAL");
	mo.size = 0;
	tap_ok(lvm_mem_create(&mo, &bad) == -EINVAL, "zero-sized memory: -EINVAL");
	mo = (struct lvm_mem_opts){ .struct_size = sizeof(mo), .backing = (enum lvm_backing)99, .size = 4096 };
	tap_ok(lvm_mem_create(&mo, &bad) == -EINVAL, "unknown backing: -EINVAL");

	struct lvm_engine *e = new_engine(-1);
	tap_ok(e != NULL, "engine with its own uffd");
	tap_ok(lvm_engine_start(e) == -EINVAL, "start with no region: -EINVAL");
	tap_ok(lvm_engine_add_mem(e, mem, LVM_MODE_WP, src, 0) == -EINVAL,
	       "WP is not a served mode: -EINVAL");
	tap_ok(lvm_engine_add_mem(e, mem, LVM_MODE_MISSING, small, 0) == -ERANGE,
	       "source smaller than the memory: -ERANGE (never serve from outside it)");
	tap_ok(lvm_engine_add_mem(e, mem, LVM_MODE_MISSING, src, 0) == 0, "register once: ok");
	tap_ok(lvm_engine_add_mem(e, mem, LVM_MODE_MISSING, src, 0) == -EEXIST,
	       "register the same memory twice: -EEXIST");
	tap_ok(lvm_engine_add_remote(e, 0x100001000ull, 4096, 4096, src, 0) == -EINVAL,
	       "remote region on an engine that owns its uffd: -EINVAL");
	lvm_engine_destroy(e);

	int fd = open("/dev/null", O_RDONLY);
	close(fd);
	struct lvm_engine_opts o;
	lvm_engine_opts_init(&o);
	o.uffd = fd;
	tap_ok(lvm_engine_create(&o, &e) == -EBADF, "adopting a closed fd: -EBADF");
	fd = open("/dev/null", O_RDONLY);
	o.uffd = fd;
	tap_ok(lvm_engine_create(&o, &e) == -EINVAL, "adopting a non-userfaultfd fd: -EINVAL");
	close(fd);

	/* A real uffd adopted: remote ranges must be page aligned. */
	e = new_engine(-1);
	int uffd = dup(lvm_engine_uffd(e));
	lvm_engine_destroy(e);
	e = new_engine(uffd);
	tap_ok(e && lvm_engine_add_remote(e, 0x100000800ull, 4096, 4096, src, 0) == -EINVAL,
	       "unaligned remote range: -EINVAL");
	tap_ok(e && lvm_engine_supply(e, src, 0, "x", 1) == -EINVAL,
	       "supply before start: -EINVAL");
	lvm_engine_destroy(e);

	lvm_source_destroy(small);
	lvm_source_destroy(src);
	lvm_mem_destroy(mem);
	return tap_done();
}
