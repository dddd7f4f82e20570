/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lazyvm.h"

#include "util/errmsg.h"

int errmsg_set(char *err, size_t errlen, int ret, const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return ret;
}

/* The context of this thread's last failing call (lazyvm.h). */
static __thread char last_error[512];

const char *lvm_last_error(void)
{
	return last_error;
}

int errmsg_publish(int ret, const char *msg)
{
	snprintf(last_error, sizeof(last_error), "%s", ret ? msg : "");
	return ret;
}
