/* SPDX-License-Identifier: MIT */
/*
 * What fc-serve checks about a VMM's uffd before serving it.  fc-serve
 * answers MISSING faults with UFFDIO_COPY; a peer set up otherwise would
 * make it loop, so it is refused with the reason instead:
 *   - no UFFD_FEATURE_EVENT_REMOVE: a page the guest discards (balloon,
 *     MADV_DONTNEED) is never reported, its next fault finds the page
 *     "served" and is woken, and faults again, forever;
 *   - guest memory registered WP or MINOR as well: a WP or MINOR fault hits
 *     a page that exists, COPY answers EEXIST, the wake retries the access,
 *     forever.
 * The features come from the uffd's fdinfo (UFFDIO_API cannot be asked
 * twice), the registration from the VMM's smaps VmFlags ("uw", "ui").
 * Where smaps cannot be read (another user, a non-dumpable VMM) the engine
 * still catches such a fault and reports it instead of looping.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/uffd.h"
#include "fc/fc.h"

static bool overlaps(const struct fc_mapping *m, unsigned n, uint64_t lo, uint64_t hi)
{
	for (unsigned i = 0; i < n; i++)
		if (lo < m[i].base + m[i].size && m[i].base < hi)
			return true;
	return false;
}

/* VmFlags of the VMAs covering the mappings: "uw"/"ui" → the mode's name. */
static const char *peer_extra_mode(pid_t pid, const struct fc_mapping *m, unsigned n)
{
	char path[64], line[512];
	snprintf(path, sizeof(path), "/proc/%d/smaps", (int)pid);
	FILE *f = fopen(path, "re");
	const char *mode = NULL;
	bool in_guest = false;
	while (f && !mode && fgets(line, sizeof(line), f)) {
		uint64_t lo, hi;
		if (sscanf(line, "%" SCNx64 "-%" SCNx64 " ", &lo, &hi) == 2)
			in_guest = overlaps(m, n, lo, hi);
		else if (in_guest && !strncmp(line, "VmFlags:", 8))
			mode = strstr(line, " uw") ? "WP" : strstr(line, " ui") ? "MINOR" : NULL;
	}
	if (f)
		fclose(f);
	return mode;
}

int fc_peer_check(int uffd, pid_t pid, const struct fc_mapping *m, unsigned n, char *err,
		  size_t errlen)
{
	uint64_t features = 0;
	int ret = uffd_fd_features(uffd, &features);
	if (ret) {
		snprintf(err, errlen, "cannot read the uffd's features: %s", strerror(-ret));
		return ret;
	}
	if (!(features & UFFD_FEATURE_EVENT_REMOVE)) {
		snprintf(err, errlen, "the uffd lacks UFFD_FEATURE_EVENT_REMOVE (features 0x%llx): "
			 "a page the guest discards would fault forever",
			 (unsigned long long)features);
		return -EPROTO;
	}
	const char *mode = peer_extra_mode(pid, m, n);
	if (mode) {
		snprintf(err, errlen, "guest memory is registered %s as well as MISSING: "
			 "fc-serve serves MISSING faults only (UFFDIO_COPY would meet EEXIST "
			 "forever)", mode);
		return -EPROTO;
	}
	return 0;
}
