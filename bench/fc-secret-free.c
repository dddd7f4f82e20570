/* SPDX-License-Identifier: MIT */
/*
 * bench/fc-secret-free [MiB] [repeats]: fault service for Firecracker's
 * secret-free VMs, inside a kernel with KVM userfault and guest_memfd
 * write() (the check-gmem kernel; TCG there: read the ratios, not the
 * microseconds).  A client acting as the VMM touches every 4 KiB page of a
 * guest_memfd, in order, two ways:
 *
 *   FaultRequest   for each page whose bit is still set, a FaultRequest and
 *                  the wait for its reply (what a vCPU's userfault exit does)
 *   uffd           a read through the VMM's mapping (MISSING fault: COPY)
 *
 * served by fc-serve's server code with fault-around off (4 KiB) and on
 * (64 KiB), and by a handler written like Firecracker's example (one pwrite
 * and one reply per request).  Prints microseconds per page, min / median /
 * max over the repeats, and the ratios measured in the same run.
 */
#include <pthread.h>

#include "bench.h"
#include "fc/secret-free.h"
#include "fc/server.h"
#include "../tests/sf-testlib.h"

static uint64_t mem_size;
static char file_path[64], sock_path[64];
static int file_fd;

static void quiet(void *ctx, const char *line)
{
	(void)ctx, (void)line;
}

/* Firecracker's on_demand handler, secret-free flavour: one page per request. */
static void *example_handler(void *arg)
{
	int lsock = *(int *)arg, c = accept(lsock, NULL, NULL);
	struct fc_sf_handshake h;
	char err[200];
	if (c < 0 || fc_sf_recv_handshake(c, 10000, mem_size, &h, err, sizeof(err)))
		return NULL;
	_Atomic uint64_t *bits = mmap(NULL, mem_size / 4096 / 8, PROT_READ | PROT_WRITE,
				      MAP_SHARED, h.bitmap_fd, 0);
	uint8_t buf[FC_FRAME_MAX * 4], page[4096];
	size_t have = 0, plen;
	memcpy(buf, h.rest, h.nrest);
	have = h.nrest;
	for (;;) {
		int n;
		while ((n = fc_frame_complete(buf, have, &plen)) > 0) {
			struct fc_fault_request q;
			if (fc_decode_fault_request(buf + 4, plen, &q))
				goto out;
			uint64_t off = q.gpa & ~4095ull;
			if (pread(file_fd, page, 4096, (off_t)off) != 4096 ||
			    pwrite(h.gmem_fd, page, 4096, (off_t)off) != 4096)
				goto out;
			atomic_fetch_and_explicit(&bits[off / 4096 / 64],
						  ~(1ull << (off / 4096 % 64)), memory_order_release);
			struct fc_fault_reply a = { true, q.vcpu, q.offset, 4096, q.flags, q.has_gpa,
						    q.gpa, false };
			uint8_t f[FC_FRAME_MAX];
			int fl = fc_encode_fault_reply(&a, f, sizeof(f));
			if (send(c, f, (size_t)fl, MSG_NOSIGNAL) != fl)
				goto out;
			memmove(buf, buf + n, have - (size_t)n);
			have -= (size_t)n;
		}
		ssize_t r = recv(c, buf + have, sizeof(buf) - have, 0);
		if (r <= 0)
			break;
		have += (size_t)r;
	}
out:
	close(c);
	fc_sf_handshake_close(&h);
	return NULL;
}

/* Touch every page (requests or reads), microseconds per page. */
static double client_run(bool requests)
{
	struct sft_vm v;
	if (sft_vm_create(&v, mem_size) || !v.registered ||
	    sft_handshake(&v, sock_path, NULL, 0, "no_exitless_apf"))
		exit(1);
	double t0 = bench_now_us();
	uint8_t sink = 0;
	for (uint64_t p = 0; p < mem_size / 4096; p++) {
		struct fc_fault_reply a;
		if (!requests)
			sink += ((volatile uint8_t *)v.mem)[p * 4096];
		else if (sft_bit(&v, p) && (sft_request(&v, 0, p * 4096) || sft_reply(&v, &a)))
			exit(1);
	}
	(void)sink;
	double us = (bench_now_us() - t0) / (double)(mem_size / 4096);
	sft_vm_destroy(&v);
	return us;
}

struct server_run { struct fc_server *s; };

static void *server_thread(void *arg)
{
	fc_server_run(arg);
	return NULL;
}

/* kind 0: fc-serve 4 KiB, 1: fc-serve 64 KiB, 2: Firecracker-example style. */
static double one(int kind, bool requests, struct lvm_source *src)
{
	pthread_t t;
	struct fc_server *s = NULL;
	int lsock = -1;
	char err[256];
	unlink(sock_path);
	if (kind < 2) {
		struct fc_server_opts o = { .socket_path = sock_path, .src = src, .once = true,
					    .fault_around = kind ? 64u << 10 : 4096, .log = quiet };
		if (fc_server_open(&o, &s, err, sizeof(err)) ||
		    pthread_create(&t, NULL, server_thread, s))
			exit(1);
	} else {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		memcpy(sa.sun_path, sock_path, strlen(sock_path));
		lsock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (lsock < 0 || bind(lsock, (struct sockaddr *)&sa, sizeof(sa)) || listen(lsock, 1) ||
		    pthread_create(&t, NULL, example_handler, &lsock))
			exit(1);
	}
	double us = client_run(requests);
	pthread_join(t, NULL);
	if (s)
		fc_server_close(s);
	else
		close(lsock);
	return us;
}

int main(int argc, char **argv)
{
	mem_size = (argc > 1 ? strtoull(argv[1], NULL, 0) : 16) << 20;
	int reps = argc > 2 ? atoi(argv[2]) : 3;
	if (reps < 1 || reps > 50 || !mem_size || mem_size % (256u << 10))
		return fprintf(stderr, "usage: fc-secret-free [MiB] [repeats 1..50]\n"), 2;
	struct sft_vm probe;
	if (sft_vm_create(&probe, 1u << 20) || !probe.registered ||
	    ioctl(probe.vm_fd, KVM_CHECK_EXTENSION, LVM_KVM_CAP_USERFAULT) <= 0) {
		printf("fc-secret-free: SKIP: needs KVM userfault, guest_memfd write() and "
		       "userfaultfd on guest_memfd (the check-gmem kernel)\n");
		return 0;
	}
	sft_vm_destroy(&probe);
	snprintf(file_path, sizeof(file_path), "/tmp/lazyvm-bench-sf-%d.mem", (int)getpid());
	snprintf(sock_path, sizeof(sock_path), "/tmp/lazyvm-bench-sf-%d.sock", (int)getpid());
	file_fd = open(file_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	uint8_t *pat = malloc(mem_size);
	pattern_fill(pat, 0, mem_size);
	if (file_fd < 0 || write(file_fd, pat, mem_size) != (ssize_t)mem_size)
		return 1;
	free(pat);
	struct lvm_source *src;
	if (lvm_source_file_open(file_path, 0, &src))
		return 1;
	static const char *const names[5] = {
		"FaultRequest, fc-serve, 4 KiB per fault", "FaultRequest, fc-serve, 64 KiB",
		"FaultRequest, Firecracker-example handler", "uffd MISSING, fc-serve, 4 KiB",
		"uffd MISSING, fc-serve, 64 KiB" };
	double v[5][50], r[4][50];
	for (int i = 0; i < reps; i++) {
		for (int k = 0; k < 3; k++)
			v[k][i] = one(k, true, src);
		v[3][i] = one(0, false, src);
		v[4][i] = one(1, false, src);
		r[0][i] = v[3][i] / v[0][i];	/* uffd / FaultRequest, per page */
		r[1][i] = v[4][i] / v[1][i];	/* the same with fault-around */
		r[2][i] = v[2][i] / v[0][i];	/* example / fc-serve, per page */
		r[3][i] = v[2][i] / v[1][i];	/* example / fc-serve with fault-around */
	}
	printf("fc-secret-free: %llu MiB, %d repeats, microseconds per 4 KiB page\n",
	       (unsigned long long)(mem_size >> 20), reps);
	bench_header();
	for (int k = 0; k < 5; k++)
		bench_row(names[k], "us/page", v[k], reps);
	bench_row("ratio uffd / FaultRequest, 4 KiB", "x", r[0], reps);
	bench_row("ratio uffd / FaultRequest, 64 KiB", "x", r[1], reps);
	bench_row("ratio example / fc-serve, 4 KiB", "x", r[2], reps);
	bench_row("ratio example / fc-serve, 64 KiB", "x", r[3], reps);
	lvm_source_destroy(src);
	unlink(file_path);
	return 0;
}
