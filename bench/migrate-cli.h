/* SPDX-License-Identifier: MIT */
/*
 * What the migration benchmarks share: the lazyvm CLI found next to the
 * bench binary, children with their stdout in a file, and the figures of a
 * --stats-json report.
 */
#ifndef LAZYVM_BENCH_MIGRATE_CLI_H
#define LAZYVM_BENCH_MIGRATE_CLI_H

#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char bench_cli[4096];

/* $LAZYVM, else the lazyvm next to this bench (build/bench/.. ). */
static inline void bench_find_cli(const char *argv0)
{
	const char *env = getenv("LAZYVM");
	if (env) {
		snprintf(bench_cli, sizeof(bench_cli), "%s", env);
	} else {
		char self[4096];
		snprintf(self, sizeof(self), "%s", argv0);
		snprintf(bench_cli, sizeof(bench_cli), "%s/../lazyvm", dirname(self));
	}
}

/* args[0] is the CLI; stdout to out, stderr dropped, ready_fd as fd 3. */
static inline pid_t bench_spawn(const char *const *args, const char *out, int ready_fd)
{
	pid_t pid = fork();
	if (pid == 0) {
		int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int e = open("/dev/null", O_WRONLY);
		if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0 ||
		    (ready_fd >= 0 && dup2(ready_fd, 3) < 0))
			_exit(127);
		execv(bench_cli, (char *const *)args);
		_exit(127);
	}
	return pid;
}

static inline int bench_reap(pid_t pid)
{
	int st;
	return waitpid(pid, &st, 0) == pid && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static inline double bench_json_num(const char *buf, const char *key)
{
	char pat[64];
	snprintf(pat, sizeof(pat), "\"%s\": ", key);
	const char *p = strstr(buf, pat);
	return p ? atof(p + strlen(pat)) : -1;
}

/* p50/p99 inside "remote_fault_us": {...}. */
static inline double bench_json_lat(const char *buf, const char *pct)
{
	const char *p = strstr(buf, "\"remote_fault_us\"");
	return p ? bench_json_num(p, pct) : -1;
}

/* migrate-recv on 127.0.0.1:0 with its stats in djson: its pid; addr gets
 * "127.0.0.1:PORT". */
static inline pid_t bench_start_receiver(const char *dout, const char *djson, char *addr,
					 size_t addrlen)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC))
		exit(1);
	const char *dargs[] = { bench_cli, "migrate-recv", "--listen", "127.0.0.1:0",
				"--ready-fd", "3", "--stats-json", djson, NULL };
	pid_t d = bench_spawn(dargs, dout, p[1]);
	close(p[1]);
	char port[32] = "";
	if (read(p[0], port, sizeof(port) - 1) <= 0) {
		fprintf(stderr, "bench: migrate-recv did not start\n");
		exit(1);
	}
	close(p[0]);
	snprintf(addr, addrlen, "127.0.0.1:%d", atoi(port));
	return d;
}

#endif
