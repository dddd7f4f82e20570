/* SPDX-License-Identifier: MIT */
/*
 * A custom page source, driven from the program's own poll loop.
 *
 *   custom-source [PAGES]
 *
 * The source computes its pages (page p holds the 64-bit word p everywhere)
 * instead of reading a file: any lvm_source_ops.get that fills scratch is a
 * page source (a network fetch, a decompressor, a database).  The engine
 * runs no thread of its own (caller_driven): a worker thread touches the
 * memory while main() polls the engine's fd and calls lvm_engine_process().
 * Build: cc custom-source.c -llazyvm -pthread
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lazyvm.h>

#define PAGE 4096

/* get(): len bytes at source offset off, into scratch (called on faults). */
static int counting_get(void *ctx, uint64_t off, size_t len, void *scratch, const void **data)
{
	atomic_fetch_add((_Atomic uint64_t *)ctx, 1);
	uint64_t *w = scratch;
	for (size_t i = 0; i < len / 8; i++)
		w[i] = (off + i * 8) / PAGE;
	*data = scratch;
	return 0;
}

struct toucher {
	const uint64_t *mem;
	size_t pages;
	size_t wrong;
	atomic_bool done;
};

static void *touch_all(void *arg)
{
	struct toucher *t = arg;
	for (size_t p = 0; p < t->pages; p++)
		t->wrong += t->mem[p * PAGE / 8 + 7] != p;
	atomic_store(&t->done, true);
	return NULL;
}

int main(int argc, char **argv)
{
	size_t pages = argc > 1 ? strtoul(argv[1], NULL, 0) : 256;
	_Atomic uint64_t gets = 0;
	static const struct lvm_source_ops ops = { .struct_size = sizeof(ops),
						   .get = counting_get };
	struct lvm_mem_opts mo = { .struct_size = sizeof(mo), .backing = LVM_BACKING_ANON,
				   .size = pages * PAGE, .kvm_vm_fd = -1 };
	struct lvm_engine_opts o;
	lvm_engine_opts_init(&o);
	o.caller_driven = true;
	struct lvm_source *src = NULL;
	struct lvm_mem *mem = NULL;
	struct lvm_engine *e = NULL;
	int ret = lvm_source_create(&ops, &gets, pages * PAGE, &src);
	if (!ret)
		ret = lvm_mem_create(&mo, &mem);
	if (!ret)
		ret = lvm_engine_create(&o, &e);
	if (!ret)
		ret = lvm_engine_add_mem(e, mem, LVM_MODE_MISSING, src, 0);
	if (ret >= 0)
		ret = lvm_engine_start(e);
	if (ret) {
		fprintf(stderr, "custom-source: %s\n", strerror(-ret));
		goto out;
	}

	struct toucher t = { lvm_mem_addr(mem), pages, 0, false };
	pthread_t th;
	pthread_create(&th, NULL, touch_all, &t);
	struct pollfd pfd = { lvm_engine_uffd(e), POLLIN, 0 };
	while (!atomic_load(&t.done) && ret >= 0)	/* the program's event loop */
		if (poll(&pfd, 1, 100) > 0)
			ret = lvm_engine_process(e);
	pthread_join(th, NULL);
	printf("custom source: %zu pages, %zu wrong, %" PRIu64 " get() calls\n", pages,
	       t.wrong, atomic_load(&gets));
	ret = ret < 0 ? ret : t.wrong ? -EIO : 0;
out:
	lvm_engine_destroy(e);
	lvm_source_destroy(src);
	lvm_mem_destroy(mem);
	return ret ? 1 : 0;
}
