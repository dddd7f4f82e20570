/* SPDX-License-Identifier: MIT */
/* userfaultfd: open, handshake, register, and the range ioctls. */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/uffd.h"

/*
 * /dev/userfaultfd first: it does not depend on vm.unprivileged_userfaultfd
 * and works inside seccomp profiles that block the syscall.  Then the syscall.
 */
static int uffd_open_raw(void)
{
	int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (dev >= 0) {
		int fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
		int err = errno;
		close(dev);
		if (fd >= 0)
			return fd;
		errno = err;
	}
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	return fd >= 0 ? fd : -errno;
}

static int uffd_api(int fd, uint64_t features, uint64_t *got)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };
	if (ioctl(fd, UFFDIO_API, &api))
		return -errno;
	if (got)
		*got = api.features;
	return 0;
}

int uffd_kernel_features(uint64_t *features)
{
	static _Atomic uint64_t cached;	/* bit 63 marks "known" */
	uint64_t c = atomic_load(&cached);
	if (!c) {
		int fd = uffd_open_raw();
		if (fd < 0)
			return fd;
		uint64_t f = 0;
		int ret = uffd_api(fd, 0, &f);
		close(fd);
		if (ret)
			return ret;
		c = f | (1ULL << 63);
		atomic_store(&cached, c);
	}
	*features = c & ~(1ULL << 63);
	return 0;
}

int uffd_open(uint64_t want, uint64_t *got)
{
	uint64_t have = 0;
	int ret = uffd_kernel_features(&have);
	if (ret)
		return ret;
	int fd = uffd_open_raw();
	if (fd < 0)
		return fd;
	/* The handshake fails if any requested feature is unknown: ask only for
	 * what this kernel has; callers check *got for what they need. */
	ret = uffd_api(fd, want & have, NULL);
	if (ret) {
		close(fd);
		return ret;
	}
	/* UFFDIO_API answers with every feature the kernel has, not the ones
	 * enabled: report what we asked for and got. */
	if (got)
		*got = want & have;
	return fd;
}

int uffd_register(int uffd, uint64_t addr, uint64_t len, uint64_t modes, uint64_t *ioctls)
{
	struct uffdio_register reg = { .range = { addr, len }, .mode = modes };
	if (ioctl(uffd, UFFDIO_REGISTER, &reg))
		return -errno;
	if (ioctls)
		*ioctls = reg.ioctls;
	return 0;
}

int uffd_unregister(int uffd, uint64_t addr, uint64_t len)
{
	struct uffdio_range r = { addr, len };
	return ioctl(uffd, UFFDIO_UNREGISTER, &r) ? -errno : 0;
}

/*
 * The range ioctls share one shape: a struct whose last field reports bytes
 * done (or -errno).  One loop handles partial progress for all of them: a
 * short count without error (signal, contention) is simply continued.
 */
enum range_op { OP_COPY, OP_ZEROPAGE, OP_CONTINUE, OP_POISON, OP_MOVE };

static int uffd_range_loop(int uffd, enum range_op op, uint64_t dst, uint64_t src,
			   uint64_t len, uint64_t mode, uint64_t *done_out)
{
	uint64_t done = 0;
	int ret = 0;

	while (done < len) {
		int64_t progress;
		int rc, err;

		switch (op) {
		case OP_COPY: {
			struct uffdio_copy a = { .dst = dst + done, .src = src + done,
						 .len = len - done, .mode = mode };
			rc = ioctl(uffd, UFFDIO_COPY, &a);
			err = errno;
			progress = a.copy;
			break;
		}
		case OP_ZEROPAGE: {
			struct uffdio_zeropage a = { .range = { dst + done, len - done },
						     .mode = mode };
			rc = ioctl(uffd, UFFDIO_ZEROPAGE, &a);
			err = errno;
			progress = a.zeropage;
			break;
		}
		case OP_CONTINUE: {
			struct uffdio_continue a = { .range = { dst + done, len - done },
						     .mode = mode };
			rc = ioctl(uffd, UFFDIO_CONTINUE, &a);
			err = errno;
			progress = a.mapped;
			break;
		}
		case OP_POISON: {
			struct uffdio_poison a = { .range = { dst + done, len - done },
						   .mode = mode };
			rc = ioctl(uffd, UFFDIO_POISON, &a);
			err = errno;
			progress = a.updated;
			break;
		}
		default: {
			struct uffdio_move a = { .dst = dst + done, .src = src + done,
						 .len = len - done, .mode = mode };
			rc = ioctl(uffd, UFFDIO_MOVE, &a);
			err = errno;
			progress = a.move;
			break;
		}
		}
		if (progress > 0)
			done += (uint64_t)progress;
		if (rc == 0) {
			if (progress <= 0) {	/* success without progress: be safe */
				ret = -EIO;
				break;
			}
			continue;
		}
		if (err == EAGAIN && progress > 0)
			continue;	/* partial: go on from where it stopped */
		ret = -err;
		break;
	}
	if (done_out)
		*done_out = done;
	return ret;
}

int uffd_copy(int uffd, uint64_t dst, const void *src, uint64_t len, uint64_t mode,
	      uint64_t *done)
{
	return uffd_range_loop(uffd, OP_COPY, dst, (uint64_t)(uintptr_t)src, len, mode, done);
}

int uffd_zeropage(int uffd, uint64_t dst, uint64_t len, uint64_t mode, uint64_t *done)
{
	return uffd_range_loop(uffd, OP_ZEROPAGE, dst, 0, len, mode, done);
}

int uffd_continue(int uffd, uint64_t dst, uint64_t len, uint64_t mode, uint64_t *done)
{
	return uffd_range_loop(uffd, OP_CONTINUE, dst, 0, len, mode, done);
}

int uffd_poison(int uffd, uint64_t dst, uint64_t len, uint64_t mode, uint64_t *done)
{
	return uffd_range_loop(uffd, OP_POISON, dst, 0, len, mode, done);
}

int uffd_move(int uffd, uint64_t dst, uint64_t src, uint64_t len, uint64_t mode,
	      uint64_t *done)
{
	return uffd_range_loop(uffd, OP_MOVE, dst, src, len, mode, done);
}

int uffd_writeprotect(int uffd, uint64_t addr, uint64_t len, bool protect, bool wake)
{
	/* The kernel rejects WP|DONTWAKE (nothing sleeps on a page being
	 * protected), so DONTWAKE only goes with an unprotect. */
	struct uffdio_writeprotect wp = {
		.range = { addr, len },
		.mode = protect ? UFFDIO_WRITEPROTECT_MODE_WP :
			(wake ? 0 : UFFDIO_WRITEPROTECT_MODE_DONTWAKE),
	};
	return ioctl(uffd, UFFDIO_WRITEPROTECT, &wp) ? -errno : 0;
}

int uffd_wake(int uffd, uint64_t addr, uint64_t len)
{
	struct uffdio_range r = { addr, len };
	return ioctl(uffd, UFFDIO_WAKE, &r) ? -errno : 0;
}

int uffd_read_msgs(int uffd, struct uffd_msg *msgs, int max)
{
	for (;;) {
		ssize_t n = read(uffd, msgs, sizeof(*msgs) * (size_t)max);
		if (n >= 0)
			return (int)(n / (ssize_t)sizeof(*msgs));
		if (errno == EINTR)
			continue;
		/* EAGAIN: another reader took it (or the wake path did). */
		return errno == EAGAIN ? 0 : -errno;
	}
}

const char *uffd_event_name(uint8_t event)
{
	switch (event) {
	case UFFD_EVENT_PAGEFAULT: return "PAGEFAULT";
	case UFFD_EVENT_FORK: return "FORK";
	case UFFD_EVENT_REMAP: return "REMAP";
	case UFFD_EVENT_REMOVE: return "REMOVE";
	case UFFD_EVENT_UNMAP: return "UNMAP";
	default: return "UNKNOWN";
	}
}

int uffd_check_fd(int fd)
{
	char path[64], target[64];
	if (fd < 0 || fcntl(fd, F_GETFD) < 0)
		return -EBADF;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		return -errno;
	target[n] = 0;
	return strcmp(target, "anon_inode:[userfaultfd]") ? -EINVAL : 0;
}

int uffd_fd_features(int fd, uint64_t *features)
{
	char path[64], line[128];
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	FILE *f = fopen(path, "re");
	if (!f)
		return -errno;
	int ret = -ENOTSUP;	/* no API line: not a uffd, or a kernel that hides it */
	unsigned long long api, feat;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "API:\t%llx:%llx:", &api, &feat) == 2) {
			*features = feat;
			ret = 0;
			break;
		}
	fclose(f);
	return ret;
}
