/* SPDX-License-Identifier: MIT */
/* Shared helpers for lazyvm's test programs: a known pattern, pattern files. */
#ifndef LAZYVM_TESTLIB_H
#define LAZYVM_TESTLIB_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* The 8-byte word at byte offset off (8-aligned) of the test pattern. */
static inline uint64_t pattern_word(uint64_t off)
{
	uint64_t z = off + 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return (z ^ (z >> 31)) | 1;	/* never zero: zero pages stand out */
}

static inline void pattern_fill(void *buf, uint64_t off, size_t len)
{
	uint64_t *w = buf;
	for (size_t i = 0; i < len / 8; i++)
		w[i] = pattern_word(off + i * 8);
}

/* Offset of the first byte that differs from the pattern, or -1. */
static inline int64_t pattern_check(const void *buf, uint64_t off, size_t len)
{
	const uint64_t *w = buf;
	for (size_t i = 0; i < len / 8; i++)
		if (w[i] != pattern_word(off + i * 8))
			return (int64_t)(off + i * 8);
	return -1;
}

static inline int is_zero(const void *buf, size_t len)
{
	const uint64_t *w = buf;
	for (size_t i = 0; i < len / 8; i++)
		if (w[i])
			return 0;
	return 1;
}

/*
 * A memfd holding size bytes of pattern, reachable by path (for
 * lvm_source_file_open) as /proc/self/fd/N.  Returns the fd or -errno.
 */
static inline int pattern_file(uint64_t size, char *path, size_t pathlen)
{
	int fd = memfd_create("lazyvm-test-pattern", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, (off_t)size))
		return -errno;
	uint8_t *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	pattern_fill(p, 0, size);
	munmap(p, size);
	snprintf(path, pathlen, "/proc/self/fd/%d", fd);
	return fd;
}

/* xorshift64*: deterministic per-thread randomness for tests. */
static inline uint64_t test_rand(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dull;
}

/*
 * Serve `size` bytes of backing b in mode m from the file at path: memory,
 * source and a started engine.  0 or -errno (partial state is cleaned up by
 * test_unserve, which takes NULLs).
 */
#ifdef LAZYVM_H
static inline int test_serve(enum lvm_backing b, enum lvm_mode m, uint64_t size,
			     const char *path, const struct lvm_engine_opts *eo,
			     struct lvm_mem **mem, struct lvm_source **src,
			     struct lvm_engine **e)
{
	struct lvm_mem_opts mo = { .struct_size = sizeof(mo), .backing = b, .size = size, .kvm_vm_fd = -1 };
	*mem = NULL, *src = NULL, *e = NULL;
	int ret = lvm_mem_create(&mo, mem);
	if (!ret)
		ret = lvm_source_file_open(path, 0, src);
	if (!ret)
		ret = lvm_engine_create(eo, e);
	if (!ret)
		ret = lvm_engine_add_mem(*e, *mem, m, *src, 0);
	if (ret >= 0)
		ret = lvm_engine_start(*e);
	return ret < 0 ? ret : 0;
}

static inline void test_unserve(struct lvm_mem *mem, struct lvm_source *src,
				struct lvm_engine *e)
{
	lvm_engine_destroy(e);
	lvm_source_destroy(src);
	lvm_mem_destroy(mem);
}

/*
 * Backing x mode test tables, as the kernel's uffd-unit-tests.c
 * (uffd_tests[]: name, function, memory types, required feature): a row
 * runs for each backing in its mask; where the kernel lacks the row's mode
 * on a backing (lvm_probe), each of the row's results is "ok # SKIP" with
 * the probe's reason.
 */
#ifdef LAZYVM_TAP_H
#define TEST_BACKING(b) (1u << (b))
#define TEST_ALL_BACKINGS ((1u << LVM_BACKING__COUNT) - 1)

struct test_row {
	const char *name;
	void (*run)(enum lvm_backing b, enum lvm_mode m, const char *name);
	unsigned backings;	/* TEST_BACKING() bits */
	enum lvm_mode mode;	/* the feature the row needs */
	int results;		/* TAP results run() reports per backing */
};

static inline int test_table_plan(const struct test_row *t, size_t n)
{
	int plan = 0;
	for (size_t i = 0; i < n; i++)
		plan += __builtin_popcount(t[i].backings) * t[i].results;
	return plan;
}

static inline void test_table_run(const struct test_row *t, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		for (int b = 0; b < LVM_BACKING__COUNT; b++) {
			if (!(t[i].backings & TEST_BACKING(b)))
				continue;
			struct lvm_probe p = { .struct_size = sizeof(p) };
			lvm_probe((enum lvm_backing)b, t[i].mode, &p);
			for (int r = 0; p.err && r < t[i].results; r++)
				tap_skip(t[i].name, "%s x %s: %s", lvm_backing_name(b),
					 lvm_mode_name(t[i].mode), p.reason);
			if (!p.err)
				t[i].run((enum lvm_backing)b, t[i].mode, t[i].name);
		}
	}
}
#endif
#endif

#ifdef LAZYVM_HUGETLB_H
/*
 * Probe b x m and, for hugetlb, borrow enough huge pages for size bytes.
 * Prints the SKIP line and returns false when the test cannot run.
 */
static inline bool test_can_run(const char *name, enum lvm_backing b, enum lvm_mode m,
				uint64_t size, struct hugetlb_reservation *res)
{
	struct lvm_probe p = { .struct_size = sizeof(p) };
	lvm_probe(b, m, &p);
	if (p.err) {
		tap_skip(name, "probe: %s", p.reason);
		return false;
	}
	if (b == LVM_BACKING_HUGETLB && hugetlb_reserve((long)(size >> 21), res)) {
		tap_skip(name, "cannot reserve %llu huge pages", (unsigned long long)(size >> 21));
		return false;
	}
	return true;
}
#endif

#endif
