/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the migration source (src/migrate/src.c) parsing what a
 * destination sends, in a real session.  A fake destination on 127.0.0.1
 * answers the source's connections with the input: a little-endian u16 n,
 * then n bytes for the main channel, then the rest for the request channel
 * (each written after the channel's HELLO, then the write side closed).  The
 * first message of each script, when it is a HELLO_ACK, gets the session the
 * source chose (random, so no input could guess it); a resuming connection
 * is refused with ERROR so the source never waits for a reconnect.  Whatever
 * the bytes, mig_src_run must return (an error, or 0 only if a DONE came)
 * with the VM paused/resumed consistently, never crash or read outside a
 * message (ASan).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lazyvm.h"
#include "migrate/migrate.h"
#include "migrate/wire.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MEM (1u << 20)

static struct lvm_mem *mem;
static int lfd = -1;
static char addr[64];

static pthread_mutex_t script_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t conns_done = PTHREAD_COND_INITIALIZER;
static unsigned conns_active;	/* connection threads still running */
static const uint8_t *script[2];
static size_t script_len[2];

struct conn { int fd; };

/* Read exactly len bytes, or fail. */
static int read_full(int fd, void *buf, size_t len)
{
	for (size_t got = 0; got < len;) {
		ssize_t n = read(fd, (uint8_t *)buf + got, len - got);
		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	return 0;
}

static void send_error(int fd)
{
	static const char text[] = "fuzz: no resume";
	struct mig_hdr h = { htole32(MIG_MAGIC), htole16(MIG_VERSION), htole16(MIG_ERROR),
			     htole32(sizeof(text) - 1), 0 };
	if (write(fd, &h, sizeof(h)) == sizeof(h) && write(fd, text, sizeof(text) - 1) < 0)
		return;
}

/* One connection of the fake destination: read the HELLO, answer with the
 * channel's script, stop writing, drain until the source closes. */
static void *conn_thread(void *arg)
{
	struct conn *c = arg;
	struct mig_hdr h;
	struct mig_hello hello;
	if (read_full(c->fd, &h, sizeof(h)) || le32toh(h.len) != sizeof(hello) ||
	    read_full(c->fd, &hello, sizeof(hello)))
		goto out;
	uint32_t ch = le32toh(hello.channel);
	if ((le32toh(hello.flags) & MIG_HELLO_RESUME) || ch > 1) {
		send_error(c->fd);
		goto out;
	}
	pthread_mutex_lock(&script_lock);
	size_t len = script_len[ch];
	uint8_t *s = malloc(len ? len : 1);
	memcpy(s, script[ch], len);
	pthread_mutex_unlock(&script_lock);
	struct mig_hdr first;
	if (len >= sizeof(first) + sizeof(struct mig_hello_ack)) {
		memcpy(&first, s, sizeof(first));
		if (le16toh(first.type) == MIG_HELLO_ACK)
			memcpy(s + sizeof(first), hello.session, sizeof(hello.session));
	}
	for (size_t off = 0; off < len;) {
		ssize_t n = send(c->fd, s + off, len - off, MSG_NOSIGNAL);
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	free(s);
out:
	shutdown(c->fd, SHUT_WR);
	char sink[65536];
	while (read(c->fd, sink, sizeof(sink)) > 0)
		;
	close(c->fd);
	free(c);
	pthread_mutex_lock(&script_lock);
	if (!--conns_active)
		pthread_cond_broadcast(&conns_done);
	pthread_mutex_unlock(&script_lock);
	return NULL;
}

static void *accept_thread(void *arg)
{
	(void)arg;
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		struct conn *c = malloc(sizeof(*c));
		c->fd = fd;
		pthread_t t;
		pthread_mutex_lock(&script_lock);
		conns_active++;
		pthread_mutex_unlock(&script_lock);
		if (pthread_create(&t, NULL, conn_thread, c)) {
			close(fd);
			free(c);
			pthread_mutex_lock(&script_lock);
			conns_active--;
			pthread_mutex_unlock(&script_lock);
			continue;
		}
		pthread_detach(t);
	}
	return NULL;
}

static int vm_pause(void *ctx) { (void)ctx; return 0; }
static int vm_resume(void *ctx) { (void)ctx; return 0; }
static int vm_save(void *ctx, void **blob, size_t *len)
{
	(void)ctx;
	*blob = strdup("fuzz-state");
	*len = 11;
	return *blob ? 0 : -ENOMEM;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	struct lvm_mem_opts mo = { .struct_size = sizeof(mo), .backing = LVM_BACKING_ANON,
				   .size = MEM, .kvm_vm_fd = -1 };
	if (lvm_mem_create(&mo, &mem))
		abort();
	memset(lvm_mem_addr(mem), 0x5a, MEM / 2);	/* data and zero runs */
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t alen = sizeof(a);
	if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) || listen(lfd, 64) ||
	    getsockname(lfd, (struct sockaddr *)&a, &alen))
		abort();
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", ntohs(a.sin_port));
	pthread_t t;
	if (pthread_create(&t, NULL, accept_thread, NULL))
		abort();
	pthread_detach(t);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	size_t n = (size_t)data[0] | (size_t)data[1] << 8;
	if (n > size - 2)
		n = size - 2;
	pthread_mutex_lock(&script_lock);
	script[0] = data + 2, script_len[0] = n;
	script[1] = data + 2 + n, script_len[1] = size - 2 - n;
	pthread_mutex_unlock(&script_lock);
	struct mig_src_opts o = { .addr = addr, .recover_timeout_s = 1, .vcpus = 1 };
	struct mig_src_vm vm = { NULL, vm_pause, vm_resume, vm_save };
	struct mig_stats st;
	char err[256];
	mig_src_run(&o, mem, &vm, &st, err, sizeof(err));
	/* The source closed its sockets: every connection thread ends now (so
	 * LeakSanitizer never sees one mid-flight); the input goes away after
	 * this call. */
	pthread_mutex_lock(&script_lock);
	script_len[0] = script_len[1] = 0;
	while (conns_active)
		pthread_cond_wait(&conns_done, &script_lock);
	pthread_mutex_unlock(&script_lock);
	return 0;
}
