/* SPDX-License-Identifier: MIT */
/*
 * A secret-free "VMM" for tests (what Firecracker's feature/secret-hiding
 * branch sends fc-serve): a guest_memfd (MMAP|INIT_SHARED, and WRITE where
 * the kernel has it) mapped shared, a userfault bitmap memfd (all bits set),
 * a uffd registered MISSING|MINOR on the mapping where the kernel allows
 * it; the 3-fd handshake, the text message, FaultRequest / FaultReply.
 */
#ifndef LAZYVM_SF_TESTLIB_H
#define LAZYVM_SF_TESTLIB_H

#include <linux/kvm.h>
#include <stdatomic.h>

#include "core/uapi-compat.h"
#include "core/uffd.h"
#include "fc/bitcode.h"
#include "fc-testlib.h"

struct sft_vm {
	int vm_fd, gmem, bitmap, uffd, sock;
	uint8_t *mem;
	_Atomic uint64_t *bits;
	uint64_t size;
	bool registered;	/* uffd MISSING|MINOR on mem (gmem uffd kernels) */
};

/* 0, or -errno (no KVM / guest_memfd here). */
static inline int sft_vm_create(struct sft_vm *v, uint64_t size)
{
	memset(v, 0, sizeof(*v));
	v->vm_fd = v->gmem = v->bitmap = v->uffd = v->sock = -1;
	v->size = size;
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		return -errno;
	v->vm_fd = ioctl(kvm, KVM_CREATE_VM, 0);
	close(kvm);
	if (v->vm_fd < 0)
		return -errno;
	int caps = ioctl(v->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD_FLAGS);
	struct kvm_create_guest_memfd g = { .size = size,
		.flags = GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED };
	if (caps > 0 && (caps & LVM_GUEST_MEMFD_FLAG_WRITE))
		g.flags |= LVM_GUEST_MEMFD_FLAG_WRITE;
	v->gmem = ioctl(v->vm_fd, KVM_CREATE_GUEST_MEMFD, &g);
	if (v->gmem < 0)
		return -errno;
	v->mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, v->gmem, 0);
	if (v->mem == MAP_FAILED) {
		v->mem = NULL;
		return -errno;
	}
	v->bitmap = memfd_create("sft-bitmap", MFD_CLOEXEC);
	if (v->bitmap < 0 || ftruncate(v->bitmap, (off_t)(size / 4096 / 8)))
		return -errno;
	v->bits = mmap(NULL, size / 4096 / 8, PROT_READ | PROT_WRITE, MAP_SHARED, v->bitmap, 0);
	if (v->bits == MAP_FAILED) {
		v->bits = NULL;
		return -errno;
	}
	memset((void *)v->bits, 0xff, size / 4096 / 8);
	v->uffd = uffd_open(UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_MINOR_SHMEM |
			    UFFD_FEATURE_MISSING_SHMEM, NULL);
	if (v->uffd < 0)
		return v->uffd;
	v->registered = !uffd_register(v->uffd, (uint64_t)(uintptr_t)v->mem, size,
				       UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_MINOR,
				       NULL);
	return 0;
}

static inline bool sft_bit(const struct sft_vm *v, uint64_t page)
{
	return atomic_load(&v->bits[page / 64]) >> (page % 64) & 1;
}

/* One sendmsg of len bytes with fds[0..nfds). */
static inline int sft_sendmsg(int sock, const void *buf, size_t len, const int *fds,
			      unsigned nfds)
{
	union { struct cmsghdr a; char b[CMSG_SPACE(sizeof(int) * 8)]; } cm;
	struct iovec iov = { (void *)buf, len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (nfds) {
		mh.msg_control = cm.b;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	return sendmsg(sock, &mh, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -errno;
}

/* The mappings JSON as Firecracker's secret-hiding branch writes it. */
static inline void sft_json(const struct sft_vm *v, char *buf, size_t len)
{
	snprintf(buf, len, "[{\"base_host_virt_addr\":%llu,\"size\":%llu,\"offset\":0,"
		 "\"gpa_start\":0,\"page_size\":4096,\"is_guest_memfd\":true,"
		 "\"page_size_kib\":4096}]", (unsigned long long)(uintptr_t)v->mem,
		 (unsigned long long)v->size);
}

/* Connect, send the JSON with fds (default: uffd, gmem, bitmap) and then,
 * unless text is NULL, the text message in one more write. */
static inline int sft_handshake(struct sft_vm *v, const char *sock, const int *fds,
				unsigned nfds, const char *text)
{
	char json[512];
	int def[3] = { v->uffd, v->gmem, v->bitmap };
	sft_json(v, json, sizeof(json));
	v->sock = fct_connect(sock);
	if (v->sock < 0)
		return v->sock;
	int ret = sft_sendmsg(v->sock, json, strlen(json), fds ? fds : def, fds ? nfds : 3);
	if (!ret && text)
		ret = sft_sendmsg(v->sock, text, strlen(text), NULL, 0);
	return ret;
}

static inline int sft_request(struct sft_vm *v, unsigned vcpu, uint64_t gpa)
{
	struct fc_fault_request q = { vcpu, 0, LVM_KVM_MEMORY_EXIT_FLAG_USERFAULT, true, gpa };
	uint8_t f[FC_FRAME_MAX];
	int n = fc_encode_fault_request(&q, f, sizeof(f));
	return n < 0 ? n : sft_sendmsg(v->sock, f, (size_t)n, NULL, 0);
}

/* Read one FaultReply (blocking).  0, or -errno / -EBADMSG. */
static inline int sft_reply(struct sft_vm *v, struct fc_fault_reply *a)
{
	uint8_t buf[FC_FRAME_MAX];
	size_t have = 0, plen = 0;
	int n = 0;
	while ((n = fc_frame_complete(buf, have, &plen)) == 0) {
		ssize_t r = recv(v->sock, buf + have, 1, 0);	/* byte by byte: exact */
		if (r <= 0)
			return r ? -errno : -ECONNRESET;
		have += (size_t)r;
	}
	if (n < 0)
		return n;
	return fc_decode_fault_reply(buf + FC_FRAME_HDR, plen, a);
}

static inline void sft_vm_destroy(struct sft_vm *v)
{
	int fds[] = { v->sock, v->uffd, v->bitmap, v->gmem, v->vm_fd };
	if (v->bits)
		munmap((void *)v->bits, v->size / 4096 / 8);
	if (v->mem)
		munmap(v->mem, v->size);
	for (unsigned i = 0; i < 5; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	memset(v, 0, sizeof(*v));
	v->vm_fd = v->gmem = v->bitmap = v->uffd = v->sock = -1;
}

#endif
