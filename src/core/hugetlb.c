/* SPDX-License-Identifier: MIT */
/* 2 MiB hugetlb pool accounting through sysfs. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/file.h>
#include <unistd.h>

#include "core/hugetlb.h"

#define HP_DIR "/sys/kernel/mm/hugepages/hugepages-2048kB/"

static long read_long(const char *path)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return -errno;
	long v = -EIO;
	if (fscanf(f, "%ld", &v) != 1)
		v = -EIO;
	fclose(f);
	return v;
}

static int write_long(const char *path, long v)
{
	FILE *f = fopen(path, "we");
	if (!f)
		return -errno;
	int ret = fprintf(f, "%ld\n", v) < 0 ? -EIO : 0;
	if (fclose(f) && !ret)
		ret = -errno;
	return ret;
}

/* Free pages nobody has a claim on yet: free_hugepages still counts the
 * pages reserved by mappings that have not faulted them in (resv_hugepages),
 * and another process's mmap would fail if we counted those as ours. */
long hugetlb_free_pages(void)
{
	long free_now = read_long(HP_DIR "free_hugepages");
	long resv = read_long(HP_DIR "resv_hugepages");
	if (free_now < 0 || resv < 0)
		return free_now < 0 ? free_now : resv;
	return free_now > resv ? free_now - resv : 0;
}

/* nr_hugepages is read-modify-written by every process that borrows from the
 * pool; serialise that across processes so no one's increment is lost. */
static int pool_lock(void)
{
	int fd = open("/run/lazyvm-hugetlb.lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd >= 0 && flock(fd, LOCK_EX)) {
		close(fd);
		fd = -1;
	}
	return fd;	/* -1: run unlocked (no /run): the old best effort */
}

static void pool_unlock(int fd)
{
	if (fd >= 0)
		close(fd);
}

/*
 * Add `pages` to the pool rather than only the shortfall: several processes
 * (two test runs, restores) may be between their reserve and their mmap at
 * once, and each must bring its own pages or one of them finds none.  Only
 * when the kernel cannot grow the pool do we settle for unclaimed free pages
 * that were there already (a pool the administrator set up).
 */
/* MemAvailable in 2 MiB pages, or -errno. */
static long available_pages(void)
{
	FILE *f = fopen("/proc/meminfo", "re");
	if (!f)
		return -errno;
	char line[128];
	long kb = -EIO;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "MemAvailable: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb < 0 ? kb : kb / 2048;
}

int hugetlb_reserve(long pages, struct hugetlb_reservation *r)
{
	/* The size may come from a peer or a file: never ask the kernel for
	 * more than the memory available and the free pool together (it would
	 * take it from everything else: swap, OOM), before touching the pool. */
	long mem = available_pages(), pool = hugetlb_free_pages();
	if (pages < 0 || mem < 0 || pool < 0)
		return pages < 0 ? -EINVAL : mem < 0 ? (int)mem : (int)pool;
	if (pages > mem && pages > pool)
		return -ENOMEM;
	int lock = pool_lock();
	long nr = read_long(HP_DIR "nr_hugepages");
	int ret = nr < 0 ? (int)nr : write_long(HP_DIR "nr_hugepages", nr + pages);
	if (nr >= 0) {
		/* Count what the kernel really added (it may find fewer pages). */
		long now = read_long(HP_DIR "nr_hugepages");
		r->added += now > nr ? now - nr : 0;
	}
	long avail = hugetlb_free_pages();
	pool_unlock(lock);
	if (avail < 0)
		return (int)avail;
	if (avail < pages && r->added < pages) {
		hugetlb_release(r);
		return ret ? ret : -ENOMEM;
	}
	return 0;
}

void hugetlb_release(struct hugetlb_reservation *r)
{
	if (r->added > 0) {
		int lock = pool_lock();
		long nr = read_long(HP_DIR "nr_hugepages");
		if (nr >= 0)
			write_long(HP_DIR "nr_hugepages", nr > r->added ? nr - r->added : 0);
		pool_unlock(lock);
	}
	r->added = 0;
}
