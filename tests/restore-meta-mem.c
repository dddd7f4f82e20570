/* SPDX-License-Identifier: MIT */
/*
 * A crafted snapshot's mem= line sizes nothing (issue 9, defect 5, restore
 * side).  Snapshots with a real 4 MiB VM state and memory but a metadata
 * line of mem=1 GiB and mem=1 TiB, restored on hugetlb: both refused as bad
 * data, naming the metadata, and the pool is what it was.  "Before the pool
 * is touched" is made an event: the test holds the pool's lock
 * (/run/lazyvm-hugetlb.lock, taken by every hugetlb_reserve), so a restore
 * that tried to reserve would block there; before the fix, mem=1 GiB did
 * (the watchdog ended it).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/file.h>
#include <string.h>

#include "snapshot/snapshot.h"
#include "tap.h"
#include "vmm/snapshot.h"
#include "vmm/vmm.h"

#define MEM (4u << 20)

static char base[64];

static long nr_hugepages(void)
{
	FILE *f = fopen("/proc/sys/vm/nr_hugepages", "r");
	long n = -1;
	if (f && fscanf(f, "%ld", &n) != 1)
		n = -1;
	if (f)
		fclose(f);
	return n;
}

static void write_crafted(const char *dir, const void *state, size_t len, uint64_t meta_mem)
{
	char meta[256];
	int n = snprintf(meta, sizeof(meta),
			 "guest=workload\nmem=%llu\nvcpus=1\nbacking=hugetlb\nseed=1\niterations=1\n",
			 (unsigned long long)meta_mem);
	static uint8_t mem[MEM];
	struct snap_writer *w;
	if (snapshot_writer_open(dir, NULL, &w) ||
	    snapshot_write_section(w, SNAP_SEC_META, meta, (size_t)n) ||
	    snapshot_write_section(w, SNAP_SEC_VM_STATE, state, len) ||
	    snapshot_mem_begin(w, MEM) || snapshot_write_memory(w, mem, MEM, NULL) ||
	    snapshot_writer_close(w))
		tap_bail("cannot write %s", dir);
}

static void check(const char *name, const void *state, size_t len, uint64_t meta_mem)
{
	char dir[128], err[512] = "";
	snprintf(dir, sizeof(dir), "%s/%s", base, name);
	write_crafted(dir, state, len, meta_mem);
	struct vm_restore_opts o = { .backing_set = true, .backing = LVM_BACKING_HUGETLB,
				     .serial_fd = -1 };
	struct vm_restore *rs = NULL;
	long before = nr_hugepages();
	int ret = vm_restore_open(dir, &o, &rs, err, sizeof(err));
	long after = nr_hugepages();
	tap_ok(ret == -EBADMSG && strstr(err, "metadata") && before == after,
	       "mem=%s in the metadata: refused as bad data before anything is sized by it", name);
	tap_diag("%s: \"%s\"; nr_hugepages %ld -> %ld", ret ? strerror(-ret) : "opened", err,
		 before, after);
	if (!ret)
		vm_restore_close(rs);
}

int main(void)
{
	tap_watchdog(60);
	tap_plan(2);
	snprintf(base, sizeof(base), "/tmp/lazyvm-metamem-XXXXXX");
	if (!mkdtemp(base))
		tap_bail("mkdtemp: %s", strerror(errno));
	struct vmm_opts vo = { .mem_size = MEM, .vcpus = 1, .backing = LVM_BACKING_ANON,
			       .serial_fd = -1 };
	struct vmm *vm;
	char err[256];
	void *state;
	size_t len;
	if (vmm_create(&vo, &vm, err, sizeof(err))) {
		tap_skip("mem=1GiB", "no VM: %s", err);
		tap_skip("mem=1TiB", "no VM: %s", err);
		return 0;
	}
	if (vmm_save_state(vm, &state, &len))
		tap_bail("vmm_save_state");
	vmm_destroy(vm);
	int lock = open("/run/lazyvm-hugetlb.lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (lock < 0 || flock(lock, LOCK_EX))
		tap_bail("hugetlb pool lock: %s", strerror(errno));
	check("1GiB", state, len, 1ull << 30);
	check("1TiB", state, len, 1ull << 40);
	close(lock);
	free(state);
	char cmd[96];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", base);
	if (system(cmd))
		tap_diag("cleanup of %s failed", base);
	return tap_done();
}
