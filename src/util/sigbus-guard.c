/* SPDX-License-Identifier: MIT */
/* SIGBUS from a truncated file mapping as an error, not a crash (see .h). */
#include <errno.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "util/sigbus-guard.h"

struct guard {
	sigjmp_buf jb;
	uintptr_t lo, hi;
	volatile sig_atomic_t armed;
};

static __thread struct guard guard;
static _Atomic bool guard_enabled;

void sigbus_guard_catch(const siginfo_t *si)
{
	uintptr_t a = (uintptr_t)si->si_addr;
	if (guard.armed && a >= guard.lo && a < guard.hi) {
		guard.armed = 0;
		siglongjmp(guard.jb, 1);
	}
}

void sigbus_guard_enable(void)
{
	atomic_store(&guard_enabled, true);
}

static void sigbus_guard_handler(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	sigbus_guard_catch(si);
	signal(sig, SIG_DFL);	/* not ours: the access repeats and kills us */
}

int sigbus_guard_install(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = sigbus_guard_handler;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGBUS, &sa, NULL))
		return -errno;
	sigbus_guard_enable();
	return 0;
}

int sigbus_guard_run(const void *lo, size_t len, int (*fn)(void *arg), void *arg)
{
	if (!atomic_load_explicit(&guard_enabled, memory_order_relaxed) || guard.armed)
		return fn(arg);	/* not opted in, or an outer guard covers us */
	guard.lo = (uintptr_t)lo;
	guard.hi = guard.lo + len;
	/* No mask saved (that is a syscall per call): the handler left with
	 * SIGBUS blocked, so unblock it on the error path only. */
	if (sigsetjmp(guard.jb, 0)) {
		sigset_t s;
		sigemptyset(&s);
		sigaddset(&s, SIGBUS);
		pthread_sigmask(SIG_UNBLOCK, &s, NULL);
		return -EIO;
	}
	guard.armed = 1;
	int ret = fn(arg);
	guard.armed = 0;
	return ret;
}
