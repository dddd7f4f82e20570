/* SPDX-License-Identifier: MIT */
/*
 * dirty: the guest of the side-by-side runs against QEMU's post-copy
 * (dirty-algo.h).  vCPU 0 fills the dirty set (params->fill pages; 0: all
 * of data memory), counts itself filled, then runs params->iterations steps
 * paced at one per millisecond on the TSC (params->tsc_khz from the VMM;
 * params->rate pages per second), and prints
 *   DIRTY steps=… writes=… verified=… errors=… maxgap_ms=…
 *   RESULT <hex>
 * maxgap_ms is the longest gap between two steps on the guest's own clock:
 * a vCPU blocked on a post-copy fault shows there as the guest sees it.
 * Other vCPUs only arrive at the barrier.
 */
#include "dirty-algo.h"
#include "rt.h"

void guest_main(uint64_t cpu);

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return (uint64_t)hi << 32 | lo;
}

static void put_u64(uint64_t v)
{
	char buf[24];
	int n = 0;
	do
		buf[n++] = (char)('0' + v % 10);
	while ((v /= 10));
	while (n)
		rt_mmio_write8(GUEST_SERIAL, (uint8_t)buf[--n]);
}

static void report(const struct dirty *d, uint64_t steps, uint64_t maxgap, uint64_t khz)
{
	rt_puts("DIRTY steps=");
	put_u64(steps);
	rt_puts(" writes=");
	put_u64(d->written);
	rt_puts(" verified=");
	put_u64(d->verified);
	rt_puts(" errors=");
	put_u64(d->errors);
	rt_puts(" maxgap_ms=");
	if (khz) {
		uint64_t tenths = maxgap * 10 / khz;
		put_u64(tenths / 10);
		rt_puts(".");
		put_u64(tenths % 10);
	} else {
		rt_puts("?");
	}
	rt_puts("\n");
}

/* Steps paced one per millisecond (none without a TSC frequency); a step
 * that falls behind is not skipped, so the memory stays deterministic. */
static uint64_t run_steps(struct dirty *d, uint64_t steps, uint64_t khz)
{
	uint64_t start = rdtsc(), prev = start, maxgap = 0;
	for (uint64_t s = 0; s < steps; s++) {
		dirty_step(d, s);
		uint64_t t = rdtsc();
		if (t - prev > maxgap)
			maxgap = t - prev;
		uint64_t due = start + (s + 1) * khz;
		while (khz && (t = rdtsc()) < due) {
			uint64_t us = (due - t) * 1000 / khz;
			if (us > 50)	/* sleep in the host, spin the last bit */
				rt_mmio_write32(GUEST_IDLE, (uint32_t)(us - 20));
			else
				__asm__ volatile("pause");
		}
		prev = t;
	}
	return maxgap;
}

void guest_main(uint64_t cpu)
{
	volatile struct guest_params *p = rt_params();
	if (cpu) {
		__atomic_add_fetch(&p->filled, 1, __ATOMIC_SEQ_CST);
		rt_barrier(cpu);
		rt_exit();
	}
	struct dirty d;
	uint64_t data_pages = rt_data_pages();
	dirty_layout(&d, rt_data(), data_pages, p->fill, p->rate, p->seed);
	dirty_fill(&d);
	__atomic_add_fetch(&p->filled, 1, __ATOMIC_SEQ_CST);
	uint64_t maxgap = run_steps(&d, p->iterations, p->tsc_khz);
	rt_barrier(cpu);
	rt_touch_sys();
	report(&d, p->iterations, maxgap, p->tsc_khz);
	rt_print_result(dirty_result(&d, rt_data(), data_pages));
	rt_exit();
}
