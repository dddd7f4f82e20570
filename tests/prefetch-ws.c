/* SPDX-License-Identifier: MIT */
/*
 * Working-set record, replay and learning (docs/prefetch.md), through the CLI
 * on boot-like snapshots (64 MiB, 2 vCPUs), counts only:
 * - `restore --record-ws` writes DIR/working-set (0600), RESULT unchanged;
 * - the replay (`restore`, default --prefetch ws) prints the uninterrupted
 *   RESULT, and every page the guest used came exactly once, from the
 *   prefetch or on demand (how many on demand depends on how far ahead of
 *   the vCPUs the prefetch got, which is timing: 24% under TSan, a few % on
 *   an idle host; it is printed, not asserted);
 * - a working set recorded under another seed (partly wrong) still gives the
 *   right RESULT; the restore learns the pages it missed (one page per
 *   fault, so every page outside the set is a demand fault), and the next
 *   restore has nothing left to learn;
 * - a corrupt, truncated or other-version working-set file: exit 2, a line
 *   naming the file, no guest instruction (no RESULT); --prefetch all does
 *   not read it;
 * - fc-serve on DIR/memory prefetches DIR/working-set for the VM it serves
 *   (restore --uffd-socket): the right RESULT, pages_prefetch > 0.
 * Replays use --no-background so that demand faults are the guest's alone.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fc-testlib.h"
#include "snapshot/format.h"
#include "snapshot/ws.h"
#include "tap.h"
#include "util/crc32c.h"
#include "vmm/vmm.h"
#include "vmtest.h"

#define MEM (64ull << 20)
#define ITER 2000

static char out[16384], err[8192], json[8192];
static char tmp[] = "/tmp/lazyvm-prefetch-ws.XXXXXX";
static char s1[600], s2[600], stats[600];

struct outcome {
	int status;
	uint64_t result;
	long long demand, faults, prefetched, ws_pages, misses;
	char mode[16];
};

static void json_str(const char *key, char *buf, size_t len)
{
	char pat[64];
	snprintf(pat, sizeof(pat), "\"%s\": \"", key);
	const char *p = strstr(json, pat);
	buf[0] = 0;
	if (p)
		sscanf(p + strlen(pat), "%15[^\"]", buf);
	(void)len;
}

/* lazyvm restore dir [a1 [a2 [a3 [a4]]]] --stats-json stats */
static struct outcome restore4(const char *dir, const char *a1, const char *a2, const char *a3,
			       const char *a4)
{
	const char *args[10] = { "restore", dir, "--stats-json", stats };
	const char *extra[] = { a1, a2, a3, a4 };
	int n = 4;
	for (int i = 0; i < 4 && extra[i]; i++)
		args[n++] = extra[i];
	args[n] = NULL;
	unlink(stats);
	struct outcome o = { 0 };
	o.status = vmtest_exec(tmp, args, out, sizeof(out), err, sizeof(err));
	if (!vmtest_result(out, &o.result))
		o.result = 0;
	vmtest_slurp(stats, json, sizeof(json));
	o.demand = vmtest_json_int(json, "pages_demand");
	o.faults = vmtest_json_int(json, "faults");
	o.prefetched = vmtest_json_int(json, "pages_prefetch");
	o.ws_pages = vmtest_json_int(json, "ws_pages");
	o.misses = vmtest_json_int(json, "ws_misses");
	json_str("prefetch", o.mode, sizeof(o.mode));
	if (o.status)
		tap_diag("restore %s %s %s: exit %d: %s", dir, a1 ? a1 : "", a2 ? a2 : "", o.status,
			 err);
	return o;
}

static struct outcome restore(const char *dir, const char *a1, const char *a2)
{
	return restore4(dir, a1, a2, NULL, NULL);
}

static int snapshot(const char *dir, const char *seed)
{
	const char *run[] = { "run", "--guest", "boot-like", "--mem", "64M", "--seed", seed,
			      "--iterations", "2000", "--snapshot", dir, "--snapshot-after-ms",
			      "0", NULL };
	return vmtest_exec(tmp, run, out, sizeof(out), err, sizeof(err));
}

static long long ws_file_pages(const char *dir)
{
	char path[700];
	snprintf(path, sizeof(path), "%s/%s", dir, WS_FILE_NAME);
	int fd = open(path, O_RDONLY);
	uint8_t h[WS_HDR_SIZE];
	long long pages = fd >= 0 && read(fd, h, sizeof(h)) == sizeof(h) ? (long long)snap_get64(h + 40) : -1;
	if (fd >= 0)
		close(fd);
	return pages;
}

static int copy_file(const char *from, const char *to)
{
	char cmd[1500];
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", from, to);
	return system(cmd);
}

static void test_record_replay(uint64_t want)
{
	/* One page per fault on both sides: a fault the guest takes while the
	 * prefetch is behind (a loaded host) then costs one page, not a
	 * fault-around block, and the comparison counts pages the guest touched. */
	struct outcome none = restore4(s1, "--prefetch", "none", "--fault-around", "4K");
	tap_ok(none.status == 0 && none.result == want && none.demand > 0,
	       "on-demand restore (--prefetch none): RESULT %016llx, %lld pages on demand",
	       (unsigned long long)none.result, none.demand);

	struct outcome rec = restore(s1, "--record-ws", NULL);
	char path[700];
	struct stat st;
	snprintf(path, sizeof(path), "%s/%s", s1, WS_FILE_NAME);
	if (stat(path, &st))
		st.st_mode = 0;
	tap_ok(rec.status == 0 && rec.result == want && (st.st_mode & 0777) == 0600 && rec.ws_pages > 0 && rec.ws_pages == ws_file_pages(s1),
	       "--record-ws: RESULT %016llx, %lld pages recorded, file mode %o",
	       (unsigned long long)rec.result, rec.ws_pages, (unsigned)(st.st_mode & 0777));

	struct outcome ws = restore4(s1, "--no-background", "--fault-around", "4K", NULL);
	tap_ok(ws.status == 0 && ws.result == want && !strcmp(ws.mode, "ws") &&
	       ws.prefetched > 0, "replay (default --prefetch ws): RESULT %016llx, %lld pages "
	       "prefetched, mode %s", (unsigned long long)ws.result, ws.prefetched, ws.mode);
	tap_ok(ws.demand >= 0 && ws.prefetched + ws.demand == none.demand &&
	       none.demand == rec.ws_pages, "replay: %lld pages prefetched + %lld on demand == the "
	       "%lld the guest uses (recorded: %lld), each brought once", ws.prefetched, ws.demand,
	       none.demand, rec.ws_pages);
}

static void test_other_seed_learning(uint64_t want)
{
	char from[700], to[700];
	struct outcome rec = restore(s2, "--record-ws", NULL);
	snprintf(from, sizeof(from), "%s/%s", s2, WS_FILE_NAME);
	snprintf(to, sizeof(to), "%s/%s", s1, WS_FILE_NAME);
	tap_ok(rec.status == 0 && !copy_file(from, to), "working set recorded under seed 4, "
	       "copied to the seed-3 snapshot (%lld pages)", rec.ws_pages);
	long long before = ws_file_pages(s1);
	struct outcome second = restore4(s1, "--no-background", "--fault-around", "4K", NULL);
	long long after = ws_file_pages(s1);
	tap_ok(second.status == 0 && second.result == want,
	       "partly wrong working set: RESULT %016llx (want %016llx), %lld pages missed",
	       (unsigned long long)second.result, (unsigned long long)want, second.misses);
	tap_ok(second.misses > 0 && after > before && after <= before + second.misses,
	       "learning: the working set grew from %lld to %lld pages", before, after);
	struct outcome third = restore4(s1, "--no-background", "--fault-around", "4K", NULL);
	long long last = ws_file_pages(s1);
	tap_ok(third.status == 0 && third.result == want && last == after,
	       "next restore: RESULT right, nothing left to learn (working set %lld pages, was "
	       "%lld; %lld faults, %lld pages on demand, previous %lld, %lld)", last, after,
	       third.faults, third.demand, second.faults, second.demand);
}

/* Write buf as DIR/working-set. */
static void put_ws(const char *dir, const uint8_t *buf, size_t len)
{
	char path[700];
	snprintf(path, sizeof(path), "%s/%s", dir, WS_FILE_NAME);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, buf, len) != (ssize_t)len)
		tap_bail("writing %s", path);
	close(fd);
}

static void expect_refused(const char *dir, const char *what)
{
	struct outcome o = restore(dir, NULL, NULL);
	tap_ok(o.status == 2 && strstr(err, WS_FILE_NAME) && !strstr(out, "RESULT"),
	       "%s working set: exit %d, no guest instruction: %.160s", what, o.status, err);
}

static void test_bad_files(uint64_t want)
{
	char path[700];
	snprintf(path, sizeof(path), "%s/%s", s1, WS_FILE_NAME);
	static uint8_t good[1 << 20], bad[1 << 20];
	int fd = open(path, O_RDONLY);
	ssize_t len = fd >= 0 ? read(fd, good, sizeof(good)) : -1;
	if (fd >= 0)
		close(fd);
	if (len <= WS_HDR_SIZE + WS_RUN_SIZE)
		tap_bail("no working set to corrupt (%zd bytes)", len);
	memcpy(bad, good, (size_t)len);
	bad[WS_HDR_SIZE + 3] ^= 0x40;	/* a run's page number */
	put_ws(s1, bad, (size_t)len);
	expect_refused(s1, "corrupt");
	put_ws(s1, good, (size_t)len - WS_RUN_SIZE / 2);
	expect_refused(s1, "truncated");
	memcpy(bad, good, (size_t)len);
	snap_put32(bad + 8, WS_VERSION + 1);
	snap_put32(bad + 60, crc32c(0, bad, 60));	/* a well-formed newer file */
	put_ws(s1, bad, (size_t)len);
	expect_refused(s1, "other-version");
	struct outcome all = restore(s1, "--prefetch", "all");
	tap_ok(all.status == 0 && all.result == want && !strcmp(all.mode, "all"),
	       "--prefetch all does not read the working set: RESULT %016llx",
	       (unsigned long long)all.result);
	put_ws(s1, good, (size_t)len);
}

static void test_fc_serve(uint64_t want)
{
	char sock[640], log_path[640], mem[640], fstats[640];
	snprintf(sock, sizeof(sock), "%s/fc.sock", tmp);
	snprintf(log_path, sizeof(log_path), "%s/fc.log", tmp);
	snprintf(mem, sizeof(mem), "%s/memory", s1);
	snprintf(fstats, sizeof(fstats), "%s/fc.json", tmp);
	const char *sargs[] = { "--socket", sock, "--mem-file", mem, "--once",
				"--stats-json", fstats, NULL };
	pid_t server = fct_server_start(sargs, log_path);
	struct outcome o = server > 0 ? restore(s1, "--uffd-socket", sock) : (struct outcome){ -1 };
	int st = -1;
	if (server > 0 && o.status)
		kill(server, SIGTERM);
	if (server > 0)
		waitpid(server, &st, 0);
	tap_ok(o.status == 0 && o.result == want && WIFEXITED(st) && !WEXITSTATUS(st) &&
	       fct_file_has(fstats, "\"vms_served\":1,") &&
	       !fct_file_has(fstats, "\"pages_prefetch\":0,") &&
	       fct_file_has(log_path, "working set prefetched"),
	       "fc-serve prefetches DIR/working-set: RESULT %016llx (want %016llx)",
	       (unsigned long long)o.result, (unsigned long long)want);
}

int main(void)
{
	if (!vmtest_begin("prefetch-ws", 600, tmp, 14))
		return 0;
	snprintf(s1, sizeof(s1), "%s/seed3", tmp);
	snprintf(s2, sizeof(s2), "%s/seed4", tmp);
	snprintf(stats, sizeof(stats), "%s/stats.json", tmp);
	int a = snapshot(s1, "3"), b = snapshot(s2, "4");
	if (!tap_ok(a == 0 && b == 0, "boot-like snapshots, seeds 3 and 4 (exit %d, %d)", a, b))
		tap_bail("no snapshot: %s", err);
	uint64_t want = vmtest_model_bootlike(MEM, 3, ITER, VMM_BOOTLIKE_PREFIX);
	test_record_replay(want);
	test_other_seed_learning(want);
	test_bad_files(want);
	test_fc_serve(want);
	vmtest_rmtree(tmp);
	return tap_done();
}
