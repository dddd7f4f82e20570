/* SPDX-License-Identifier: MIT */
/*
 * Post-copy migration of a running 2-vCPU workload guest onto guest_memfd:
 * `lazyvm migrate-recv --backing gmem` on 127.0.0.1, `lazyvm run ...
 * --migrate-to` as the source (anon with no pre-copy: every page arrives
 * post-copy; gmem with one write-protected pre-copy round).  The destination
 * prints the model's RESULT, the source none, and the destination's stats
 * show pages it requested because a vCPU faulted on them (it really was
 * lazy on gmem).
 *
 * Small (16 MiB) for nested KVM inside QEMU TCG (make check-gmem).  SKIPs
 * where guest_memfd has no userfaultfd (migrate-recv then fetches all memory
 * before the VM runs; tests/migrate-vm covers the protocol).
 */
#include "gmem-test.h"
#include "vmtest.h"

#define MEM (16ull << 20)
#define SEED 9
#define ITERS 3000000
#define NTESTS 2

static char tmp[] = "/tmp/lazyvm-gmem-migrate.XXXXXX";
static pid_t dst = -1;

static void slurp(const char *name, char *buf, size_t len)
{
	char path[600];
	snprintf(path, sizeof(path), "%s/%s", tmp, name);
	vmtest_slurp(path, buf, len);
}

/* migrate-recv --backing gmem on port 0; the port it got, or -1. */
static int start_receiver(void)
{
	char stats[600];
	int p[2];
	snprintf(stats, sizeof(stats), "%s/dst.json", tmp);
	if (pipe2(p, O_CLOEXEC))
		return -1;
	const char *args[] = { "migrate-recv", "--listen", "127.0.0.1:0", "--ready-fd", "3",
			       "--backing", "gmem", "--accept-timeout", "120", "--stats-json",
			       stats, NULL };
	dst = vmtest_spawn(tmp, "dst", args, p[1]);
	close(p[1]);
	char line[32] = "";
	ssize_t n = read(p[0], line, sizeof(line) - 1);
	close(p[0]);
	return n > 0 ? atoi(line) : -1;
}

static void migrate(const char *name, const char *src_backing, const char *rounds, uint64_t want)
{
	static char out[8192], err[8192], js[4096];
	int port = start_receiver();
	if (port <= 0) {
		tap_ok(0, "%s: migrate-recv did not start", name);
		vmtest_reap(&dst);
		return;
	}
	char addr[64];
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	char iters[32], seed[32];
	snprintf(iters, sizeof(iters), "%d", ITERS);
	snprintf(seed, sizeof(seed), "%d", SEED);
	const char *args[] = { "run", "--guest", "workload", "--mem", "16M", "--seed", seed,
			       "--iterations", iters, "--vcpus", "2", "--backing", src_backing,
			       "--migrate-to", addr, "--migrate-after-ms", "100",
			       "--precopy-rounds", rounds, NULL };
	int src_st = vmtest_exec(tmp, args, out, sizeof(out), err, sizeof(err));
	uint64_t got = 0;
	bool src_quiet = !vmtest_result(out, &got);
	int dst_st = vmtest_reap(&dst);
	slurp("dst.out", out, sizeof(out));
	bool dst_ok = vmtest_result(out, &got) && got == want;
	slurp("dst.json", js, sizeof(js));
	long long requested = vmtest_json_int(js, "pages_postcopy_request");
	long long faults = vmtest_json_int(js, "faults");
	bool lazy = strstr(js, "\"backing\": \"gmem\"") && requested > 0 && faults > 0;
	tap_ok(!src_st && !dst_st && src_quiet && dst_ok && lazy,
	       "%s: destination RESULT %016llx == model %016llx, none at the source; %lld faults, "
	       "%lld pages requested on demand", name, (unsigned long long)got,
	       (unsigned long long)want, faults, requested);
	tap_diag("dst: total %lld ms, downtime %lld ms, pages precopy %lld push %lld request %lld",
		 vmtest_json_int(js, "total_ms"), vmtest_json_int(js, "downtime_ms"),
		 vmtest_json_int(js, "pages_precopy"), vmtest_json_int(js, "pages_postcopy_push"),
		 requested);
	if (src_st || dst_st || !dst_ok || !lazy) {
		tap_diag("source exit %d: %s", src_st, err);
		slurp("dst.err", err, sizeof(err));
		tap_diag("destination exit %d: %s; stats: %s", dst_st, err, js);
	}
}

int main(void)
{
	static const char *const names[NTESTS] = {
		"anon -> gmem, post-copy only", "gmem -> gmem, 1 pre-copy round",
	};
	if (!vmtest_begin("gmem-migrate", GMEM_TEST_WATCHDOG_S, tmp, NTESTS))
		return 0;
	if (!gmem_test_lazy_or_skip(names, NTESTS)) {
		vmtest_rmtree(tmp);
		return tap_done();
	}
	struct lvm_probe pw = { .struct_size = sizeof(pw) };
	lvm_probe(LVM_BACKING_GMEM, LVM_MODE_WP, &pw);
	uint64_t want = vmtest_model_workload(MEM, SEED, ITERS);
	migrate(names[0], "anon", "0", want);
	if (pw.err)	/* pre-copy rounds track dirty pages with uffd-WP */
		tap_skip(names[1], "probe gmem x WP: %s", pw.reason);
	else
		migrate(names[1], "gmem", "1", want);
	vmtest_rmtree(tmp);
	return tap_done();
}
