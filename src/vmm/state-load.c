/* SPDX-License-Identifier: MIT */
/*
 * vmm_load_state: check a state blob completely, then apply it (state.c
 * describes the layout).  Per vCPU the records come in the order KVM wants
 * them: sregs (mode, CR3) before regs, MSRs before the LAPIC and events.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vmm/state-records.h"
#include "vmm/vmm-internal.h"

#define STATE_HDR 32
#define STATE_REC_HDR 16
#define STATE_VM (~0u)

struct rec {
	uint32_t type, vcpu, len;
	const uint8_t *data;
};

/* Next record at *off; 0, 1 at the end, -EBADMSG when it does not fit. */
static int rec_next(const uint8_t *p, size_t len, size_t *off, struct rec *r)
{
	if (*off == len)
		return 1;
	if (len - *off < STATE_REC_HDR)
		return -EBADMSG;
	uint32_t h[4];
	memcpy(h, p + *off, sizeof(h));
	size_t padded = ((size_t)h[2] + 7) & ~(size_t)7;
	if (padded > len - *off - STATE_REC_HDR)
		return -EBADMSG;
	r->type = h[0], r->vcpu = h[1], r->len = h[2];
	r->data = p + *off + STATE_REC_HDR;
	*off += STATE_REC_HDR + padded;
	return 0;
}

static size_t rec_fixed_size(uint32_t type)
{
	switch (type) {
	case STATE_REGS: return sizeof(struct kvm_regs);
	case STATE_SREGS: return sizeof(struct kvm_sregs);
	case STATE_XCRS: return sizeof(struct kvm_xcrs);
	case STATE_LAPIC: return sizeof(struct kvm_lapic_state);
	case STATE_MP_STATE: return sizeof(struct kvm_mp_state);
	case STATE_EVENTS: return sizeof(struct kvm_vcpu_events);
	case STATE_DONE: return 1;
	case STATE_CLOCK: return sizeof(struct kvm_clock_data);
	case STATE_IRQCHIP: return sizeof(struct kvm_irqchip);
	default: return 0;	/* variable */
	}
}

static int rec_check(const struct vmm *vm, const struct rec *r, char *err, size_t errlen)
{
	bool vm_wide = r->type >= STATE_CLOCK;
	size_t fixed = rec_fixed_size(r->type);
	const char *why = NULL;
	if (r->type < STATE_REGS || (r->type > STATE_DONE && r->type < STATE_CLOCK) ||
	    r->type > STATE_GUEST)
		why = "unknown record type";
	else if (vm_wide ? r->vcpu != STATE_VM : r->vcpu >= vm->nvcpus)
		why = "bad vCPU number";
	else if (fixed && r->len != fixed)
		why = "wrong size";
	else if (r->type == STATE_MSRS && r->len % sizeof(struct kvm_msr_entry))
		why = "wrong size";
	else if (r->type == STATE_XSAVE && r->len < sizeof(struct kvm_xsave))
		why = "wrong size";
	else if (r->type == STATE_SERIAL && r->len >= SERIAL_LINE_MAX)
		why = "serial line too long";
	else if (r->type == STATE_IRQCHIP && ((const struct kvm_irqchip *)r->data)->chip_id > 2)
		why = "bad irqchip id";
	else if (r->type == STATE_IRQCHIP && !vm->irqchip)
		why = "irqchip state for a VM without one";
	if (why)
		snprintf(err, errlen, "VM state: record type %u (vCPU %d): %s", r->type,
			 (int)r->vcpu, why);
	return why ? -EBADMSG : 0;
}

static int state_check(const struct vmm *vm, const uint8_t *p, size_t len, char *err,
		       size_t errlen)
{
	if (len < STATE_HDR || memcmp(p, "LVMVMST", 8)) {
		snprintf(err, errlen, "VM state: not a lazyvm VM state blob");
		return -EBADMSG;
	}
	uint32_t version, vcpus, records;
	uint64_t mem;
	memcpy(&version, p + 8, 4);
	memcpy(&vcpus, p + 12, 4);
	memcpy(&mem, p + 16, 8);
	memcpy(&records, p + 24, 4);
	if (version != 1) {
		snprintf(err, errlen, "VM state: version %u, this lazyvm reads version 1", version);
		return -EBADMSG;
	}
	if (vcpus != vm->nvcpus || mem != vm->mem_size) {
		snprintf(err, errlen, "VM state: for %u vCPUs and %llu MiB, the VM has %u and %llu",
			 vcpus, (unsigned long long)(mem >> 20), vm->nvcpus,
			 (unsigned long long)(vm->mem_size >> 20));
		return -EBADMSG;
	}
	size_t off = STATE_HDR;
	struct rec r;
	int ret;
	uint32_t n = 0;
	while (!(ret = rec_next(p, len, &off, &r))) {
		if ((ret = rec_check(vm, &r, err, errlen)))
			return ret;
		n++;
	}
	if (ret < 0 || n != records) {
		snprintf(err, errlen, "VM state: truncated or malformed record list");
		return -EBADMSG;
	}
	return 0;
}

static int rec_set_msrs(int fd, const struct rec *r)
{
	unsigned n = r->len / sizeof(struct kvm_msr_entry);
	_Alignas(8) uint8_t buf[sizeof(struct kvm_msrs) + 32 * sizeof(struct kvm_msr_entry)];
	struct kvm_msrs *m = (struct kvm_msrs *)buf;
	if (n > 32)
		return -E2BIG;
	memset(buf, 0, sizeof(buf));
	m->nmsrs = n;
	memcpy(m->entries, r->data, r->len);
	int ret = ioctl(fd, KVM_SET_MSRS, m);
	return ret < 0 ? -errno : (unsigned)ret == n ? 0 : -EINVAL;
}

static int rec_apply_vcpu(struct vcpu *v, const struct rec *r)
{
	union {
		struct kvm_vcpu_events ev;
		uint8_t raw[sizeof(struct kvm_lapic_state)];
	} u;
	switch (r->type) {
	case STATE_REGS: return ioctl(v->fd, KVM_SET_REGS, r->data) ? -errno : 0;
	case STATE_SREGS: return ioctl(v->fd, KVM_SET_SREGS, r->data) ? -errno : 0;
	case STATE_XSAVE: return ioctl(v->fd, KVM_SET_XSAVE, r->data) ? -errno : 0;
	case STATE_XCRS: return ioctl(v->fd, KVM_SET_XCRS, r->data) ? -errno : 0;
	case STATE_MSRS: return rec_set_msrs(v->fd, r);
	case STATE_LAPIC: return ioctl(v->fd, KVM_SET_LAPIC, r->data) ? -errno : 0;
	case STATE_MP_STATE: return ioctl(v->fd, KVM_SET_MP_STATE, r->data) ? -errno : 0;
	case STATE_EVENTS:
		memcpy(&u.ev, r->data, sizeof(u.ev));
		/* Input-only flags: restore pending NMIs and the SIPI vector too. */
		u.ev.flags |= KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR;
		return ioctl(v->fd, KVM_SET_VCPU_EVENTS, &u.ev) ? -errno : 0;
	case STATE_DONE:
		v->done = r->data[0] != 0;
		return 0;
	}
	return -EINVAL;
}

static int rec_apply_vm(struct vmm *vm, const struct rec *r)
{
	struct kvm_clock_data clock;
	switch (r->type) {
	case STATE_CLOCK:
		memcpy(&clock, r->data, sizeof(clock));
		clock.flags = 0;	/* the saved value, not the host's realtime */
		return ioctl(vm->vm_fd, KVM_SET_CLOCK, &clock) ? -errno : 0;
	case STATE_IRQCHIP:
		return ioctl(vm->vm_fd, KVM_SET_IRQCHIP, r->data) ? -errno : 0;
	case STATE_SERIAL:
		pthread_mutex_lock(&vm->serial.lock);
		memcpy(vm->serial.line, r->data, r->len);
		vm->serial.len = r->len;
		pthread_mutex_unlock(&vm->serial.lock);
		return 0;
	case STATE_GUEST:
		snprintf(vm->guest, sizeof(vm->guest), "%.*s", (int)r->len, (const char *)r->data);
		return 0;
	}
	return -EINVAL;
}

int vmm_load_state(struct vmm *vm, const void *blob, size_t len, char *err, size_t errlen)
{
	char dummy[8];
	if (!err)
		err = dummy, errlen = sizeof(dummy);
	const uint8_t *p = blob;
	int ret = state_check(vm, p, len, err, errlen);
	if (ret)
		return ret;
	size_t off = STATE_HDR;
	struct rec r;
	while (!rec_next(p, len, &off, &r)) {
		ret = r.vcpu == STATE_VM ? rec_apply_vm(vm, &r)
					 : rec_apply_vcpu(&vm->vcpus[r.vcpu], &r);
		if (ret) {
			snprintf(err, errlen, "VM state: applying record type %u (vCPU %d): %s",
				 r.type, (int)r.vcpu, strerror(-ret));
			return ret;
		}
	}
	return 0;
}
