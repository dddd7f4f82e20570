/* SPDX-License-Identifier: MIT */
/*
 * Reading a file through a shared mapping raises SIGBUS where the file was
 * truncated under us.  Code that reads a snapshot's mapping (CRC checks,
 * copies, decompression) runs under a guard: a SIGBUS inside the guarded
 * range returns -EIO from sigbus_guard_run() instead of killing a page
 * server that serves other VMs.  A library never installs signal handlers
 * on its own: the program opts in with sigbus_guard_install() (fc-serve),
 * or calls sigbus_guard_catch() first thing in the SIGBUS handler it has
 * (the VMM's vCPU handler does).  Without either, fn just runs.
 */
#ifndef LAZYVM_UTIL_SIGBUS_GUARD_H
#define LAZYVM_UTIL_SIGBUS_GUARD_H

#include <signal.h>
#include <stddef.h>

/* Run fn(arg) with SIGBUS at [lo, lo+len) turned into -EIO; else fn's return. */
int sigbus_guard_run(const void *lo, size_t len, int (*fn)(void *arg), void *arg);
/* In a SIGBUS handler: leave through the guard if this fault is guarded
 * (does not return then); returns when it is not ours. */
void sigbus_guard_catch(const siginfo_t *si);
/* A program with its own SIGBUS handler that calls sigbus_guard_catch(). */
void sigbus_guard_enable(void);
/* Install a SIGBUS handler that only does the guard's part (SIG_DFL else). */
int sigbus_guard_install(void);

#endif
