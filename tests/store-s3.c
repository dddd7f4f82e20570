/* SPDX-License-Identifier: MIT */
/*
 * Snapshots in a real S3 server (Ceph radosgw on 127.0.0.1, started here;
 * SKIP where it cannot start) with lazyvm's requests going through a proxy
 * that counts them and injects faults:
 *  - push, then a lazy restore from s3:// gives the uninterrupted RESULT;
 *  - pushing the same snapshot again uploads 0 chunks; a second snapshot of
 *    the same guest uploads exactly the chunks the store lacks (the count a
 *    local chunk store gives for the same pair);
 *  - a warm cache restores with no chunk GET; a corrupted cached chunk is
 *    detected, fetched again (one GET) and repaired;
 *  - two processes restoring through one cache at once both finish right;
 *  - 500s, resets and truncated bodies: the right RESULT; a store that only
 *    fails: a clean stop naming the chunk, no RESULT;
 *  - wrong credentials: exit 2 and one line; verify of an s3:// snapshot;
 *  - fc-serve --mem-url s3://...: a Firecracker-protocol restore gets the
 *    RESULT from memory served out of the store.
 */
#include <dirent.h>

#include "s3test.h"
#include "tap.h"
#include "vmtest.h"

#define PLAN 14

static char out[16384], err[16384];
static char tmp[] = "/tmp/lazyvm-store-s3.XXXXXX";
static uint64_t want;
static struct s3t_proxy px;
static char proxy_url[64];

static int lazyvm(const char *const *args)
{
	return vmtest_exec(tmp, args, out, sizeof(out), err, sizeof(err));
}

static bool result_ok(int st)
{
	uint64_t got = 0;
	return st == 0 && vmtest_result(out, &got) && got == want;
}

static long field(const char *text, const char *after)
{
	const char *p = strstr(text, after);
	if (!p)
		return -1;
	while (p > text && p[-1] == ' ')
		p--;
	while (p > text && p[-1] >= '0' && p[-1] <= '9')
		p--;
	return strtol(p, NULL, 10);
}

static int make_snapshot(const char *dir, const char *after_ms)
{
	const char *args[] = { "run", "--guest", "workload", "--mem", "64M", "--seed", "7",
			       "--iterations", "3000000", "--vcpus", "2", "--snapshot", dir,
			       "--snapshot-after-ms", after_ms, NULL };
	return lazyvm(args);
}

static int restore_via_proxy(const char *url, const char *cache)
{
	setenv("AWS_ENDPOINT_URL", proxy_url, 1);
	const char *args[] = { "restore", url, cache ? "--cache" : "--no-cache", cache, NULL };
	int st = lazyvm(args);
	setenv("AWS_ENDPOINT_URL", s3t_endpoint, 1);
	return st;
}

static void test_push_restore(const char *snap_a, const char *cache)
{
	const char *push[] = { "snapshot", "push", snap_a, "s3://lazyvm-test/t/a", NULL };
	int st = lazyvm(push);
	long up = field(out, " uploaded");
	tap_ok(st == 0 && up > 0, "push to s3:// (exit %d, %ld chunks uploaded)", st, up);
	if (st)
		tap_diag("%s", err);
	s3t_proxy_reset_counts(&px);
	st = restore_via_proxy("s3://lazyvm-test/t/a", cache);
	unsigned gets = px.chunk_gets;
	tap_ok(result_ok(st) && (long)gets == up,
	       "lazy restore from s3:// with a cold cache: RESULT == model; %u chunk GETs == %ld "
	       "chunks", gets, up);
	if (st)
		tap_diag("exit %d: %s", st, err);
	s3t_proxy_reset_counts(&px);
	st = restore_via_proxy("s3://lazyvm-test/t/a", cache);
	tap_ok(result_ok(st) && px.chunk_gets == 0,
	       "warm cache: RESULT == model with %u chunk GETs (%u GETs in all: state, manifest)",
	       px.chunk_gets, px.gets);
}

static void test_dedup(const char *snap_a, const char *snap_b)
{
	const char *again[] = { "snapshot", "push", snap_a, "s3://lazyvm-test/t/a2", NULL };
	int st = lazyvm(again);
	tap_ok(st == 0 && field(out, " uploaded") == 0 && field(out, " already there") > 0,
	       "the same snapshot pushed again: 0 chunks uploaded");
	/* The reference count: a local chunk store given A then B. */
	char local_a[700], local_b[700];
	snprintf(local_a, sizeof(local_a), "%s/local/a", tmp);
	snprintf(local_b, sizeof(local_b), "%s/local/b", tmp);
	const char *la[] = { "snapshot", "push", snap_a, local_a, NULL };
	const char *lb[] = { "snapshot", "push", snap_b, local_b, NULL };
	long expect = lazyvm(la) ? -2 : lazyvm(lb) ? -2 : field(out, " uploaded");
	const char *pb[] = { "snapshot", "push", snap_b, "s3://lazyvm-test/t/b", NULL };
	st = lazyvm(pb);
	long up = field(out, " uploaded"), there = field(out, " already there");
	tap_ok(st == 0 && up == expect && there > 0,
	       "a later snapshot of the same guest: %ld chunks uploaded (the %ld it changed), %ld "
	       "shared", up, expect, there);
	s3t_proxy_reset_counts(&px);
	st = restore_via_proxy("s3://lazyvm-test/t/b", NULL);
	tap_ok(result_ok(st), "the later snapshot restores from s3:// to the RESULT");
}

/* Overwrite the first cached chunk with garbage of the same size. */
static bool corrupt_one(const char *cache)
{
	DIR *d = opendir(cache);
	struct dirent *de;
	bool done = false;
	while (d && !done && (de = readdir(d))) {
		if (strlen(de->d_name) != 64)
			continue;
		char p[1200];
		snprintf(p, sizeof(p), "%s/%s", cache, de->d_name);
		FILE *f = fopen(p, "r+");
		if (f) {
			fseek(f, 20, SEEK_SET);
			fputs("garbage garbage", f);
			done = !fclose(f);
		}
	}
	if (d)
		closedir(d);
	return done;
}

static void test_cache(const char *cache)
{
	bool c = corrupt_one(cache);
	s3t_proxy_reset_counts(&px);
	int st = restore_via_proxy("s3://lazyvm-test/t/a", cache);
	unsigned first = px.chunk_gets;
	s3t_proxy_reset_counts(&px);
	int st2 = restore_via_proxy("s3://lazyvm-test/t/a", cache);
	tap_ok(c && result_ok(st) && first == 1 && result_ok(st2) && px.chunk_gets == 0,
	       "a corrupted cached chunk is detected and fetched again (%u GET), then served from "
	       "the cache (%u GETs)", first, px.chunk_gets);

	char shared[700];
	snprintf(shared, sizeof(shared), "%s/shared-cache", tmp);
	setenv("AWS_ENDPOINT_URL", proxy_url, 1);
	const char *args[] = { "restore", "s3://lazyvm-test/t/a", "--cache", shared, NULL };
	pid_t p1 = vmtest_spawn(tmp, "r1", args, -1), p2 = vmtest_spawn(tmp, "r2", args, -1);
	int s1 = vmtest_reap(&p1), s2 = vmtest_reap(&p2);
	setenv("AWS_ENDPOINT_URL", s3t_endpoint, 1);
	char path[700];
	uint64_t g1 = 0, g2 = 0;
	snprintf(path, sizeof(path), "%s/r1.out", tmp);
	vmtest_slurp(path, out, sizeof(out));
	bool ok1 = vmtest_result(out, &g1);
	snprintf(path, sizeof(path), "%s/r2.out", tmp);
	vmtest_slurp(path, out, sizeof(out));
	bool ok2 = vmtest_result(out, &g2);
	s3t_proxy_reset_counts(&px);
	int st3 = restore_via_proxy("s3://lazyvm-test/t/a", shared);
	tap_ok(s1 == 0 && s2 == 0 && ok1 && ok2 && g1 == want && g2 == want && result_ok(st3) &&
	       px.chunk_gets == 0,
	       "two processes restoring through one cache at once: both RESULTs right; the cache "
	       "they filled then serves all (%u GETs)", px.chunk_gets);
}

static void test_faults(void)
{
	px.fault_every = 3;
	s3t_proxy_reset_counts(&px);
	int st = restore_via_proxy("s3://lazyvm-test/t/a", NULL);
	unsigned faults = px.faults;
	px.fault_every = 0;
	tap_ok(result_ok(st) && faults >= 3,
	       "500s, resets and truncated bodies on every 3rd chunk GET (%u injected): RESULT == "
	       "model", faults);
	if (!result_ok(st))
		tap_diag("exit %d: %s", st, err);
	px.always_fail = true;
	setenv("LAZYVM_S3_TRIES", "2", 1);
	st = restore_via_proxy("s3://lazyvm-test/t/a", NULL);
	unsetenv("LAZYVM_S3_TRIES");
	px.always_fail = false;
	tap_ok(st != 0 && !strstr(out, "RESULT") && strstr(err, "chunk ") &&
	       strstr(err, "/chunks/") && strstr(err, "HTTP 500"),
	       "a store that answers 500 to every chunk: the VM stops (exit %d), no RESULT, the "
	       "message names chunk and URL", st);
	if (st == 0 || !strstr(err, "/chunks/"))
		tap_diag("stderr: %s", err);
}

static void test_credentials(void)
{
	const char *good = getenv("AWS_SECRET_ACCESS_KEY");
	char save[256];
	snprintf(save, sizeof(save), "%s", good ? good : "");
	setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret", 1);
	const char *args[] = { "restore", "s3://lazyvm-test/t/a", "--no-cache", NULL };
	int st = lazyvm(args);
	setenv("AWS_SECRET_ACCESS_KEY", save, 1);
	char *nl = strchr(err, '\n');
	tap_ok(st == 2 && nl && !nl[1] && strstr(err, "access denied"),
	       "wrong credentials: exit %d, one line: %.*s", st, nl ? (int)(nl - err) : 0, err);
	const char *verify[] = { "snapshot", "verify", "s3://lazyvm-test/t/a", NULL };
	st = lazyvm(verify);
	tap_ok(st == 0 && strstr(out, "intact"), "snapshot verify s3://: every chunk's SHA-256");
}

static void test_fc_serve(const char *snap_a)
{
	char sock[700];
	snprintf(sock, sizeof(sock), "%s/fc.sock", tmp);
	int pfd[2];
	if (pipe(pfd))
		tap_bail("pipe");
	const char *serve[] = { "fc-serve", "--socket", sock, "--mem-url", "s3://lazyvm-test/t/a",
				"--no-cache", "--once", "--ready-fd", "3", NULL };
	pid_t pid = vmtest_spawn(tmp, "fc-serve", serve, pfd[1]);
	close(pfd[1]);
	char ready[8] = "";
	ssize_t n = read(pfd[0], ready, sizeof(ready) - 1);
	close(pfd[0]);
	int st = -1;
	if (n > 0) {
		const char *args[] = { "restore", snap_a, "--uffd-socket", sock, NULL };
		st = lazyvm(args);
	}
	int sst = vmtest_reap(&pid);
	tap_ok(n > 0 && result_ok(st) && sst == 0,
	       "fc-serve --mem-url s3://: a restore over its socket gives the RESULT (serve exit "
	       "%d)", sst);
}

int main(void)
{
	if (!vmtest_begin("store-s3", 900, tmp, PLAN))
		return 0;
	char why[600];
#ifdef LVM_HAVE_CURL
	bool up = s3t_start(tmp, why, sizeof(why));
#else	/* the feature is absent from this build: nothing to test */
	bool up = false;
	snprintf(why, sizeof(why), "built without libcurl (no remote snapshots)");
#endif
	if (!up) {
		for (int i = 0; i < PLAN; i++)
			tap_skip("store-s3", "%s", why);
		vmtest_rmtree(tmp);
		return 0;
	}
	if (s3t_proxy_start(&px, s3t_endpoint))
		tap_bail("proxy");
	snprintf(proxy_url, sizeof(proxy_url), "http://127.0.0.1:%u", px.port);
	want = vmtest_model_workload(64ull << 20, 7, 3000000);
	char a[700], b[700], cache[700];
	snprintf(a, sizeof(a), "%s/snap-a", tmp);
	snprintf(b, sizeof(b), "%s/snap-b", tmp);
	snprintf(cache, sizeof(cache), "%s/cache", tmp);
	int sa = make_snapshot(a, "40"), sb = make_snapshot(b, "80");
	if (!tap_ok(sa == 0 && sb == 0, "two snapshots of the workload guest (exit %d, %d)", sa, sb))
		tap_bail("no snapshot: %s", err);
	test_push_restore(a, cache);
	test_dedup(a, b);
	test_cache(cache);
	test_faults();
	test_credentials();
	test_fc_serve(a);
	s3t_stop();
	vmtest_rmtree(tmp);
	return tap_done();
}
