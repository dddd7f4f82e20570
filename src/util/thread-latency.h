/* SPDX-License-Identifier: MIT */
/*
 * Ask the scheduler to run the calling thread soon after it wakes.  The
 * threads on a remote fault's path (the engine's handlers, migration's
 * request channel) sleep most of the time and then have microseconds of work
 * while a vCPU waits; the threads they share CPUs with (busy vCPUs, the bulk
 * push) run long.  Under EEVDF (Linux 6.6+) a woken thread waits for the
 * running one's slice (3 ms by default) unless its own slice is shorter
 * (6.12+: "sched/eevdf: Allow shorter slices to wakeup-preempt"), which any
 * thread may request for itself through sched_setattr's sched_runtime.
 * Kernels without it ignore or refuse the request; either is fine.
 */
#ifndef LAZYVM_THREAD_LATENCY_H
#define LAZYVM_THREAD_LATENCY_H

void thread_set_latency_critical(void);
/*
 * The calling thread does bulk work (the background push and its installs)
 * that must yield to the latency-critical ones: lower its weight (nice +10;
 * always permitted).  Returns the old nice value for thread_restore_bulk().
 */
int thread_set_bulk(void);
void thread_restore_bulk(int old_nice);

#endif
