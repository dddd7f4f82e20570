/* SPDX-License-Identifier: MIT */
/*
 * bench/migrate: post-copy live migration of a busy guest on loopback, the
 * real CLI on both sides (`lazyvm migrate-recv`, `lazyvm run --migrate-to`),
 * figures from their --stats-json.  Baseline, measured in the same run: a raw
 * TCP request/response round trip on loopback with the sizes a remote fault
 * moves (a 32-byte REQUEST, a 4 KiB page + 32 bytes of headers back).
 *
 *   build/bench/migrate [MiB (1024)] [repeats (3)] [pre-copy rounds (0)]
 *
 * Prints min/median/max of downtime, total time, remote-fault p50/p99 and
 * the ratio of remote-fault latency to the raw round trip.  Every run's
 * destination RESULT must equal the C model of the guest (an uninterrupted
 * run), else the figure is not printed.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <libgen.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "migrate-cli.h"
#include "../tests/vmtest.h"

#define MAX_REPEATS 32
#define RTT_SAMPLES 20000
#define REQ_BYTES 32
#define ANS_BYTES (4096 + 32)
#define SEED 3
#define ITERS_PER_MIB 80000ull	/* the guest stays busy for seconds after the start */

static char tmp[] = "/tmp/lazyvm-bench-migrate.XXXXXX";

/* ---- the baseline: raw TCP request/response ------------------------------ */

static int full_io(int fd, void *buf, size_t len, bool wr)
{
	for (size_t done = 0; done < len; ) {
		ssize_t n = wr ? send(fd, (char *)buf + done, len - done, MSG_NOSIGNAL)
			       : recv(fd, (char *)buf + done, len - done, 0);
		if (n <= 0)
			return -1;
		done += (size_t)n;
	}
	return 0;
}

static void *echo_server(void *arg)
{
	int lfd = *(int *)arg, one = 1;
	int fd = accept(lfd, NULL, NULL);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	static char req[REQ_BYTES], ans[ANS_BYTES];
	while (!full_io(fd, req, sizeof(req), false) && !full_io(fd, ans, sizeof(ans), true))
		;
	close(fd);
	return NULL;
}

/* p50 and p99 of a request/response round trip, µs. */
static void tcp_rtt(double *p50, double *p99)
{
	int lfd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	struct sockaddr_in a = { .sin_family = AF_INET };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof(a);
	if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) || listen(lfd, 1) ||
	    getsockname(lfd, (struct sockaddr *)&a, &len)) {
		perror("bench: listen");
		exit(1);
	}
	pthread_t t;
	pthread_create(&t, NULL, echo_server, &lfd);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		perror("bench: connect");
		exit(1);
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	static char req[REQ_BYTES], ans[ANS_BYTES];
	static double us[RTT_SAMPLES];
	for (int i = 0; i < RTT_SAMPLES; i++) {
		double t0 = bench_now_us();
		if (full_io(fd, req, sizeof(req), true) || full_io(fd, ans, sizeof(ans), false)) {
			fprintf(stderr, "bench: echo failed\n");
			exit(1);
		}
		us[i] = bench_now_us() - t0;
	}
	close(fd);
	pthread_join(t, NULL);
	close(lfd);
	qsort(us, RTT_SAMPLES, sizeof(double), bench_cmp_double);
	*p50 = us[RTT_SAMPLES / 2];
	*p99 = us[RTT_SAMPLES * 99 / 100];
}

/* ---- one migration through the CLI ---------------------------------------- */

struct sample {
	double downtime_ms, total_ms, p50_us, p99_us, requested, pushed, precopy;
	bool ok;
};

static void migrate_once(const char *mem, const char *iters, const char *rounds, uint64_t want,
			 struct sample *s)
{
	char dout[600], sout[600], djson[600], buf[65536];
	snprintf(dout, sizeof(dout), "%s/dst.out", tmp);
	snprintf(sout, sizeof(sout), "%s/src.out", tmp);
	snprintf(djson, sizeof(djson), "%s/dst.json", tmp);
	char addr[64];
	pid_t d = bench_start_receiver(dout, djson, addr, sizeof(addr));
	const char *sargs[] = { bench_cli, "run", "--guest", "workload", "--mem", mem, "--seed", "3",
				"--iterations", iters, "--vcpus", "2", "--migrate-to", addr,
				"--migrate-after-ms", "1000", "--precopy-rounds", rounds, NULL };
	pid_t src = bench_spawn(sargs, sout, -1);
	int sst = bench_reap(src), dst = bench_reap(d);
	uint64_t got = 0;
	vmtest_slurp(dout, buf, sizeof(buf));
	s->ok = !sst && !dst && vmtest_result(buf, &got) && got == want;
	vmtest_slurp(djson, buf, sizeof(buf));
	s->downtime_ms = bench_json_num(buf, "downtime_ms");
	s->total_ms = bench_json_num(buf, "total_ms");
	s->p50_us = bench_json_lat(buf, "p50");
	s->p99_us = bench_json_lat(buf, "p99");
	s->requested = bench_json_num(buf, "pages_postcopy_request");
	s->pushed = bench_json_num(buf, "pages_postcopy_push");
	s->precopy = bench_json_num(buf, "pages_precopy");
	unlink(dout);
	unlink(sout);
	unlink(djson);
	if (!s->ok)
		fprintf(stderr, "bench: run failed (source exit %d, destination exit %d, RESULT "
			"%016llx, model %016llx)\n", sst, dst, (unsigned long long)got,
			(unsigned long long)want);
}

int main(int argc, char **argv)
{
	unsigned mib = argc > 1 ? (unsigned)atoi(argv[1]) : 1024;
	int repeats = argc > 2 ? atoi(argv[2]) : 3;
	const char *rounds = argc > 3 ? argv[3] : "0";
	if (mib < 64 || mib % 2 || repeats < 1 || repeats > MAX_REPEATS) {
		fprintf(stderr, "usage: %s [MiB >= 64, even] [repeats 1..%d] [pre-copy rounds]\n",
			argv[0], MAX_REPEATS);
		return 64;
	}
	bench_find_cli(argv[0]);
	if (access("/dev/kvm", R_OK | W_OK) || access(bench_cli, X_OK) || !mkdtemp(tmp)) {
		fprintf(stderr, "bench: needs /dev/kvm and the CLI at %s\n", bench_cli);
		return 1;
	}
	char mem[32], iters[32];
	snprintf(mem, sizeof(mem), "%uM", mib);
	snprintf(iters, sizeof(iters), "%llu", (unsigned long long)(ITERS_PER_MIB * mib));
	uint64_t want = vmtest_model_workload((uint64_t)mib << 20, SEED, ITERS_PER_MIB * mib);

	printf("migrate: %u MiB workload guest (%s iterations), 2 vCPUs, anon, loopback, "
	       "migration at 1000 ms, %s pre-copy rounds, %d repeats\n", mib, iters, rounds,
	       repeats);
	double v[8][MAX_REPEATS];
	int n = 0;
	for (int r = 0; r < repeats; r++) {
		double rtt50, rtt99;
		tcp_rtt(&rtt50, &rtt99);	/* the baseline right next to each run */
		struct sample s;
		migrate_once(mem, iters, rounds, want, &s);
		if (!s.ok)
			continue;
		double row[8] = { s.downtime_ms, s.total_ms, s.p50_us, s.p99_us, rtt50, rtt99,
				  s.p50_us / rtt50, s.p99_us / rtt99 };
		for (int k = 0; k < 8; k++)
			v[k][n] = row[k];
		n++;
		printf("  run %d: RESULT == model; pages precopy %.0f, pushed %.0f, requested %.0f\n",
		       r + 1, s.precopy, s.pushed, s.requested);
	}
	if (!n) {
		fprintf(stderr, "bench: no run succeeded\n");
		return 1;
	}
	bench_header();
	static const char *const what[8] = { "downtime", "total migration time",
		"remote fault p50", "remote fault p99", "raw TCP request/response p50",
		"raw TCP request/response p99", "remote fault p50 / TCP round trip p50",
		"remote fault p99 / TCP round trip p99" };
	static const char *const unit[8] = { "ms", "ms", "us", "us", "us", "us", "x", "x" };
	for (int k = 0; k < 8; k++)
		bench_row(what[k], unit[k], v[k], n);
	rmdir(tmp);
	return 0;
}
