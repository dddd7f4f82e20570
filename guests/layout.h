/* SPDX-License-Identifier: MIT */
/*
 * Guest physical layout shared by the VMM (src/vmm/), the guests and the
 * tests' model of the guests.  Everything below GUEST_SYS_SIZE belongs to
 * the VMM/guest runtime (page tables, GDT, parameters, code, stacks); the
 * workload's data pages are [GUEST_SYS_SIZE, mem_size).
 */
#ifndef LAZYVM_GUEST_LAYOUT_H
#define LAZYVM_GUEST_LAYOUT_H

#include <stdint.h>

#define GUEST_GDT		0x8000ull	/* null, code64, data */
#define GUEST_PARAMS		0x9000ull	/* struct guest_params */
#define GUEST_PML4		0x10000ull
#define GUEST_PDPT		0x11000ull
#define GUEST_PD		0x12000ull	/* one 4 KiB PD per GiB */
#define GUEST_MAX_GIB		64ull		/* PDs end at 0x52000 */
#define GUEST_CODE		0x100000ull	/* image loaded and entered here */
#define GUEST_CODE_MAX		0x80000ull
#define GUEST_STACKS		0x180000ull	/* vCPU i: [+i*SIZE, +(i+1)*SIZE) */
#define GUEST_STACK_SIZE	0x4000ull
#define GUEST_SYS_SIZE		0x200000ull	/* data pages start here */

/*
 * Devices are MMIO, not port I/O: this machine's nested KVM (PVM) runs a
 * CPL 0 guest almost entirely in its instruction emulator (~1 us an
 * instruction) and a CPL 3 guest natively, and it does not honour IOPL, so
 * the guests run in ring 3 and reach devices through a page that is mapped
 * in their page tables but backed by no memslot (KVM_EXIT_MMIO).
 */
#define GUEST_MMIO_BASE		(511ull << 30)	/* above any guest memory */
#define GUEST_MMIO_PD		0x52000ull	/* the PD that maps it */
#define GUEST_SERIAL		GUEST_MMIO_BASE		/* 8250 registers, THR first */
#define GUEST_SERIAL_LSR	(GUEST_SERIAL + 5)
#define GUEST_EXIT		(GUEST_MMIO_BASE + 0x100)	/* a vCPU writes here when done */
/* A vCPU writes a u32 of microseconds (at most 1000) here to sleep that
 * long: ring 3 has no hlt, and a guest that paces itself (dirty) should
 * leave the CPU to the host as an idle guest under QEMU does. */
#define GUEST_IDLE		(GUEST_MMIO_BASE + 0x200)

#define GUEST_PARAMS_MAGIC	0x314d56797a614cull	/* "LazyVM1" */

struct guest_params {
	uint64_t magic;
	uint64_t mem_size;
	uint64_t seed;
	uint64_t iterations;
	uint64_t vcpus;
	uint64_t prefix;	/* boot-like: bytes of the dense sequential prefix */
	uint64_t barrier;	/* vCPUs arrived at the final barrier */
	uint64_t fill;		/* workload: data pages written whole first (--fill) */
	uint64_t filled;	/* vCPUs done with that fill phase */
	uint64_t tsc_khz;	/* the vCPUs' TSC frequency (KVM_GET_TSC_KHZ; 0: unknown) */
	uint64_t rate;		/* dirty: pages rewritten per second (0: 4096) */
};

#endif
