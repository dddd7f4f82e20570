/* SPDX-License-Identifier: MIT */
/*
 * lazyvm fc-serve against a client doing what Firecracker does: two regions
 * of anonymous memory, then of hugetlb memory; every page read and compared
 * with the memory file; MADV_DONTNEED (a REMOVE event) on a range reads back
 * zeros; writes there stick.  Then a lazyvm snapshot memory file as
 * --mem-file, with --once: the server exits 0 when its VM goes away.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tap.h"
#include "lazyvm.h"
#include "core/hugetlb.h"
#include "snapshot/snapshot.h"
#include "testlib.h"
#include "fc-testlib.h"

#define FILE_SIZE (12u << 20)

static struct fct_paths paths;
static uint8_t *expect;		/* what the memory file holds */
static int vms_served;

/* Read every page, discard a range, read it back as zeros, write it. */
static void check_vm(const char *what, bool hugetlb)
{
	static const uint64_t sizes[2] = { 4u << 20, 6u << 20 };
	static const uint64_t offsets[2] = { 0, 4u << 20 };
	struct fct_vm vm;
	vms_served++;
	int ret = fct_vm_create(&vm, 2, sizes, offsets, hugetlb);
	if (!ret)
		ret = fct_vm_connect(&vm, paths.sock, NULL, "page_size", true);
	if (!tap_ok(!ret, "%s: two regions registered MISSING, message + uffd sent", what)) {
		tap_diag("setup: %s", strerror(-ret));
		for (int i = 0; i < 3; i++)
			tap_ok(0, "%s: not run", what);
		fct_vm_destroy(&vm);
		return;
	}
	tap_phase(hugetlb ? "hugetlb: reading every page" : "anon: reading every page");
	long bad0 = fct_vm_mismatch(&vm, 0, 0, vm.size[0], expect);
	long bad1 = fct_vm_mismatch(&vm, 1, 0, vm.size[1], expect);
	tap_ok(bad0 < 0 && bad1 < 0, "%s: every page of both regions equals the file "
	       "(first bad page: %ld / %ld)", what, bad0, bad1);

	/* The guest discards [2 MiB, 4 MiB) of region 1 (balloon). */
	uint64_t lo = 2u << 20, len = 2u << 20;
	tap_phase(hugetlb ? "hugetlb: MADV_DONTNEED and re-read" : "anon: MADV_DONTNEED and re-read");
	ret = madvise(vm.addr[1] + lo, len, MADV_DONTNEED);
	tap_ok(!ret && is_zero(vm.addr[1] + lo, len) &&
	       fct_vm_mismatch(&vm, 1, 0, lo, expect) < 0 &&
	       fct_vm_mismatch(&vm, 1, lo + len, vm.size[1], expect) < 0,
	       "%s: MADV_DONTNEED range reads back as zeros, the rest as the file", what);

	tap_phase(hugetlb ? "hugetlb: writing the discarded range" : "anon: writing the discarded range");
	for (uint64_t off = 0; off < len; off += 8)
		*(uint64_t *)(vm.addr[1] + lo + off) = ~pattern_word(off);
	bool same = true;
	for (uint64_t off = 0; off < len && same; off += 8)
		same = *(uint64_t *)(vm.addr[1] + lo + off) == ~pattern_word(off);
	tap_ok(same, "%s: the discarded range, written, reads back what was written", what);
	tap_phase("closing a VM");
	fct_vm_destroy(&vm);
}

static void check_hugetlb(void)
{
	struct hugetlb_reservation res = HUGETLB_RESERVATION_INIT;
	/* 5 pages of guest memory, plus one per engine thread: a hugetlb
	 * UFFDIO_COPY whose source page is not resident allocates a temporary
	 * huge page from the pool (mfill_atomic_hugetlb's retry path); the
	 * engine pre-faults its sources, the margin covers reclaim. */
	if (hugetlb_reserve(5 + 2, &res)) {
		for (int i = 0; i < 4; i++)
			tap_skip("hugetlb: fc-serve", "cannot reserve 7 huge pages of 2 MiB");
		return;
	}
	check_vm("hugetlb", true);
	hugetlb_release(&res);
}

static void check_snapshot_once(void)
{
	char snap_dir[160], snap_mem[192], log2[160];
	snprintf(snap_dir, sizeof(snap_dir), "%s/snap", paths.dir);
	snprintf(snap_mem, sizeof(snap_mem), "%s/memory", snap_dir);
	snprintf(log2, sizeof(log2), "%s/log-once", paths.dir);
	memset(expect + (1u << 20), 0, 256u << 10);	/* zero chunks are elided */
	struct snap_writer *w;
	int ret = snapshot_writer_open(snap_dir, NULL, &w);
	if (!ret)
		ret = snapshot_mem_begin(w, FILE_SIZE);
	if (!ret)
		ret = snapshot_write_memory(w, expect, FILE_SIZE, NULL);
	if (!ret)
		ret = snapshot_writer_close(w);
	if (ret)
		tap_bail("writing the snapshot: %s", strerror(-ret));

	const char *args[] = { "--socket", paths.sock, "--mem-file", snap_mem, "--once", NULL };
	tap_phase("snapshot memory file, --once");
	pid_t pid = fct_server_start(args, log2);
	if (!tap_ok(pid > 0, "snapshot memory file: fc-serve --once is listening"))
		return;
	static const uint64_t sizes[2] = { 2u << 20, 10u << 20 };
	static const uint64_t offsets[2] = { 0, 2u << 20 };
	struct fct_vm vm;
	ret = fct_vm_create(&vm, 2, sizes, offsets, false);
	if (!ret)
		ret = fct_vm_connect(&vm, paths.sock, NULL, "page_size", true);
	long bad0 = ret ? 0 : fct_vm_mismatch(&vm, 0, 0, vm.size[0], expect);
	long bad1 = ret ? 0 : fct_vm_mismatch(&vm, 1, 0, vm.size[1], expect);
	tap_ok(!ret && bad0 < 0 && bad1 < 0, "snapshot memory file: every page equals the "
	       "snapshot's memory, zero chunks included");
	fct_vm_destroy(&vm);	/* closes the socket: the VM is over */
	int st;
	bool exited = waitpid(pid, &st, 0) == pid && WIFEXITED(st) && !WEXITSTATUS(st);
	tap_ok(exited && fct_file_has(log2, "finished (peer closed the socket)"),
	       "--once: exits 0 by itself once its VM closed the socket");
	unlink(log2);
	unlink(snap_mem);
	snprintf(snap_mem, sizeof(snap_mem), "%s/state", snap_dir);
	unlink(snap_mem);
	rmdir(snap_dir);
}

int main(void)
{
	tap_watchdog(120);	/* a fault nobody serves would hang: fail instead */
	tap_plan(13);
	expect = fct_scratch("/tmp/lazyvm-fc-XXXXXX", FILE_SIZE, &paths);

	pid_t pid = fct_server_start_scratch(&paths);
	struct stat st = { 0 };
	int sret = stat(paths.sock, &st);
	tap_ok(!sret && S_ISSOCK(st.st_mode) && (st.st_mode & 0777) == 0600,
	       "the socket is created with mode 0600 (got %o)", st.st_mode & 0777);

	check_vm("anon", false);
	check_hugetlb();

	tap_phase("stopping the server");
	int status = fct_server_stop(pid);
	char served[32];
	snprintf(served, sizeof(served), "\"vms_served\":%d,", vms_served);
	tap_ok(status == 0 && fct_file_has(paths.stats, served),
	       "SIGTERM: exit 0 (got %d), --stats-json says %s", status, served);

	check_snapshot_once();

	unlink(paths.mem);
	unlink(paths.log);
	unlink(paths.stats);
	unlink(paths.sock);
	rmdir(paths.dir);
	free(expect);
	return tap_done();
}
