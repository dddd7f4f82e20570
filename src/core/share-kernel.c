/* SPDX-License-Identifier: MIT */
/*
 * Does this kernel share a page cache between private mappings?  Measured,
 * not assumed (docs/sharing.md): MINOR|MISSING on a MAP_PRIVATE memfd
 * mapping, UFFDIO_CONTINUE on a page the cache holds, then /proc/self/pagemap
 * says whether the mapped page is the file's (bit 61: file page or shared
 * anon) or a private copy, and a write must leave the cache unchanged.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/share.h"
#include "core/uffd.h"

#define PM_FILE (1ull << 61)
#define PM_PRESENT (1ull << 63)

static int pagemap_flags(const void *addr, uint64_t *out)
{
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	off_t at = (off_t)((uintptr_t)addr / 4096 * 8);
	ssize_t n = pread(fd, out, sizeof(*out), at);
	close(fd);
	return n == sizeof(*out) ? 0 : -EIO;
}

static int fail(struct lvm_probe *out, int err, const char *what)
{
	out->err = err;
	snprintf(out->reason, sizeof(out->reason), "%s%s%s", what, err ? ": " : "",
		 err ? strerrorname_np(-err) ? strerrorname_np(-err) : "?" : "");
	return err;
}

/* With the page CONTINUEd: shared on read, copied on write, cache intact. */
static int share_probe_mapped(volatile uint8_t *p, int fd, struct lvm_probe *out)
{
	uint64_t pm = 0;
	if (p[0] != 0x5a)
		return fail(out, -EIO, "UFFDIO_CONTINUE mapped other bytes than the cache's");
	if (pagemap_flags((const void *)p, &pm) || !(pm & PM_PRESENT))
		return fail(out, -EIO, "pagemap: the continued page is not mapped");
	if (!(pm & PM_FILE))
		return fail(out, -EOPNOTSUPP, "UFFDIO_CONTINUE on MAP_PRIVATE mapped a private copy");
	p[0] = 0xa5;
	uint8_t b = 0;
	if (pread(fd, &b, 1, 0) != 1 || b != 0x5a)
		return fail(out, -EOPNOTSUPP, "a write to the private mapping reached the cache");
	if (pagemap_flags((const void *)p, &pm) || (pm & PM_FILE))
		return fail(out, -EOPNOTSUPP, "a write did not copy the page");
	return 0;
}

static int share_probe_registered(int uffd, uint8_t *p, int fd, struct lvm_probe *out)
{
	uint64_t modes = UFFDIO_REGISTER_MODE_MINOR | UFFDIO_REGISTER_MODE_MISSING, done = 0;
	int ret = uffd_register(uffd, (uint64_t)(uintptr_t)p, 8192, modes, NULL);
	if (ret)
		return fail(out, ret, "UFFDIO_REGISTER MINOR|MISSING on MAP_PRIVATE memfd");
	/* No fault needed: CONTINUE installs a page the cache has on request. */
	ret = uffd_continue(uffd, (uint64_t)(uintptr_t)p, 4096, 0, &done);
	if (ret)
		return fail(out, ret, "UFFDIO_CONTINUE on MAP_PRIVATE memfd");
	ret = uffd_zeropage(uffd, (uint64_t)(uintptr_t)p + 4096, 4096, 0, &done);
	if (ret)
		return fail(out, ret, "UFFDIO_ZEROPAGE on MAP_PRIVATE memfd");
	return share_probe_mapped(p, fd, out);
}

int share_probe(struct lvm_probe *out)
{
	memset(out, 0, sizeof(*out));
	uint8_t page[4096];
	memset(page, 0x5a, sizeof(page));
	int fd = memfd_create("lazyvm-share-probe", MFD_CLOEXEC);
	if (fd < 0)
		return fail(out, -errno, "memfd_create");
	int ret = 0;
	uint8_t *p = MAP_FAILED;
	if (ftruncate(fd, 8192) || pwrite(fd, page, sizeof(page), 0) != sizeof(page))
		ret = fail(out, -errno, "memfd fill");
	if (!ret && (p = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0)) == MAP_FAILED)
		ret = fail(out, -errno, "mmap MAP_PRIVATE");
	uint64_t got = 0;
	int uffd = ret ? -1 : uffd_open(UFFD_WANT_FEATURES, &got);
	if (!ret && uffd < 0)
		ret = fail(out, uffd, "userfaultfd");
	if (!ret && !(got & UFFD_FEATURE_MINOR_SHMEM))
		ret = fail(out, -EOPNOTSUPP, "no UFFD_FEATURE_MINOR_SHMEM");
	if (!ret)
		ret = share_probe_registered(uffd, p, fd, out);
	if (!ret)
		snprintf(out->reason, sizeof(out->reason), "yes");
	if (uffd >= 0)
		close(uffd);
	if (p != MAP_FAILED)
		munmap(p, 8192);
	close(fd);
	return ret;
}
