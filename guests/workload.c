/* SPDX-License-Identifier: MIT */
/*
 * workload: `iterations` pseudo-random read-then-write page touches spread
 * over the vCPUs (workload-algo.h), a barrier, then vCPU 0 hashes all data
 * memory and prints "RESULT <hex>".
 */
#include "rt.h"
#include "workload-algo.h"

void guest_main(uint64_t cpu);

void guest_main(uint64_t cpu)
{
	volatile struct guest_params *p = rt_params();
	uint64_t npages = rt_data_pages();
	wl_random(rt_data(), npages, p->seed, p->iterations, cpu, p->vcpus);
	rt_barrier(cpu);
	if (cpu == 0) {
		rt_touch_sys();
		rt_print_result(wl_hash_all(rt_data(), npages));
	}
	rt_exit();
}
