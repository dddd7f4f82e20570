/* SPDX-License-Identifier: MIT */
/* The guests' whole runtime: port output, the final barrier, exit. */
#ifndef LAZYVM_GUEST_RT_H
#define LAZYVM_GUEST_RT_H

#include <stdint.h>

#include "layout.h"

static inline void rt_mmio_write8(uint64_t addr, uint8_t v)
{
	__asm__ volatile("movb %0, (%1)" : : "q"(v), "r"(addr) : "memory");
}

static inline void rt_mmio_write32(uint64_t addr, uint32_t v)
{
	__asm__ volatile("movl %0, (%1)" : : "r"(v), "r"(addr) : "memory");
}

static inline void rt_puts(const char *s)
{
	while (*s)
		rt_mmio_write8(GUEST_SERIAL, (uint8_t)*s++);
}

static inline void rt_print_result(uint64_t h)
{
	char line[] = "RESULT 0000000000000000\n";
	for (int i = 0; i < 16; i++)
		line[7 + i] = "0123456789abcdef"[(h >> (60 - 4 * i)) & 15];
	rt_puts(line);
}

static inline volatile struct guest_params *rt_params(void)
{
	return (volatile struct guest_params *)GUEST_PARAMS;
}

/* Arrive at the final barrier; vCPU 0 waits for everyone. */
static inline void rt_barrier(uint64_t cpu)
{
	volatile struct guest_params *p = rt_params();
	__atomic_add_fetch(&p->barrier, 1, __ATOMIC_SEQ_CST);
	if (cpu)
		return;
	while (__atomic_load_n(&p->barrier, __ATOMIC_SEQ_CST) < p->vcpus)
		__asm__ volatile("pause");
}

/* Read one word of every page of the runtime area (page tables, code, stacks)
 * so a lazily restored guest has touched all of its memory by the end. */
static inline void rt_touch_sys(void)
{
	for (uint64_t a = 0; a < GUEST_SYS_SIZE; a += 4096) {
		uint64_t v;
		__asm__ volatile("movq (%1), %0" : "=r"(v) : "r"(a) : "memory");
	}
}

/* The VMM stops running a vCPU once it wrote GUEST_EXIT (ring 3: no hlt). */
static inline __attribute__((noreturn)) void rt_exit(void)
{
	for (;;) {
		rt_mmio_write8(GUEST_EXIT, 0);
		__asm__ volatile("pause");
	}
}

static inline volatile uint64_t *rt_data(void)
{
	return (volatile uint64_t *)GUEST_SYS_SIZE;
}

static inline uint64_t rt_data_pages(void)
{
	return (rt_params()->mem_size - GUEST_SYS_SIZE) / 4096;
}

#endif
