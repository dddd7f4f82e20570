/* SPDX-License-Identifier: MIT */
/* 2 MiB hugetlb pool accounting through sysfs. */
#include <errno.h>
#include <stdio.h>

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

/* Free pages not yet promised: free_hugepages still counts the pages that
 * mappings made elsewhere reserved but have not faulted in (resv_hugepages),
 * and a new mapping cannot have those. */
long hugetlb_free_pages(void)
{
	long free_now = read_long(HP_DIR "free_hugepages");
	long resv = read_long(HP_DIR "resv_hugepages");
	if (free_now < 0 || resv < 0)
		return free_now < 0 ? free_now : resv;
	return free_now > resv ? free_now - resv : 0;
}

int hugetlb_reserve(long pages, struct hugetlb_reservation *r)
{
	long free_now = hugetlb_free_pages();
	if (free_now < 0)
		return (int)free_now;
	if (free_now >= pages)
		return 0;
	long nr = read_long(HP_DIR "nr_hugepages");
	if (nr < 0)
		return (int)nr;
	long want = pages - free_now;
	int ret = write_long(HP_DIR "nr_hugepages", nr + want);
	if (ret)
		return ret;
	/* Count what the kernel really added (it may find fewer pages). */
	long now = read_long(HP_DIR "nr_hugepages");
	r->added += now > nr ? now - nr : 0;
	/* The kernel grants what it can find contiguous; check, don't trust. */
	if (hugetlb_free_pages() < pages) {
		hugetlb_release(r);
		return -ENOMEM;
	}
	return 0;
}

void hugetlb_release(struct hugetlb_reservation *r)
{
	if (r->added > 0) {
		long nr = read_long(HP_DIR "nr_hugepages");
		if (nr >= 0)
			write_long(HP_DIR "nr_hugepages", nr > r->added ? nr - r->added : 0);
	}
	r->added = 0;
}
