/* SPDX-License-Identifier: MIT */
/* The VMM's insides, shared by the files of src/vmm only (the contract is vmm.h). */
#ifndef LAZYVM_VMM_INTERNAL_H
#define LAZYVM_VMM_INTERNAL_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/timeline.h"
#include "vmm/vmm.h"

#define SERIAL_LINE_MAX 256

struct serial {
	pthread_mutex_t lock;
	int fd;				/* -1: discard */
	char line[SERIAL_LINE_MAX];	/* current, unfinished line */
	unsigned len;
	char result[64];		/* last "RESULT ..." line, no newline */
};

struct vcpu {
	struct vmm *vm;
	unsigned idx;
	int fd;
	struct kvm_run *run;
	size_t run_size;
	pthread_t thread;
	bool has_thread;
	bool done;		/* the guest wrote GUEST_EXIT_PORT: never run again */
	bool parked;
	bool poisoned;		/* SIGBUS from KVM: guest memory not served */
	uint64_t poisoned_addr;
};

struct vmm {
	int kvm_fd, vm_fd;
	struct lvm_mem *mem;
	uint64_t mem_size;
	unsigned nvcpus;
	bool irqchip;		/* in-kernel LAPIC/PIC/IOAPIC */
	bool kvm_prefaulted;	/* KVM_PRE_FAULT_MEMORY mapped all memory */
	struct kvm_cpuid2 *cpuid;	/* KVM_GET_SUPPORTED_CPUID, fetched once */
	char guest[32];
	uint64_t seed, iterations, fill_pages;
	struct vcpu vcpus[VMM_MAX_VCPUS];

	pthread_mutex_t lock;	/* everything below */
	pthread_cond_t cond;
	bool pause_req;
	bool stopping;		/* abort or a fatal exit: threads leave */
	unsigned live;		/* vCPU threads not yet returned */
	unsigned nparked;
	char error[256];

	/* --secret-free (userfault.c): the userfault bitmap and who serves
	 * the vCPUs' userfault exits. */
	int ufbitmap_fd;
	void *ufbitmap;
	size_t ufbitmap_len;
	int (*userfault)(void *ctx, unsigned vcpu, uint64_t gpa, uint64_t flags);
	void *userfault_ctx;
	_Atomic uint64_t userfault_exits;

	_Atomic uint64_t first_entry_ns;
	struct timeline *tl;	/* NULL: nobody measures */
	struct serial serial;
};

uint64_t vmm_now_ns(void);

/* vcpu.c */
int vcpu_create(struct vmm *vm, unsigned idx, char *err, size_t errlen);
void vcpu_destroy(struct vcpu *v);
void vcpu_kick(struct vcpu *v);
/* The vCPU's TSC frequency in kHz (KVM_GET_TSC_KHZ), 0 if unknown. */
uint64_t vcpu_tsc_khz(struct vcpu *v);
int vcpu_start_thread(struct vcpu *v);
int vmm_kick_signal(void);
int vcpu_install_kick_handler(void);

/* x86-boot.c */
int x86_vm_init(struct vmm *vm, char *err, size_t errlen);
/* KVM_GET_SUPPORTED_CPUID into vm->cpuid (system ioctl: needs no VM state). */
int x86_get_cpuid(struct vmm *vm, char *err, size_t errlen);
int x86_vcpu_init(struct vcpu *v, char *err, size_t errlen);
int x86_write_tables(struct vmm *vm);
int x86_vcpu_boot(struct vcpu *v);

/* userfault.c */
int vmm_userfault_setup(struct vmm *vm, char *err, size_t errlen);
int vmm_userfault_memslot(struct vmm *vm);	/* 0 or errno */
void vmm_userfault_destroy(struct vmm *vm);
int vcpu_userfault_exit(struct vcpu *v);

/* serial.c */
void serial_init(struct serial *s, int fd);
void serial_destroy(struct serial *s);
void serial_out(struct serial *s, const uint8_t *data, unsigned len);
/* Register reg (0..7) of the 8250. */
uint8_t serial_read(unsigned reg);

/* mmio.c: 0 handled, 1 the vCPU announced it is done, -1 a stray write. */
int vmm_handle_mmio(struct vcpu *v);

#endif
