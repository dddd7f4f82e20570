/* SPDX-License-Identifier: MIT */
/* The write-protect tracker's API is public: lvm_wp_* in lazyvm.h. */
#ifndef LAZYVM_WP_H
#define LAZYVM_WP_H

#include "lazyvm.h"

#endif
