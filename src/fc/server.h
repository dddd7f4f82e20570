/* SPDX-License-Identifier: MIT */
/*
 * fc-serve internals shared by server.c (the listening socket, the accept
 * loop, stats) and vm.c (one connected VM: its message, its engine, its
 * end).  Each VM is a thread with its own engine and its own uffd; nothing
 * but the read-only source and the stats list is shared between VMs, so a
 * bad or dying VM cannot disturb another.
 */
#ifndef LAZYVM_FC_SERVER_H
#define LAZYVM_FC_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/un.h>

#include "engine/userfault.h"
#include "fc/fc.h"

/* What one VM did, kept for the stats file after its thread is gone. */
struct fc_vm_record {
	unsigned id;
	uid_t uid;
	pid_t pid;
	bool served;		/* message accepted and engine started */
	unsigned regions;
	uint64_t bytes;
	uint64_t page_size;	/* of the first region */
	double seconds;		/* connection lifetime */
	struct lvm_stats st;
	bool secret_free;	/* 3-fd handshake (fc/secret-free.h) */
	struct engine_sf_stats sf;
	char error[256];	/* why it was refused, or the engine's first error */
};

struct fc_vm {
	struct fc_server *s;
	struct fc_vm *next;
	int sock;
	pthread_t thread;
	_Atomic bool done;
	struct fc_vm_record rec;
	struct fc_sf_vm *sf;	/* secret-free VMs only (sf-vm.c) */
	/* While served: its engine (read under s->lock by fc_server_totals)
	 * and mappings (filled in full on a server stop, drain.c). */
	struct lvm_engine *engine;
	struct fc_mapping map[FC_MAX_MAPPINGS];
	unsigned nmap;
};

struct fc_server {
	struct fc_server_opts o;
	int lsock;
	int stop_efd;		/* written once on stop; every thread polls it */
	int reap_efd;		/* VM threads tell the accept loop they ended */
	_Atomic bool stopping;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	dev_t sock_dev;		/* the socket file we created (unlink only it) */
	ino_t sock_ino;

	pthread_mutex_t lock;	/* vms, records */
	struct fc_vm *vms;	/* live VM threads */
	unsigned next_id;
	struct fc_vm_record *records;
	size_t nrecords, caprecords;
	uint64_t refused;	/* connections closed by the peer check */
};

/* One line to the server's log. */
void fc_server_log(struct fc_server *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Keep r for the stats file (copied). */
void fc_server_record(struct fc_server *s, const struct fc_vm_record *r);

/* drain.c: supply every page of vm's mappings not yet installed. */
void fc_vm_drain(struct fc_vm *vm, struct lvm_engine *e);

/* vm.c: the thread serving one accepted connection. */
void *fc_vm_thread(void *vm);

/* sf-vm.c: a secret-free VM.  open: handshake, text message, bitmap
 * mapped (error in vm->rec.error); then the engine takes the uffd and
 * each region is attached; serve answers FaultRequests until the peer
 * closes the socket or a fatal error (logged; returns why). */
int fc_sf_vm_open(struct fc_vm *vm, int timeout_ms);
const struct fc_mapping *fc_sf_vm_mappings(struct fc_vm *vm, unsigned *n);
int fc_sf_vm_take_uffd(struct fc_vm *vm);
int fc_sf_vm_attach(struct fc_vm *vm, struct lvm_engine *e, int idx, const struct fc_mapping *m);
const char *fc_sf_vm_serve(struct fc_vm *vm, struct lvm_engine *e);
void fc_sf_vm_stats(struct fc_vm *vm, struct lvm_engine *e);
void fc_sf_vm_close(struct fc_vm *vm);

#endif
