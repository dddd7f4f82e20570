/* SPDX-License-Identifier: MIT */
/*
 * boot-like: what a booting guest does to memory — a dense sequential
 * prefix (kernel image, early allocations) then sparse random touches — and
 * nothing else: the working set does not grow with the guest size, which is
 * what restore benchmarks need.  vCPU 0 prints a RESULT over what was touched.
 */
#include "rt.h"
#include "workload-algo.h"

void guest_main(uint64_t cpu);

void guest_main(uint64_t cpu)
{
	volatile struct guest_params *p = rt_params();
	uint64_t npages = rt_data_pages();
	uint64_t prefix = p->prefix / 4096 < npages ? p->prefix / 4096 : npages;
	wl_prefix(rt_data(), prefix, p->seed, cpu, p->vcpus);
	wl_random(rt_data(), npages, p->seed, p->iterations, cpu, p->vcpus);
	rt_barrier(cpu);
	if (cpu == 0)
		rt_print_result(wl_hash_bootlike(rt_data(), npages, prefix, p->seed,
						 p->iterations));
	rt_exit();
}
