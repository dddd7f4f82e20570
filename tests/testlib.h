/* SPDX-License-Identifier: MIT */
/* Shared helpers for lazyvm's test programs: a known pattern, pattern files. */
#ifndef LAZYVM_TESTLIB_H
#define LAZYVM_TESTLIB_H

#include <errno.h>
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

#endif
