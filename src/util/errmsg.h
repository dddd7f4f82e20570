/* SPDX-License-Identifier: MIT */
/* One line of context for an error, for APIs that take (char *err, size_t errlen). */
#ifndef LAZYVM_ERRMSG_H
#define LAZYVM_ERRMSG_H

#include <stddef.h>

/* Format into err (when err and errlen are non-zero); returns ret, so a
 * caller can `return errmsg_set(err, errlen, -EINVAL, "...", ...);`. */
int errmsg_set(char *err, size_t errlen, int ret, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* At the public boundary: a call that fails leaves its one line of context
 * for lvm_last_error() in this thread (ret 0 clears it).  Returns ret. */
int errmsg_publish(int ret, const char *msg);

#endif
