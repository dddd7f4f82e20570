/* SPDX-License-Identifier: MIT */
/*
 * VM state records are all checked before any is applied (issue 9, defect
 * 9).  From a VM's own saved state, two crafted blobs, each with a changed
 * REGS record first (rax = a marker) and one bad record after it:
 *   - an XSAVE record of 4 KiB where this kernel's XSAVE area
 *     (KVM_CAP_XSAVE2) is larger: KVM_SET_XSAVE would read past the record;
 *   - an MSRS record with 33 entries, one more than the loader takes.
 * Each must be refused as bad data (-EBADMSG, the record named) with the
 * vCPU's registers untouched.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "tap.h"
#include "vmm/state-records.h"
#include "vmm/vmm-internal.h"
#include "vmm/vmm.h"

#define HDR 32
#define REC_HDR 16
#define MARKER 0x1badc0deull

struct blob {
	uint8_t *p;
	size_t len, cap;
	uint32_t records;
};

static void put(struct blob *b, uint32_t type, uint32_t vcpu, const void *data, uint32_t len)
{
	size_t padded = ((size_t)len + 7) & ~(size_t)7;
	if (b->len + REC_HDR + padded > b->cap) {
		b->cap = (b->len + REC_HDR + padded) * 2;
		b->p = realloc(b->p, b->cap);
	}
	uint32_t h[4] = { type, vcpu, len, 0 };
	memcpy(b->p + b->len, h, sizeof(h));
	memset(b->p + b->len + REC_HDR, 0, padded);
	memcpy(b->p + b->len + REC_HDR, data, len);
	b->len += REC_HDR + padded;
	b->records++;
}

/*
 * Rebuild saved state: vCPU 0's REGS first with rax = MARKER, then every
 * record, the one of type bad_type (vCPU 0) replaced by bad/bad_len.
 */
static struct blob craft(const uint8_t *saved, size_t len, uint32_t bad_type,
			 const void *bad, uint32_t bad_len)
{
	struct blob b = { 0 };
	b.cap = len * 2 + 4096;
	b.p = calloc(1, b.cap);
	memcpy(b.p, saved, HDR);
	b.len = HDR;
	for (size_t off = HDR; off + REC_HDR <= len; ) {
		uint32_t h[4];
		memcpy(h, saved + off, sizeof(h));
		const uint8_t *data = saved + off + REC_HDR;
		if (h[0] == STATE_REGS && h[1] == 0) {
			struct kvm_regs regs;
			memcpy(&regs, data, sizeof(regs));
			regs.rax = MARKER;
			put(&b, STATE_REGS, 0, &regs, sizeof(regs));
		}
		off += REC_HDR + (((size_t)h[2] + 7) & ~(size_t)7);
	}
	for (size_t off = HDR; off + REC_HDR <= len; ) {
		uint32_t h[4];
		memcpy(h, saved + off, sizeof(h));
		const uint8_t *data = saved + off + REC_HDR;
		if (h[0] == bad_type && h[1] == 0)
			put(&b, h[0], h[1], bad, bad_len);
		else if (!(h[0] == STATE_REGS && h[1] == 0))
			put(&b, h[0], h[1], data, h[2]);
		off += REC_HDR + (((size_t)h[2] + 7) & ~(size_t)7);
	}
	memcpy(b.p + 24, &b.records, 4);
	return b;
}

static void expect_refused(struct vmm *vm, const char *name, struct blob *b, const char *why)
{
	char err[256] = "";
	int ret = vmm_load_state(vm, b->p, b->len, err, sizeof(err));
	struct kvm_regs regs;
	bool untouched = !ioctl(vm->vcpus[0].fd, KVM_GET_REGS, &regs) && regs.rax != MARKER;
	tap_ok(ret == -EBADMSG && strstr(err, why) && untouched,
	       "%s: refused before anything is applied", name);
	tap_diag("load: %s; \"%s\"; registers %s", strerror(-ret), err,
		 untouched ? "untouched" : "changed (applied halfway)");
	free(b->p);
}

int main(void)
{
	tap_plan(2);
	struct vmm_opts o = { .mem_size = 4u << 20, .vcpus = 1, .backing = LVM_BACKING_ANON,
			      .serial_fd = -1 };
	struct vmm *vm;
	char err[256];
	if (vmm_create(&o, &vm, err, sizeof(err))) {
		tap_skip("XSAVE record", "no VM: %s", err);
		tap_skip("MSRS record", "no VM: %s", err);
		return 0;
	}
	void *saved;
	size_t len;
	if (vmm_save_state(vm, &saved, &len))
		tap_bail("vmm_save_state failed");

	size_t xs = state_xsave_size(vm);
	if (xs > sizeof(struct kvm_xsave)) {
		static struct kvm_xsave small;
		struct blob b = craft(saved, len, STATE_XSAVE, &small, sizeof(small));
		expect_refused(vm, "XSAVE record of 4 KiB", &b, "XSAVE");
	} else {
		tap_skip("XSAVE record", "this kernel's XSAVE area is %zu bytes: no short record", xs);
	}

	struct kvm_msr_entry msrs[STATE_MAX_MSRS + 1];
	memset(msrs, 0, sizeof(msrs));
	for (unsigned i = 0; i <= STATE_MAX_MSRS; i++)
		msrs[i].index = 0x174;	/* IA32_SYSENTER_CS: exists everywhere */
	struct blob b = craft(saved, len, STATE_MSRS, msrs, sizeof(msrs));
	expect_refused(vm, "MSRS record with 33 entries", &b, "MSR");
	free(saved);
	vmm_destroy(vm);
	return tap_done();
}
