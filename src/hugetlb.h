/* SPDX-License-Identifier: MIT */
/* The 2 MiB hugetlb pool: check it up front, borrow pages, give them back. */
#ifndef LAZYVM_HUGETLB_H
#define LAZYVM_HUGETLB_H

#include <stdbool.h>

struct hugetlb_reservation {
	long old_nr;	/* nr_hugepages before we raised it; -1: untouched */
};
#define HUGETLB_RESERVATION_INIT { -1 }

/* Free 2 MiB pages in the pool, or -errno. */
long hugetlb_free_pages(void);
/* Make sure `pages` free 2 MiB pages exist, raising nr_hugepages if needed
 * (root).  -ENOMEM when the kernel could not find them. */
int hugetlb_reserve(long pages, struct hugetlb_reservation *r);
/* Restore nr_hugepages if hugetlb_reserve raised it. */
void hugetlb_release(struct hugetlb_reservation *r);

#endif
