/* SPDX-License-Identifier: MIT */
/*
 * Fresh boot of one of the embedded guests: page tables and GDT, the
 * parameter block the guest reads (guests/layout.h), the image at
 * GUEST_CODE, and every vCPU's registers at the entry point.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "layout.h"
#include "vmm/vmm-internal.h"

extern const uint8_t guest_image_workload_start[], guest_image_workload_end[];
extern const uint8_t guest_image_boot_like_start[], guest_image_boot_like_end[];
extern const uint8_t guest_image_dirty_start[], guest_image_dirty_end[];

struct guest_image {
	const char *name;
	const uint8_t *start, *end;
};

static const struct guest_image guest_images[] = {
	{ "workload", guest_image_workload_start, guest_image_workload_end },
	{ "boot-like", guest_image_boot_like_start, guest_image_boot_like_end },
	{ "dirty", guest_image_dirty_start, guest_image_dirty_end },
};

const char *const vmm_guest_names[] = { "workload", "boot-like", "dirty", NULL };

static const struct guest_image *guest_find(const char *name)
{
	for (size_t i = 0; i < sizeof(guest_images) / sizeof(guest_images[0]); i++)
		if (!strcmp(guest_images[i].name, name))
			return &guest_images[i];
	return NULL;
}

bool vmm_guest_exists(const char *name)
{
	return name && guest_find(name);
}

bool vmm_guest_filled(struct vmm *vm)
{
	const volatile struct guest_params *p =
		(const volatile struct guest_params *)((char *)lvm_mem_addr(vm->mem) + GUEST_PARAMS);
	return __atomic_load_n(&p->filled, __ATOMIC_ACQUIRE) >= vm->nvcpus;
}

int vmm_load_guest(struct vmm *vm, char *err, size_t errlen)
{
	const struct guest_image *g = guest_find(vm->guest);
	if (!g) {
		snprintf(err, errlen, "unknown guest '%s' (workload, boot-like, dirty)", vm->guest);
		return -ENOENT;
	}
	size_t len = (size_t)(g->end - g->start);
	struct guest_params p = {
		.magic = GUEST_PARAMS_MAGIC,
		.mem_size = vm->mem_size,
		.seed = vm->seed,
		.iterations = vm->iterations,
		.vcpus = vm->nvcpus,
		.prefix = VMM_BOOTLIKE_PREFIX,
		.fill = vm->fill_pages,
		.tsc_khz = vcpu_tsc_khz(&vm->vcpus[0]),
	};
	int ret = len > GUEST_CODE_MAX ? -EFBIG : x86_write_tables(vm);
	if (!ret)
		ret = lvm_mem_write(vm->mem, GUEST_PARAMS, &p, sizeof(p));
	if (!ret)
		ret = lvm_mem_write(vm->mem, GUEST_CODE, g->start, len);
	if (ret) {
		snprintf(err, errlen, "loading guest %s: %s", g->name, strerror(-ret));
		return ret;
	}
	for (unsigned i = 0; i < vm->nvcpus; i++) {
		ret = x86_vcpu_boot(&vm->vcpus[i]);
		if (ret) {
			snprintf(err, errlen, "vCPU %u: setting up long mode: %s", i, strerror(-ret));
			return ret;
		}
	}
	return 0;
}
