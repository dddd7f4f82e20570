/* SPDX-License-Identifier: MIT */
/*
 * Firecracker's handler message on the wire: receive it (JSON + exactly one
 * userfaultfd in SCM_RIGHTS), validate the mappings against the memory file,
 * check the peer's credentials; and send it (the VMM side).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/uffd.h"
#include "fc/fc.h"
#include "util/clock.h"
#include "util/errmsg.h"

#define MiB2 (2ull << 20)

static bool ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

static int fc_validate_one(const struct fc_mapping *m, unsigned i, uint64_t file_size,
			   char *err, size_t errlen)
{
	uint64_t ps = m->page_size;
	if (ps != 4096 && ps != MiB2)
		return errmsg_set(err, errlen, -EINVAL, "mapping %u: page size %llu is neither "
			      "4096 nor 2097152", i, (unsigned long long)ps);
	if (!m->size)
		return errmsg_set(err, errlen, -EINVAL, "mapping %u: size 0", i);
	if (m->base % ps || m->size % ps || m->offset % ps)
		return errmsg_set(err, errlen, -EINVAL, "mapping %u: base 0x%llx, size %llu or "
			      "offset %llu not a multiple of the %llu-byte page", i,
			      (unsigned long long)m->base, (unsigned long long)m->size,
			      (unsigned long long)m->offset, (unsigned long long)ps);
	if (m->base >= FC_MAX_ADDR || m->size > FC_MAX_ADDR - m->base)
		return errmsg_set(err, errlen, -EINVAL, "mapping %u: 0x%llx+%llu is not a user "
			      "address range", i, (unsigned long long)m->base,
			      (unsigned long long)m->size);
	if (m->offset > file_size || m->size > file_size - m->offset)
		return errmsg_set(err, errlen, -ERANGE, "mapping %u: file bytes %llu..%llu are "
			      "beyond the end of the memory file (%llu bytes)", i,
			      (unsigned long long)m->offset,
			      (unsigned long long)(m->offset + m->size),
			      (unsigned long long)file_size);
	return 0;
}

int fc_validate_mappings(const struct fc_mapping *m, unsigned n, uint64_t file_size,
			 char *err, size_t errlen)
{
	if (!n || n > FC_MAX_MAPPINGS)
		return errmsg_set(err, errlen, -EINVAL, "%u mappings (1..%d allowed)", n,
			      FC_MAX_MAPPINGS);
	for (unsigned i = 0; i < n; i++) {
		int ret = fc_validate_one(&m[i], i, file_size, err, errlen);
		if (ret)
			return ret;
		for (unsigned j = 0; j < i; j++) {
			if (ranges_overlap(m[i].base, m[i].size, m[j].base, m[j].size))
				return errmsg_set(err, errlen, -EEXIST, "mappings %u and %u overlap "
					      "in the VMM's address space", j, i);
			if (ranges_overlap(m[i].offset, m[i].size, m[j].offset, m[j].size))
				return errmsg_set(err, errlen, -EEXIST, "mappings %u and %u overlap "
					      "in the memory file", j, i);
		}
	}
	return 0;
}

/* Keep the first fd passed in msg, close every other; count them all. */
static void take_fds(struct msghdr *msg, int *fd, unsigned *nfds)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int f;
			memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (*fd < 0)
				*fd = f;
			else
				close(f);
			(*nfds)++;
		}
	}
}

/* One recvmsg: data appended to buf, fds collected.  Bytes read, 0 at EOF. */
static ssize_t recv_part(int sock, char *buf, size_t room, int *fd, unsigned *nfds,
			 bool *ctrunc)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * 8)];	/* room to see extra fds */
	} cm;
	struct iovec iov = { buf, room };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = cm.buf, .msg_controllen = sizeof(cm.buf) };
	ssize_t n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	if (n < 0)
		return -errno;
	take_fds(&msg, fd, nfds);
	if (msg.msg_flags & MSG_CTRUNC)
		*ctrunc = true;
	return n;
}

/* Read until the JSON parses (or cannot), the peer closes, or the deadline. */
static int recv_json(int sock, int timeout_ms, char *buf, struct fc_mapping *out,
		     unsigned max, int *fd, unsigned *nfds, bool *ctrunc, char *err,
		     size_t errlen)
{
	int64_t deadline = (int64_t)mono_now_ms() + timeout_ms;
	size_t have = 0;
	for (;;) {
		int64_t left = deadline - (int64_t)mono_now_ms();
		struct pollfd pfd = { sock, POLLIN, 0 };
		int pr = left > 0 ? poll(&pfd, 1, (int)left) : 0;
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr < 0)
			return errmsg_set(err, errlen, -errno, "poll: %s", strerror(errno));
		if (pr == 0)
			return errmsg_set(err, errlen, -ETIMEDOUT, "no complete message within %d ms "
				      "(%zu bytes received)", timeout_ms, have);
		ssize_t n = recv_part(sock, buf + have, FC_MAX_MSG - have, fd, nfds, ctrunc);
		if (n == -EAGAIN || n == -EINTR)
			continue;
		if (n < 0)
			return errmsg_set(err, errlen, (int)n, "recvmsg: %s", strerror((int)-n));
		if (n == 0)
			return errmsg_set(err, errlen, -ECONNRESET, "peer closed the connection %s",
				      have ? "in the middle of the message" : "without a message");
		have += (size_t)n;
		char perr[160];
		int ret = fc_parse_mappings(buf, have, out, max, perr, sizeof(perr));
		if (ret == -ENODATA && have < FC_MAX_MSG)
			continue;
		if (ret == -ENODATA)
			return errmsg_set(err, errlen, -EMSGSIZE, "message longer than %u bytes",
				      FC_MAX_MSG);
		if (ret < 0)
			return errmsg_set(err, errlen, ret, "bad JSON: %s", perr);
		return ret;
	}
}

int fc_recv_message(int sock, int timeout_ms, struct fc_mapping *out, unsigned max,
		    int *uffd, char *err, size_t errlen)
{
	char *buf = malloc(FC_MAX_MSG);
	int fd = -1;
	unsigned nfds = 0;
	bool ctrunc = false;
	if (!buf)
		return errmsg_set(err, errlen, -ENOMEM, "out of memory");
	int n = recv_json(sock, timeout_ms, buf, out, max, &fd, &nfds, &ctrunc, err, errlen);
	free(buf);
	if (n >= 0 && (ctrunc || nfds > 1))
		n = errmsg_set(err, errlen, -EBADMSG, "%s fds attached, expected exactly one "
			   "userfaultfd", ctrunc ? "too many" : nfds == 2 ? "two" : "several");
	else if (n >= 0 && nfds == 0)
		n = errmsg_set(err, errlen, -EBADMSG, "no userfaultfd attached to the message "
			   "(SCM_RIGHTS)");
	else if (n >= 0 && uffd_check_fd(fd))
		n = errmsg_set(err, errlen, -EBADMSG, "the attached fd is not a userfaultfd");
	if (n < 0) {
		if (fd >= 0)
			close(fd);
		return n;
	}
	*uffd = fd;
	return n;
}

int fc_send_message(int sock, const struct fc_mapping *m, unsigned n, int uffd)
{
	char *buf = malloc(FC_MAX_MSG);
	if (!buf)
		return -ENOMEM;
	int len = fc_format_mappings(m, n, buf, FC_MAX_MSG);
	int ret = len < 0 ? len : 0;
	for (size_t at = 0; !ret && at < (size_t)len; ) {
		union {
			struct cmsghdr align;
			char buf[CMSG_SPACE(sizeof(int))];
		} cm;
		struct iovec iov = { buf + at, (size_t)len - at };
		struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
		if (!at) {	/* the fd travels with the first byte */
			msg.msg_control = cm.buf;
			msg.msg_controllen = sizeof(cm.buf);
			struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(c), &uffd, sizeof(int));
		}
		ssize_t w = sendmsg(sock, &msg, MSG_NOSIGNAL);
		if (w < 0 && errno != EINTR)
			ret = -errno;
		else if (w > 0)
			at += (size_t)w;
	}
	free(buf);
	return ret;
}

int fc_check_peer(int sock, const uid_t *allowed, unsigned nallowed, uid_t *uid,
		  pid_t *pid)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cr, &len))
		return -errno;
	*uid = cr.uid;
	*pid = cr.pid;
	if (cr.uid == geteuid())
		return 0;
	for (unsigned i = 0; i < nallowed; i++)
		if (cr.uid == allowed[i])
			return 0;
	return -EPERM;
}
