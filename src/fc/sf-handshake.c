/* SPDX-License-Identifier: MIT */
/*
 * The secret-free handshake on the wire (secret-free.h): JSON + 3 fds in
 * one message, then the text message, possibly glued to the first frame or
 * split across reads.  Every fd is checked for what it claims to be.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "core/uffd.h"
#include "fc/secret-free.h"
#include "util/errmsg.h"

#ifndef F_GET_SEALS
#define F_GET_SEALS 1034
#endif

#define MAX_FDS_PER_READ 64

static int64_t ms_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The fds of one recvmsg, in order; *n of them, more than max closed. */
static void collect_fds(struct msghdr *msg, int *fds, unsigned max, unsigned *n)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int f;
			memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (*n < max)
				fds[*n] = f;
			else
				close(f);
			(*n)++;
		}
	}
}

/* recvmsg into buf; fds into fds[0..max), counted in *nfds.  Bytes or -errno. */
static ssize_t recv_some(int sock, void *buf, size_t room, int flags, int *fds, unsigned max,
			 unsigned *nfds, bool *ctrunc)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * MAX_FDS_PER_READ)];
	} cm;
	struct iovec iov = { buf, room };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = cm.buf, .msg_controllen = sizeof(cm.buf) };
	ssize_t n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT | flags);
	if (n < 0)
		return -errno;
	collect_fds(&msg, fds, max, nfds);
	if (msg.msg_flags & MSG_CTRUNC)
		*ctrunc = true;
	return n;
}

static int wait_readable(int sock, int64_t deadline)
{
	for (;;) {
		int64_t left = deadline - ms_now();
		struct pollfd pfd = { sock, POLLIN, 0 };
		int pr = left > 0 ? poll(&pfd, 1, (int)left) : 0;
		if (pr < 0 && errno == EINTR)
			continue;
		return pr < 0 ? -errno : pr == 0 ? -ETIMEDOUT : 0;
	}
}

int fc_peek_nfds(int sock, int timeout_ms)
{
	int ret = wait_readable(sock, ms_now() + timeout_ms);
	if (ret)
		return ret;
	int fds[MAX_FDS_PER_READ];
	unsigned n = 0;
	bool ctrunc = false;
	char byte;
	ssize_t r = recv_some(sock, &byte, 1, MSG_PEEK, fds, MAX_FDS_PER_READ, &n, &ctrunc);
	for (unsigned i = 0; i < n && i < MAX_FDS_PER_READ; i++)
		close(fds[i]);	/* peeked copies; the real read gets them again */
	if (r < 0)
		return (int)r;
	return ctrunc ? MAX_FDS_PER_READ + 1 : (int)n;
}

int fc_sf_json_end(const char *s, size_t len)
{
	size_t i = 0;
	unsigned depth = 0;
	bool in_str = false, esc = false;
	while (i < len && strchr(" \t\r\n", s[i]) && s[i])
		i++;
	if (i < len && s[i] != '[')
		return -EBADMSG;
	for (; i < len; i++) {
		char c = s[i];
		if (in_str) {
			if (esc)
				esc = false;
			else if (c == '\\')
				esc = true;
			else if (c == '"')
				in_str = false;
			continue;
		}
		if (c == '"')
			in_str = true;
		else if (c == '[' || c == '{')
			depth++;
		else if ((c == ']' || c == '}') && depth && --depth == 0)
			return i + 1 > FC_MAX_MSG ? -EBADMSG : (int)(i + 1);
	}
	return 0;
}

int fc_sf_parse_apf(const uint8_t *s, size_t len, unsigned apf_fds, unsigned *vcpus)
{
	static const char none[] = "no_exitless_apf", some[] = "exitless_apf:";
	size_t nl = sizeof(none) - 1, sl = sizeof(some) - 1;
	if (len && s[0] == 'n') {
		if (memcmp(s, none, len < nl ? len : nl))
			return -EBADMSG;
		if (len < nl)
			return 0;
		if (apf_fds)
			return -EBADMSG;	/* no_exitless_apf carries no fds */
		*vcpus = 0;
		return (int)nl;
	}
	if (memcmp(s, some, len < sl ? len : sl))
		return -EBADMSG;
	if (len <= sl)
		return 0;
	/* N must match the 3N fds that came with it (they travel with the
	 * message's first byte, so all of them are here): that also tells
	 * where N ends when a frame follows at once. */
	if (!apf_fds || apf_fds % 3 || apf_fds / 3 > FC_SF_MAX_APF_VCPUS)
		return -EBADMSG;
	unsigned want = apf_fds / 3, v = 0;
	size_t i = sl;
	while (i < len && s[i] >= '0' && s[i] <= '9' && v < want) {
		if (i == sl && s[i] == '0')
			return -EBADMSG;
		v = v * 10 + (unsigned)(s[i] - '0');
		i++;
	}
	if (i == sl)
		return -EBADMSG;
	if (v == want) {
		*vcpus = v;
		return (int)i;
	}
	return i == len ? 0 : -EBADMSG;	/* more digits may come */
}

static bool fd_link_is(int fd, const char *prefix)
{
	char path[64], link[128];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return false;
	link[n] = 0;
	return !strncmp(link, prefix, strlen(prefix));
}

/* guest_memfd: an anonymous inode "[kvm-gmem]" up to 6.x, an inode of its
 * own pseudo filesystem (GUEST_MEMFD_MAGIC "GMEM") since 6.17/7.x. */
#define GUEST_MEMFD_MAGIC 0x474d454d
static bool fd_is_guest_memfd(int fd)
{
	struct statfs sf;
	if (!fstatfs(fd, &sf) && (uint64_t)sf.f_type == GUEST_MEMFD_MAGIC)
		return true;
	return fd_link_is(fd, "anon_inode:[kvm-gmem]");
}

static int check_fds(struct fc_sf_handshake *h, char *err, size_t errlen)
{
	struct stat st;
	if (uffd_check_fd(h->uffd))
		return errmsg_set(err, errlen, -EBADMSG, "fd 1 of 3 is not a userfaultfd");
	if (!fd_is_guest_memfd(h->gmem_fd) || fstat(h->gmem_fd, &st))
		return errmsg_set(err, errlen, -EBADMSG, "fd 2 of 3 is not a guest_memfd");
	if ((uint64_t)st.st_size != h->gmem_size)
		return errmsg_set(err, errlen, -EBADMSG, "the guest_memfd is %lld bytes, the "
				  "regions %llu", (long long)st.st_size,
				  (unsigned long long)h->gmem_size);
	uint64_t want = h->gmem_size / 4096 / 8;
	if (!fd_link_is(h->bitmap_fd, "/memfd:") || fcntl(h->bitmap_fd, F_GET_SEALS) < 0 ||
	    fstat(h->bitmap_fd, &st))
		return errmsg_set(err, errlen, -EBADMSG, "fd 3 of 3 is not a memfd (the "
				  "userfault bitmap)");
	if ((uint64_t)st.st_size != want)
		return errmsg_set(err, errlen, -EBADMSG, "the userfault bitmap is %lld bytes, "
				  "expected %llu (guest memory / 4096 / 8)",
				  (long long)st.st_size, (unsigned long long)want);
	return 0;
}

/* Beyond fc_validate_mappings: what the guest_memfd layout requires. */
static int check_mappings(struct fc_sf_handshake *h, uint64_t file_size, char *err,
			  size_t errlen)
{
	int ret = fc_validate_mappings(h->m, h->n, file_size, err, errlen);
	if (ret)
		return ret;
	uint64_t at = 0;
	for (unsigned i = 0; i < h->n; i++) {
		const struct fc_mapping *m = &h->m[i];
		if (!m->is_guest_memfd || !m->has_gpa_start || m->page_size != 4096)
			return errmsg_set(err, errlen, -EINVAL, "mapping %u: a secret-free VM's "
					  "regions are guest_memfd, with gpa_start and 4 KiB "
					  "pages", i);
		if (m->offset != at)
			return errmsg_set(err, errlen, -EINVAL, "mapping %u: offset %llu, the "
					  "regions are consecutive in the guest_memfd (%llu)", i,
					  (unsigned long long)m->offset, (unsigned long long)at);
		if (m->gpa_start % 4096 || m->gpa_start + m->size < m->gpa_start)
			return errmsg_set(err, errlen, -EINVAL, "mapping %u: bad gpa_start", i);
		for (unsigned j = 0; j < i; j++)
			if (m->gpa_start < h->m[j].gpa_start + h->m[j].size &&
			    h->m[j].gpa_start < m->gpa_start + m->size)
				return errmsg_set(err, errlen, -EEXIST, "mappings %u and %u "
						  "overlap in guest physical memory", j, i);
		at += m->size;
	}
	/* One bit per page in u64 words that KVM reads whole. */
	if (at % (4096 * 64))
		return errmsg_set(err, errlen, -EINVAL, "guest memory of %llu bytes: a "
				  "secret-free VM's is a multiple of 256 KiB",
				  (unsigned long long)at);
	h->gmem_size = at;
	return 0;
}

struct sf_reader {
	int sock;
	int64_t deadline;
	char *buf;
	size_t have;
	int fds[FC_SF_NFDS];
	unsigned nfds, apf_fds;
	bool ctrunc;
};

/* One more read; fds go to the handshake (json phase) or are counted and
 * closed (the text message's exitless-APF fds). */
static int reader_more(struct sf_reader *r, bool json_phase, char *err, size_t errlen)
{
	int ret = wait_readable(r->sock, r->deadline);
	if (ret == -ETIMEDOUT)
		return errmsg_set(err, errlen, ret, "handshake incomplete after the timeout "
				  "(%zu bytes)", r->have);
	if (ret)
		return errmsg_set(err, errlen, ret, "poll: %s", strerror(-ret));
	int apf[MAX_FDS_PER_READ];
	unsigned napf = 0;
	ssize_t n = recv_some(r->sock, r->buf + r->have, FC_MAX_MSG - r->have, 0,
			      json_phase ? r->fds : apf, json_phase ? FC_SF_NFDS :
			      MAX_FDS_PER_READ, json_phase ? &r->nfds : &napf, &r->ctrunc);
	for (unsigned i = 0; i < napf && i < MAX_FDS_PER_READ; i++)
		close(apf[i]);	/* exitless APF is not served: closed at once */
	r->apf_fds += napf;
	if (n == -EAGAIN || n == -EINTR)
		return 0;
	if (n < 0)
		return errmsg_set(err, errlen, (int)n, "recvmsg: %s", strerror((int)-n));
	if (n == 0)
		return errmsg_set(err, errlen, -ECONNRESET, "peer closed the connection during "
				  "the handshake");
	r->have += (size_t)n;
	return 0;
}

static int recv_json(struct sf_reader *r, struct fc_sf_handshake *h, size_t *end, char *err,
		     size_t errlen)
{
	for (;;) {
		int e = fc_sf_json_end(r->buf, r->have);
		if (e < 0)
			return errmsg_set(err, errlen, -EBADMSG, "bad JSON: not an array");
		if (e > 0) {
			char perr[160];
			int n = fc_parse_mappings(r->buf, (size_t)e, h->m, FC_MAX_MAPPINGS, perr,
						  sizeof(perr));
			if (n < 0)
				return errmsg_set(err, errlen, n, "bad JSON: %s", perr);
			h->n = (unsigned)n;
			*end = (size_t)e;
			return 0;
		}
		if (r->have == FC_MAX_MSG)
			return errmsg_set(err, errlen, -EMSGSIZE, "message longer than %u bytes",
					  FC_MAX_MSG);
		int ret = reader_more(r, true, err, errlen);
		if (ret)
			return ret;
	}
}

static int recv_text(struct sf_reader *r, struct fc_sf_handshake *h, size_t at, char *err,
		     size_t errlen)
{
	for (;;) {
		int n = r->have > at ? fc_sf_parse_apf((uint8_t *)r->buf + at, r->have - at,
						       r->apf_fds, &h->apf_vcpus) : 0;
		if (n < 0)
			return errmsg_set(err, errlen, -EBADMSG, "bad text message after the "
					  "mappings (expected no_exitless_apf or exitless_apf:N "
					  "with 3N fds; %u fds came)", r->apf_fds);
		if (n > 0) {
			size_t rest = r->have - at - (size_t)n;
			if (rest > sizeof(h->rest))
				return errmsg_set(err, errlen, -EMSGSIZE, "%zu bytes of frames "
						  "before the first reply", rest);
			memcpy(h->rest, r->buf + at + n, rest);
			h->nrest = rest;
			return 0;
		}
		if (r->have == FC_MAX_MSG)
			return errmsg_set(err, errlen, -EMSGSIZE, "text message too long");
		int ret = reader_more(r, false, err, errlen);
		if (ret)
			return ret;
	}
}

static int recv_all(struct sf_reader *r, struct fc_sf_handshake *h, uint64_t file_size,
		    char *err, size_t errlen)
{
	size_t end = 0;
	int ret = recv_json(r, h, &end, err, errlen);
	if (!ret && (r->nfds != FC_SF_NFDS || r->ctrunc))
		ret = errmsg_set(err, errlen, -EBADMSG, "%u fds attached, a secret-free VM "
				 "sends 3 (uffd, guest_memfd, userfault bitmap)", r->nfds);
	if (ret)
		return ret;
	h->uffd = r->fds[0];
	h->gmem_fd = r->fds[1];
	h->bitmap_fd = r->fds[2];
	r->nfds = 0;	/* h owns them now */
	ret = check_mappings(h, file_size, err, errlen);
	if (!ret)
		ret = check_fds(h, err, errlen);
	if (!ret)
		ret = recv_text(r, h, end, err, errlen);
	return ret;
}

int fc_sf_recv_handshake(int sock, int timeout_ms, uint64_t file_size,
			 struct fc_sf_handshake *h, char *err, size_t errlen)
{
	memset(h, 0, sizeof(*h));
	h->uffd = h->gmem_fd = h->bitmap_fd = -1;
	struct sf_reader r = { .sock = sock, .deadline = ms_now() + timeout_ms };
	r.buf = malloc(FC_MAX_MSG);
	if (!r.buf)
		return errmsg_set(err, errlen, -ENOMEM, "out of memory");
	int ret = recv_all(&r, h, file_size, err, errlen);
	for (unsigned i = 0; i < r.nfds && i < FC_SF_NFDS; i++)
		close(r.fds[i]);
	free(r.buf);
	if (ret)
		fc_sf_handshake_close(h);
	return ret;
}

void fc_sf_handshake_close(struct fc_sf_handshake *h)
{
	int *fds[] = { &h->uffd, &h->gmem_fd, &h->bitmap_fd };
	for (unsigned i = 0; i < 3; i++)
		if (*fds[i] >= 0) {
			close(*fds[i]);
			*fds[i] = -1;
		}
}
