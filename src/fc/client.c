/* SPDX-License-Identifier: MIT */
/*
 * The VMM side of Firecracker's handler protocol (lazyvm restore
 * --uffd-socket): exactly what Firecracker does on snapshot load with a
 * Uffd backend, so any Firecracker-compatible page server can serve
 * lazyvm's VMM.  One difference on purpose: a watcher notices the page
 * server going away and stops the VM (Firecracker leaves the vCPUs blocked
 * on faults nobody will ever serve).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/uffd.h"
#include "fc/fc.h"

struct fc_client {
	int sock, uffd, stop_efd;
	size_t page_size;
	pthread_t watcher;
	bool watching;
	void (*on_lost)(void *ctx, const char *msg);
	void *ctx;
};

/*
 * The page server is gone: nobody will ever serve the faults queued on the
 * uffd or raised from now on.  Poison each faulting page (the access fails:
 * SIGBUS, or -EFAULT out of KVM_RUN) so no thread stays blocked on it; a
 * vCPU stuck in a fault KVM takes in kernel mode (shadow page-table walk)
 * may not leave it for the abort signal alone.  Never zeros.
 */
static void fc_client_poison_faults(struct fc_client *c)
{
	fc_poison_faults_until(c->uffd, c->stop_efd, c->page_size);
}

void fc_poison_faults_until(int uffd, int stop_efd, size_t page_size)
{
	struct pollfd pfd[2] = { { uffd, POLLIN, 0 }, { stop_efd, POLLIN, 0 } };
	while (poll(pfd, 2, -1) >= 0 || errno == EINTR) {
		if (pfd[1].revents)
			return;
		struct uffd_msg m[16];
		int n = uffd_read_msgs(uffd, m, 16);
		for (int i = 0; i < n; i++) {
			if (m[i].event != UFFD_EVENT_PAGEFAULT)
				continue;
			uint64_t page = m[i].arg.pagefault.address & ~((uint64_t)page_size - 1);
			uint64_t done;
			uffd_poison(uffd, page, page_size, 0, &done);
		}
	}
}

static void *fc_client_watch(void *arg)
{
	struct fc_client *c = arg;
	struct pollfd pfd[2] = { { c->sock, POLLIN | POLLRDHUP, 0 }, { c->stop_efd, POLLIN, 0 } };
	for (;;) {
		if (poll(pfd, 2, -1) < 0 && errno == EINTR)
			continue;
		if (pfd[1].revents)
			return NULL;
		char junk[64];	/* a page server sends nothing; EOF means it is gone */
		if (pfd[0].revents && recv(c->sock, junk, sizeof(junk), MSG_DONTWAIT) > 0)
			continue;
		if (c->on_lost)
			c->on_lost(c->ctx, "the page server closed the uffd socket: guest "
				   "memory can no longer be served");
		fc_client_poison_faults(c);
		return NULL;
	}
}

int fc_connect_unix(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "socket path longer than %zu bytes", sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	memcpy(sa.sun_path, path, strlen(path));
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof(sa))) {
		int ret = -errno;
		snprintf(err, errlen, "connect %s: %s", path, strerror(errno));
		if (s >= 0)
			close(s);
		return ret;
	}
	return s;
}

/* Firecracker's sequence: uffd (EVENT_REMOVE, O_NONBLOCK|O_CLOEXEC), register
 * MISSING, connect, send mappings + uffd in one message. */
static int client_handshake(struct fc_client *c, const char *path, struct lvm_mem *mem,
			    char *err, size_t errlen)
{
	uint64_t base = (uint64_t)(uintptr_t)lvm_mem_addr(mem);
	struct fc_mapping m = { base, lvm_mem_size(mem), 0, lvm_mem_page_size(mem) };
	c->page_size = m.page_size;
	c->uffd = uffd_open(UFFD_FEATURE_EVENT_REMOVE, NULL);
	if (c->uffd < 0) {
		snprintf(err, errlen, "userfaultfd: %s", strerror(-c->uffd));
		return c->uffd;
	}
	int ret = uffd_register(c->uffd, base, m.size, UFFDIO_REGISTER_MODE_MISSING, NULL);
	if (ret) {
		snprintf(err, errlen, "UFFDIO_REGISTER (MISSING): %s", strerror(-ret));
		return ret;
	}
	c->sock = fc_connect_unix(path, err, errlen);
	if (c->sock < 0)
		return c->sock;
	ret = fc_send_message(c->sock, &m, 1, c->uffd);
	if (ret)
		snprintf(err, errlen, "sending the mappings to %s: %s", path, strerror(-ret));
	return ret;
}

int fc_client_connect(const char *socket_path, struct lvm_mem *mem,
		      void (*on_lost)(void *ctx, const char *msg), void *ctx,
		      struct fc_client **out, char *err, size_t errlen)
{
	enum lvm_backing b = lvm_mem_backing(mem);
	err[0] = 0;
	if (b != LVM_BACKING_ANON && b != LVM_BACKING_HUGETLB) {
		snprintf(err, errlen, "a uffd socket serves anon or hugetlb guest memory (as "
			 "Firecracker's), not %s", lvm_backing_name(b));
		return -EINVAL;
	}
	struct fc_client *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->sock = c->uffd = -1;
	c->on_lost = on_lost;
	c->ctx = ctx;
	c->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	int ret = c->stop_efd < 0 ? -errno : client_handshake(c, socket_path, mem, err, errlen);
	if (!ret) {
		ret = -pthread_create(&c->watcher, NULL, fc_client_watch, c);
		c->watching = !ret;
	}
	if (ret) {
		if (!err[0])
			snprintf(err, errlen, "%s", strerror(-ret));
		fc_client_close(c);
		return ret;
	}
	*out = c;
	return 0;
}

void fc_client_close(struct fc_client *c)
{
	if (!c)
		return;
	if (c->watching) {
		uint64_t one = 1;
		if (write(c->stop_efd, &one, sizeof(one)) < 0) {
			/* cannot fail for one write */
		}
		pthread_join(c->watcher, NULL);
	}
	if (c->sock >= 0)
		close(c->sock);
	/* Our copy of the uffd keeps faults pending (never zero-filled) until
	 * now; the VM has stopped touching memory by the time we are closed. */
	if (c->uffd >= 0)
		close(c->uffd);
	if (c->stop_efd >= 0)
		close(c->stop_efd);
	free(c);
}
