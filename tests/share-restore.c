/* SPDX-License-Identifier: MIT */
/*
 * restore --share: four VMs restored at once from one boot-like snapshot
 * through one shared page cache.  Each finishes with the RESULT the C model
 * gives; the cache's filled pages equal the snapshot's memory byte for byte
 * after the guests wrote theirs (a guest write never reaches the cache, so
 * never another VM, nor the snapshot, which still verifies); the guest
 * mappings' Pss, sampled while all four map the cache (--share-sync 4), sum
 * to at most one snapshot (the cache's filled pages) plus their private
 * pages plus 10%.  A VM killed while it fills the cache leaves it usable:
 * the next VM's RESULT is right.  A snapshot changed on disk gets a new
 * cache; the last VM out removes the cache (no linger).  Where the kernel
 * cannot share (forced with LAZYVM_SHARE_NO_MINOR) restore says so and still
 * gives the right RESULT.
 */
#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>

#include "core/share.h"
#include "tap.h"
#include "vmtest.h"
#include "vmm/vmm.h"

#define MEM (128ull << 20)
#define SEED 5
#define ITERS 20000	/* touches ~40% of the pages after the prefix */
#define NVMS 4

static char out[8192], err[8192];
/* On tmpfs: the shared caches live in it (MINOR needs shmem). */
static char tmp[] = "/dev/shm/lazyvm-share-restore.XXXXXX";
static char snap[600], image[600], cache_dir[600];
static uint64_t want;

static bool result_ok(const char *o, uint64_t *got)
{
	return vmtest_result(o, got) && *got == want;
}

/* The one cache file in dir (its path), and how many there are. */
static int cache_files(const char *dir, char *path, size_t len)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;
	while (d && (de = readdir(d))) {
		if (strncmp(de->d_name, "lazyvm-share-", 13))
			continue;
		if (path)
			snprintf(path, len, "%s/%s", dir, de->d_name);
		n++;
	}
	if (d)
		closedir(d);
	return n;
}

/* Pages marked filled in the cache file; mismatches against the image. */
static long cache_compare(const char *path, long *mismatch)
{
	int fd = open(path, O_RDONLY), img = open(image, O_RDONLY);
	long filled = 0;
	*mismatch = 0;
	static uint8_t a[4096], b[4096];
	for (uint64_t p = 0; fd >= 0 && img >= 0 && p < MEM / 4096; p++) {
		uint8_t mark = 0;
		if (pread(fd, &mark, 1, (off_t)(MEM + p)) != 1 || mark != SHARE_MARK_FILLED)
			continue;
		filled++;
		if (pread(fd, a, 4096, (off_t)(p * 4096)) != 4096 ||
		    pread(img, b, 4096, (off_t)(p * 4096)) != 4096 || memcmp(a, b, 4096))
			(*mismatch)++;
	}
	if (fd >= 0)
		close(fd);
	if (img >= 0)
		close(img);
	return filled;
}

static bool make_snapshot(void)
{
	const char *run[] = { "run", "--guest", "boot-like", "--mem", "128M", "--seed", "5",
			      "--iterations", "20000", "--vcpus", "2", "--snapshot", snap,
			      "--snapshot-after-ms", "60", NULL };
	int st = vmtest_exec(tmp, run, out, sizeof(out), err, sizeof(err));
	const char *unpack[] = { "snapshot", "unpack", snap, image, NULL };
	if (!st && !strstr(out, "RESULT"))
		st = vmtest_exec(tmp, unpack, out, sizeof(out), err, sizeof(err));
	else if (!st)
		st = -2;	/* the guest ended before the snapshot: nothing to test */
	if (!tap_ok(st == 0, "boot-like snapshot mid-run and its flat image (exit %d)", st)) {
		tap_diag("stderr: %s", err);
		return false;
	}
	return true;
}

struct vm_run {
	pid_t pid;
	char name[16], json[4096], o[4096];
};

static pid_t spawn_restore(struct vm_run *v, const char *dir, const char *sync)
{
	char stats[700];
	snprintf(stats, sizeof(stats), "%s/%s.json", tmp, v->name);
	/* With peers: the cache lingers so the test can compare it afterwards. */
	const char *args[] = { "restore", snap, "--share", "--share-dir", dir, "--stats-json", stats,
			       sync ? "--share-sync" : NULL, sync, "--share-linger", "600", NULL };
	return v->pid = vmtest_spawn(tmp, v->name, args, -1);
}

static int finish_restore(struct vm_run *v)
{
	char path[700];
	int st = vmtest_reap(&v->pid);
	snprintf(path, sizeof(path), "%s/%s.json", tmp, v->name);
	vmtest_slurp(path, v->json, sizeof(v->json));
	snprintf(path, sizeof(path), "%s/%s.out", tmp, v->name);
	vmtest_slurp(path, v->o, sizeof(v->o));
	return st;
}

/* Four at once; then the cache against the image and the Pss bound. */
static void test_four_vms(void)
{
	struct vm_run v[NVMS];
	for (int i = 0; i < NVMS; i++) {
		snprintf(v[i].name, sizeof(v[i].name), "vm%d", i);
		spawn_restore(&v[i], cache_dir, "4");
	}
	int good = 0;
	long long pss = 0, priv = 0, shared = 0, rollup = 0;
	for (int i = 0; i < NVMS; i++) {
		uint64_t got = 0;
		int st = finish_restore(&v[i]);
		bool ok = st == 0 && result_ok(v[i].o, &got);
		good += ok;
		if (!ok)
			tap_diag("vm%d: exit %d, RESULT %016llx", i, st, (unsigned long long)got);
		pss += vmtest_json_int(v[i].json, "guest_pss_kib");
		rollup += vmtest_json_int(v[i].json, "pss_kib");
		priv += vmtest_json_int(v[i].json, "private_pages");
		shared += vmtest_json_int(v[i].json, "shared_pages");
	}
	tap_ok(good == NVMS, "%d VMs restored with --share at once: %d print RESULT == model %016llx",
	       NVMS, good, (unsigned long long)want);

	char cache[700] = "";
	int n = cache_files(cache_dir, cache, sizeof(cache));
	long mismatch = 0, filled = n == 1 ? cache_compare(cache, &mismatch) : 0;
	tap_ok(n == 1 && filled > 0 && mismatch == 0,
	       "one cache (%d file); its %ld filled pages equal the snapshot's memory (%ld differ) "
	       "after every guest wrote its own", n, filled, mismatch);
	const char *verify[] = { "snapshot", "verify", snap, NULL };
	tap_ok(vmtest_exec(tmp, verify, out, sizeof(out), err, sizeof(err)) == 0,
	       "the snapshot still verifies");
	long long bound = (filled * 4 + priv * 4) * 11 / 10;
	tap_diag("guest Pss sum %lld KiB, process Pss sum %lld KiB; cache %ld KiB, private %lld "
		 "KiB, shared pages %lld", pss, rollup, filled * 4, priv * 4, shared);
	tap_ok(shared > 0 && pss > 0 && pss <= bound,
	       "Pss of %d VMs' memory %lld KiB <= (one snapshot %ld KiB + private %lld KiB) + 10%% "
	       "= %lld KiB", NVMS, pss, filled * 4, priv * 4, bound);
}

/* Poll the cache's marks: the kill must land while the VM fills it. */
static bool wait_first_fill(const char *dir, pid_t pid)
{
	char cache[700];
	for (;;) {
		long mismatch;
		if (cache_files(dir, cache, sizeof(cache)) == 1 && cache_compare(cache, &mismatch) > 0)
			return true;
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return false;
		struct timespec ts = { 0, 200 * 1000 };
		nanosleep(&ts, NULL);
	}
}

static void test_killed_vm(void)
{
	char dir[700];
	snprintf(dir, sizeof(dir), "%s/kill", tmp);
	mkdir(dir, 0700);
	struct vm_run v = { .name = "killed" }, next = { .name = "next" };
	spawn_restore(&v, dir, NULL);
	bool filling = wait_first_fill(dir, v.pid);
	kill(v.pid, SIGKILL);
	int st = finish_restore(&v);
	char cache[700];
	struct stat before = { 0 }, after = { 0 };
	tap_ok(filling && st == 128 + SIGKILL && cache_files(dir, cache, sizeof(cache)) == 1 &&
	       !stat(cache, &before), "a VM killed while it fills the cache leaves the cache");
	spawn_restore(&next, dir, NULL);
	st = finish_restore(&next);
	uint64_t got = 0;
	bool same = stat(cache, &after) || after.st_ino == before.st_ino;	/* gone: no linger */
	bool right = result_ok(next.o, &got);
	tap_ok(st == 0 && right && same,
	       "the next VM on that cache prints RESULT == model (exit %d, %016llx)", st,
	       (unsigned long long)got);
	tap_ok(cache_files(dir, NULL, 0) == 0, "the last VM out removed the cache (no linger)");
}

static void test_new_identity(void)
{
	char dir[700], mem[700];
	snprintf(dir, sizeof(dir), "%s/ident", tmp);
	snprintf(mem, sizeof(mem), "%s/memory", snap);
	mkdir(dir, 0700);
	const char *a[] = { "restore", snap, "--share", "--share-dir", dir, "--share-linger", "600",
			    NULL };
	int st1 = vmtest_exec(tmp, a, out, sizeof(out), err, sizeof(err));
	struct timespec t[2] = { { 0, UTIME_OMIT }, { time(NULL) + 5, 0 } };	/* "rewritten" */
	utimensat(AT_FDCWD, mem, t, 0);
	int st2 = vmtest_exec(tmp, a, out, sizeof(out), err, sizeof(err));
	uint64_t got = 0;
	bool right = result_ok(out, &got);
	tap_ok(st1 == 0 && st2 == 0 && right && cache_files(dir, NULL, 0) == 2,
	       "a snapshot changed on disk gets its own cache (%d caches; lingering one kept)",
	       cache_files(dir, NULL, 0));
}

static void test_fallback(void)
{
	char dir[700];
	snprintf(dir, sizeof(dir), "%s/fallback", tmp);
	mkdir(dir, 0700);
	setenv("LAZYVM_SHARE_NO_MINOR", "1", 1);
	const char *a[] = { "restore", snap, "--share", "--share-dir", dir, NULL };
	int st = vmtest_exec(tmp, a, out, sizeof(out), err, sizeof(err));
	unsetenv("LAZYVM_SHARE_NO_MINOR");
	uint64_t got = 0;
	tap_ok(st == 0 && result_ok(out, &got) && strstr(err, "does not share"),
	       "no true sharing: restore --share says so on stderr, copies, RESULT == model");
}

int main(void)
{
	if (!vmtest_begin("share-restore", 600, tmp, 10))
		return 0;
	snprintf(snap, sizeof(snap), "%s/snap", tmp);
	snprintf(image, sizeof(image), "%s/image", tmp);
	snprintf(cache_dir, sizeof(cache_dir), "%s/cache", tmp);
	mkdir(cache_dir, 0700);
	want = vmtest_model_bootlike(MEM, SEED, ITERS, VMM_BOOTLIKE_PREFIX);
	struct lvm_probe pr;
	if (share_probe(&pr)) {
		for (int i = 0; i < 10; i++)
			tap_skip("share", "no true sharing on this kernel: %s", pr.reason);
		vmtest_rmtree(tmp);
		return 0;
	}
	if (!make_snapshot()) {
		for (int i = 1; i < 10; i++)
			tap_skip("share", "no snapshot");
		vmtest_rmtree(tmp);
		return tap_done();
	}
	test_four_vms();
	test_killed_vm();
	test_new_identity();
	test_fallback();
	if (!getenv("SHARE_KEEP"))
		vmtest_rmtree(tmp);
	return tap_done();
}
