/* SPDX-License-Identifier: MIT */
/* Minimal TAP (kselftest style) for lazyvm's test programs. Header-only. */
#ifndef LAZYVM_TAP_H
#define LAZYVM_TAP_H

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

static int tap_n, tap_failed;

/*
 * The one watchdog every test program runs under: a hang (a fault nobody
 * serves, a peer that never answers) fails the program with the phase it hung
 * in instead of blocking CI.  tap_plan() arms it with TAP_WATCHDOG_DEFAULT_S
 * unless the program chose its own budget with tap_watchdog() first.  The
 * budget is multiplied by $LAZYVM_WATCHDOG_SCALE (make check sets it for
 * sanitizer builds, check-gmem for QEMU TCG): slow machines get more time,
 * never a different verdict.  make check's per-program timeout (tests/run)
 * is the backstop behind this one.
 */
#define TAP_WATCHDOG_DEFAULT_S 300
#define TAP_WATCHDOG_MAX_PIDS 16

static const char *volatile tap_phase_now = "setup";
static volatile pid_t tap_watch_pids[TAP_WATCHDOG_MAX_PIDS];
static int tap_watchdog_armed;

/* What the program is doing now: the watchdog's last words. */
static inline void tap_phase(const char *what) { tap_phase_now = what; }

/* Kill pid (a child the program waits on) when the watchdog fires. */
static inline void tap_watch_pid(pid_t pid)
{
	for (int i = 0; i < TAP_WATCHDOG_MAX_PIDS; i++)
		if (tap_watch_pids[i] <= 0) {
			tap_watch_pids[i] = pid;
			return;
		}
}

/* The child is reaped: nothing to kill any more. */
static inline void tap_unwatch_pid(pid_t pid)
{
	for (int i = 0; i < TAP_WATCHDOG_MAX_PIDS; i++)
		if (tap_watch_pids[i] == pid)
			tap_watch_pids[i] = 0;
}

/* "not ok", not "Bail out!": prove goes on with the other programs. */
static void tap_watchdog_fired(int sig)
{
	(void)sig;
	for (int i = 0; i < TAP_WATCHDOG_MAX_PIDS; i++)
		if (tap_watch_pids[i] > 0)
			kill(tap_watch_pids[i], SIGKILL);
	char num[16], *p = num + sizeof(num);
	unsigned n = (unsigned)tap_n + 1;
	do
		*--p = (char)('0' + n % 10);
	while ((n /= 10));
	static const char pre[] = " - watchdog fired while: ";
	const char *ph = tap_phase_now;
	if (write(1, "not ok ", 7) < 0 || write(1, p, (size_t)(num + sizeof(num) - p)) < 0 ||
	    write(1, pre, sizeof(pre) - 1) < 0 || write(1, ph, strlen(ph)) < 0 ||
	    write(1, "\n", 1) < 0)
		_exit(1);
	_exit(1);
}

/* $LAZYVM_WATCHDOG_SCALE: how much slower this build runs (sanitizers), >= 1. */
static inline unsigned long tap_scale(void)
{
	const char *scale = getenv("LAZYVM_WATCHDOG_SCALE");
	unsigned long k = scale ? strtoul(scale, NULL, 10) : 1;
	return k ? k : 1;
}

/* Arm the watchdog: the program fails if it runs longer than seconds (scaled). */
static inline void tap_watchdog(unsigned seconds)
{
	struct sigaction sa = { .sa_handler = tap_watchdog_fired };
	sigaction(SIGALRM, &sa, NULL);
	alarm(seconds * tap_scale());
	tap_watchdog_armed = 1;
}

static inline void tap_plan(int n)
{
	if (!tap_watchdog_armed)
		tap_watchdog(TAP_WATCHDOG_DEFAULT_S);
	printf("1..%d\n", n);
	fflush(stdout);
}

static inline void tap_diag(const char *fmt, ...)
{
	va_list ap;
	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

/* ok/not ok with a printf-style name; returns cond. */
static inline int tap_ok(int cond, const char *fmt, ...)
{
	va_list ap;
	printf("%sok %d - ", cond ? "" : "not ", ++tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	if (!cond)
		tap_failed++;
	return cond;
}

static inline void tap_skip(const char *name, const char *fmt, ...)
{
	va_list ap;
	printf("ok %d - %s # SKIP ", ++tap_n, name);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

static inline int tap_done(void) { return tap_failed ? 1 : 0; }

/* Abort the whole test program (setup failure): Bail out! per TAP. */
static inline void tap_bail(const char *fmt, ...)
{
	va_list ap;
	printf("Bail out! ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	exit(1);
}

#endif
