/* SPDX-License-Identifier: MIT */
/*
 * Thin, explicit wrappers over the userfaultfd uapi.  Every call returns 0 or
 * -errno.  Range operations (copy, zeropage, continue, poison, move) loop over
 * partial progress themselves and report how many bytes were done, so callers
 * see exactly one of: done == len and 0; -EEXIST at *done; -EAGAIN at *done
 * (an mm change is pending: read the events, then retry); another -errno.
 */
#ifndef LAZYVM_UFFD_H
#define LAZYVM_UFFD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/uapi-compat.h"

/* Features lazyvm asks for when it opens its own uffd (those the kernel has). */
#define UFFD_WANT_FEATURES (UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_UNMAP | \
			    UFFD_FEATURE_EVENT_REMAP | UFFD_FEATURE_MISSING_SHMEM | \
			    UFFD_FEATURE_MISSING_HUGETLBFS | UFFD_FEATURE_MINOR_SHMEM | \
			    UFFD_FEATURE_MINOR_HUGETLBFS | UFFD_FEATURE_PAGEFAULT_FLAG_WP | \
			    UFFD_FEATURE_WP_HUGETLBFS_SHMEM | UFFD_FEATURE_WP_UNPOPULATED | \
			    UFFD_FEATURE_POISON | UFFD_FEATURE_THREAD_ID)

/* Kernel-supported features (UFFDIO_API with features = 0); cached. */
int uffd_kernel_features(uint64_t *features);

/*
 * Open a uffd (O_CLOEXEC | O_NONBLOCK: a blocking uffd can hang in read()
 * after poll() reported a fault another reader took) and complete the API
 * handshake with want & what the kernel offers.  Returns the fd or -errno.
 */
int uffd_open(uint64_t want, uint64_t *got);

/* UFFDIO_REGISTER_MODE_* bits; *ioctls gets the allowed range ioctls. */
int uffd_register(int uffd, uint64_t addr, uint64_t len, uint64_t modes, uint64_t *ioctls);
int uffd_unregister(int uffd, uint64_t addr, uint64_t len);

int uffd_copy(int uffd, uint64_t dst, const void *src, uint64_t len, uint64_t mode,
	      uint64_t *done);
int uffd_zeropage(int uffd, uint64_t dst, uint64_t len, uint64_t mode, uint64_t *done);
int uffd_continue(int uffd, uint64_t dst, uint64_t len, uint64_t mode, uint64_t *done);
int uffd_poison(int uffd, uint64_t dst, uint64_t len, uint64_t mode, uint64_t *done);
int uffd_move(int uffd, uint64_t dst, uint64_t src, uint64_t len, uint64_t mode,
	      uint64_t *done);
int uffd_writeprotect(int uffd, uint64_t addr, uint64_t len, bool protect, bool wake);
int uffd_wake(int uffd, uint64_t addr, uint64_t len);

/* The features another process enabled on the uffd fd (its fdinfo "API:"
 * line: UFFDIO_API can be asked only once).  0 or -errno. */
int uffd_fd_features(int fd, uint64_t *features);

/* Is fd an open userfaultfd?  0, -EBADF (closed) or -EINVAL (something else). */
int uffd_check_fd(int fd);

/* Read up to max messages; returns the count (0: nothing pending) or -errno. */
int uffd_read_msgs(int uffd, struct uffd_msg *msgs, int max);

const char *uffd_event_name(uint8_t event);

#endif
