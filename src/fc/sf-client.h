/* SPDX-License-Identifier: MIT */
/* The VMM side of the secret-free protocol (sf-client.c; secret-free.h). */
#ifndef LAZYVM_FC_SF_CLIENT_H
#define LAZYVM_FC_SF_CLIENT_H

#include "fc/bitcode.h"
#include "fc/fc.h"
#include "util/errmsg.h"

struct fc_sf_client;

/*
 * mem: guest_memfd-backed (the memslot's guest_memfd), bitmap_fd its
 * userfault bitmap.  on_lost(ctx, msg): the page server went away (stop
 * the VM).  0 or -errno with err set.
 */
int fc_sf_client_connect(const char *socket_path, struct lvm_mem *mem, int bitmap_fd,
			 void (*on_lost)(void *ctx, const char *msg), void *ctx,
			 struct fc_sf_client **out, char *err, size_t errlen);
/* A vCPU's userfault exit: FaultRequest, then wait for its FaultReply.
 * 0, or -ECONNRESET when the page server is gone. */
int fc_sf_client_fault(struct fc_sf_client *c, unsigned vcpu, uint64_t gpa, uint64_t flags);
uint64_t fc_sf_client_requests(const struct fc_sf_client *c);
/* Make every waiting and later fault return -ECONNRESET (the VM stops). */
void fc_sf_client_cancel(struct fc_sf_client *c);
void fc_sf_client_close(struct fc_sf_client *c);

#endif
