/* SPDX-License-Identifier: MIT */
/*
 * The `dirty` guest (QEMU's post-copy anchor workload: a dirty set rewritten
 * at 4096 random pages/s and verified as it runs) migrated through the CLI
 * on 127.0.0.1 with 0, 2 and `auto` pre-copy rounds, and once with
 * --auth-psk on both sides.  Each time the destination prints the RESULT of
 * an uninterrupted run (which equals the C model), the source none, and the
 * destination counted every unit of memory exactly once.
 */
#include <sys/stat.h>

#include "tap.h"
#include "vmtest.h"

#define MEM (64ull << 20)
#define SEED 11
#define STEPS "1500"	/* 1.5 s at one step per ms; migration starts at 300 ms */

static char tmp[] = "/tmp/lazyvm-migrate-dirty.XXXXXX";
static pid_t children[2] = { -1, -1 };
static char keyfile[600];

static void slurp(const char *name, char *buf, size_t len)
{
	char path[600];
	snprintf(path, sizeof(path), "%s/%s", tmp, name);
	vmtest_slurp(path, buf, len);
}

static const char *path_in_tmp(const char *name)
{
	static char p[2][600];
	static int i;
	i ^= 1;
	snprintf(p[i], sizeof(p[i]), "%s/%s", tmp, name);
	return p[i];
}

/* migrate-recv on port 0 (with the key, if any); the port. */
static int start_receiver(bool key)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC))
		tap_bail("pipe");
	const char *args[] = { "migrate-recv", "--listen", "127.0.0.1:0", "--ready-fd", "3",
			       "--accept-timeout", "120", "--stats-json", path_in_tmp("dst.json"),
			       key ? "--auth-psk" : NULL, keyfile, NULL };
	children[0] = vmtest_spawn(tmp, "dst", args, p[1]);
	close(p[1]);
	char line[32] = "";
	ssize_t n = read(p[0], line, sizeof(line) - 1);
	close(p[0]);
	return n > 0 ? atoi(line) : 0;
}

static bool uninterrupted(uint64_t want)
{
	const char *args[] = { "run", "--guest", "dirty", "--mem", "64M", "--seed", "11",
			       "--iterations", STEPS, "--vcpus", "2", NULL };
	children[1] = vmtest_spawn(tmp, "plain", args, -1);
	int st = vmtest_reap(&children[1]);
	static char out[4096];
	uint64_t got = 0;
	slurp("plain.out", out, sizeof(out));
	tap_diag("%.*s", (int)strcspn(out, "\n"), out);
	return !st && vmtest_result(out, &got) && got == want;
}

static bool migrate(const char *rounds, bool key, uint64_t want)
{
	int port = start_receiver(key);
	char addr[64];
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	const char *args[] = { "run", "--guest", "dirty", "--mem", "64M", "--seed", "11",
			       "--iterations", STEPS, "--vcpus", "2", "--migrate-to", addr,
			       "--migrate-after-ms", "300", "--precopy-rounds", rounds,
			       "--stats-json", path_in_tmp("src.json"),
			       key ? "--auth-psk" : NULL, keyfile, NULL };
	children[1] = vmtest_spawn(tmp, "src", args, -1);
	int src = vmtest_reap(&children[1]), dst = vmtest_reap(&children[0]);
	static char out[8192], err[4096], js[4096];
	uint64_t got = 0;
	slurp("dst.out", out, sizeof(out));
	bool dst_ok = vmtest_result(out, &got) && got == want;
	tap_diag("dst: %.*s", (int)strcspn(out, "\n"), out);
	slurp("src.out", out, sizeof(out));
	bool src_none = !vmtest_result(out, &got);
	slurp("dst.json", js, sizeof(js));
	long long total = vmtest_json_int(js, "pages_precopy") +
			  vmtest_json_int(js, "pages_postcopy_push") +
			  vmtest_json_int(js, "pages_postcopy_request");
	tap_diag("dst: rounds %lld, pages precopy %lld push %lld request %lld, downtime %lld ms, "
		 "blocktime %lld ms", vmtest_json_int(js, "precopy_rounds"),
		 vmtest_json_int(js, "pages_precopy"), vmtest_json_int(js, "pages_postcopy_push"),
		 vmtest_json_int(js, "pages_postcopy_request"), vmtest_json_int(js, "downtime_ms"),
		 vmtest_json_int(js, "blocktime_ms"));
	if (src || dst || !dst_ok) {
		slurp("src.err", err, sizeof(err));
		tap_diag("source exit %d: %s", src, err);
		slurp("dst.err", err, sizeof(err));
		tap_diag("destination exit %d: %s", dst, err);
	}
	return !src && !dst && dst_ok && src_none && total == (long long)(MEM / 4096);
}

int main(void)
{
	if (!vmtest_begin("migrate-dirty", 600, tmp, 5))
		return 0;
	uint64_t want = vmtest_model_dirty(MEM, SEED, strtoull(STEPS, NULL, 10), 0, 0);
	tap_diag("model RESULT %016llx", (unsigned long long)want);
	snprintf(keyfile, sizeof(keyfile), "%s/key", tmp);
	int fd = open(keyfile, O_CREAT | O_WRONLY | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, "a pre-shared key for the test run\n", 34) != 34)
		tap_bail("key file");
	close(fd);

	tap_ok(uninterrupted(want), "uninterrupted run: RESULT == model");
	tap_ok(migrate("0", false, want), "0 pre-copy rounds: RESULT == uninterrupted, every "
	       "unit arrived once, no RESULT at the source");
	tap_ok(migrate("2", false, want), "2 pre-copy rounds: RESULT == uninterrupted, every "
	       "unit arrived once");
	tap_ok(migrate("auto", false, want), "auto pre-copy rounds: RESULT == uninterrupted, "
	       "every unit arrived once");
	tap_ok(migrate("auto", true, want), "--auth-psk both sides, auto rounds: RESULT == "
	       "uninterrupted, every unit arrived once");
	vmtest_rmtree(tmp);
	return tap_done();
}
