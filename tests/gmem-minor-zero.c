/* SPDX-License-Identifier: MIT */
/*
 * Regression: UFFDIO_CONTINUE on a guest_memfd page that was never written
 * exposes whatever the page frame held before (docs/guest-memfd.md:
 * ~950 non-zero bytes over 15 fallocate()d pages).  So in MINOR mode the
 * engine must write every page, zeros included, before it continues it.
 *
 *   - a source whose pages are partly all-zero: those read as zeros;
 *   - the same over a guest_memfd whose pages were fallocate()d (in the page
 *     cache, never written) after the test dirtied a lot of memory, so that
 *     a CONTINUE without a fill would most likely show stale bytes;
 *   - the zero source (LVM_SOURCE_ZERO) over fallocate()d pages: all zeros.
 *
 * First accesses alternate between reads and writes of one byte.  SKIPs
 * where gmem x MINOR is not served lazily.
 */
#include <stdlib.h>
#include <sys/mman.h>

#include "gmem-test.h"
#include "testlib.h"

#define REGION (4ull << 20)
#define PAGE 4096ull
#define DIRTY (256ull << 20)

static int vm_fd = -1;

/* Which source pages are all zero: every third, and a scattered few more. */
static bool zero_page(uint64_t pg)
{
	return pg % 3 == 1 || (pattern_word(pg * 977) & 0xf) == 0;
}

static int mixed_file(char *path, size_t len)
{
	int fd = pattern_file(REGION, path, len);
	if (fd < 0)
		return fd;
	uint8_t *p = mmap(NULL, REGION, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	for (uint64_t pg = 0; pg < REGION / PAGE; pg++)
		if (zero_page(pg))
			memset(p + pg * PAGE, 0, PAGE);
	munmap(p, REGION);
	return fd;
}

/* Leave freed page frames full of non-zero bytes for fallocate() to pick up. */
static void dirty_free_memory(void)
{
	uint8_t *p = mmap(NULL, DIRTY, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return;
	memset(p, 0xa5, DIRTY);
	munmap(p, DIRTY);
}

static void run(const char *name, bool falloc, bool zero_src, const char *path)
{
	if (!gmem_test_probe(LVM_MODE_MINOR, name))
		return;
	struct lvm_mem *mem = NULL;
	struct lvm_source *src = NULL;
	struct lvm_engine *e = NULL;
	struct lvm_mem_opts mo = { .struct_size = sizeof(mo), .backing = LVM_BACKING_GMEM, .size = REGION, .kvm_vm_fd = vm_fd };
	struct lvm_engine_opts eo;
	lvm_engine_opts_init(&eo);
	eo.threads = 1;
	if (falloc)
		dirty_free_memory();
	int ret = lvm_mem_create(&mo, &mem);
	/* guest_memfd's fallocate() takes only KEEP_SIZE (and PUNCH_HOLE). */
	if (!ret && falloc && fallocate(lvm_mem_fd(mem), FALLOC_FL_KEEP_SIZE, 0, (off_t)REGION))
		ret = -errno;
	if (!ret)
		ret = zero_src ? lvm_source_zero(REGION, &src) : lvm_source_file_open(path, 0, &src);
	if (!ret)
		ret = lvm_engine_create(&eo, &e);
	if (!ret)
		ret = lvm_engine_add_mem(e, mem, LVM_MODE_MINOR, src, 0);
	if (ret >= 0)
		ret = lvm_engine_start(e);
	if (ret < 0) {
		tap_ok(0, "%s (setup: %s)", name, strerror(-ret));
		goto out;
	}
	volatile uint8_t *p = lvm_mem_addr(mem);
	uint64_t npages = REGION / PAGE, bad_pages = 0, nonzero = 0, zeros = 0;
	for (uint64_t pg = 0; pg < npages; pg++) {
		volatile uint8_t *pp = p + pg * PAGE;
		bool written = pg & 1;
		if (written)	/* the first access is a write fault */
			pp[PAGE - 1] = 0x5a;
		else
			(void)pp[0];
		bool zero = zero_src || zero_page(pg);
		uint64_t nz = 0;
		if (zero) {
			zeros++;
			for (uint64_t i = 0; i < PAGE - written; i++)
				nz += pp[i] != 0;
			nonzero += nz;
		} else {
			nz = pattern_check((const void *)pp, pg * PAGE, PAGE - 8) >= 0;
		}
		if (nz || (written && pp[PAGE - 1] != 0x5a))
			bad_pages++;
	}
	struct lvm_stats s = { .struct_size = sizeof(s) };
	lvm_engine_stop(e);
	lvm_engine_stats(e, &s);
	tap_ok(!bad_pages && s.pages_demand == npages && !lvm_engine_error(e)[0], "%s", name);
	tap_diag("%llu zero pages, %llu non-zero bytes in them; %llu bad pages; faults %llu, "
		 "demand pages %llu of %llu%s%s", (unsigned long long)zeros,
		 (unsigned long long)nonzero, (unsigned long long)bad_pages,
		 (unsigned long long)s.faults, (unsigned long long)s.pages_demand,
		 (unsigned long long)npages, lvm_engine_error(e)[0] ? "; engine: " : "",
		 lvm_engine_error(e));
out:
	lvm_engine_destroy(e);
	lvm_source_destroy(src);
	lvm_mem_destroy(mem);
}

int main(void)
{
	char path[64];
	tap_plan(3);
	tap_watchdog(GMEM_TEST_WATCHDOG_S);
	vm_fd = gmem_test_vm();
	int fd = mixed_file(path, sizeof(path));
	if (fd < 0)
		tap_bail("cannot create the source file: %s", strerror(-fd));
	run("gmem x MINOR: all-zero source pages read as zeros", false, false, path);
	run("gmem x MINOR over fallocate()d, never-written pages: content equals the source",
	    true, false, path);
	run("gmem x MINOR, zero source over fallocate()d pages: every byte zero", true, true, path);
	return tap_done();
}
