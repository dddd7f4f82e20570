/* SPDX-License-Identifier: MIT */
/*
 * The `dirty` guest (QEMU's post-copy anchor workload: a dirty set rewritten
 * at 4096 random pages/s and verified as it runs) migrated through the CLI
 * on 127.0.0.1 with 0, 2 and `auto` pre-copy rounds, and once with
 * --auth-psk on both sides.  Each time the RESULT of an uninterrupted run
 * (which equals the C model) is printed exactly once, both sides exit 0 and
 * the destination counted every unit of memory exactly once.
 *
 * Where the RESULT is printed depends on timing, and the test asserts what
 * is true in any: the guest runs STEPS milliseconds of its own clock, the
 * migration starts at 300 ms, and pre-copy takes what the machine takes (2
 * rounds of 64 MiB took 1.9 s under TSan).  A guest that finished during
 * pre-copy printed its RESULT at the source and the destination receives a
 * finished VM, which prints nothing; a guest that was switched over prints
 * it at the destination.  STEPS is scaled by $LAZYVM_WATCHDOG_SCALE
 * (sanitizer builds) so that the switch-over is the usual case, and the
 * last test fails if no migration at all moved a running guest.
 */
#include <sys/stat.h>

#include "tap.h"
#include "vmtest.h"

#define MEM (64ull << 20)
#define SEED 11
#define STEPS 1500	/* 1.5 s at one step per ms (times the scale); migration at 300 ms */

static char steps[24];

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
			       "--iterations", steps, "--vcpus", "2", NULL };
	children[1] = vmtest_spawn(tmp, "plain", args, -1);
	int st = vmtest_reap(&children[1]);
	static char out[4096];
	uint64_t got = 0;
	slurp("plain.out", out, sizeof(out));
	tap_diag("%.*s", (int)strcspn(out, "\n"), out);
	return !st && vmtest_result(out, &got) && got == want;
}

enum landed { FAILED, AT_DST, AT_SRC };

static enum landed migrate(const char *rounds, bool key, uint64_t want)
{
	int port = start_receiver(key);
	char addr[64];
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	const char *args[] = { "run", "--guest", "dirty", "--mem", "64M", "--seed", "11",
			       "--iterations", steps, "--vcpus", "2", "--migrate-to", addr,
			       "--migrate-after-ms", "300", "--precopy-rounds", rounds,
			       "--stats-json", path_in_tmp("src.json"),
			       key ? "--auth-psk" : NULL, keyfile, NULL };
	children[1] = vmtest_spawn(tmp, "src", args, -1);
	int src = vmtest_reap(&children[1]), dst = vmtest_reap(&children[0]);
	static char out[8192], err[4096], js[4096];
	uint64_t got = 0;
	slurp("dst.out", out, sizeof(out));
	bool at_dst = vmtest_result(out, &got), dst_ok = at_dst && got == want;
	tap_diag("dst: %.*s", (int)strcspn(out, "\n"), out);
	slurp("src.out", out, sizeof(out));
	bool at_src = vmtest_result(out, &got), src_ok = at_src && got == want;
	if (at_src)
		tap_diag("src (the guest finished before the switch-over): %.*s",
			 (int)strcspn(out, "\n"), out);
	slurp("dst.json", js, sizeof(js));
	long long total = vmtest_json_int(js, "pages_precopy") +
			  vmtest_json_int(js, "pages_postcopy_push") +
			  vmtest_json_int(js, "pages_postcopy_request");
	tap_diag("dst: rounds %lld, pages precopy %lld push %lld request %lld, downtime %lld ms, "
		 "blocktime %lld ms", vmtest_json_int(js, "precopy_rounds"),
		 vmtest_json_int(js, "pages_precopy"), vmtest_json_int(js, "pages_postcopy_push"),
		 vmtest_json_int(js, "pages_postcopy_request"), vmtest_json_int(js, "downtime_ms"),
		 vmtest_json_int(js, "blocktime_ms"));
	bool once = at_dst ? dst_ok && !at_src : src_ok;
	if (src || dst || !once) {
		slurp("src.err", err, sizeof(err));
		tap_diag("source exit %d: %s", src, err);
		slurp("dst.err", err, sizeof(err));
		tap_diag("destination exit %d: %s", dst, err);
	}
	if (src || dst || !once || total != (long long)(MEM / 4096))
		return FAILED;
	return at_dst ? AT_DST : AT_SRC;
}

int main(void)
{
	if (!vmtest_begin("migrate-dirty", 600, tmp, 6))
		return 0;
	snprintf(steps, sizeof(steps), "%lu", STEPS * tap_scale());
	uint64_t want = vmtest_model_dirty(MEM, SEED, strtoull(steps, NULL, 10), 0, 0);
	tap_diag("model RESULT %016llx", (unsigned long long)want);
	snprintf(keyfile, sizeof(keyfile), "%s/key", tmp);
	int fd = open(keyfile, O_CREAT | O_WRONLY | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, "a pre-shared key for the test run\n", 34) != 34)
		tap_bail("key file");
	close(fd);

	tap_ok(uninterrupted(want), "uninterrupted run: RESULT == model");
	static const struct { const char *rounds; bool key; const char *what; } runs[] = {
		{ "0", false, "0 pre-copy rounds" },
		{ "2", false, "2 pre-copy rounds" },
		{ "auto", false, "auto pre-copy rounds" },
		{ "auto", true, "--auth-psk both sides, auto rounds" },
	};
	static const char *const where[] = { "", "at the destination", "at the source" };
	int moved_running = 0;
	for (unsigned i = 0; i < sizeof(runs) / sizeof(runs[0]); i++) {
		enum landed l = migrate(runs[i].rounds, runs[i].key, want);
		moved_running += l == AT_DST;
		tap_ok(l != FAILED, "%s: RESULT == uninterrupted, once (%s), every unit arrived "
		       "once", runs[i].what, l == FAILED ? "missing, wrong or twice" : where[l]);
	}
	tap_ok(moved_running > 0, "%d of 4 migrations moved the guest while it ran (RESULT at "
	       "the destination)", moved_running);
	vmtest_rmtree(tmp);
	return tap_done();
}
