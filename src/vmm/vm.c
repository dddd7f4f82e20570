/* SPDX-License-Identifier: MIT */
/*
 * The VM: /dev/kvm, one memslot over all guest memory (any lvm_mem backing),
 * the vCPUs, and the run state shared by the vCPU threads (pause, stop,
 * wait).  For guest_memfd the memslot is a plain one whose userspace address
 * is the gmem mmap: a guest_memfd memslot would be resolved inside KVM and
 * bypass userfaultfd (docs/guest-memfd.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "layout.h"
#include "util/clock.h"
#include "vmm/vmm-internal.h"

uint64_t vmm_now_ns(void)
{
	return mono_now_ns();
}

static int vmm_check_opts(const struct vmm_opts *o, char *err, size_t errlen)
{
	unsigned n = o->vcpus ? o->vcpus : 2;
	if (n > VMM_MAX_VCPUS) {
		snprintf(err, errlen, "%u vCPUs: at most %d", n, VMM_MAX_VCPUS);
		return -EINVAL;
	}
	if (o->secret_free && o->backing != LVM_BACKING_GMEM) {
		snprintf(err, errlen, "a secret-free VM's memory is a guest_memfd (--backing gmem)");
		return -EINVAL;
	}
	return vmm_check_mem_size(o->mem_size, err, errlen);
}

int vmm_check_mem_size(uint64_t mem_size, char *err, size_t errlen)
{
	if (mem_size % (2u << 20) || mem_size < 2 * GUEST_SYS_SIZE ||
	    mem_size > (GUEST_MAX_GIB << 30)) {
		snprintf(err, errlen, "memory size %llu: want a multiple of 2 MiB, 4 MiB .. %llu GiB",
			 (unsigned long long)mem_size, (unsigned long long)GUEST_MAX_GIB);
		return -EINVAL;
	}
	return 0;
}

static int vmm_open_kvm(struct vmm *vm, char *err, size_t errlen)
{
	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0) {
		snprintf(err, errlen, "/dev/kvm: %s", strerror(errno));
		return -errno;
	}
	if (ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) {
		snprintf(err, errlen, "/dev/kvm: unexpected KVM API version");
		return -ENOTSUP;
	}
	timeline_mark(vm->tl, "kvm_open");
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0) {
		snprintf(err, errlen, "KVM_CREATE_VM: %s", strerror(errno));
		return -errno;
	}
	timeline_mark(vm->tl, "kvm_create_vm");
	return 0;
}

struct memslot_job {
	struct vmm *vm;
	struct timeline *tl;
	int vm_fd;
	struct kvm_userspace_memory_region slot;
	int err;
};

static void *vmm_memslot_thread(void *arg)
{
	struct memslot_job *j = arg;
	if (j->vm->ufbitmap)
		j->err = vmm_userfault_memslot(j->vm);
	else
		j->err = ioctl(j->vm_fd, KVM_SET_USER_MEMORY_REGION, &j->slot) ? errno : 0;
	timeline_mark(j->tl, "kvm_set_memslot");
	return NULL;
}

/*
 * The memory and its memslot, then the irqchip, then the vCPUs — in that
 * order because of the kernel's SRCU use.  Installing a memslot waits for an
 * expedited SRCU grace period on kvm->srcu.  KVM_CREATE_IRQCHIP registers
 * the PIC and IOAPIC on the I/O bus, which (since Linux 6.18, commit
 * 7d9a0273c459) frees the old bus with call_srcu(): that starts a *normal*
 * grace period, and an expedited one requested after it has to wait for it
 * — one to two ticks (4-8 ms at HZ=250).  Memslot first, and its grace
 * period is the expedited one alone (~0.3 ms; docs/restore-latency.md).
 * The irqchip must exist before any vCPU.  The memslot's ioctl runs on its
 * own thread while this one fetches the host's CPUID (~0.3 ms): besides the
 * grace period it allocates the slot's reverse maps (shadow paging: ~10 bytes
 * per 4 KiB page, ~2 ms at 4 GiB).
 */
static int vmm_add_memory(struct vmm *vm, enum lvm_backing b, bool secret_free, char *err,
			  size_t errlen)
{
	struct lvm_mem_opts mo = { .struct_size = sizeof(mo), .backing = b, .size = vm->mem_size, .kvm_vm_fd = vm->vm_fd };
	int ret = vm->mem ? 0 : lvm_mem_create(&mo, &vm->mem);
	if (ret) {
		snprintf(err, errlen, "%s guest memory (%llu MiB): %s", lvm_backing_name(b),
			 (unsigned long long)(vm->mem_size >> 20), strerror(-ret));
		return ret;
	}
	timeline_mark(vm->tl, "memory_create");
	if (secret_free && (ret = vmm_userfault_setup(vm, err, errlen)))
		return ret;
	struct memslot_job j = {
		.vm = vm,
		.tl = vm->tl,
		.vm_fd = vm->vm_fd,
		.slot = { .slot = 0, .guest_phys_addr = 0, .memory_size = vm->mem_size,
			  .userspace_addr = (uint64_t)(uintptr_t)lvm_mem_addr(vm->mem) },
	};
	pthread_t t;
	bool threaded = pthread_create(&t, NULL, vmm_memslot_thread, &j) == 0;
	if (!threaded)
		vmm_memslot_thread(&j);
	ret = x86_get_cpuid(vm, err, errlen);	/* meanwhile */
	timeline_mark(vm->tl, "kvm_get_cpuid");
	if (threaded)
		pthread_join(t, NULL);
	if (!ret && j.err) {
		snprintf(err, errlen, "KVM_SET_USER_MEMORY_REGION: %s", strerror(j.err));
		ret = -j.err;
	}
	if (ret)
		return ret;
	ret = x86_vm_init(vm, err, errlen);
	timeline_mark(vm->tl, "kvm_create_irqchip");
	for (unsigned i = 0; !ret && i < vm->nvcpus; i++)
		ret = vcpu_create(vm, i, err, errlen);
	return ret;
}

int vmm_create(const struct vmm_opts *o, struct vmm **out, char *err, size_t errlen)
{
	char dummy[8];
	if (!err)
		err = dummy, errlen = sizeof(dummy);
	int ret = vmm_check_opts(o, err, errlen);
	struct vmm *vm = ret ? NULL : calloc(1, sizeof(*vm));
	if (!vm) {
		lvm_mem_destroy(o->mem);
		return ret ? ret : -ENOMEM;
	}
	vm->kvm_fd = vm->vm_fd = vm->ufbitmap_fd = -1;
	for (unsigned i = 0; i < VMM_MAX_VCPUS; i++)
		vm->vcpus[i].fd = -1;
	vm->mem_size = o->mem_size;
	vm->nvcpus = o->vcpus ? o->vcpus : 2;
	vm->seed = o->seed;
	vm->tl = o->timeline;
	vm->mem = o->mem;	/* ours from here on, even if creation fails */
	vm->iterations = o->iterations;
	vm->fill_pages = o->fill_pages;
	snprintf(vm->guest, sizeof(vm->guest), "%s", o->guest ? o->guest : "");
	pthread_mutex_init(&vm->lock, NULL);
	serial_init(&vm->serial, o->serial_fd);

	ret = mono_cond_init(&vm->cond);
	if (ret) {
		snprintf(err, errlen, "pthread_cond_init: %s", strerror(-ret));
	} else {
		ret = vcpu_install_kick_handler();
		if (ret)
			snprintf(err, errlen, "sigaction: %s", strerror(-ret));
	}
	if (!ret)
		ret = vmm_open_kvm(vm, err, errlen);
	if (!ret)
		ret = vmm_add_memory(vm, o->backing, o->secret_free, err, errlen);
	if (ret) {
		vmm_destroy(vm);
		return ret;
	}
	*out = vm;
	return 0;
}

/* has_thread is read by vcpu_kick under vm->lock (vmm_abort may come from
 * another thread, a page source that died, at any time): take the thread
 * out of it under the lock before joining, so nobody signals a thread id
 * that pthread_join has released.  The join itself is outside the lock: a
 * vCPU thread takes the lock on its way out. */
static void vmm_join(struct vmm *vm)
{
	for (unsigned i = 0; i < vm->nvcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];
		pthread_mutex_lock(&vm->lock);
		bool joinable = v->has_thread;
		pthread_t t = v->thread;
		v->has_thread = false;
		pthread_mutex_unlock(&vm->lock);
		if (joinable)
			pthread_join(t, NULL);
	}
}

void vmm_destroy(struct vmm *vm)
{
	if (!vm)
		return;
	vmm_abort(vm, "VM destroyed");
	vmm_join(vm);
	for (unsigned i = 0; i < vm->nvcpus; i++)
		vcpu_destroy(&vm->vcpus[i]);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	/* After the VM: the memslot no longer points at the memory. */
	lvm_mem_destroy(vm->mem);
	vmm_userfault_destroy(vm);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	free(vm->cpuid);
	serial_destroy(&vm->serial);
	pthread_cond_destroy(&vm->cond);
	pthread_mutex_destroy(&vm->lock);
	free(vm);
}

struct lvm_mem *vmm_mem(struct vmm *vm) { return vm->mem; }
int vmm_vm_fd(const struct vmm *vm) { return vm->vm_fd; }
unsigned vmm_vcpus(const struct vmm *vm) { return vm->nvcpus; }
uint64_t vmm_first_entry_ns(const struct vmm *vm) { return atomic_load(&vm->first_entry_ns); }
const char *vmm_result(const struct vmm *vm) { return vm->serial.result; }

int vmm_start(struct vmm *vm)
{
	pthread_mutex_lock(&vm->lock);
	int ret = vm->stopping ? -EIO : 0;
	for (unsigned i = 0; !ret && i < vm->nvcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];
		if (v->has_thread || v->done)	/* done: read only once its thread is joined */
			continue;
		ret = vcpu_start_thread(v);
		if (!ret)
			vm->live++;
	}
	pthread_mutex_unlock(&vm->lock);
	return ret;
}

int vmm_pause(struct vmm *vm)
{
	pthread_mutex_lock(&vm->lock);
	vm->pause_req = true;
	for (unsigned i = 0; i < vm->nvcpus; i++)
		vcpu_kick(&vm->vcpus[i]);
	while (vm->nparked < vm->live && !vm->stopping)
		pthread_cond_wait(&vm->cond, &vm->lock);
	/* A stopping VM: wait for its threads to leave, then it is quiescent too. */
	while (vm->stopping && vm->live)
		pthread_cond_wait(&vm->cond, &vm->lock);
	pthread_mutex_unlock(&vm->lock);
	return 0;
}

int vmm_resume(struct vmm *vm)
{
	pthread_mutex_lock(&vm->lock);
	for (unsigned i = 0; i < vm->nvcpus; i++)
		if (vm->vcpus[i].run)
			__atomic_store_n(&vm->vcpus[i].run->immediate_exit, 0, __ATOMIC_SEQ_CST);
	vm->pause_req = false;
	pthread_cond_broadcast(&vm->cond);
	int ret = vm->stopping ? -EIO : 0;
	pthread_mutex_unlock(&vm->lock);
	return ret;
}

void vmm_abort(struct vmm *vm, const char *msg)
{
	pthread_mutex_lock(&vm->lock);
	if (!vm->stopping) {
		vm->stopping = true;
		snprintf(vm->error, sizeof(vm->error), "%s", msg);
	}
	for (unsigned i = 0; i < vm->nvcpus; i++)
		vcpu_kick(&vm->vcpus[i]);
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
}

int vmm_wait_timeout(struct vmm *vm, int timeout_ms, char *err, size_t errlen)
{
	struct timespec until = mono_deadline(timeout_ms < 0 ? 0 : (uint64_t)timeout_ms);
	pthread_mutex_lock(&vm->lock);
	while (vm->live) {
		if (timeout_ms < 0) {
			pthread_cond_wait(&vm->cond, &vm->lock);
		} else if (pthread_cond_timedwait(&vm->cond, &vm->lock, &until) == ETIMEDOUT &&
			   vm->live) {
			pthread_mutex_unlock(&vm->lock);
			return -ETIMEDOUT;
		}
	}
	bool failed = vm->stopping;
	if (failed && err)
		snprintf(err, errlen, "%s", vm->error);
	pthread_mutex_unlock(&vm->lock);
	vmm_join(vm);
	return failed ? -EIO : 0;
}

int vmm_wait(struct vmm *vm, char *err, size_t errlen)
{
	return vmm_wait_timeout(vm, -1, err, errlen);
}
