/* SPDX-License-Identifier: MIT */
/*
 * The eager fallback for guest_memfd.  Where the kernel rejects
 * UFFDIO_REGISTER on guest_memfd (6.18 and every kernel without the series),
 * gmem memory is filled up front through its mapping (lvm_mem_write); this
 * checks that path byte for byte, on every kernel that can create an
 * mmap-able guest_memfd, so the fallback is tested rather than assumed:
 *
 *   - 16 MiB filled from a file (pattern with all-zero pages mixed in) reads
 *     back equal to the file;
 *   - the probe's verdict is reported, and on a kernel where it says "no" the
 *     guest_memfd is still usable eagerly (which is what lazyvm then does).
 */
#include <stdlib.h>
#include <sys/mman.h>

#include "gmem-test.h"
#include "testlib.h"

#define REGION (16ull << 20)
#define CHUNK (1ull << 20)
#define PAGE 4096ull

int main(void)
{
	const char *name = "gmem eager fill: 16 MiB from a file, content equals the file";
	char path[64];
	tap_plan(1);
	tap_watchdog(GMEM_TEST_WATCHDOG_S);

	struct lvm_probe pm = { .struct_size = sizeof(pm) }, pn = { .struct_size = sizeof(pn) };
	lvm_probe(LVM_BACKING_GMEM, LVM_MODE_MISSING, &pm);
	lvm_probe(LVM_BACKING_GMEM, LVM_MODE_MINOR, &pn);
	tap_diag("probe gmem x MISSING: %s; x MINOR: %s (%s)", pm.reason, pn.reason,
		 pm.err && pn.err ? "lazyvm fills gmem eagerly here" : "gmem can be lazy here");

	int fd = pattern_file(REGION, path, sizeof(path));
	if (fd < 0)
		tap_bail("cannot create the pattern file: %s", strerror(-fd));
	uint8_t *f = mmap(NULL, REGION, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (f == MAP_FAILED)
		tap_bail("mmap of the pattern file: %s", strerror(errno));
	for (uint64_t pg = 0; pg < REGION / PAGE; pg += 5)	/* some zero pages */
		memset(f + pg * PAGE, 0, PAGE);

	int vm = gmem_test_vm();
	if (vm < 0) {
		tap_skip(name, "no KVM VM: %s", strerror(-vm));
		return tap_done();
	}
	struct lvm_mem *mem = NULL;
	struct lvm_mem_opts mo = { .struct_size = sizeof(mo), .backing = LVM_BACKING_GMEM, .size = REGION, .kvm_vm_fd = vm };
	int ret = lvm_mem_create(&mo, &mem);
	if (ret) {
		tap_skip(name, "guest_memfd with MMAP|INIT_SHARED: %s", strerror(-ret));
		return tap_done();
	}
	struct lvm_source *src = NULL;
	ret = lvm_source_file_open(path, 0, &src);
	uint8_t *buf = malloc(CHUNK);
	uint64_t t0 = gmem_test_now_ns();
	for (uint64_t off = 0; !ret && off < REGION; off += CHUNK) {
		ret = lvm_source_read(src, off, buf, CHUNK);
		if (!ret)
			ret = lvm_mem_write(mem, off, buf, CHUNK);
	}
	uint64_t dt = gmem_test_now_ns() - t0;
	const uint8_t *m = lvm_mem_addr(mem);
	int64_t first_bad = -1;
	for (uint64_t i = 0; !ret && i < REGION && first_bad < 0; i += PAGE)
		if (memcmp(m + i, f + i, PAGE))
			first_bad = (int64_t)i;
	tap_ok(!ret && first_bad < 0, "%s", name);
	if (ret || first_bad >= 0)
		tap_diag("fill: %s; first differing page at offset %lld",
			 ret ? strerror(-ret) : "ok", (long long)first_bad);
	else
		tap_diag("eager fill: %.1f ms for 16 MiB (%.0f MiB/s)", dt / 1e6,
			 16.0 / (dt / 1e9));
	free(buf);
	lvm_source_destroy(src);
	lvm_mem_destroy(mem);
	munmap(f, REGION);
	close(vm);
	return tap_done();
}
