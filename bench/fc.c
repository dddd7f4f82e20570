/* SPDX-License-Identifier: MIT */
/*
 * fc-serve's fault service rate vs a handler written the way Firecracker's
 * example on_demand handler is (single thread: poll, read one fault, pread
 * one page, one UFFDIO_COPY), measured in the same run on the same message.
 *
 * A forked "VM" does what Firecracker does (anonymous memory, uffd with
 * EVENT_REMOVE, registered MISSING, JSON + fd over the socket) and touches
 * every 4 KiB page of its region with 2 threads (each its own half, in
 * order); the rate is pages / wall time of the touch.  Servers:
 *   bare       the Firecracker-style handler above
 *   fc-serve   the real fc_server (as `lazyvm fc-serve` runs it: one engine
 *              thread per CPU, 64 KiB fault-around)
 *   1 page     the same with fault-around off: one page per fault, as the
 *              baseline does (what multi-threading alone buys)
 * Usage: fc [MiB=1024] [repeats=5]
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "fc/fc.h"
#include "lazyvm.h"
#include "core/uffd.h"
#include "../tests/testlib.h"
#include "../tests/fc-testlib.h"

static uint64_t region;
static char file_path[64], sock_path[64];
static int file_fd;

struct toucher { uint8_t *lo; uint64_t len; };

static void *touch_half(void *arg)
{
	struct toucher *t = arg;
	volatile uint8_t sink = 0;
	for (uint64_t off = 0; off < t->len; off += 4096)
		sink += t->lo[off];
	(void)sink;
	return NULL;
}

/* The VM: Firecracker's setup, then 2 threads touch everything; writes the
 * touch time (us) to out and exits, which closes the socket. */
static void vm_child(int out)
{
	struct fct_vm vm;
	uint64_t off = 0;
	if (fct_vm_create(&vm, 1, &region, &off, false) ||
	    fct_vm_connect(&vm, sock_path, NULL, "page_size", true))
		_exit(1);
	struct toucher t[2] = { { vm.addr[0], region / 2 },
				{ vm.addr[0] + region / 2, region / 2 } };
	pthread_t th[2];
	double t0 = bench_now_us();
	for (int i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, touch_half, &t[i]);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	double us = bench_now_us() - t0;
	_exit(write(out, &us, sizeof(us)) == sizeof(us) ? 0 : 1);
}

/* Firecracker's example handler, in C: one fault, one pread, one COPY. */
static void serve_bare(int lsock)
{
	int sock = accept4(lsock, NULL, NULL, SOCK_CLOEXEC), uffd = -1;
	struct fc_mapping m[FC_MAX_MAPPINGS];
	char err[256];
	if (sock < 0 || fc_recv_message(sock, 10000, m, FC_MAX_MAPPINGS, &uffd, err,
					sizeof(err)) != 1)
		exit(1);
	static uint8_t page[4096] __attribute__((aligned(4096)));
	struct pollfd pfd[2] = { { uffd, POLLIN, 0 }, { sock, POLLIN, 0 } };
	for (;;) {
		if (poll(pfd, 2, -1) < 0)
			continue;
		if (pfd[1].revents)
			break;	/* the VM closed the socket: done */
		struct uffd_msg msg;
		if (read(uffd, &msg, sizeof(msg)) != sizeof(msg) ||
		    msg.event != UFFD_EVENT_PAGEFAULT)
			continue;
		uint64_t addr = msg.arg.pagefault.address & ~4095ull, done;
		if (pread(file_fd, page, 4096, (off_t)(m[0].offset + addr - m[0].base)) != 4096)
			exit(1);
		int ret;
		while ((ret = uffd_copy(uffd, addr, page, 4096, 0, &done)) == -EAGAIN)
			;
		if (ret && ret != -EEXIST)
			exit(1);
	}
	close(uffd);
	close(sock);
}

static void quiet(void *ctx, const char *line)
{
	(void)ctx, (void)line;
}

/* One run: fork the VM, serve it; pages per second. */
static double run(bool engine, size_t fault_around, struct lvm_source *src)
{
	int p[2];
	struct fc_server *s = NULL;
	int lsock = -1;
	char err[256];
	if (engine) {
		struct fc_server_opts o = { .socket_path = sock_path, .src = src, .once = true,
					    .fault_around = fault_around, .log = quiet };
		if (fc_server_open(&o, &s, err, sizeof(err)))
			exit(1);
	} else {
		lsock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		memcpy(sa.sun_path, sock_path, strlen(sock_path));
		unlink(sock_path);
		if (bind(lsock, (struct sockaddr *)&sa, sizeof(sa)) || listen(lsock, 1))
			exit(1);
	}
	if (pipe(p))
		exit(1);
	pid_t pid = fork();
	if (pid == 0)
		vm_child(p[1]);
	close(p[1]);
	if (engine)
		fc_server_run(s);
	else
		serve_bare(lsock);
	double us = 0;
	if (read(p[0], &us, sizeof(us)) != sizeof(us))
		exit(1);
	close(p[0]);
	waitpid(pid, NULL, 0);
	if (engine)
		fc_server_close(s);
	else
		close(lsock), unlink(sock_path);
	return (double)(region / 4096) / us * 1e6;
}

int main(int argc, char **argv)
{
	region = (uint64_t)(argc > 1 ? atoi(argv[1]) : 1024) << 20;
	int reps = argc > 2 ? atoi(argv[2]) : 5;
	if (reps < 1 || reps > 64 || !region)
		return 1;
	file_fd = pattern_file(region, file_path, sizeof(file_path));
	snprintf(sock_path, sizeof(sock_path), "/tmp/lazyvm-bench-fc-%d.sock", (int)getpid());
	struct lvm_source *src;
	if (file_fd < 0 || lvm_source_file_open(file_path, 0, &src))
		return 1;
	printf("fc: %llu MiB anon region, touched by 2 threads in a forked VM, %d repeats\n",
	       (unsigned long long)(region >> 20), reps);
	double bare[64], eng[64], one[64], ratio[64], ratio1[64];
	for (int r = 0; r < reps; r++) {	/* interleaved: A B C A B C ... */
		bare[r] = run(false, 0, src) / 1e3;
		eng[r] = run(true, 0, src) / 1e3;
		one[r] = run(true, 4096, src) / 1e3;
		ratio[r] = eng[r] / bare[r];
		ratio1[r] = one[r] / bare[r];
	}
	bench_header();
	bench_row("Firecracker-style handler, K pages/s", "K/s", bare, reps);
	bench_row("fc-serve (engine), K pages/s", "K/s", eng, reps);
	bench_row("fc-serve, fault-around off, K pages/s", "K/s", one, reps);
	bench_row("ratio fc-serve / Firecracker-style", "x", ratio, reps);
	bench_row("ratio fc-serve 1 page / Firecracker-style", "x", ratio1, reps);
	lvm_source_destroy(src);
	return 0;
}
