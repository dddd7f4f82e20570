/* SPDX-License-Identifier: MIT */
/*
 * The migration protocol's size limits, from both ends (issue 9, defects 5
 * and 6):
 * - the source answers a REQUEST for more than 4 MiB (8 MiB of 4 KiB pages;
 *   8 units of 2 MiB hugetlb pages) with several PAGES messages, each within
 *   the limit, and the bytes equal its memory (a scripted destination asks,
 *   and its validator refuses anything over the limit);
 * - a destination told of a guest bigger than this machine refuses before
 *   creating anything;
 * - hugetlb_reserve never grows the pool beyond the memory available.
 */
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "core/hugetlb.h"
#include "lazyvm.h"
#include "migrate/migrate.h"
#include "migrate/wire.h"
#include "tap.h"
#include "testlib.h"
#include "testproxy.h"

#define MEM (16ull << 20)
#define BUF (MIG_MAX_DATA + 64)

static int vm_pause(void *ctx) { (void)ctx; return 0; }
static int vm_resume(void *ctx) { (void)ctx; return 0; }
static int vm_save(void *ctx, void **blob, size_t *len)
{
	(void)ctx;
	*blob = strdup("state");
	*len = 6;
	return *blob ? 0 : -ENOMEM;
}

struct src_run {
	struct lvm_mem *mem;
	char addr[64], err[256];
	struct mig_stats st;
	int ret;
};

static void *src_thread(void *arg)
{
	struct src_run *r = arg;
	struct mig_src_opts o = { .addr = r->addr, .recover_timeout_s = 5, .vcpus = 1 };
	struct mig_src_vm vm = { r, vm_pause, vm_resume, vm_save };
	r->ret = mig_src_run(&o, r->mem, &vm, &r->st, r->err, sizeof(r->err));
	return NULL;
}

static int accept_one(int lfd)
{
	return accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
}

/* Read a message of the given type (anything else fails the test). */
static bool expect(int fd, uint16_t type, uint8_t *buf, const struct mig_limits *lim,
		   struct mig_msg *m)
{
	char why[160] = "";
	int ret = mig_recv(fd, m, buf, BUF, lim, 30000, why, sizeof(why));
	if (ret || m->type != type) {
		tap_diag("expected %s: ret %d, got %s (%s)", mig_type_name(type), ret,
			 ret ? "-" : mig_type_name(m->type), why);
		return false;
	}
	return true;
}

/* One channel's HELLO, answered with HELLO_ACK for the given unit. */
static bool open_channel(int lfd, uint32_t unit, int *fd, uint8_t *buf)
{
	struct mig_msg m;
	struct mig_limits none = { 0, 0 };
	*fd = accept_one(lfd);
	if (*fd < 0 || !expect(*fd, MIG_HELLO, buf, &none, &m))
		return false;
	struct mig_hello h;
	memcpy(&h, m.payload, sizeof(h));
	struct mig_hello_ack a = { .unit = unit };
	memcpy(a.session, h.session, sizeof(a.session));
	mig_ack_to_wire(&a);
	return !mig_send(*fd, MIG_HELLO_ACK, &a, sizeof(a), NULL, 0);
}

/*
 * A scripted destination: HELLO on both channels, the STATE, READY, GO;
 * then one REQUEST for `units` units from offset 0 on the request channel.
 * Counts the PAGES messages of the answer and compares their bytes.
 */
static void big_request(const char *name, struct lvm_mem *mem, uint64_t units)
{
	uint32_t unit = (uint32_t)lvm_mem_page_size(mem);
	struct mig_limits lim = { MEM, unit };
	uint8_t *buf = malloc(BUF);
	int lfd = mig_listen("127.0.0.1:0");
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	if (!buf || lfd < 0 || getsockname(lfd, (struct sockaddr *)&sa, &sl))
		tap_bail("listen");
	struct src_run r = { .mem = mem };
	snprintf(r.addr, sizeof(r.addr), "127.0.0.1:%d", ntohs(sa.sin_port));
	pthread_t t;
	pthread_create(&t, NULL, src_thread, &r);

	int mfd = -1, rfd = -1;
	struct mig_msg m;
	bool ok = open_channel(lfd, unit, &mfd, buf) && open_channel(lfd, unit, &rfd, buf) &&
		  expect(mfd, MIG_STATE, buf, &lim, &m) &&
		  !mig_send(mfd, MIG_READY, NULL, 0, NULL, 0) && expect(mfd, MIG_GO, buf, &lim, &m);
	struct mig_pages rq = { 0, (uint32_t)units, 0 };
	mig_pages_to_wire(&rq);
	ok = ok && !mig_send(rfd, MIG_REQUEST, &rq, sizeof(rq), NULL, 0);
	uint64_t got = 0, msgs = 0, bad = 0;
	const uint8_t *truth = lvm_mem_addr(mem);
	while (ok && got < units) {
		if (!expect(rfd, MIG_PAGES, buf, &lim, &m)) {	/* validates the 4 MiB limit */
			ok = false;
			break;
		}
		struct mig_pages pg;
		memcpy(&pg, m.payload, sizeof(pg));
		mig_pages_from_wire(&pg);
		msgs++;
		if (pg.offset != got * unit || (pg.flags & MIG_PAGES_ZERO) ||
		    memcmp(m.payload + sizeof(pg), truth + pg.offset, (uint64_t)pg.count * unit))
			bad++;
		got += pg.count;
	}
	/* End it: DONE, and drain the push until the source's DONE comes back. */
	struct mig_stamp done = { 0, MEM / unit };
	mig_stamp_to_wire(&done);
	ok = ok && !mig_send(mfd, MIG_DONE, &done, sizeof(done), NULL, 0);
	while (ok) {
		char why[160];
		if (mig_recv(mfd, &m, buf, BUF, &lim, 30000, why, sizeof(why)))
			ok = false;
		else if (m.type == MIG_DONE)
			break;
	}
	pthread_join(t, NULL);
	if (r.ret)
		tap_diag("source: %s", r.err);
	uint64_t need = (units * unit + MIG_MAX_DATA - 1) / MIG_MAX_DATA;
	tap_ok(ok && !r.ret && got == units && !bad && msgs >= need,
	       "%s: REQUEST(0, %llu units) answered in %llu PAGES messages of <= 4 MiB "
	       "(>= %llu needed), bytes equal", name, (unsigned long long)units,
	       (unsigned long long)msgs, (unsigned long long)need);
	close(mfd);
	close(rfd);
	close(lfd);
	free(buf);
}

static struct lvm_mem *pattern_mem(enum lvm_backing b)
{
	struct lvm_mem_opts o = { .struct_size = sizeof(o), .backing = b, .size = MEM,
				   .kvm_vm_fd = -1 };
	struct lvm_mem *mem;
	if (lvm_mem_create(&o, &mem))
		return NULL;
	pattern_fill(lvm_mem_addr(mem), 0, MEM);
	return mem;
}

/* ---- the destination against an oversized guest ---- */

static _Atomic int created;

static int dst_create(void *ctx, uint64_t size, unsigned vcpus, struct lvm_mem **mem)
{
	(void)ctx, (void)size, (void)vcpus, (void)mem;
	atomic_fetch_add(&created, 1);
	return -ENOMEM;
}

static int dst_nop(void *ctx) { (void)ctx; return 0; }
static int dst_load(void *ctx, const void *b, size_t l) { (void)ctx, (void)b, (void)l; return 0; }

struct dst_run { struct mig_dst *d; int ret; char err[256]; struct mig_stats st; };

static void *dst_thread(void *arg)
{
	struct dst_run *r = arg;
	struct mig_dst_vm vm = { NULL, dst_create, dst_load, dst_nop };
	r->ret = mig_dst_run(r->d, &vm, &r->st, r->err, sizeof(r->err));
	return NULL;
}

static void oversized_guest(void)
{
	struct mig_dst_opts o = { .listen = "127.0.0.1:0", .accept_timeout_ms = 30000 };
	struct dst_run r = { 0 };
	if (mig_dst_listen(&o, &r.d))
		tap_bail("listen");
	pthread_t t;
	pthread_create(&t, NULL, dst_thread, &r);
	int fd = proxy_connect_upstream(mig_dst_port(r.d));
	struct mig_hello h = { .channel = MIG_CH_MAIN, .mem_size = MIG_MAX_MEM, .unit = 2u << 20,
			       .vcpus = 1 };
	mig_random(h.session, sizeof(h.session));
	mig_hello_to_wire(&h);
	if (fd < 0 || mig_send(fd, MIG_HELLO, &h, sizeof(h), NULL, 0))
		tap_bail("connect/send");
	pthread_join(t, NULL);
	close(fd);
	tap_ok(r.ret < 0 && strstr(r.err, "more than this machine") && !atomic_load(&created),
	       "HELLO for a 1 TiB guest: refused before creating memory (%s)", r.err);
	mig_dst_destroy(r.d);
}

static void hugetlb_pool_bounded(void)
{
	FILE *f = fopen("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages", "re");
	long before = -1, after = -1;
	if (!f || fscanf(f, "%ld", &before) != 1) {
		if (f)
			fclose(f);
		tap_skip("hugetlb pool bounded", "no 2 MiB hugetlb pool in sysfs");
		return;
	}
	fclose(f);
	struct hugetlb_reservation res = HUGETLB_RESERVATION_INIT;
	int ret = hugetlb_reserve(524288, &res);	/* 1 TiB */
	f = fopen("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages", "re");
	if (f && fscanf(f, "%ld", &after) != 1)
		after = -1;
	if (f)
		fclose(f);
	hugetlb_release(&res);
	tap_ok(ret == -ENOMEM && after == before,
	       "hugetlb_reserve(1 TiB): -ENOMEM before touching the pool (nr_hugepages %ld -> %ld)",
	       before, after);
}

int main(void)
{
	alarm(300);
	tap_plan(4);
	struct lvm_mem *mem = pattern_mem(LVM_BACKING_ANON);
	if (!mem)
		tap_bail("memory");
	big_request("4 KiB units", mem, (8u << 20) / 4096);
	lvm_mem_destroy(mem);

	struct hugetlb_reservation res = HUGETLB_RESERVATION_INIT;
	if (hugetlb_reserve((long)(MEM >> 21), &res) || !(mem = pattern_mem(LVM_BACKING_HUGETLB))) {
		tap_skip("2 MiB units", "no %llu free 2 MiB hugetlb pages",
			 (unsigned long long)(MEM >> 21));
	} else {
		big_request("2 MiB hugetlb units", mem, MEM >> 21);
		lvm_mem_destroy(mem);
	}
	hugetlb_release(&res);
	oversized_guest();
	hugetlb_pool_bounded();
	return tap_done();
}
