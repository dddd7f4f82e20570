/* SPDX-License-Identifier: MIT */
/* Record types of the VM state blob (state.c has the layout). */
#ifndef LAZYVM_VMM_STATE_RECORDS_H
#define LAZYVM_VMM_STATE_RECORDS_H

#include <stddef.h>

enum state_record {
	STATE_REGS = 1,		/* struct kvm_regs */
	STATE_SREGS = 2,	/* struct kvm_sregs */
	STATE_XSAVE = 3,	/* struct kvm_xsave (or the larger XSAVE2 area) */
	STATE_XCRS = 4,		/* struct kvm_xcrs */
	STATE_MSRS = 5,		/* struct kvm_msr_entry[] */
	STATE_LAPIC = 6,	/* struct kvm_lapic_state */
	STATE_MP_STATE = 7,	/* struct kvm_mp_state */
	STATE_EVENTS = 8,	/* struct kvm_vcpu_events */
	STATE_DONE = 9,		/* u8: the guest finished on this vCPU */
	STATE_CLOCK = 32,	/* struct kvm_clock_data */
	STATE_IRQCHIP = 33,	/* struct kvm_irqchip, one per chip */
	STATE_SERIAL = 34,	/* the serial port's unfinished output line */
	STATE_GUEST = 35,	/* guest name */
};

/* The most MSR entries one STATE_MSRS record may hold (what the loader's
 * KVM_SET_MSRS buffer takes). */
#define STATE_MAX_MSRS 32

struct vmm;
/* The XSAVE area this kernel reads on KVM_SET_XSAVE: KVM_CAP_XSAVE2's size
 * (the vCPU's uabi_size), at least struct kvm_xsave. */
size_t state_xsave_size(const struct vmm *vm);

#endif
