/* SPDX-License-Identifier: MIT */
/* Record types of the VM state blob (state.c has the layout). */
#ifndef LAZYVM_VMM_STATE_RECORDS_H
#define LAZYVM_VMM_STATE_RECORDS_H

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

#endif
