/* SPDX-License-Identifier: MIT */
/* The 2 MiB hugetlb pool: check it up front, borrow pages, give them back. */
#ifndef LAZYVM_HUGETLB_H
#define LAZYVM_HUGETLB_H

#include <stdbool.h>

struct hugetlb_reservation {
	long added;	/* pages this reservation added to nr_hugepages */
};
#define HUGETLB_RESERVATION_INIT { 0 }

/* Free 2 MiB pages in the pool, or -errno. */
long hugetlb_free_pages(void);
/* Make sure `pages` free 2 MiB pages exist, raising nr_hugepages if needed
 * (root).  -ENOMEM when the pages beyond the free pool exceed the memory
 * available (MemAvailable; checked before touching the pool) or the kernel
 * could not find them. */
int hugetlb_reserve(long pages, struct hugetlb_reservation *r);
/* Take back the pages hugetlb_reserve added.  Relative, not a restore of
 * the old value: several processes (tests, restores) may borrow from the
 * pool at once, and one giving back must not shrink what another holds. */
void hugetlb_release(struct hugetlb_reservation *r);

#endif
