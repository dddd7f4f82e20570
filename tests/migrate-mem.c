/* SPDX-License-Identifier: MIT */
/*
 * Post-copy migration of guest memory over loopback, source and destination
 * in one process so every page can be compared with the stopped source:
 * 0 and 2 pre-copy rounds with a writer running during pre-copy, a reader
 * faulting random pages on the destination during post-copy, anon and memfd
 * destinations, link cuts during post-copy (recovered), a cut during
 * pre-copy (aborted, the VM resumes at the source), and bad messages.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "lazyvm.h"
#include "migrate/wire.h"
#include "migrate/migrate.h"
#include "tap.h"
#include "testlib.h"
#include "testproxy.h"

#define MEM (64ull << 20)
#define PAGE 4096ull
#define READS 3000

static const char STATE[] = "vcpu-state-blob-for-the-test";

struct vm {
	struct lvm_mem *mem;
	/* source */
	pthread_t writer;
	_Atomic bool stop_writer, running;
	_Atomic int resumed;
	/* destination */
	enum lvm_backing backing;
	struct lvm_mem *src_mem;	/* the truth, frozen after pause */
	pthread_t reader;
	bool reader_started;
	_Atomic int read_bad, state_ok, vcpus_ok;
};

static void *writer_thread(void *arg)
{
	struct vm *v = arg;
	uint64_t seed = 5, *m = lvm_mem_addr(v->mem), i = 0;
	/* A working set, like a guest's: 1/16 of memory in pages of the pattern
	 * half and of the zero half, so dirty zero pages are covered too. */
	while (!atomic_load(&v->stop_writer)) {
		uint64_t pg = test_rand(&seed) % (MEM / PAGE / 16);
		if (pg & 1)
			pg += MEM * 3 / 4 / PAGE;
		m[pg * (PAGE / 8) + 1] = ++i;
	}
	return NULL;
}

static int src_pause(void *ctx)
{
	struct vm *v = ctx;
	atomic_store(&v->stop_writer, true);
	pthread_join(v->writer, NULL);
	return 0;
}

static int src_resume(void *ctx)
{
	atomic_fetch_add(&((struct vm *)ctx)->resumed, 1);
	return 0;
}

static int src_save(void *ctx, void **blob, size_t *len)
{
	(void)ctx;
	*blob = strdup(STATE);
	*len = sizeof(STATE);
	return *blob ? 0 : -ENOMEM;
}

static int dst_create(void *ctx, uint64_t size, unsigned vcpus, struct lvm_mem **mem)
{
	struct vm *v = ctx;
	atomic_store(&v->vcpus_ok, vcpus == 2);
	struct lvm_mem_opts o = { .struct_size = sizeof(o), .backing = v->backing, .size = size, .kvm_vm_fd = -1 };
	int ret = lvm_mem_create(&o, mem);
	v->mem = *mem;
	return ret;
}

static int dst_load(void *ctx, const void *blob, size_t len)
{
	struct vm *v = ctx;
	atomic_store(&v->state_ok, len == sizeof(STATE) && !memcmp(blob, STATE, len));
	return 0;
}

/* The destination's "vCPU": random reads, each compared with the source. */
static void *reader_thread(void *arg)
{
	struct vm *v = arg;
	uint64_t seed = 17;
	const uint8_t *d = lvm_mem_addr(v->mem), *s = lvm_mem_addr(v->src_mem);
	for (int i = 0; i < READS; i++) {
		uint64_t off = (test_rand(&seed) % (MEM / PAGE)) * PAGE;
		if (memcmp(d + off, s + off, PAGE))
			atomic_fetch_add(&v->read_bad, 1);
	}
	return NULL;
}

static int dst_start(void *ctx)
{
	struct vm *v = ctx;
	v->reader_started = !pthread_create(&v->reader, NULL, reader_thread, v);
	return v->reader_started ? 0 : -EAGAIN;
}

struct dst_run { struct mig_dst *d; struct vm *v; struct mig_stats st; int ret; char err[256]; };

static void *dst_thread(void *arg)
{
	struct dst_run *r = arg;
	struct mig_dst_vm ops = { r->v, dst_create, dst_load, dst_start };
	r->ret = mig_dst_run(r->d, &ops, &r->st, r->err, sizeof(r->err));
	return NULL;
}

struct result {
	int src_ret, dst_ret;
	struct mig_stats s, d;
	struct vm src, dst;
	bool equal, src_running;
	int cuts;	/* cut points the proxy reached */
};

/* cuts: what counting says (tests/testproxy.h). */
static void migrate(enum lvm_backing dst_backing, unsigned rounds, const uint64_t *cuts,
		    int ncuts, enum proxy_count counting, struct result *res)
{
	memset(res, 0, sizeof(*res));
	struct lvm_mem_opts o = { .struct_size = sizeof(o), .backing = LVM_BACKING_ANON, .size = MEM, .kvm_vm_fd = -1 };
	if (lvm_mem_create(&o, &res->src.mem))
		tap_bail("source memory");
	uint8_t *m = lvm_mem_addr(res->src.mem);
	pattern_fill(m, 0, MEM / 2);	/* the upper half stays zero: sent as ZERO runs */
	pthread_create(&res->src.writer, NULL, writer_thread, &res->src);

	struct mig_dst *d;
	struct mig_dst_opts dopts = { .listen = "127.0.0.1:0", .accept_timeout_ms = 30000,
				      .recover_timeout_s = 30, .handler_threads = 2 };
	if (mig_dst_listen(&dopts, &d))
		tap_bail("listen");
	struct proxy px;
	int port = mig_dst_port(d);
	if (ncuts && proxy_start_cutting(&px, port, cuts, ncuts, counting, NULL, NULL))
		tap_bail("proxy");
	res->dst.backing = dst_backing;
	res->dst.src_mem = res->src.mem;
	struct dst_run dr = { .d = d, .v = &res->dst };
	pthread_t dt;
	pthread_create(&dt, NULL, dst_thread, &dr);

	char addr[64], err[256];
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", ncuts ? px.port : port);
	struct mig_src_opts so = { .addr = addr, .precopy_rounds = rounds, .recover_timeout_s = 30,
				   .vcpus = 2 };
	struct mig_src_vm sv = { &res->src, src_pause, src_resume, src_save };
	res->src_ret = mig_src_run(&so, res->src.mem, &sv, &res->s, err, sizeof(err));
	if (res->src_ret)
		tap_diag("source: %s", err);
	/* -ECANCELED: the VM must run on at the source (never paused, or resumed). */
	res->src_running = !atomic_load(&res->src.stop_writer) || atomic_load(&res->src.resumed);
	if (!atomic_load(&res->src.stop_writer))
		src_pause(&res->src);
	pthread_join(dt, NULL);
	res->dst_ret = dr.ret;
	res->d = dr.st;
	if (dr.ret)
		tap_diag("destination: %s", dr.err);
	if (res->dst.reader_started)
		pthread_join(res->dst.reader, NULL);
	res->equal = !res->dst_ret && !memcmp(lvm_mem_addr(res->dst.mem), m, MEM);
	if (ncuts) {
		res->cuts = proxy_cuts_made(&px);
		proxy_stop(&px);
	}
	mig_dst_destroy(d);
	lvm_mem_destroy(res->dst.mem);
	lvm_mem_destroy(res->src.mem);
}

static void report(const struct result *r)
{
	tap_diag("src: total %llu ms, downtime %llu ms, rounds %llu, precopy %llu, push %llu, "
		 "request %llu, reconnects %llu", (unsigned long long)r->s.total_ms,
		 (unsigned long long)r->s.downtime_ms, (unsigned long long)r->s.precopy_rounds,
		 (unsigned long long)r->s.pages_precopy, (unsigned long long)r->s.pages_postcopy_push,
		 (unsigned long long)r->s.pages_postcopy_request, (unsigned long long)r->s.reconnects);
	tap_diag("dst: precopy %llu push %llu request %llu, remote fault p50 %llu us p99 %llu us, "
		 "blocktime %llu ms, reconnects %llu", (unsigned long long)r->d.pages_precopy,
		 (unsigned long long)r->d.pages_postcopy_push,
		 (unsigned long long)r->d.pages_postcopy_request,
		 (unsigned long long)r->d.remote_fault.p50_ns / 1000,
		 (unsigned long long)r->d.remote_fault.p99_ns / 1000,
		 (unsigned long long)r->d.blocktime_ms, (unsigned long long)r->d.reconnects);
}

static bool complete(const struct result *r)
{
	if (!r->equal || atomic_load(&r->dst.read_bad) || !atomic_load(&r->dst.state_ok))
		tap_diag("equal %d, bad reads %d, state ok %d", r->equal,
			 atomic_load(&r->dst.read_bad), atomic_load(&r->dst.state_ok));
	return !r->src_ret && !r->dst_ret && r->equal && !atomic_load(&r->dst.read_bad) &&
	       atomic_load(&r->dst.state_ok) && atomic_load(&r->dst.vcpus_ok) &&
	       r->d.pages_precopy + r->d.pages_postcopy_push + r->d.pages_postcopy_request ==
		       MEM / PAGE;
}

/* Garbage at a fresh destination: a clear error, no crash. */
static void bad_stream(const char *name, const void *bytes, size_t len, const char *expect)
{
	struct mig_dst *d;
	/* A stray connection is refused and the destination waits on: it gives
	 * up on sources after this, naming the refused connection. */
	struct mig_dst_opts o = { .listen = "127.0.0.1:0", .accept_timeout_ms = 3000 };
	if (mig_dst_listen(&o, &d))
		tap_bail("listen");
	struct vm v = { .backing = LVM_BACKING_ANON };
	struct dst_run dr = { .d = d, .v = &v };
	pthread_t dt;
	pthread_create(&dt, NULL, dst_thread, &dr);
	int fd = proxy_connect_upstream(mig_dst_port(d));
	if (write(fd, bytes, len) != (ssize_t)len)
		tap_bail("write");
	shutdown(fd, SHUT_WR);
	pthread_join(dt, NULL);
	close(fd);
	tap_ok(dr.ret < 0 && strstr(dr.err, expect), "%s: refused (%s)", name, dr.err);
	mig_dst_destroy(d);
	lvm_mem_destroy(v.mem);
}

int main(void)
{
	tap_watchdog(600);
	tap_plan(9);
	struct result r;

	migrate(LVM_BACKING_ANON, 0, NULL, 0, PROXY_BYTES, &r);
	report(&r);
	tap_ok(complete(&r), "anon, 0 pre-copy rounds: every page equal, reads during post-copy "
	       "correct, units counted once");

	migrate(LVM_BACKING_ANON, 2, NULL, 0, PROXY_BYTES, &r);
	report(&r);
	tap_ok(complete(&r) && r.s.precopy_rounds == 2 && r.d.pages_precopy > 0,
	       "anon, 2 pre-copy rounds with a writer: every page equal");

	migrate(LVM_BACKING_MEMFD, 1, NULL, 0, PROXY_BYTES, &r);
	report(&r);
	tap_ok(complete(&r), "memfd destination, 1 pre-copy round: every page equal");

	/* Cuts after the 4th, 32nd and 96th PAGES message of post-copy: the push
	 * alone is MEM / 256 KiB = 256 of them (half pattern, half ZERO runs),
	 * so every cut point is reached whatever the timing. */
	uint64_t cuts[] = { 4, 32, 96 };
	migrate(LVM_BACKING_ANON, 0, cuts, 3, PROXY_POSTCOPY_PAGES, &r);
	report(&r);
	tap_ok(complete(&r) && r.cuts == 3 && r.s.reconnects >= 1 && r.d.reconnects >= 1,
	       "link cut %d times of 3 in post-copy: recovered (%llu reconnects), every page equal",
	       r.cuts, (unsigned long long)r.s.reconnects);

	/* 1/8 of the memory's bytes upstream: inside the first pre-copy round,
	 * which sends the 1/2 of memory that holds the pattern. */
	uint64_t early[] = { MEM / 8 };
	migrate(LVM_BACKING_ANON, 1, early, 1, PROXY_BYTES, &r);
	report(&r);
	tap_ok(r.cuts == 1 && r.src_ret == -ECANCELED && r.src_running && r.dst_ret < 0 &&
	       !r.dst.reader_started, "link cut in pre-copy: aborted, VM resumed at the source, "
	       "never started at the destination");

	struct mig_hdr h = { MIG_MAGIC, MIG_VERSION, MIG_HELLO, sizeof(struct mig_hello), 0 };
	bad_stream("garbage bytes", "GET / HTTP/1.1\r\n\r\n", 18, "bad magic");
	struct mig_hdr v2 = h;
	v2.version = MIG_VERSION + 1;
	bad_stream("wrong protocol version", &v2, sizeof(v2), "version");
	bad_stream("truncated HELLO", &h, sizeof(h), "closed during the handshake");
	struct mig_hdr big = h;
	big.len = 0x7fffffff;
	bad_stream("oversized message", &big, sizeof(big), "length");
	return tap_done();
}
