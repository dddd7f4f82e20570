/* SPDX-License-Identifier: MIT */
/*
 * x86-64 boot without firmware: the VM gets an in-kernel irqchip (LAPICs,
 * so their state is real and saved), each vCPU the host's supported CPUID,
 * and a fresh boot starts directly in 64-bit long mode — a GDT with one
 * code and one data segment, 2 MiB identity page tables over all memory
 * plus the MMIO page, sregs set with KVM_SET_SREGS — at the guest image's
 * entry point, in ring 3 (guests/layout.h explains why).  Page-table
 * entries are created accessed and dirty so the CPU never writes them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "layout.h"
#include "vmm/vmm-internal.h"

#define CR0_PE (1u << 0)
#define CR0_MP (1u << 1)
#define CR0_ET (1u << 4)
#define CR0_NE (1u << 5)
#define CR0_WP (1u << 16)
#define CR0_PG (1u << 31)
#define CR4_PAE (1u << 5)
#define CR4_OSFXSR (1u << 9)
#define CR4_OSXMMEXCPT (1u << 10)
#define EFER_LME (1u << 8)
#define EFER_LMA (1u << 10)

#define PTE_P 1ull
#define PTE_RW 2ull
#define PTE_US 4ull
#define PTE_PS 0x80ull
#define PTE_A 0x20ull
#define PTE_D 0x40ull

#define CPUID_MAX_ENTRIES 256

/* The host's supported CPUID, once per VM: the ioctl is slow (~0.3 ms here). */
int x86_get_cpuid(struct vmm *vm, char *err, size_t errlen)
{
	size_t sz = sizeof(struct kvm_cpuid2) + CPUID_MAX_ENTRIES * sizeof(struct kvm_cpuid_entry2);
	vm->cpuid = calloc(1, sz);
	if (!vm->cpuid)
		return -ENOMEM;
	vm->cpuid->nent = CPUID_MAX_ENTRIES;
	if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, vm->cpuid)) {
		snprintf(err, errlen, "KVM_GET_SUPPORTED_CPUID: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

int x86_vm_init(struct vmm *vm, char *err, size_t errlen)
{
	/* Intel needs a TSS area below 4 GiB for real-mode emulation; unused in
	 * long mode, and a kernel that does not want it says so harmlessly. */
	(void)ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, 0xfffbd000ul);
	vm->irqchip = ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) == 0;
	(void)err;
	(void)errlen;
	return 0;
}

/* vm->cpuid with this vCPU's APIC ids. */
static int x86_set_cpuid(struct vcpu *v, char *err, size_t errlen)
{
	const struct kvm_cpuid2 *host = v->vm->cpuid;
	size_t sz = sizeof(*host) + host->nent * sizeof(host->entries[0]);
	struct kvm_cpuid2 *c = malloc(sz);
	if (!c)
		return -ENOMEM;
	memcpy(c, host, sz);
	for (unsigned i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];
		if (e->function == 1)	/* initial APIC id */
			e->ebx = (e->ebx & 0x00ffffffu) | v->idx << 24;
		if (e->function == 0xb || e->function == 0x1f)
			e->edx = v->idx;	/* x2APIC id */
	}
	int ret = 0;
	if (ioctl(v->fd, KVM_SET_CPUID2, c)) {
		ret = -errno;
		snprintf(err, errlen, "KVM_SET_CPUID2: %s", strerror(errno));
	}
	free(c);
	return ret;
}

int x86_vcpu_init(struct vcpu *v, char *err, size_t errlen)
{
	return x86_set_cpuid(v, err, errlen);
}

/* Page tables and GDT in guest memory (fresh boot only). */
int x86_write_tables(struct vmm *vm)
{
	uint64_t gib = (vm->mem_size + (1ull << 30) - 1) >> 30;
	uint64_t *pt = calloc(1, GUEST_PD - GUEST_PML4 + gib * 4096);
	if (!pt)
		return -ENOMEM;
	const uint64_t flags = PTE_P | PTE_RW | PTE_US | PTE_A;
	uint64_t *pml4 = pt, *pdpt = pt + 512, *pd = pt + 1024;
	pml4[0] = GUEST_PDPT | flags;
	for (uint64_t g = 0; g < gib; g++)
		pdpt[g] = (GUEST_PD + g * 4096) | flags;
	for (uint64_t i = 0; i < gib * 512; i++)
		pd[i] = (i << 21) | flags | PTE_PS | PTE_D;
	pdpt[GUEST_MMIO_BASE >> 30] = GUEST_MMIO_PD | flags;
	uint64_t mmio_pde = GUEST_MMIO_BASE | flags | PTE_PS | PTE_D;
	int ret = lvm_mem_write(vm->mem, GUEST_PML4, pt, GUEST_PD - GUEST_PML4 + gib * 4096);
	free(pt);
	if (!ret)
		ret = lvm_mem_write(vm->mem, GUEST_MMIO_PD, &mmio_pde, sizeof(mmio_pde));
	const uint64_t gdt[3] = {
		0,
		0x00affa000000ffffull,	/* 0x08: 64-bit code, DPL 3 */
		0x00cff2000000ffffull,	/* 0x10: data, 4 GiB, writable, DPL 3 */
	};
	return ret ? ret : lvm_mem_write(vm->mem, GUEST_GDT, gdt, sizeof(gdt));
}

static void x86_segment(struct kvm_segment *s, uint16_t sel, uint8_t type)
{
	memset(s, 0, sizeof(*s));
	s->base = 0;
	s->limit = 0xffffffff;
	s->selector = sel;
	s->type = type;
	s->present = 1;
	s->s = 1;
	s->g = 1;
	s->dpl = 3;
	if (type & 8)
		s->l = 1;	/* code: 64-bit */
	else
		s->db = 1;
}

static int x86_set_long_mode(struct vcpu *v)
{
	struct kvm_sregs s;
	if (ioctl(v->fd, KVM_GET_SREGS, &s))
		return -errno;
	x86_segment(&s.cs, 0x08 | 3, 11);
	x86_segment(&s.ds, 0x10 | 3, 3);
	s.es = s.fs = s.gs = s.ss = s.ds;
	s.gdt.base = GUEST_GDT;
	s.gdt.limit = 3 * 8 - 1;
	s.idt.base = 0;
	s.idt.limit = 0;
	/* VMX wants a usable busy 64-bit TSS even though nothing uses it. */
	memset(&s.tr, 0, sizeof(s.tr));
	s.tr.limit = 0x67;
	s.tr.type = 11;
	s.tr.present = 1;
	s.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG;
	s.cr3 = GUEST_PML4;
	s.cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT;
	s.efer = EFER_LME | EFER_LMA;
	return ioctl(v->fd, KVM_SET_SREGS, &s) ? -errno : 0;
}

int x86_vcpu_boot(struct vcpu *v)
{
	int ret = x86_set_long_mode(v);
	if (ret)
		return ret;
	struct kvm_regs r;
	memset(&r, 0, sizeof(r));
	r.rflags = 2;
	r.rip = GUEST_CODE;
	r.rsp = GUEST_STACKS + (v->idx + 1) * GUEST_STACK_SIZE;
	r.rdi = v->idx;
	if (ioctl(v->fd, KVM_SET_REGS, &r))
		return -errno;
	/* With an in-kernel LAPIC, vCPUs other than 0 wait for INIT/SIPI: our
	 * guests have no bring-up code, every vCPU starts at the entry point. */
	if (v->vm->irqchip) {
		struct kvm_mp_state mp = { .mp_state = KVM_MP_STATE_RUNNABLE };
		if (ioctl(v->fd, KVM_SET_MP_STATE, &mp))
			return -errno;
	}
	return 0;
}
