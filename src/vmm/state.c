/* SPDX-License-Identifier: MIT */
/*
 * The VM state blob (vmm_save_state / vmm_load_state).  Layout, all
 * little-endian (x86 only):
 *
 *   header   "LVMVMST\0", u32 version, u32 vcpus, u64 mem_size, u32 records, u32 0
 *   record*  u32 type, u32 vcpu (~0 for VM-wide), u32 len, u32 0, data, pad to 8
 *
 * Record data are the kernel's own structs (struct kvm_regs, ...): a blob
 * is restored on the same kind of host, like every KVM snapshot.  Loading
 * checks the whole blob (sizes, bounds, vCPU numbers) before applying any of
 * it, so a bad blob leaves the VM untouched.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vmm/state-records.h"
#include "vmm/vmm-internal.h"

#define STATE_MAGIC "LVMVMST"
#define STATE_VERSION 1
#define STATE_HDR 32
#define STATE_REC_HDR 16
#define STATE_VM (~0u)

/* MSRs a 64-bit guest can depend on beyond what sregs carry (EFER, APIC base). */
static const uint32_t state_msrs[] = {
	0x10,		/* IA32_TSC */
	0x174, 0x175, 0x176,	/* SYSENTER_CS/ESP/EIP */
	0x1a0,		/* MISC_ENABLE */
	0x277,		/* PAT */
	0xc0000081, 0xc0000082, 0xc0000083, 0xc0000084,	/* STAR LSTAR CSTAR FMASK */
	0xc0000102,	/* KERNEL_GS_BASE */
	0xc0000103,	/* TSC_AUX */
};

struct buf {
	uint8_t *p;
	size_t len, cap;
	unsigned records;
	int err;
};

static void buf_put(struct buf *b, uint32_t type, uint32_t vcpu, const void *data, size_t len)
{
	size_t need = b->len + STATE_REC_HDR + ((len + 7) & ~7ul);
	if (b->err)
		return;
	if (need > b->cap) {
		size_t cap = need * 2;
		uint8_t *p = realloc(b->p, cap);
		if (!p) {
			b->err = -ENOMEM;
			return;
		}
		memset(p + b->cap, 0, cap - b->cap);
		b->p = p;
		b->cap = cap;
	}
	uint32_t h[4] = { type, vcpu, (uint32_t)len, 0 };
	memcpy(b->p + b->len, h, sizeof(h));
	memcpy(b->p + b->len + STATE_REC_HDR, data, len);
	b->len = need;
	b->records++;
}

/* GET ioctl into a fixed-size record. */
static void buf_get(struct buf *b, int fd, unsigned long req, uint32_t type, uint32_t vcpu,
		    void *tmp, size_t len)
{
	memset(tmp, 0, len);
	if (!b->err && ioctl(fd, req, tmp))
		b->err = -errno;
	buf_put(b, type, vcpu, tmp, len);
}

static size_t state_xsave_size(struct vmm *vm)
{
	int n = ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
	return n > (int)sizeof(struct kvm_xsave) ? (size_t)n : sizeof(struct kvm_xsave);
}

static void state_save_msrs(struct buf *b, struct vcpu *v)
{
	struct kvm_msr_entry out[sizeof(state_msrs) / sizeof(state_msrs[0])];
	unsigned n = 0;
	for (size_t i = 0; i < sizeof(state_msrs) / sizeof(state_msrs[0]); i++) {
		_Alignas(8) uint8_t buf[sizeof(struct kvm_msrs) + sizeof(struct kvm_msr_entry)];
		struct kvm_msrs *m = (struct kvm_msrs *)buf;
		memset(buf, 0, sizeof(buf));
		m->nmsrs = 1;
		m->entries[0].index = state_msrs[i];
		if (ioctl(v->fd, KVM_GET_MSRS, m) == 1)	/* skip what this CPU lacks */
			out[n++] = m->entries[0];
	}
	buf_put(b, STATE_MSRS, v->idx, out, n * sizeof(out[0]));
}

static void state_save_vcpu(struct buf *b, struct vcpu *v, size_t xsave_size)
{
	union {
		struct kvm_regs regs;
		struct kvm_sregs sregs;
		struct kvm_xcrs xcrs;
		struct kvm_lapic_state lapic;
		struct kvm_mp_state mp;
		struct kvm_vcpu_events ev;
	} u;
	buf_get(b, v->fd, KVM_GET_SREGS, STATE_SREGS, v->idx, &u, sizeof(u.sregs));
	buf_get(b, v->fd, KVM_GET_REGS, STATE_REGS, v->idx, &u, sizeof(u.regs));
	void *xs = calloc(1, xsave_size);
	if (!xs)
		b->err = -ENOMEM;
	else
		buf_get(b, v->fd, xsave_size > sizeof(struct kvm_xsave) ? KVM_GET_XSAVE2 : KVM_GET_XSAVE,
			STATE_XSAVE, v->idx, xs, xsave_size);
	free(xs);
	buf_get(b, v->fd, KVM_GET_XCRS, STATE_XCRS, v->idx, &u, sizeof(u.xcrs));
	state_save_msrs(b, v);
	if (v->vm->irqchip) {
		buf_get(b, v->fd, KVM_GET_MP_STATE, STATE_MP_STATE, v->idx, &u, sizeof(u.mp));
		buf_get(b, v->fd, KVM_GET_LAPIC, STATE_LAPIC, v->idx, &u, sizeof(u.lapic));
	}
	buf_get(b, v->fd, KVM_GET_VCPU_EVENTS, STATE_EVENTS, v->idx, &u, sizeof(u.ev));
	uint8_t done = v->done;
	buf_put(b, STATE_DONE, v->idx, &done, 1);
}

static void state_save_vm(struct buf *b, struct vmm *vm)
{
	struct kvm_clock_data clock;
	buf_get(b, vm->vm_fd, KVM_GET_CLOCK, STATE_CLOCK, STATE_VM, &clock, sizeof(clock));
	for (uint32_t chip = 0; vm->irqchip && chip < 3; chip++) {
		struct kvm_irqchip c;
		memset(&c, 0, sizeof(c));
		c.chip_id = chip;
		if (!b->err && ioctl(vm->vm_fd, KVM_GET_IRQCHIP, &c))
			b->err = -errno;
		buf_put(b, STATE_IRQCHIP, STATE_VM, &c, sizeof(c));
	}
	pthread_mutex_lock(&vm->serial.lock);
	buf_put(b, STATE_SERIAL, STATE_VM, vm->serial.line, vm->serial.len);
	pthread_mutex_unlock(&vm->serial.lock);
	buf_put(b, STATE_GUEST, STATE_VM, vm->guest, strlen(vm->guest));
}

int vmm_save_state(struct vmm *vm, void **blob, size_t *len)
{
	struct buf b = { 0 };
	uint8_t hdr[STATE_HDR] = { 0 };
	buf_put(&b, 0, 0, hdr, STATE_HDR - STATE_REC_HDR);	/* room for the header */
	b.records = 0;
	size_t xsave_size = state_xsave_size(vm);
	for (unsigned i = 0; i < vm->nvcpus; i++)
		state_save_vcpu(&b, &vm->vcpus[i], xsave_size);
	state_save_vm(&b, vm);
	if (b.err) {
		free(b.p);
		return b.err;
	}
	memcpy(hdr, STATE_MAGIC, 8);
	uint32_t h32[2] = { STATE_VERSION, vm->nvcpus };
	memcpy(hdr + 8, h32, 8);
	memcpy(hdr + 16, &vm->mem_size, 8);
	memcpy(hdr + 24, &b.records, 4);
	memcpy(b.p, hdr, STATE_HDR);
	*blob = b.p;
	*len = b.len;
	return 0;
}
