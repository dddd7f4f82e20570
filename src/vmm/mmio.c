/* SPDX-License-Identifier: MIT */
/*
 * MMIO exits: the serial port's registers and the guests' exit register
 * (guests/layout.h says why the devices are MMIO).  Reads of anything else
 * return all ones, like an open bus; writes elsewhere stop the VM, since
 * our guests never do that unless they went wrong.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "layout.h"
#include "vmm/vmm-internal.h"

int vmm_handle_mmio(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	uint64_t addr = run->mmio.phys_addr;
	unsigned len = run->mmio.len > 8 ? 8 : run->mmio.len;

	if (!run->mmio.is_write) {
		memset(run->mmio.data, 0xff, len);
		if (addr >= GUEST_SERIAL && addr < GUEST_SERIAL + 8)
			for (unsigned i = 0; i < len; i++)
				run->mmio.data[i] = serial_read(addr + i - GUEST_SERIAL);
		return 0;
	}
	if (addr == GUEST_EXIT)
		return 1;
	if (addr == GUEST_IDLE && len == 4) {
		uint32_t us;
		memcpy(&us, run->mmio.data, sizeof(us));
		struct timespec ts = { 0, (long)(us < 1000 ? us : 1000) * 1000 };
		nanosleep(&ts, NULL);	/* a pause request waits at most this long */
		return 0;
	}
	if (addr == GUEST_SERIAL) {
		serial_out(&v->vm->serial, run->mmio.data, 1);
		return 0;
	}
	if (addr > GUEST_SERIAL && addr < GUEST_SERIAL + 8)
		return 0;	/* other 8250 registers: configuration we ignore */
	return -1;
}
