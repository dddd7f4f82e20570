/* SPDX-License-Identifier: MIT */
/* lvm_version(): the library's version at run time. */
#include "lazyvm.h"

unsigned lvm_version(const char **version_str)
{
	if (version_str)
		*version_str = LAZYVM_VERSION;
	return LAZYVM_VERSION_NUMBER;
}
