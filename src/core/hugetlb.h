/* SPDX-License-Identifier: MIT */
/* The 2 MiB hugetlb pool: check it up front, borrow pages, give them back. */
#ifndef LAZYVM_HUGETLB_H
#define LAZYVM_HUGETLB_H

#include <stdbool.h>

struct hugetlb_reservation {
	long added;	/* pages this reservation added to nr_hugepages */
};
#define HUGETLB_RESERVATION_INIT { 0 }

/* Free 2 MiB pages in the pool that no mapping has reserved, or -errno. */
long hugetlb_free_pages(void);
/* Borrow `pages` 2 MiB pages: raise nr_hugepages by that many (root); if the
 * kernel cannot, use unclaimed free pages already in the pool.  -ENOMEM when
 * neither gives `pages`, and without touching the pool when `pages` exceeds
 * both the memory available (MemAvailable) and the free pool. */
int hugetlb_reserve(long pages, struct hugetlb_reservation *r);
/* Take back the pages hugetlb_reserve added.  Relative, not a restore of
 * the old value: several processes (tests, restores) may borrow from the
 * pool at once, and one giving back must not shrink what another holds. */
void hugetlb_release(struct hugetlb_reservation *r);

#endif
