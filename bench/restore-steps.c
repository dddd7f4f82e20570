/* SPDX-License-Identifier: MIT */
/*
 * Where a lazy restore's time to the first instruction goes, as a user sees
 * it: runs `lazyvm restore DIR --stats-json F` (a new process each time) and
 * reads first_instruction_us (restore start -> first KVM_RUN), the same
 * measured from just before the process was spawned (exec, dynamic loading
 * and argument parsing included), and the per-step timeline ("steps_us").
 *
 *   build/bench/restore-steps DIR [repeats (9)] [CLI ...]
 *
 * With several CLIs (e.g. an old and a new build) the runs are interleaved
 * (A B A B ...) so both see the same machine load, and the ratio of their
 * medians is printed against the first.  CLI defaults to $LAZYVM, else
 * build/lazyvm.  A snapshot to use:
 *   lazyvm run --guest workload --mem 1G --snapshot DIR --snapshot-after-ms 1000
 */
#include <fcntl.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#define MAX_REPEATS 64
#define MAX_CLIS 4
#define MAX_STEPS 48

extern char **environ;

struct run {
	double first_us;	/* restore start -> first KVM_RUN */
	double spawn_us;	/* just before posix_spawn -> first KVM_RUN */
	unsigned nsteps;
	char step[MAX_STEPS][32];
	double at_us[MAX_STEPS];	/* since restore start */
};

/* The number after "key": in json, or -1. */
static double json_number(const char *json, const char *key)
{
	char pat[64];
	snprintf(pat, sizeof(pat), "\"%s\":", key);
	const char *p = strstr(json, pat);
	return p ? strtod(p + strlen(pat), NULL) : -1.0;
}

/* "steps_us": {"a": 1.0, "b": 2.5} into r. */
static void json_steps(const char *json, struct run *r)
{
	const char *p = strstr(json, "\"steps_us\": {");
	r->nsteps = 0;
	if (!p)
		return;
	p += strlen("\"steps_us\": {");
	while (r->nsteps < MAX_STEPS && (p = strchr(p, '"'))) {
		const char *end = strchr(p + 1, '"');
		if (!end || end - p - 1 >= 32)
			return;
		memcpy(r->step[r->nsteps], p + 1, (size_t)(end - p - 1));
		r->step[r->nsteps][end - p - 1] = 0;
		char *num_end;
		r->at_us[r->nsteps++] = strtod(end + 2, &num_end);
		p = num_end;
		if (*p == '}')
			return;
	}
}

static int run_once(const char *cli, const char *dir, const char *json_path, struct run *r)
{
	char *argv[] = { (char *)cli, "restore", (char *)dir, "--stats-json", (char *)json_path,
			 NULL };
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	pid_t pid;
	double t0 = bench_now_us();
	int ret = posix_spawn(&pid, cli, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	int status;
	if (ret || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status)) {
		fprintf(stderr, "restore-steps: %s restore %s failed\n", cli, dir);
		return -1;
	}
	char json[8192];
	FILE *f = fopen(json_path, "r");
	size_t n = f ? fread(json, 1, sizeof(json) - 1, f) : 0;
	if (f)
		fclose(f);
	json[n] = 0;
	r->first_us = json_number(json, "first_instruction_us");
	double start_ns = json_number(json, "start_monotonic_ns");
	r->spawn_us = start_ns > 0 ? start_ns / 1e3 + r->first_us - t0 : -1.0;
	json_steps(json, r);
	return r->first_us > 0 ? 0 : -1;
}

/* Median duration of each step (its mark minus the previous mark), in the
 * order of the first run. */
static void print_steps(struct run *runs, int n)
{
	printf("  %-28s %10s %10s %10s  (ms, step duration)\n", "step", "min", "median", "max");
	for (unsigned s = 0; s < runs[0].nsteps; s++) {
		double d[MAX_REPEATS];
		int k = 0;
		for (int i = 0; i < n; i++) {
			for (unsigned j = 0; j < runs[i].nsteps; j++) {
				if (strcmp(runs[i].step[j], runs[0].step[s]))
					continue;
				d[k++] = (runs[i].at_us[j] - (j ? runs[i].at_us[j - 1] : 0)) / 1e3;
				break;
			}
		}
		if (k)
			bench_row(runs[0].step[s], "", d, k);
	}
}

static double median_first(struct run *runs, int n, bool spawn)
{
	double v[MAX_REPEATS];
	for (int i = 0; i < n; i++)
		v[i] = spawn ? runs[i].spawn_us : runs[i].first_us;
	return bench_summary(v, n).median;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: restore-steps DIR [repeats] [CLI ...]\n");
		return 2;
	}
	const char *dir = argv[1];
	int repeats = argc > 2 ? atoi(argv[2]) : 9;
	if (repeats < 1 || repeats > MAX_REPEATS)
		repeats = 9;
	const char *clis[MAX_CLIS];
	int nclis = 0;
	for (int i = 3; i < argc && nclis < MAX_CLIS; i++)
		clis[nclis++] = argv[i];
	if (!nclis)
		clis[nclis++] = getenv("LAZYVM") ? getenv("LAZYVM") : "build/lazyvm";
	char json_path[] = "/tmp/lazyvm-restore-steps.XXXXXX";
	int fd = mkstemp(json_path);
	if (fd < 0)
		return 1;
	close(fd);
	static struct run runs[MAX_CLIS][MAX_REPEATS];
	int status = 0;
	for (int i = 0; i < repeats && !status; i++)
		for (int c = 0; c < nclis && !status; c++)
			status = run_once(clis[c], dir, json_path, &runs[c][i]) ? 1 : 0;
	unlink(json_path);
	if (status)
		return status;
	printf("lazy restore of %s, %d repeats%s\n", dir, repeats,
	       nclis > 1 ? ", CLIs interleaved" : "");
	for (int c = 0; c < nclis; c++) {
		double v[MAX_REPEATS], w[MAX_REPEATS];
		for (int i = 0; i < repeats; i++)
			v[i] = runs[c][i].first_us / 1e3, w[i] = runs[c][i].spawn_us / 1e3;
		printf("\n%s\n", clis[c]);
		bench_header();
		bench_row("first instruction, from restore start", "ms", v, repeats);
		bench_row("first instruction, from process spawn", "ms", w, repeats);
		print_steps(runs[c], repeats);
	}
	for (int c = 1; c < nclis; c++)
		printf("\n%s vs %s (ratio of medians, > 1: faster): from restore start %.2f, "
		       "from spawn %.2f\n", clis[c], clis[0],
		       median_first(runs[0], repeats, false) / median_first(runs[c], repeats, false),
		       median_first(runs[0], repeats, true) / median_first(runs[c], repeats, true));
	return 0;
}
