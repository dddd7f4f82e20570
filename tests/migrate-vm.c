/* SPDX-License-Identifier: MIT */
/*
 * Live migration of a running 2-vCPU workload guest through the CLI on
 * 127.0.0.1: `lazyvm run ... --migrate-to` on one side, `lazyvm
 * migrate-recv` on the other.  The destination must print the RESULT of an
 * uninterrupted run (the C model of the guest's algorithm), the source none
 * (its VM moved).  The guest fills all its memory first (--fill; migration
 * starts after that phase), so every migration moves real bytes.  0 and 2
 * pre-copy rounds, anon and memfd; a proxy that cuts the link after the 4th,
 * 24th and 64th PAGES message of post-copy (a test whose link was not cut
 * three times fails; recovered: same RESULT, reconnects >= 1); garbage, wrong-version and truncated messages to migrate-recv (clear
 * error, exit status, no crash).
 */
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "migrate/wire.h"
#include "tap.h"
#include "testproxy.h"
#include "vmtest.h"

#define MEM (64ull << 20)
#define SEED 7
#define ITERS "20000000"	/* ~1 s of guest work here; migration starts 100 ms after the fill */
#define FILL "64M"		/* every data page: 62 MiB of non-zero data to move */

static char tmp[] = "/tmp/lazyvm-migrate-vm.XXXXXX";
static pid_t children[2] = { -1, -1 };

static void slurp(const char *name, char *buf, size_t len)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", tmp, name);
	vmtest_slurp(path, buf, len);
}

/* migrate-recv listening on port 0; returns the port it got. */
/* A stray connection does not end migrate-recv: bad_stream waits for it to
 * give up on sources, naming the refused connection. */
static const char *accept_timeout = "300";

static int start_receiver(const char *backing, const char *stats, const char *recover)
{
	const char *args[] = { "migrate-recv", "--listen", "127.0.0.1:0", "--ready-fd", "3",
			       "--backing", backing, "--recover-timeout", recover, "--stats-json",
			       stats, "--accept-timeout", accept_timeout, NULL };
	return vmtest_spawn_listener(tmp, "dst", args, &children[0]);
}

struct outcome {
	int src_status, dst_status;
	bool dst_result_ok, src_no_result;
	long long reconnects, pages_total;
	int cuts;	/* cut points the proxy reached */
};

static void migrate_vm(const char *backing, const char *rounds, const uint64_t *cuts, int ncuts,
		       uint64_t want, struct outcome *r)
{
	char dstats[512], sstats[512], addr[64];
	snprintf(dstats, sizeof(dstats), "%s/dst.json", tmp);
	snprintf(sstats, sizeof(sstats), "%s/src.json", tmp);
	int port = start_receiver(backing, dstats, "30");
	struct proxy px;
	if (ncuts && proxy_start_postcopy(&px, port, cuts, ncuts))
		tap_bail("proxy");
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", ncuts ? px.port : port);
	const char *args[] = { "run", "--guest", "workload", "--mem", "64M", "--seed", "7",
			       "--iterations", ITERS, "--fill", FILL, "--vcpus", "2", "--backing", backing,
			       "--migrate-to", addr, "--migrate-after-ms", "100",
			       "--precopy-rounds", rounds, "--recover-timeout", "30",
			       "--stats-json", sstats, NULL };
	children[1] = vmtest_spawn(tmp, "src", args, -1);
	r->src_status = vmtest_reap(&children[1]);
	r->dst_status = vmtest_reap(&children[0]);
	r->cuts = 0;
	if (ncuts) {
		r->cuts = proxy_cuts_made(&px);
		proxy_stop(&px);
	}

	static char out[16384], err[4096], js[4096];
	uint64_t got = 0;
	slurp("dst.out", out, sizeof(out));
	r->dst_result_ok = vmtest_result(out, &got) && got == want;
	slurp("src.out", out, sizeof(out));
	r->src_no_result = !vmtest_result(out, &got);
	slurp("dst.json", js, sizeof(js));
	r->reconnects = vmtest_json_int(js, "reconnects");
	r->pages_total = vmtest_json_int(js, "pages_precopy") +
			 vmtest_json_int(js, "pages_postcopy_push") +
			 vmtest_json_int(js, "pages_postcopy_request");
	tap_diag("dst: total %lld ms, downtime %lld ms, rounds %lld, pages precopy %lld push %lld "
		 "request %lld, reconnects %lld", vmtest_json_int(js, "total_ms"),
		 vmtest_json_int(js, "downtime_ms"), vmtest_json_int(js, "precopy_rounds"),
		 vmtest_json_int(js, "pages_precopy"), vmtest_json_int(js, "pages_postcopy_push"),
		 vmtest_json_int(js, "pages_postcopy_request"), r->reconnects);
	if (r->src_status || r->dst_status || !r->dst_result_ok) {
		slurp("src.err", err, sizeof(err));
		tap_diag("source exit %d: %s", r->src_status, err);
		slurp("dst.err", err, sizeof(err));
		tap_diag("destination exit %d: %s", r->dst_status, err);
	}
}

static bool moved(const struct outcome *r)
{
	return !r->src_status && !r->dst_status && r->dst_result_ok && r->src_no_result &&
	       r->pages_total == (long long)(MEM / 4096);
}

/*
 * The link drops in post-copy and never comes back: both sides give up after
 * their --recover-timeout with a clear error; the destination stops the VM
 * (its missing pages are poisoned), it never prints a RESULT from partial
 * memory.
 */
static void lost_for_good(void)
{
	char stats[512], addr[64];
	snprintf(stats, sizeof(stats), "%s/dst.json", tmp);
	int port = start_receiver("anon", stats, "2");
	struct proxy px;
	uint64_t cut = 8;	/* the 8th PAGES message of post-copy */
	if (proxy_start_postcopy(&px, port, &cut, 1))
		tap_bail("proxy");
	atomic_store(&px.refuse_after_cut, true);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", px.port);
	const char *args[] = { "run", "--guest", "workload", "--mem", "64M", "--seed", "7",
			       "--iterations", ITERS, "--fill", FILL, "--vcpus", "2", "--migrate-to", addr,
			       "--migrate-after-ms", "100", "--recover-timeout", "2", NULL };
	children[1] = vmtest_spawn(tmp, "src", args, -1);
	int sst = vmtest_reap(&children[1]), dst = vmtest_reap(&children[0]);
	int cuts = proxy_cuts_made(&px);
	proxy_stop(&px);
	static char out[16384], serr[4096], derr[4096];
	uint64_t got;
	slurp("dst.out", out, sizeof(out));
	bool no_result = !vmtest_result(out, &got);
	slurp("src.err", serr, sizeof(serr));
	slurp("dst.err", derr, sizeof(derr));
	if (!tap_ok(cuts == 1 && sst == 1 && strstr(serr, "could not reconnect within 2 s") && dst > 0 &&
		    dst < 128 && strstr(derr, "did not come back") && no_result,
		    "link lost for good in post-copy: both sides give up with an error (exit %d, %d), "
		    "no RESULT from partial memory", sst, dst))
		tap_diag("source: %s; destination: %s", serr, derr);
}

/* A "destination" that hangs up at once: the VM must run on at the source. */
static void refused(uint64_t want)
{
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof(a);
	if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) || listen(lfd, 4) ||
	    getsockname(lfd, (struct sockaddr *)&a, &len))
		tap_bail("listen");
	char addr[64];
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", ntohs(a.sin_port));
	const char *args[] = { "run", "--guest", "workload", "--mem", "64M", "--seed", "7",
			       "--iterations", ITERS, "--fill", FILL, "--vcpus", "2", "--migrate-to", addr,
			       "--migrate-after-ms", "100", NULL };
	children[1] = vmtest_spawn(tmp, "src", args, -1);
	int c = accept(lfd, NULL, NULL);
	close(c);
	close(lfd);
	int st = vmtest_reap(&children[1]);
	static char out[16384], err[4096];
	uint64_t got = 0;
	slurp("src.out", out, sizeof(out));
	slurp("src.err", err, sizeof(err));
	bool result = vmtest_result(out, &got) && got == want;
	tap_ok(st == 1 && result && strstr(err, "keeps running here"),
	       "destination hangs up before the VM moved: it runs on at the source (RESULT == "
	       "model), exit %d", st);
}

/* Bytes at migrate-recv: an error naming the problem, a non-zero exit, no
 * signal. */
static void bad_stream(const char *name, const void *bytes, size_t len, const char *expect)
{
	char stats[512];
	snprintf(stats, sizeof(stats), "%s/bad.json", tmp);
	accept_timeout = "5";
	int port = start_receiver("anon", stats, "30");
	accept_timeout = "300";
	int fd = proxy_connect_upstream(port);
	if (fd < 0 || write(fd, bytes, len) != (ssize_t)len)
		tap_bail("connect/write");
	shutdown(fd, SHUT_WR);
	int st = vmtest_reap(&children[0]);
	close(fd);
	static char err[4096];
	slurp("dst.err", err, sizeof(err));
	char *nl = strchr(err, '\n');
	if (nl)
		*nl = 0;
	tap_ok(st > 0 && st < 128 && strstr(err, expect), "%s: exit %d, \"%s\"", name, st, err);
}

int main(void)
{
	tap_watchdog(400);
	if (access("/dev/kvm", R_OK | W_OK)) {
		tap_plan(1);
		tap_skip("migrate-vm", "/dev/kvm not usable");
		return 0;
	}
	if (!mkdtemp(tmp))
		tap_bail("mkdtemp");
	tap_plan(10);
	uint64_t want = vmtest_model_workload_fill(MEM, SEED, strtoull(ITERS, NULL, 10),
						   (MEM - GUEST_SYS_SIZE) / 4096);
	tap_diag("model RESULT %016llx", (unsigned long long)want);
	struct outcome r;

	migrate_vm("anon", "0", NULL, 0, want, &r);
	tap_ok(moved(&r), "anon, 0 pre-copy rounds: destination RESULT == model, none at the source");
	migrate_vm("anon", "2", NULL, 0, want, &r);
	tap_ok(moved(&r), "anon, 2 pre-copy rounds: destination RESULT == model");
	migrate_vm("memfd", "2", NULL, 0, want, &r);
	tap_ok(moved(&r), "memfd, 2 pre-copy rounds: destination RESULT == model");
	migrate_vm("memfd", "0", NULL, 0, want, &r);
	tap_ok(moved(&r), "memfd, 0 pre-copy rounds: destination RESULT == model");

	/* The push alone is 62 MiB / 256 KiB = 248 PAGES messages of data: every
	 * cut point is reached, on a slow machine or a fast one. */
	uint64_t cuts[] = { 4, 24, 64 };
	migrate_vm("anon", "0", cuts, 3, want, &r);
	tap_ok(moved(&r) && r.cuts == 3 && r.reconnects >= 1,
	       "link cut %d times of 3 in post-copy: recovered (%lld reconnects), RESULT == model",
	       r.cuts, r.reconnects);

	lost_for_good();
	refused(want);
	bad_stream("garbage", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27, "bad magic");
	struct mig_hdr v2 = { MIG_MAGIC, MIG_VERSION + 1, MIG_HELLO, sizeof(struct mig_hello), 0 };
	bad_stream("wrong version", &v2, sizeof(v2), "protocol version");
	struct mig_hdr h = { MIG_MAGIC, MIG_VERSION, MIG_HELLO, sizeof(struct mig_hello), 0 };
	bad_stream("truncated HELLO", &h, sizeof(h), "closed during the handshake");
	vmtest_rmtree(tmp);
	return tap_done();
}
