/* SPDX-License-Identifier: MIT */
/*
 * Chaos: live migration of a running 2-vCPU workload guest (lazyvm run
 * --migrate-to / lazyvm migrate-recv on 127.0.0.1) through a proxy that
 * breaks it at seeded random points ($CHAOS_SEED):
 *
 *   - $CHAOS_N runs cut 1 to 3 times during post-copy, each cut after a
 *     random number of post-copy PAGES messages: every run must recover and
 *     the destination print the RESULT of an uninterrupted run;
 *   - the source killed (SIGKILL) after a random pre-copy PAGES message: the
 *     destination exits with an error, no RESULT from partial memory;
 *   - the link cut after a random pre-copy PAGES message: the destination
 *     exits with an error and the source VM runs on to the right RESULT.
 *
 * The guest fills all its memory first (--fill), so post-copy moves 30 MiB
 * of data in about 120 PAGES messages and every cut point (<= 100) exists,
 * on any machine.  Prints the counts.
 */
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "migrate/wire.h"
#include "tap.h"
#include "testproxy.h"
#include "vmtest.h"
#include "testlib.h"

#define MEM (32ull << 20)
#define SEED "7"
#define ITERS "10000000"
#define MAX_CUT 100	/* <= the PAGES messages of one pass over the filled memory */

static char tmp[] = "/tmp/lazyvm-chaos-migrate.XXXXXX";
static uint64_t want;

struct run {
	pid_t dst;
	_Atomic pid_t src;	/* the source, once spawned */
	_Atomic bool kill_due;	/* the proxy reached the kill point */
	int dst_status, src_status;
	bool dst_result, src_result;	/* printed the model's RESULT */
	bool dst_any_result;
	int cuts;
	long long reconnects;
	char dst_err[512], src_err[512];
};

static void first_line(const char *name, char *buf, size_t len)
{
	char path[600];
	snprintf(path, sizeof(path), "%s/%s", tmp, name);
	vmtest_slurp(path, buf, len);
	char *nl = strchr(buf, '\n');
	if (nl)
		*nl = 0;
}

static bool has_model_result(const char *name, bool *any)
{
	static char out[16384];
	char path[600];
	uint64_t got = 0;
	snprintf(path, sizeof(path), "%s/%s", tmp, name);
	vmtest_slurp(path, out, sizeof(out));
	bool have = vmtest_result(out, &got);
	if (any)
		*any = have;
	return have && got == want;
}

/* From the proxy's pump: the source may not be published yet (then the
 * spawner kills it); never kill(-1). */
static void kill_source(void *ctx)
{
	struct run *r = ctx;
	atomic_store(&r->kill_due, true);
	pid_t pid = atomic_load(&r->src);
	if (pid > 0)
		kill(pid, SIGKILL);
}

/* One migration; cuts[] counted as counting says; kill_src: SIGKILL the source
 * at the (single) cut instead of only cutting its link. */
static void migrate(const char *rounds, const uint64_t *cuts, int ncuts, enum proxy_count counting,
		    bool kill_src, const char *accept_timeout, struct run *r)
{
	memset(r, 0, sizeof(*r));
	atomic_store(&r->src, -1);
	char stats[600], addr[64];
	snprintf(stats, sizeof(stats), "%s/dst.json", tmp);
	const char *dargs[] = { "migrate-recv", "--listen", "127.0.0.1:0", "--ready-fd", "3",
				"--recover-timeout", "30", "--accept-timeout", accept_timeout,
				"--stats-json", stats, NULL };
	int port = vmtest_spawn_listener(tmp, "dst", dargs, &r->dst);
	struct proxy px;
	if (proxy_start_cutting(&px, port, cuts, ncuts, counting, kill_src ? kill_source : NULL, r))
		tap_bail("proxy");
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", px.port);
	const char *sargs[] = { "run", "--guest", "workload", "--mem", "32M", "--seed", SEED,
				"--iterations", ITERS, "--fill", "32M", "--vcpus", "2",
				"--migrate-to", addr, "--migrate-after-ms", "20", "--precopy-rounds",
				rounds, "--recover-timeout", "30", NULL };
	pid_t pid = vmtest_spawn(tmp, "src", sargs, -1);
	atomic_store(&r->src, pid);
	if (pid > 0 && atomic_load(&r->kill_due))
		kill(pid, SIGKILL);
	r->src_status = vmtest_reap(&pid);
	r->dst_status = vmtest_reap(&r->dst);
	r->cuts = proxy_cuts_made(&px);
	proxy_stop(&px);
	r->dst_result = has_model_result("dst.out", &r->dst_any_result);
	r->src_result = has_model_result("src.out", NULL);
	first_line("dst.err", r->dst_err, sizeof(r->dst_err));
	first_line("src.err", r->src_err, sizeof(r->src_err));
	static char js[4096];
	vmtest_slurp(stats, js, sizeof(js));
	r->reconnects = vmtest_json_int(js, "reconnects");
}

static unsigned env_uint(const char *name, unsigned dflt)
{
	const char *v = getenv(name);
	return v && *v ? (unsigned)strtoul(v, NULL, 10) : dflt;
}

/* k distinct sorted cut points in [1, MAX_CUT]. */
static int random_cuts(uint64_t *seed, uint64_t *cuts)
{
	int k = 1 + (int)(test_rand(seed) % 3);
	for (int i = 0; i < k; i++) {
		uint64_t c;
		bool dup;
		do {
			c = 1 + test_rand(seed) % MAX_CUT;
			dup = false;
			for (int j = 0; j < i; j++)
				dup |= cuts[j] == c;
		} while (dup);
		int j = i;
		for (; j > 0 && cuts[j - 1] > c; j--)
			cuts[j] = cuts[j - 1];
		cuts[j] = c;
	}
	return k;
}

static void postcopy_cuts(unsigned n, uint64_t *seed)
{
	unsigned recovered = 0, cuts_total = 0;
	for (unsigned i = 0; i < n; i++) {
		uint64_t cuts[3];
		int k = random_cuts(seed, cuts);
		struct run r;
		migrate(i % 2 ? "1" : "0", cuts, k, PROXY_POSTCOPY_PAGES, false, "60", &r);
		bool ok = r.cuts == k && !r.src_status && !r.dst_status && r.dst_result;
		recovered += ok;
		cuts_total += (unsigned)r.cuts;
		if (!ok)
			tap_diag("run %u: cuts at %llu %llu %llu (%d of %d made): source exit %d (%s), "
				 "destination exit %d (%s), RESULT %s", i,
				 (unsigned long long)cuts[0], (unsigned long long)(k > 1 ? cuts[1] : 0),
				 (unsigned long long)(k > 2 ? cuts[2] : 0), r.cuts, k, r.src_status,
				 r.src_err, r.dst_status, r.dst_err, r.dst_result ? "right" : "wrong");
	}
	tap_ok(recovered == n, "post-copy cut at seeded random PAGES messages: %u of %u runs "
	       "recovered with the uninterrupted RESULT (%u cuts)", recovered, n, cuts_total);
}

/* A clear error: an exit status (not a signal) and a message. */
static bool clear_error(int status, const char *msg)
{
	return status > 0 && status < 128 && strstr(msg, "lazyvm");
}

static void precopy_kills(unsigned n, uint64_t *seed, bool kill_src)
{
	unsigned good = 0;
	for (unsigned i = 0; i < n; i++) {
		uint64_t cut = 1 + test_rand(seed) % MAX_CUT;
		struct run r;
		migrate("2", &cut, 1, PROXY_PRECOPY_PAGES, kill_src, "10", &r);
		bool ok = r.cuts == 1 && clear_error(r.dst_status, r.dst_err) && !r.dst_any_result &&
			  (kill_src ? r.src_status == 128 + SIGKILL
				: r.src_status == 1 && r.src_result && strstr(r.src_err, "keeps running"));
		good += ok;
		if (!ok || i == 0)
			tap_diag("%s after pre-copy PAGES message %llu: source exit %d (%s), "
				 "destination exit %d: %s", kill_src ? "source killed" : "link cut",
				 (unsigned long long)cut, r.src_status, r.src_err, r.dst_status,
				 r.dst_err);
	}
	if (kill_src)
		tap_ok(good == n, "source killed during pre-copy: %u of %u runs, the destination "
		       "exits with an error and prints no RESULT", good, n);
	else
		tap_ok(good == n, "link cut during pre-copy: %u of %u runs, the destination exits "
		       "with an error, the source VM runs on to the right RESULT", good, n);
}

int main(void)
{
	unsigned n = env_uint("CHAOS_N", 50);
	uint64_t seed = env_uint("CHAOS_SEED", 1) * 0x9e3779b97f4a7c15ull + 1;
	unsigned kills = n / 10 > 2 ? n / 10 : 2;
	/* ~4 s a run on a loaded machine, 15 for a pre-copy failure (accept timeout) */
	tap_watchdog(120 + 20 * n + 40 * kills);
	if (access("/dev/kvm", R_OK | W_OK)) {
		tap_plan(1);
		tap_skip("chaos migrate", "/dev/kvm not usable");
		return 0;
	}
	if (!mkdtemp(tmp))
		tap_bail("mkdtemp");
	tap_plan(3);
	want = vmtest_model_workload_fill(MEM, 7, strtoull(ITERS, NULL, 10),
					  (MEM - GUEST_SYS_SIZE) / 4096);
	tap_diag("seed %u, %u post-copy runs, %u pre-copy kills and cuts each; model RESULT %016llx",
		 env_uint("CHAOS_SEED", 1), n, kills, (unsigned long long)want);
	tap_phase("post-copy cuts");
	postcopy_cuts(n, &seed);
	tap_phase("source killed in pre-copy");
	precopy_kills(kills, &seed, true);
	tap_phase("link cut in pre-copy");
	precopy_kills(kills, &seed, false);
	vmtest_rmtree(tmp);
	return tap_done();
}
