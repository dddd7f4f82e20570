/* SPDX-License-Identifier: MIT */
/*
 * Helpers for the tests that drive VMs through the lazyvm CLI: run it with
 * its output captured, pick out the guest's RESULT line, and compute the
 * RESULT a guest must print with the guests' own algorithm (a C model).
 */
#ifndef LAZYVM_VMTEST_H
#define LAZYVM_VMTEST_H

#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tap.h"
#include "layout.h"
#include "dirty-algo.h"
#include "workload-algo.h"

static inline const char *vmtest_cli(void)
{
	const char *p = getenv("LAZYVM");
	return p ? p : "build/lazyvm";
}

static inline void vmtest_slurp(const char *path, char *buf, size_t len)
{
	buf[0] = 0;
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	size_t n = fread(buf, 1, len - 1, f);
	buf[n] = 0;
	fclose(f);
}

/*
 * Start `lazyvm args...` (NULL-terminated) in the background with stdout and
 * stderr in tmpdir/<name>.out and .err, and ready_fd as its fd 3 when >= 0.
 * The child dies with the test (PR_SET_PDEATHSIG), so a test killed by its
 * watchdog leaves no lazyvm behind.  The pid, or -1.
 */
static inline pid_t vmtest_spawn(const char *tmpdir, const char *name, const char *const *args,
				 int ready_fd)
{
	char out[512], err[512];
	snprintf(out, sizeof(out), "%s/%s.out", tmpdir, name);
	snprintf(err, sizeof(err), "%s/%s.err", tmpdir, name);
	const char *argv[40];
	int n = 0;
	argv[n++] = vmtest_cli();
	for (; args[n - 1] && n < 39; n++)
		argv[n] = args[n - 1];
	argv[n] = NULL;
	pid_t parent = getpid();
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) || getppid() != parent ||
		    o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0 ||
		    (ready_fd >= 0 && dup2(ready_fd, 3) < 0))
			_exit(127);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	if (pid > 0)
		tap_watch_pid(pid);
	return pid;
}

/*
 * vmtest_spawn for a listener that writes its port on fd 3 when it listens
 * (`--ready-fd 3`); *pid gets the child.  The port, or tap_bail.
 */
static inline int vmtest_spawn_listener(const char *tmpdir, const char *name,
					const char *const *args, pid_t *pid)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC))
		tap_bail("pipe");
	*pid = vmtest_spawn(tmpdir, name, args, p[1]);
	close(p[1]);
	char line[32] = "";
	ssize_t n = read(p[0], line, sizeof(line) - 1);
	close(p[0]);
	int port = n > 0 ? atoi(line) : 0;
	if (port <= 0)
		tap_bail("%s did not start listening", name);
	return port;
}

/* Wait for *pid (then -1): its exit status, 128+signal, or -1. */
static inline int vmtest_reap(pid_t *pid)
{
	int st = 0;
	if (*pid > 0 && waitpid(*pid, &st, 0) != *pid)
		st = -1;
	tap_unwatch_pid(*pid);
	*pid = -1;
	return st < 0 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/*
 * Run `lazyvm args...` (NULL-terminated) with stdout and stderr captured in
 * tmpdir; returns the exit status (128+signal when killed), -1 if it could
 * not run.
 */
static inline int vmtest_exec(const char *tmpdir, const char *const *args, char *out,
			      size_t outlen, char *err, size_t errlen)
{
	char opath[512], epath[512];
	snprintf(opath, sizeof(opath), "%s/cmd.out", tmpdir);
	snprintf(epath, sizeof(epath), "%s/cmd.err", tmpdir);
	pid_t pid = vmtest_spawn(tmpdir, "cmd", args, -1);
	if (pid < 0)
		return -1;
	int st = vmtest_reap(&pid);
	vmtest_slurp(opath, out, outlen);
	vmtest_slurp(epath, err, errlen);
	unlink(opath);
	unlink(epath);
	return st;
}

/* The integer member "key": N of a --stats-json file's text; -1 when absent. */
static inline long long vmtest_json_int(const char *json, const char *key)
{
	char pat[64];
	snprintf(pat, sizeof(pat), "\"%s\": ", key);
	const char *p = strstr(json, pat);
	return p ? strtoll(p + strlen(pat), NULL, 10) : -1;
}

/* The value of the last "RESULT <hex>" line in out; false if none. */
static inline bool vmtest_result(const char *out, uint64_t *v)
{
	const char *p = out, *last = NULL;
	while ((p = strstr(p, "RESULT ")))
		last = p++;
	if (!last)
		return false;
	char *end;
	*v = strtoull(last + 7, &end, 16);
	return end == last + 7 + 16;
}

/* What `workload --fill FILL` prints for these parameters (any vCPU count). */
static inline uint64_t vmtest_model_workload_fill(uint64_t mem, uint64_t seed,
						  uint64_t iterations, uint64_t fill_pages)
{
	uint64_t npages = (mem - GUEST_SYS_SIZE) / 4096;
	uint64_t *data = calloc(npages, 4096);
	if (!data)
		return 0;
	wl_fill(data, fill_pages < npages ? fill_pages : npages, seed, 0, 1);
	wl_random(data, npages, seed, iterations, 0, 1);
	uint64_t h = wl_hash_all(data, npages);
	free(data);
	return h;
}

/* What `dirty` prints: fill pages of dirty set (0: all), steps, rate (0: 4096). */
static inline uint64_t vmtest_model_dirty(uint64_t mem, uint64_t seed, uint64_t steps,
					  uint64_t fill_pages, uint64_t rate)
{
	uint64_t npages = (mem - GUEST_SYS_SIZE) / 4096;
	uint64_t *data = calloc(npages, 4096);
	if (!data)
		return 0;
	struct dirty d;
	dirty_layout(&d, data, npages, fill_pages, rate, seed);
	dirty_fill(&d);
	for (uint64_t s = 0; s < steps; s++)
		dirty_step(&d, s);
	uint64_t h = dirty_result(&d, data, npages);
	free(data);
	return h;
}

/* What `workload` prints for these parameters (any vCPU count). */
static inline uint64_t vmtest_model_workload(uint64_t mem, uint64_t seed, uint64_t iterations)
{
	return vmtest_model_workload_fill(mem, seed, iterations, 0);
}

/*
 * Watchdog (a hang fails instead of blocking CI), then the plan and a temp
 * dir from the mkdtemp template tmp; false after a SKIP plan when /dev/kvm is
 * not usable.
 */
static inline bool vmtest_begin(const char *name, unsigned watchdog_s, char *tmp, int plan)
{
	tap_watchdog(watchdog_s);
	if (access("/dev/kvm", R_OK | W_OK)) {
		tap_plan(1);
		tap_skip(name, "/dev/kvm not usable");
		return false;
	}
	if (!mkdtemp(tmp))
		tap_bail("mkdtemp");
	tap_plan(plan);
	return true;
}

/* What `boot-like` prints (prefix: VMM_BOOTLIKE_PREFIX bytes). */
static inline uint64_t vmtest_model_bootlike(uint64_t mem, uint64_t seed, uint64_t iterations,
					     uint64_t prefix)
{
	uint64_t npages = (mem - GUEST_SYS_SIZE) / 4096;
	uint64_t pp = prefix / 4096 < npages ? prefix / 4096 : npages;
	uint64_t *data = calloc(npages, 4096);
	if (!data)
		return 0;
	wl_prefix(data, pp, seed, 0, 1);
	wl_random(data, npages, seed, iterations, 0, 1);
	uint64_t h = wl_hash_bootlike(data, npages, pp, seed, iterations);
	free(data);
	return h;
}

/* Remove tmpdir and what the tests left in it (snapshot directories). */
static inline void vmtest_rmtree(const char *dir)
{
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd))
		fprintf(stderr, "# could not remove %s\n", dir);
}

#endif
