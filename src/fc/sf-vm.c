/* SPDX-License-Identifier: MIT */
/*
 * One secret-free VM connected to fc-serve (secret-free.h): its regions
 * become engine regions that populate by pwrite into the guest_memfd and
 * keep the userfault bitmap, and its FaultRequest frames are answered
 * while the engine serves the uffd.  The protocol has no error reply: on
 * a fatal error (a malformed frame, an offset outside guest memory, a page
 * that cannot be written) we log why and stop serving the VM; the VMM sees
 * the socket close (docs/firecracker.md).
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/userfault.h"
#include "fc/secret-free.h"
#include "fc/server.h"
#include "util/errmsg.h"

struct fc_sf_vm {
	struct fc_sf_handshake h;
	_Atomic uint64_t *bitmap;
	size_t bitmap_map_len;
	uint8_t buf[FC_FRAME_MAX * 8];
	size_t have;
	char fatal[200];
};

int fc_sf_vm_open(struct fc_vm *vm, int timeout_ms)
{
	struct fc_sf_vm *sf = calloc(1, sizeof(*sf));
	char *err = vm->rec.error;
	size_t errlen = sizeof(vm->rec.error);
	if (!sf)
		return errmsg_set(err, errlen, -ENOMEM, "out of memory");
	vm->sf = sf;
	vm->rec.secret_free = true;
	int ret = fc_sf_recv_handshake(vm->sock, timeout_ms, lvm_source_size(vm->s->o.src),
				       &sf->h, err, errlen);
	if (ret)
		return ret;
	sf->bitmap_map_len = (sf->h.gmem_size / 4096 / 8 + 4095) & ~(size_t)4095;
	void *p = mmap(NULL, sf->bitmap_map_len, PROT_READ | PROT_WRITE, MAP_SHARED,
		       sf->h.bitmap_fd, 0);
	if (p == MAP_FAILED) {
		ret = -errno;
		return errmsg_set(err, errlen, ret, "cannot map the userfault bitmap: %s",
				  strerror(-ret));
	}
	sf->bitmap = p;
	memcpy(sf->buf, sf->h.rest, sf->h.nrest);	/* frames glued to the text */
	sf->have = sf->h.nrest;
	return 0;
}

/* The uffd goes to the engine (vm_engine adopts it). */
int fc_sf_vm_take_uffd(struct fc_vm *vm)
{
	int fd = vm->sf->h.uffd;
	vm->sf->h.uffd = -1;
	return fd;
}

const struct fc_mapping *fc_sf_vm_mappings(struct fc_vm *vm, unsigned *n)
{
	*n = vm->sf->h.n;
	return vm->sf->h.m;
}

int fc_sf_vm_attach(struct fc_vm *vm, struct lvm_engine *e, int idx, const struct fc_mapping *m)
{
	return engine_sf_attach(e, idx, vm->sf->h.gmem_fd, m->offset, vm->sf->bitmap);
}

void fc_sf_vm_close(struct fc_vm *vm)
{
	struct fc_sf_vm *sf = vm->sf;
	if (!sf)
		return;
	if (sf->bitmap)
		munmap((void *)sf->bitmap, sf->bitmap_map_len);
	fc_sf_handshake_close(&sf->h);
	free(sf);
	vm->sf = NULL;
}

/* The guest_memfd offset a request names: from its gpa, or (no gpa) its
 * offset field.  -ERANGE outside every region. */
static int request_offset(const struct fc_sf_handshake *h, const struct fc_fault_request *q,
			  uint64_t *off)
{
	if (!q->has_gpa) {
		*off = q->offset;
		return q->offset < h->gmem_size ? 0 : -ERANGE;
	}
	for (unsigned i = 0; i < h->n; i++) {
		const struct fc_mapping *m = &h->m[i];
		if (q->gpa >= m->gpa_start && q->gpa - m->gpa_start < m->size) {
			*off = m->offset + (q->gpa - m->gpa_start);
			return 0;
		}
	}
	return -ERANGE;
}

static int sf_fatal(struct fc_sf_vm *sf, int ret, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int sf_fatal(struct fc_sf_vm *sf, int ret, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(sf->fatal, sizeof(sf->fatal), fmt, ap);
	va_end(ap);
	return ret;
}

/* Whole frame out; waits for room without blocking a server stop. */
static int send_frame(struct fc_vm *vm, const uint8_t *buf, size_t len)
{
	size_t at = 0;
	while (at < len) {
		ssize_t n = send(vm->sock, buf + at, len - at, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			at += (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
		struct pollfd pfd[2] = { { vm->sock, POLLOUT, 0 }, { vm->s->stop_efd, POLLIN, 0 } };
		if (poll(pfd, 2, -1) > 0 && pfd[1].revents)
			return -ECANCELED;
	}
	return 0;
}

static int serve_request(struct fc_vm *vm, struct lvm_engine *e, const uint8_t *payload,
			 size_t len)
{
	struct fc_sf_vm *sf = vm->sf;
	struct fc_fault_request q;
	uint64_t off, populated = 0;
	if (fc_decode_fault_request(payload, len, &q))
		return sf_fatal(sf, -EBADMSG, "malformed FaultRequest frame (%zu bytes)", len);
	if (request_offset(&sf->h, &q, &off))
		return sf_fatal(sf, -ERANGE, "FaultRequest for %s 0x%llx: outside guest memory",
				q.has_gpa ? "gpa" : "offset",
				(unsigned long long)(q.has_gpa ? q.gpa : q.offset));
	int ret = engine_sf_serve_request(e, off & ~4095ull, &populated);
	if (ret)
		return sf_fatal(sf, ret, "FaultRequest for guest_memfd offset 0x%llx: %s",
				(unsigned long long)off, lvm_engine_error(e)[0] ?
				lvm_engine_error(e) : strerror(-ret));
	struct fc_fault_reply a = { .has_vcpu = true, .vcpu = q.vcpu, .offset = q.offset,
				    .len = populated, .flags = q.flags, .has_gpa = q.has_gpa,
				    .gpa = q.gpa };
	uint8_t frame[FC_FRAME_MAX];
	int n = fc_encode_fault_reply(&a, frame, sizeof(frame));
	ret = n < 0 ? n : send_frame(vm, frame, (size_t)n);
	if (ret && ret != -ECANCELED)
		return sf_fatal(sf, ret, "sending a FaultReply: %s", strerror(-ret));
	return ret;
}

/* Serve every complete frame in the buffer; keep a partial one. */
static int serve_buffered(struct fc_vm *vm, struct lvm_engine *e)
{
	struct fc_sf_vm *sf = vm->sf;
	size_t at = 0;
	int ret = 0;
	while (!ret) {
		size_t plen;
		int n = fc_frame_complete(sf->buf + at, sf->have - at, &plen);
		if (n < 0)
			ret = sf_fatal(sf, n, "frame header announces a payload of 0 or more than "
				       "%d bytes", FC_FRAME_MAX_PAYLOAD);
		if (n <= 0)
			break;
		ret = serve_request(vm, e, sf->buf + at + FC_FRAME_HDR, plen);
		at += (size_t)n;
	}
	memmove(sf->buf, sf->buf + at, sf->have - at);
	sf->have -= at;
	return ret;
}

const char *fc_sf_vm_serve(struct fc_vm *vm, struct lvm_engine *e)
{
	struct fc_sf_vm *sf = vm->sf;
	struct pollfd pfd[2] = { { vm->sock, POLLIN | POLLRDHUP, 0 },
				 { vm->s->stop_efd, POLLIN, 0 } };
	int ret = serve_buffered(vm, e);
	while (!ret) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return "poll failed";
		}
		if (pfd[1].revents)
			return "server stopping";
		ssize_t n = recv(vm->sock, sf->buf + sf->have, sizeof(sf->buf) - sf->have,
				 MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0)
			return "peer closed the socket";
		sf->have += (size_t)n;
		ret = serve_buffered(vm, e);
	}
	if (ret == -ECANCELED)
		return "server stopping";
	snprintf(vm->rec.error, sizeof(vm->rec.error), "%s", sf->fatal);
	fc_server_log(vm->s, "vm %u: stopped serving this VM (the VMM sees the socket close): %s",
		      vm->rec.id, sf->fatal);
	return "fatal error";
}

void fc_sf_vm_stats(struct fc_vm *vm, struct lvm_engine *e)
{
	if (vm->sf)
		engine_sf_stats(e, &vm->rec.sf);
}
