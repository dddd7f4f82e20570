/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stdio.h>

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
