/* SPDX-License-Identifier: MIT */
/* A short scheduler slice for latency-critical threads (see the header). */
#include <errno.h>
#include <sched.h>
#include <sys/resource.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util/thread-latency.h"

#define LATENCY_SLICE_NS 100000ull	/* the kernel's minimum custom slice */

/* uapi struct sched_attr (linux/sched/types.h clashes with <sched.h>). */
struct lvm_sched_attr {
	uint32_t size, sched_policy;
	uint64_t sched_flags;
	int32_t sched_nice;
	uint32_t sched_priority;
	uint64_t sched_runtime, sched_deadline, sched_period;
};

int thread_set_bulk(void)
{
	errno = 0;
	int old = getpriority(PRIO_PROCESS, (id_t)gettid());
	if (errno)
		old = 0;
	(void)setpriority(PRIO_PROCESS, (id_t)gettid(), old < 10 ? 10 : old);
	return old;
}

void thread_restore_bulk(int old_nice)
{
	/* Raising the weight back may need CAP_SYS_NICE (RLIMIT_NICE); try. */
	(void)setpriority(PRIO_PROCESS, (id_t)gettid(), old_nice);
}

void thread_set_latency_critical(void)
{
	struct lvm_sched_attr a = {
		.size = sizeof(a),
		.sched_policy = SCHED_OTHER,
		.sched_runtime = LATENCY_SLICE_NS,
	};
	(void)syscall(SYS_sched_setattr, 0, &a, 0);
}
