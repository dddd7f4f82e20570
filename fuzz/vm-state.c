/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the VM state loader (src/vmm/state-load.c), the bytes of
 * a snapshot's or a migration's state blob.  One real KVM VM (2 vCPUs, 4 MiB)
 * is created once; every input is loaded into it.  Whatever the bytes, the
 * loader must return 0 or -errno with a message, never read outside the blob
 * (an exact-size heap copy: ASan sees one byte past it) and never crash.
 * Without /dev/kvm the target does nothing.
 *
 * LVM_FUZZ_SEED_OUT=FILE: write the state blob of the freshly booted VM to
 * FILE first (the seed in fuzz/corpus/vm-state).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/vmm.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct vmm *vm;

static void write_seed(const char *path)
{
	void *blob;
	size_t len;
	if (vmm_save_state(vm, &blob, &len))
		return;
	FILE *f = fopen(path, "w");
	if (f) {
		fwrite(blob, 1, len, f);
		fclose(f);
	}
	free(blob);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	char err[256];
	struct vmm_opts o = { .guest = "workload", .mem_size = 4u << 20, .vcpus = 2,
			      .backing = LVM_BACKING_ANON, .seed = 1, .iterations = 1,
			      .serial_fd = -1 };
	if (vmm_create(&o, &vm, err, sizeof(err)) || vmm_load_guest(vm, err, sizeof(err))) {
		fprintf(stderr, "vm-state fuzzer: no VM (%s): inputs are not loaded\n", err);
		vm = NULL;
		return 0;
	}
	const char *seed = getenv("LVM_FUZZ_SEED_OUT");
	if (seed)
		write_seed(seed);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!vm)
		return 0;
	uint8_t *p = malloc(size ? size : 1);
	memcpy(p, data, size);
	char err[256];
	err[0] = 0;
	int ret = vmm_load_state(vm, p, size, err, sizeof(err));
	if (ret > 0 || (ret < 0 && !err[0]))
		abort();	/* an error must say what it is */
	free(p);
	return 0;
}
