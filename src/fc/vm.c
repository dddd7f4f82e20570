/* SPDX-License-Identifier: MIT */
/*
 * One VM connected to fc-serve: receive and check its message, serve its
 * regions with an engine of its own, and finish when it closes the socket
 * (Firecracker keeps the socket open for the life of the VM).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/engine.h"
#include "fc/secret-free.h"
#include "fc/server.h"
#include "snapshot/ws.h"

#define FC_FAULT_AROUND (64u << 10)	/* 16 pages per 4 KiB fault; a 2 MiB page is one */
#define FC_HANDSHAKE_MS 10000

static double now_s(void)
{
	return (double)mono_now_ns() / 1e9;
}

static void vm_on_error(void *ctx, const char *msg)
{
	struct fc_vm *vm = ctx;
	fc_server_log(vm->s, "vm %u: %s", vm->rec.id, msg);
}

/* Engine over the received uffd (adopted: the engine closes it). */
static int vm_engine(struct fc_vm *vm, const struct fc_mapping *m, unsigned n, int uffd,
		     struct lvm_engine **out)
{
	struct fc_server *s = vm->s;
	struct lvm_engine_opts eo;
	lvm_engine_opts_init(&eo);
	eo.uffd = uffd;
	eo.threads = s->o.threads;
	eo.fault_around = s->o.fault_around ? s->o.fault_around : FC_FAULT_AROUND;
	eo.background_fill = s->o.prefault;
	eo.on_error = vm_on_error;
	eo.on_error_ctx = vm;
	int ret = lvm_engine_create(&eo, out);
	if (ret) {
		close(uffd);
		snprintf(vm->rec.error, sizeof(vm->rec.error), "engine: %s", strerror(-ret));
		return ret;
	}
	for (unsigned i = 0; i < n && ret >= 0; i++) {
		ret = lvm_engine_add_remote(*out, m[i].base, m[i].size, m[i].page_size,
					    s->o.src, m[i].offset);
		if (ret >= 0 && vm->sf)	/* pwrite + userfault bitmap */
			ret = fc_sf_vm_attach(vm, *out, ret, &m[i]);
	}
	if (ret >= 0 && s->o.ws)	/* docs/prefetch.md */
		ret = ws_queue_prefetch(s->o.ws, *out, s->o.src);
	if (ret >= 0)
		ret = lvm_engine_start(*out);
	if (ret < 0) {
		snprintf(vm->rec.error, sizeof(vm->rec.error), "engine: %s", strerror(-ret));
		lvm_engine_destroy(*out);
		*out = NULL;
		return ret;
	}
	return 0;
}

/* The VM is served: its mappings and engine for the stats and a server
 * stop (drain.c), its size for the record. */
static void vm_record_regions(struct fc_vm *vm, const struct fc_mapping *m, unsigned n,
			      struct lvm_engine *e)
{
	memcpy(vm->map, m, (size_t)n * sizeof(m[0]));
	vm->nmap = n;
	pthread_mutex_lock(&vm->s->lock);
	vm->engine = e;
	pthread_mutex_unlock(&vm->s->lock);
	vm->rec.regions = n;
	vm->rec.page_size = m[0].page_size;
	for (unsigned i = 0; i < n; i++)
		vm->rec.bytes += m[i].size;
}

static int vm_accept_secret_free(struct fc_vm *vm, int tmo, struct lvm_engine **e)
{
	int ret = fc_sf_vm_open(vm, tmo);
	unsigned n;
	const struct fc_mapping *m = fc_sf_vm_mappings(vm, &n);
	if (!ret)
		ret = vm_engine(vm, m, n, fc_sf_vm_take_uffd(vm), e);
	if (!ret)
		vm_record_regions(vm, m, n, *e);
	return ret;
}

/* Receive and validate the message; 0 and the engine started, or -errno. */
static int vm_accept_message(struct fc_vm *vm, struct lvm_engine **e)
{
	struct fc_server *s = vm->s;
	struct fc_mapping m[FC_MAX_MAPPINGS];
	int uffd = -1;
	int tmo = s->o.handshake_timeout_ms ? s->o.handshake_timeout_ms : FC_HANDSHAKE_MS;
	char *err = vm->rec.error;
	size_t errlen = sizeof(vm->rec.error);

	/* Three fds: a secret-free VM (its own handshake); any other count
	 * gets the message of the normal protocol's refusal. */
	if (fc_peek_nfds(vm->sock, tmo) == FC_SF_NFDS)
		return vm_accept_secret_free(vm, tmo, e);
	int n = fc_recv_message(vm->sock, tmo, m, FC_MAX_MAPPINGS, &uffd, err, errlen);
	if (n < 0)
		return n;
	int ret = fc_validate_mappings(m, (unsigned)n, lvm_source_size(s->o.src), err, errlen);
	if (ret) {
		close(uffd);	/* nothing is ever served from outside the file */
		return ret;
	}
	ret = vm_engine(vm, m, (unsigned)n, uffd, e);
	if (!ret)
		vm_record_regions(vm, m, (unsigned)n, *e);
	return ret;
}

/* Until the peer closes the socket (the VM ended) or the server stops. */
static const char *vm_wait_end(struct fc_vm *vm)
{
	struct pollfd pfd[2] = { { vm->sock, POLLIN | POLLRDHUP, 0 },
				 { vm->s->stop_efd, POLLIN, 0 } };
	for (;;) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return "poll failed";
		}
		if (pfd[1].revents)
			return "server stopping";
		if (pfd[0].revents & (POLLHUP | POLLERR | POLLRDHUP))
			return "peer closed the socket";
		char junk[256];	/* Firecracker sends nothing more; ignore whatever comes */
		ssize_t r = recv(vm->sock, junk, sizeof(junk), MSG_DONTWAIT);
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
			return "peer closed the socket";
	}
}

static void vm_log_served(struct fc_vm *vm)
{
	struct fc_vm_record *r = &vm->rec;
	fc_server_log(vm->s, "vm %u (uid %u pid %d): serving %u region%s, %llu MiB, "
		      "%llu KiB pages", r->id, (unsigned)r->uid, (int)r->pid, r->regions,
		      r->regions == 1 ? "" : "s", (unsigned long long)(r->bytes >> 20),
		      (unsigned long long)(r->page_size >> 10));
}

static void vm_finish(struct fc_vm *vm, struct lvm_engine *e, const char *why)
{
	struct fc_vm_record *r = &vm->rec;
	/* A stopping server leaves no page behind: once the uffd is closed the
	 * kernel would hand the VM zero pages for whatever was never served. */
	if (atomic_load(&vm->s->stopping) && !lvm_engine_error(e)[0])
		fc_vm_drain(vm, e);
	pthread_mutex_lock(&vm->s->lock);
	vm->engine = NULL;
	pthread_mutex_unlock(&vm->s->lock);
	lvm_engine_stop(e);
	r->st.struct_size = sizeof(r->st);
	lvm_engine_stats(e, &r->st);
	fc_sf_vm_stats(vm, e);
	if (!r->error[0])
		snprintf(r->error, sizeof(r->error), "%s", lvm_engine_error(e));
	lvm_engine_destroy(e);
	fc_server_log(vm->s, "vm %u: finished (%s): %llu faults, %llu pages on demand, "
		      "%llu in background, %llu zero, %llu failed, %llu remove events",
		      r->id, why, (unsigned long long)r->st.faults,
		      (unsigned long long)r->st.pages_demand,
		      (unsigned long long)r->st.pages_background,
		      (unsigned long long)r->st.pages_zero,
		      (unsigned long long)r->st.pages_failed,
		      (unsigned long long)r->st.remove_events);
}

void *fc_vm_thread(void *arg)
{
	struct fc_vm *vm = arg;
	struct lvm_engine *e = NULL;
	double t0 = now_s();

	if (vm_accept_message(vm, &e)) {
		/* Log before closing: the peer sees EOF only after the reason is out. */
		fc_server_log(vm->s, "vm %u (uid %u pid %d): refused: %s", vm->rec.id,
			      (unsigned)vm->rec.uid, (int)vm->rec.pid, vm->rec.error);
	} else {
		vm->rec.served = true;
		vm_log_served(vm);
		vm_finish(vm, e, vm->sf ? fc_sf_vm_serve(vm, e) : vm_wait_end(vm));
	}
	fc_sf_vm_close(vm);
	close(vm->sock);
	vm->sock = -1;
	vm->rec.seconds = now_s() - t0;
	fc_server_record(vm->s, &vm->rec);
	atomic_store(&vm->done, true);
	uint64_t one = 1;
	if (write(vm->s->reap_efd, &one, sizeof(one)) < 0) {
		/* eventfd cannot overflow with one write per VM */
	}
	return NULL;
}
