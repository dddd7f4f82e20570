/* SPDX-License-Identifier: MIT */
/*
 * vCPUs: one thread each, a plain KVM_RUN loop switching on exit_reason.
 *
 * Pausing (vmm_pause) sets run->immediate_exit and sends the thread a signal
 * with a handler that does nothing: a thread inside KVM_RUN leaves with
 * EINTR, one about to enter returns at once because of immediate_exit.  A
 * thread parks only after a KVM_RUN that returned EINTR, i.e. after KVM
 * completed any pending MMIO, so the state saved afterwards is exact.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "util/sigbus-guard.h"
#include "vmm/vmm-internal.h"

static void vcpu_on_kick(int sig)
{
	(void)sig;	/* only there to interrupt KVM_RUN */
}

/* The vCPU this thread runs (NULL on other threads). */
static __thread struct vcpu *vcpu_self;

/*
 * KVM raises SIGBUS (BUS_MCEERR_AR) on the vCPU thread when guest memory it
 * needs is poisoned — what the fault engine does to a page it cannot serve.
 * On a vCPU thread that is a guest memory error, not a VMM crash: note it,
 * KVM_RUN returns EINTR and the run loop stops the VM with a message.
 * Anywhere else SIGBUS keeps its default, fatal meaning.
 */
static void vcpu_on_sigbus(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	sigbus_guard_catch(si);	/* a snapshot file truncated under a reader */
	struct vcpu *v = vcpu_self;
	if (v && (si->si_code == BUS_MCEERR_AR || si->si_code == BUS_MCEERR_AO)) {
		v->poisoned_addr = (uintptr_t)si->si_addr;
		__atomic_store_n(&v->poisoned, true, __ATOMIC_SEQ_CST);
		return;
	}
	signal(sig, SIG_DFL);	/* the faulting access repeats and kills us */
}

/* A real-time signal nobody else in the process uses. */
int vmm_kick_signal(void)
{
	return SIGRTMIN + 3;
}

int vcpu_create(struct vmm *vm, unsigned idx, char *err, size_t errlen)
{
	struct vcpu *v = &vm->vcpus[idx];
	v->vm = vm;
	v->idx = idx;
	v->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, idx);
	if (v->fd < 0) {
		snprintf(err, errlen, "KVM_CREATE_VCPU %u: %s", idx, strerror(errno));
		return -errno;
	}
	int sz = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (sz < (int)sizeof(struct kvm_run)) {
		snprintf(err, errlen, "KVM_GET_VCPU_MMAP_SIZE: %s", strerror(errno));
		return -EINVAL;
	}
	v->run_size = (size_t)sz;
	v->run = mmap(NULL, v->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
	if (v->run == MAP_FAILED) {
		v->run = NULL;
		snprintf(err, errlen, "mmap kvm_run: %s", strerror(errno));
		return -errno;
	}
	int ret = x86_vcpu_init(v, err, errlen);
	static const char *const step[VMM_MAX_VCPUS] = {
		"vcpu0_create", "vcpu1_create", "vcpu2_create", "vcpu3_create",
		"vcpu4_create", "vcpu5_create", "vcpu6_create", "vcpu7_create",
		"vcpu8_create", "vcpu9_create", "vcpu10_create", "vcpu11_create",
		"vcpu12_create", "vcpu13_create", "vcpu14_create", "vcpu15_create",
	};
	timeline_mark(vm->tl, step[idx]);
	return ret;
}

void vcpu_destroy(struct vcpu *v)
{
	if (v->run)
		munmap(v->run, v->run_size);
	if (v->fd > 0)
		close(v->fd);
	v->run = NULL;
	v->fd = -1;
}

uint64_t vcpu_tsc_khz(struct vcpu *v)
{
	int khz = ioctl(v->fd, KVM_GET_TSC_KHZ, 0);
	return khz > 0 ? (uint64_t)khz : 0;
}

/* Called with vm->lock held: has_thread changes under it (vmm_start, vmm_join). */
void vcpu_kick(struct vcpu *v)
{
	if (!v->run)
		return;
	__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	if (v->has_thread)
		pthread_kill(v->thread, vmm_kick_signal());
}

/* After an EINTR: park while a pause is requested.  false: leave the loop. */
static bool vcpu_park(struct vcpu *v)
{
	struct vmm *vm = v->vm;
	pthread_mutex_lock(&vm->lock);
	if (vm->pause_req && !vm->stopping) {
		v->parked = true;
		vm->nparked++;
		pthread_cond_broadcast(&vm->cond);
		while (vm->pause_req && !vm->stopping)
			pthread_cond_wait(&vm->cond, &vm->lock);
		v->parked = false;
		vm->nparked--;
	}
	bool go_on = !vm->stopping;
	pthread_mutex_unlock(&vm->lock);
	return go_on;
}

static void vcpu_fail(struct vcpu *v, const char *what)
{
	char msg[200];
	struct kvm_regs regs;
	unsigned long long rip = ioctl(v->fd, KVM_GET_REGS, &regs) ? 0 : regs.rip;
	snprintf(msg, sizeof(msg), "vCPU %u: %s (rip 0x%llx)", v->idx, what, rip);
	vmm_abort(v->vm, msg);
}

/* The guest said it is done: let KVM complete the write, then stop for good. */
static void vcpu_finish(struct vcpu *v)
{
	__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	while (ioctl(v->fd, KVM_RUN, 0) == 0)
		;	/* a pending exit we do not care about any more */
	v->done = true;
}

/* One exit handled: 1 go on, 0 leave the loop. */
static int vcpu_handle_exit(struct vcpu *v)
{
	char what[96];
	switch (v->run->exit_reason) {
	case KVM_EXIT_MMIO:
		switch (vmm_handle_mmio(v)) {
		case 0:
			return 1;
		case 1:
			vcpu_finish(v);
			return 0;
		}
		snprintf(what, sizeof(what), "write to unbacked guest address 0x%llx",
			 (unsigned long long)v->run->mmio.phys_addr);
		vcpu_fail(v, what);
		return 0;
	case KVM_EXIT_INTR:
		return vcpu_park(v);
	case KVM_EXIT_HLT:
		vcpu_fail(v, "halted without finishing");
		return 0;
	case KVM_EXIT_SHUTDOWN:
		vcpu_fail(v, "triple fault (KVM_EXIT_SHUTDOWN)");
		return 0;
	case KVM_EXIT_FAIL_ENTRY:
		snprintf(what, sizeof(what), "entry failed, reason 0x%llx",
			 (unsigned long long)v->run->fail_entry.hardware_entry_failure_reason);
		vcpu_fail(v, what);
		return 0;
	case KVM_EXIT_INTERNAL_ERROR:
		snprintf(what, sizeof(what), "KVM internal error, suberror %u",
			 v->run->internal.suberror);
		vcpu_fail(v, what);
		return 0;
	default:
		snprintf(what, sizeof(what), "unhandled exit reason %u", v->run->exit_reason);
		vcpu_fail(v, what);
		return 0;
	}
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;
	struct vmm *vm = v->vm;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, vmm_kick_signal());
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);

	vcpu_self = v;
	uint64_t zero = 0;
	if (atomic_compare_exchange_strong(&vm->first_entry_ns, &zero, vmm_now_ns()))
		timeline_mark(vm->tl, "first_kvm_run");
	for (;;) {
		int ret = ioctl(v->fd, KVM_RUN, 0);
		if (__atomic_load_n(&v->poisoned, __ATOMIC_SEQ_CST)) {
			char what[96];
			snprintf(what, sizeof(what), "guest memory at host address 0x%llx "
				 "could not be served (SIGBUS)", (unsigned long long)v->poisoned_addr);
			vcpu_fail(v, what);
			break;
		}
		if (ret < 0 && (errno == EINTR || errno == EAGAIN)) {
			if (!vcpu_park(v))
				break;
			continue;
		}
		int uf = ret < 0 && errno == EFAULT ? vcpu_userfault_exit(v) : 0;
		if (uf > 0)
			continue;	/* served: the bit is clear now */
		if (uf < 0)
			break;
		if (ret < 0) {
			char what[96];
			snprintf(what, sizeof(what), "KVM_RUN: %s", strerror(errno));
			vcpu_fail(v, what);
			break;
		}
		if (!vcpu_handle_exit(v))
			break;
	}
	pthread_mutex_lock(&vm->lock);
	vm->live--;
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	return NULL;
}

int vcpu_start_thread(struct vcpu *v)
{
	/* Start with the kick signal blocked so it only lands in the loop. */
	sigset_t set, old;
	sigemptyset(&set);
	sigaddset(&set, vmm_kick_signal());
	pthread_sigmask(SIG_BLOCK, &set, &old);
	int ret = -pthread_create(&v->thread, NULL, vcpu_thread, v);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!ret)
		v->has_thread = true;
	return ret;
}

/* Install the no-op kick handler (no SA_RESTART: KVM_RUN must return EINTR)
 * and the SIGBUS handler. */
int vcpu_install_kick_handler(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = vcpu_on_kick;
	sigemptyset(&sa.sa_mask);
	if (sigaction(vmm_kick_signal(), &sa, NULL))
		return -errno;
	sa.sa_handler = NULL;
	sa.sa_sigaction = vcpu_on_sigbus;
	sa.sa_flags = SA_SIGINFO;
	if (sigaction(SIGBUS, &sa, NULL))
		return -errno;
	sigbus_guard_enable();
	return 0;
}
