/* SPDX-License-Identifier: MIT */
/*
 * The VMM side of Firecracker's secret-free protocol (lazyvm restore
 * --uffd-socket --secret-free), sent exactly as Firecracker's
 * feature/secret-hiding branch sends it: a uffd (EVENT_REMOVE, non-blocking,
 * cloexec) registered MISSING|MINOR on the guest_memfd mapping; one message
 * with the mappings (gpa_start, is_guest_memfd) and [uffd, guest_memfd,
 * bitmap]; then `no_exitless_apf`.  A vCPU's userfault exit becomes a
 * FaultRequest{vcpu, 0, exit flags, Some(gpa)}; the vCPU waits for the
 * FaultReply naming it.  As for normal VMs, the page server closing the
 * socket stops the VM (faults still pending are poisoned, never zeros).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/uffd.h"
#include "fc/sf-client.h"

#define SF_MAX_VCPUS 64

struct fc_sf_client {
	int sock, uffd, stop_efd;
	pthread_t reader;
	bool reading;
	pthread_mutex_t lock;	/* replies, lost; send */
	pthread_cond_t cond;
	uint64_t sent[SF_MAX_VCPUS], replied[SF_MAX_VCPUS];
	bool lost;
	_Atomic uint64_t requests;
	void (*on_lost)(void *ctx, const char *msg);
	void *ctx;
};

static void sf_client_lost(struct fc_sf_client *c, const char *why)
{
	pthread_mutex_lock(&c->lock);
	c->lost = true;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	if (c->on_lost)
		c->on_lost(c->ctx, why);
	fc_poison_faults_until(c->uffd, c->stop_efd, 4096);
}

/* One FaultReply: wake the vCPU it names.  false: the reply is bad. */
static bool sf_client_reply(struct fc_sf_client *c, const uint8_t *p, size_t len)
{
	struct fc_fault_reply a;
	if (fc_decode_fault_reply(p, len, &a) || !a.has_vcpu || a.vcpu >= SF_MAX_VCPUS)
		return false;
	pthread_mutex_lock(&c->lock);
	bool ok = c->replied[a.vcpu] < c->sent[a.vcpu];
	if (ok)
		c->replied[a.vcpu]++;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	return ok;
}

static void *sf_client_read(void *arg)
{
	struct fc_sf_client *c = arg;
	uint8_t buf[FC_FRAME_MAX * 8];
	size_t have = 0;
	struct pollfd pfd[2] = { { c->sock, POLLIN | POLLRDHUP, 0 }, { c->stop_efd, POLLIN, 0 } };
	for (;;) {
		if (poll(pfd, 2, -1) < 0 && errno == EINTR)
			continue;
		if (pfd[1].revents)
			return NULL;
		ssize_t n = recv(c->sock, buf + have, sizeof(buf) - have, MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0)
			break;
		have += (size_t)n;
		size_t at = 0, plen;
		int f;
		while ((f = fc_frame_complete(buf + at, have - at, &plen)) > 0) {
			if (!sf_client_reply(c, buf + at + FC_FRAME_HDR, plen))
				goto bad;
			at += (size_t)f;
		}
		if (f < 0)
			goto bad;
		memmove(buf, buf + at, have - at);
		have -= at;
	}
	sf_client_lost(c, "the page server closed the uffd socket: guest memory can no "
		       "longer be served");
	return NULL;
bad:
	sf_client_lost(c, "the page server sent a malformed FaultReply: stopping the VM");
	return NULL;
}

int fc_sf_client_fault(struct fc_sf_client *c, unsigned vcpu, uint64_t gpa, uint64_t flags)
{
	if (vcpu >= SF_MAX_VCPUS)
		return -EINVAL;
	struct fc_fault_request q = { .vcpu = vcpu, .offset = 0, .flags = flags,
				      .has_gpa = true, .gpa = gpa };
	uint8_t frame[FC_FRAME_MAX];
	int n = fc_encode_fault_request(&q, frame, sizeof(frame));
	if (n < 0)
		return n;
	pthread_mutex_lock(&c->lock);
	uint64_t want = ++c->sent[vcpu];
	/* One frame in one send under the lock: frames never interleave. */
	ssize_t w = c->lost ? -1 : send(c->sock, frame, (size_t)n, MSG_NOSIGNAL);
	int ret = w == n ? 0 : -ECONNRESET;
	atomic_fetch_add(&c->requests, 1);
	while (!ret && c->replied[vcpu] < want && !c->lost)
		pthread_cond_wait(&c->cond, &c->lock);
	if (c->replied[vcpu] < want)
		ret = -ECONNRESET;
	pthread_mutex_unlock(&c->lock);
	return ret;
}

uint64_t fc_sf_client_requests(const struct fc_sf_client *c)
{
	return atomic_load(&c->requests);
}

static int sf_send_all(int sock, const void *buf, size_t len, int *fds, unsigned nfds)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * 3)];
	} cm;
	for (size_t at = 0; at < len; ) {
		struct iovec iov = { (char *)buf + at, len - at };
		struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
		if (!at && nfds) {	/* the fds travel with the first byte */
			msg.msg_control = cm.buf;
			msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
			struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
			memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
		}
		ssize_t w = sendmsg(sock, &msg, MSG_NOSIGNAL);
		if (w < 0 && errno != EINTR)
			return -errno;
		if (w > 0)
			at += (size_t)w;
	}
	return 0;
}

static int sf_handshake(struct fc_sf_client *c, const char *path, struct lvm_mem *mem,
			int bitmap_fd, char *err, size_t errlen)
{
	uint64_t base = (uint64_t)(uintptr_t)lvm_mem_addr(mem), size = lvm_mem_size(mem);
	struct fc_mapping m = { .base = base, .size = size, .offset = 0, .page_size = 4096,
				.gpa_start = 0, .has_gpa_start = true, .is_guest_memfd = true };
	c->uffd = uffd_open(UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_MINOR_SHMEM |
			    UFFD_FEATURE_MISSING_SHMEM | UFFD_FEATURE_POISON, NULL);
	if (c->uffd < 0)
		return errmsg_set(err, errlen, c->uffd, "userfaultfd: %s", strerror(-c->uffd));
	int ret = uffd_register(c->uffd, base, size, UFFDIO_REGISTER_MODE_MISSING |
				UFFDIO_REGISTER_MODE_MINOR, NULL);
	if (ret)
		return errmsg_set(err, errlen, ret, "UFFDIO_REGISTER (MISSING|MINOR) on the "
				  "guest_memfd mapping: %s", strerror(-ret));
	c->sock = fc_connect_unix(path, err, errlen);
	if (c->sock < 0)
		return c->sock;
	char json[512];
	int len = fc_format_mappings(&m, 1, json, sizeof(json));
	int fds[3] = { c->uffd, lvm_mem_fd(mem), bitmap_fd };
	ret = len < 0 ? len : sf_send_all(c->sock, json, (size_t)len, fds, 3);
	if (!ret)	/* Firecracker: no exitless async page faults offered */
		ret = sf_send_all(c->sock, "no_exitless_apf", 15, NULL, 0);
	if (ret)
		return errmsg_set(err, errlen, ret, "sending the handshake to %s: %s", path,
				  strerror(-ret));
	return 0;
}

int fc_sf_client_connect(const char *socket_path, struct lvm_mem *mem, int bitmap_fd,
			 void (*on_lost)(void *ctx, const char *msg), void *ctx,
			 struct fc_sf_client **out, char *err, size_t errlen)
{
	err[0] = 0;
	if (lvm_mem_backing(mem) != LVM_BACKING_GMEM || bitmap_fd < 0)
		return errmsg_set(err, errlen, -EINVAL, "a secret-free VM's memory is a "
				  "guest_memfd with a userfault bitmap");
	struct fc_sf_client *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->sock = c->uffd = -1;
	c->on_lost = on_lost;
	c->ctx = ctx;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	c->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	int ret = c->stop_efd < 0 ? -errno : sf_handshake(c, socket_path, mem, bitmap_fd, err,
							 errlen);
	if (!ret) {
		ret = -pthread_create(&c->reader, NULL, sf_client_read, c);
		c->reading = !ret;
	}
	if (ret) {
		if (!err[0])
			snprintf(err, errlen, "%s", strerror(-ret));
		fc_sf_client_close(c);
		return ret;
	}
	*out = c;
	return 0;
}

void fc_sf_client_cancel(struct fc_sf_client *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	c->lost = true;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

void fc_sf_client_close(struct fc_sf_client *c)
{
	if (!c)
		return;
	if (c->reading) {
		uint64_t one = 1;
		if (write(c->stop_efd, &one, sizeof(one)) < 0) {
			/* cannot fail for one write */
		}
		pthread_join(c->reader, NULL);
	}
	fc_sf_client_cancel(c);	/* a vCPU still waiting gives up */
	if (c->sock >= 0)
		close(c->sock);
	if (c->uffd >= 0)
		close(c->uffd);
	if (c->stop_efd >= 0)
		close(c->stop_efd);
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
	free(c);
}
