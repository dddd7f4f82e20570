/* SPDX-License-Identifier: MIT */
/*
 * Never a silent zero page: when the source fails for one page, the thread
 * touching it gets SIGBUS (the engine poisons the page), the error names the
 * page, and every other page is served correctly.  Each case runs in a
 * forked child so a SIGBUS kills only the child.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>

#include "lazyvm.h"
#include "tap.h"
#include "testlib.h"

#define REGION (16ull << 20)
#define BAD_PAGE 1234ull

/* A source that serves the pattern but fails with EIO for BAD_PAGE. */
static int failing_get(void *ctx, uint64_t off, size_t len, void *scratch, const void **data)
{
	(void)ctx;
	uint64_t bad = BAD_PAGE * 4096;
	if (off <= bad && bad < off + len)
		return -EIO;
	pattern_fill(scratch, off, len);
	*data = scratch;
	return 0;
}

static struct lvm_engine *serve(struct lvm_mem **mem, enum lvm_backing b, enum lvm_mode m)
{
	static const struct lvm_source_ops ops = { .struct_size = sizeof(ops), .get = failing_get };
	struct lvm_source *src;
	struct lvm_engine *e;
	struct lvm_mem_opts mo = { .struct_size = sizeof(mo), .backing = b, .size = REGION, .kvm_vm_fd = -1 };
	struct lvm_engine_opts eo;
	lvm_engine_opts_init(&eo);
	eo.threads = 1;
	if (lvm_mem_create(&mo, mem) || lvm_source_create(&ops, NULL, REGION, &src) ||
	    lvm_engine_create(&eo, &e) || lvm_engine_add_mem(e, *mem, m, src, 0) < 0 ||
	    lvm_engine_start(e))
		_exit(100);
	return e;
}

static sigjmp_buf jb;
static void *volatile bus_addr;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	(void)sig, (void)uc;
	bus_addr = si->si_addr;
	siglongjmp(jb, 1);
}

/* Child: touch the bad page with no handler: must die of SIGBUS. */
static void child_touch_bad(enum lvm_backing b, enum lvm_mode m)
{
	struct lvm_mem *mem;
	serve(&mem, b, m);
	signal(SIGBUS, SIG_DFL);	/* sanitizers install their own handler */
	volatile uint8_t *p = (uint8_t *)lvm_mem_addr(mem) + BAD_PAGE * 4096;
	(void)*p;
	_exit(0);	/* reading anything at all is the failure */
}

/* Child: catch the SIGBUS, check its address, then check every other page. */
static void child_catch_and_verify(enum lvm_backing b, enum lvm_mode m)
{
	struct lvm_mem *mem;
	struct lvm_engine *e = serve(&mem, b, m);
	uint8_t *base = lvm_mem_addr(mem);
	struct sigaction sa = { .sa_sigaction = on_sigbus, .sa_flags = SA_SIGINFO };
	sigaction(SIGBUS, &sa, NULL);
	if (!sigsetjmp(jb, 1)) {
		(void)*(volatile uint8_t *)(base + BAD_PAGE * 4096 + 100);
		_exit(1);	/* no SIGBUS */
	}
	if ((uint8_t *)bus_addr < base + BAD_PAGE * 4096 ||
	    (uint8_t *)bus_addr >= base + (BAD_PAGE + 1) * 4096)
		_exit(2);	/* SIGBUS somewhere else */
	for (uint64_t off = 0; off < REGION; off += 4096)
		if (off != BAD_PAGE * 4096 && pattern_check(base + off, off, 4096) >= 0)
			_exit(3);
	if (!strstr(lvm_engine_error(e), "0x4d2000"))	/* source offset of page 1234 */
		_exit(4);
	_exit(0);
}

static int run_child(void (*fn)(enum lvm_backing, enum lvm_mode), enum lvm_backing b,
		     enum lvm_mode m)
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0)
		fn(b, m);
	int status = 0;
	waitpid(pid, &status, 0);
	return status;
}

static void sigbus_kills(enum lvm_backing b, enum lvm_mode m, const char *name)
{
	int st = run_child(child_touch_bad, b, m);
	tap_ok(WIFSIGNALED(st) && WTERMSIG(st) == SIGBUS, "%s x %s: %s", lvm_backing_name(b),
	       lvm_mode_name(m), name);
	if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGBUS)
		tap_diag("child status 0x%x", st);
}

static void sigbus_only_there(enum lvm_backing b, enum lvm_mode m, const char *name)
{
	int st = run_child(child_catch_and_verify, b, m);
	tap_ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s x %s: %s", lvm_backing_name(b),
	       lvm_mode_name(m), name);
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		tap_diag("child status 0x%x (1 no SIGBUS, 2 wrong address, 3 other page bad, "
			 "4 error message)", st);
}

#define KILLS "touching the page the source failed kills with SIGBUS"
#define ONLY_THERE "SIGBUS at that page only, every other page intact, error names it"
static const struct test_row tests[] = {
	{ KILLS, sigbus_kills, TEST_BACKING(LVM_BACKING_ANON) | TEST_BACKING(LVM_BACKING_MEMFD),
	  LVM_MODE_MISSING, 1 },
	{ KILLS, sigbus_kills, TEST_BACKING(LVM_BACKING_MEMFD), LVM_MODE_MINOR, 1 },
	{ ONLY_THERE, sigbus_only_there,
	  TEST_BACKING(LVM_BACKING_ANON) | TEST_BACKING(LVM_BACKING_MEMFD), LVM_MODE_MISSING, 1 },
	{ ONLY_THERE, sigbus_only_there, TEST_BACKING(LVM_BACKING_MEMFD), LVM_MODE_MINOR, 1 },
};

int main(void)
{
	size_t n = sizeof(tests) / sizeof(tests[0]);
	tap_plan(test_table_plan(tests, n));
	test_table_run(tests, n);
	return tap_done();
}
