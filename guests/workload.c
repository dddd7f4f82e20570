/* SPDX-License-Identifier: MIT */
/*
 * workload: the fill phase (params->fill data pages written whole, then the
 * vCPU counts itself in params->filled, which the VMM may wait for), then
 * `iterations` pseudo-random read-then-write page touches spread over the
 * vCPUs (workload-algo.h), a barrier, then vCPU 0 hashes all data memory and
 * prints "RESULT <hex>".
 */
#include "rt.h"
#include "workload-algo.h"

void guest_main(uint64_t cpu);

void guest_main(uint64_t cpu)
{
	volatile struct guest_params *p = rt_params();
	uint64_t npages = rt_data_pages();
	wl_fill(rt_data(), p->fill < npages ? p->fill : npages, p->seed, cpu, p->vcpus);
	__atomic_add_fetch(&p->filled, 1, __ATOMIC_SEQ_CST);
	wl_random(rt_data(), npages, p->seed, p->iterations, cpu, p->vcpus);
	rt_barrier(cpu);
	if (cpu == 0) {
		rt_touch_sys();
		rt_print_result(wl_hash_all(rt_data(), npages));
	}
	rt_exit();
}
