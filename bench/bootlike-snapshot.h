/* SPDX-License-Identifier: MIT */
/* The restore benchmarks' snapshot: boot-like at its entry point, its data
 * memory full of a pattern (a guest that used its memory), so an eager
 * restore or a background fill has the whole size to read. */
#ifndef LAZYVM_BENCH_BOOTLIKE_SNAPSHOT_H
#define LAZYVM_BENCH_BOOTLIKE_SNAPSHOT_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "layout.h"
#include "lazyvm.h"
#include "vmm/snapshot.h"
#include "vmm/vmm.h"
#include "workload-algo.h"

#define BENCH_SNAPSHOT_FILL_STEP (2u << 20)
#define BENCH_SNAPSHOT_SEED 3

static inline int bench_bootlike_snapshot(const char *dir, uint64_t size, uint64_t iterations)
{
	struct vmm_opts o = { .guest = "boot-like", .mem_size = size, .vcpus = 2,
			      .backing = LVM_BACKING_ANON, .seed = BENCH_SNAPSHOT_SEED,
			      .iterations = iterations, .serial_fd = -1 };
	struct vmm *vm = NULL;
	char err[256];
	int ret = vmm_create(&o, &vm, err, sizeof(err));
	if (!ret)
		ret = vmm_load_guest(vm, err, sizeof(err));
	uint64_t *buf = malloc(BENCH_SNAPSHOT_FILL_STEP);
	for (uint64_t off = GUEST_SYS_SIZE; !ret && buf && off < size;
	     off += BENCH_SNAPSHOT_FILL_STEP) {
		for (size_t i = 0; i < BENCH_SNAPSHOT_FILL_STEP / 8; i++)
			buf[i] = wl_mix(off + i * 8);
		ret = lvm_mem_write(vmm_mem(vm), off, buf, BENCH_SNAPSHOT_FILL_STEP);
	}
	struct vm_snapshot_info info = { .guest = "boot-like", .seed = BENCH_SNAPSHOT_SEED,
					 .iterations = iterations };
	if (!ret)
		ret = vm_snapshot_take(vm, dir, &info, err, sizeof(err));
	if (ret)
		fprintf(stderr, "bench: snapshot of %llu MiB: %s\n",
			(unsigned long long)(size >> 20), err);
	free(buf);
	vmm_destroy(vm);
	return ret;
}

#endif
