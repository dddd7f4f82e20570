/* SPDX-License-Identifier: MIT */
/* Helpers shared by the tests/gmem-*.c programs: a KVM VM to own guest_memfd,
 * a monotonic clock, and the probe-or-skip preamble. */
#ifndef LAZYVM_GMEM_TEST_H
#define LAZYVM_GMEM_TEST_H

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>
#include <linux/kvm.h>

#include "lazyvm.h"
#include "tap.h"
#include "util/clock.h"

/* The watchdog budget of each gmem program (tap_watchdog): generous, since
 * under make check-gmem it runs inside QEMU TCG, 10-50x slower than here. */
#define GMEM_TEST_WATCHDOG_S 300

/* A KVM VM fd (guest_memfd belongs to a VM), or -errno. */
static inline int gmem_test_vm(void)
{
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		return -errno;
	int vm = ioctl(kvm, KVM_CREATE_VM, 0);
	int err = errno;
	close(kvm);
	return vm < 0 ? -err : vm;
}

static inline uint64_t gmem_test_now_ns(void)
{
	return mono_now_ns();
}

/*
 * true if a VM here can have guest_memfd memory at all (what `run --backing
 * gmem` needs, served lazily or not); else SKIPs every one of names[0..n)
 * with what failed, like the probe of the lazy gmem tests.
 */
static inline bool gmem_test_usable_or_skip(const char *const *names, int n)
{
	char why[200] = "";
	int vm = gmem_test_vm();
	if (vm < 0) {
		snprintf(why, sizeof(why), "KVM_CREATE_VM: %s", strerror(-vm));
	} else {
		struct lvm_mem_opts o = { .struct_size = sizeof(o), .backing = LVM_BACKING_GMEM,
					  .size = 2u << 20, .kvm_vm_fd = vm };
		struct lvm_mem *m;
		int ret = lvm_mem_create(&o, &m);
		if (ret)
			snprintf(why, sizeof(why), "probe gmem: guest_memfd memory: %s",
				 strerror(-ret));
		else
			lvm_mem_destroy(m);
		close(vm);
	}
	for (int i = 0; why[0] && i < n; i++)
		tap_skip(names[i], "%s", why);
	return !why[0];
}

/* true if gmem x m is served lazily here; else SKIPs name with the probe's reason. */
static inline bool gmem_test_probe(enum lvm_mode m, const char *name)
{
	struct lvm_probe p = { .struct_size = sizeof(p) };
	int ret = lvm_probe(LVM_BACKING_GMEM, m, &p);
	if (ret) {
		tap_skip(name, "lvm_probe: %s", strerror(-ret));
		return false;
	}
	if (p.err) {
		tap_skip(name, "probe gmem x %s: %s", lvm_mode_name(m), p.reason);
		return false;
	}
	return true;
}

/* true if gmem is served lazily here (MISSING and MINOR register); else SKIPs
 * every one of names[0..n) with the probe's reason. */
static inline bool gmem_test_lazy_or_skip(const char *const *names, int n)
{
	struct lvm_probe pm = { .struct_size = sizeof(pm) }, pn = { .struct_size = sizeof(pn) };
	lvm_probe(LVM_BACKING_GMEM, LVM_MODE_MISSING, &pm);
	lvm_probe(LVM_BACKING_GMEM, LVM_MODE_MINOR, &pn);
	if (!pm.err && !pn.err)
		return true;
	for (int i = 0; i < n; i++)
		tap_skip(names[i], "probe gmem x %s: %s", pm.err ? "MISSING" : "MINOR",
			 pm.err ? pm.reason : pn.reason);
	return false;
}

#endif
