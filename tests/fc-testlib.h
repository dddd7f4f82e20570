/* SPDX-License-Identifier: MIT */
/*
 * Test helpers for fc-serve: start the real CLI (readiness through
 * --ready-fd, never a sleep), and a client that does exactly what
 * Firecracker does on snapshot load with a Uffd memory backend: map guest
 * memory (anonymous or hugetlb), create a uffd with EVENT_REMOVE,
 * non-blocking and close-on-exec, register every region MISSING, connect,
 * send the JSON mappings with the uffd as SCM_RIGHTS, keep the socket open.
 * Written independently of src/fc*.c on purpose: the JSON is built here.
 */
#ifndef LAZYVM_FC_TESTLIB_H
#define LAZYVM_FC_TESTLIB_H

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tap.h"
#include "testlib.h"

/*
 * The scratch a server test needs: a mkdtemp directory from tmpl, the paths
 * of the memory file (size bytes of pattern, written), the socket, the
 * server's log and its stats.  Returns the pattern (what the file holds).
 */
struct fct_paths {
	char dir[64], mem[128], sock[128], log[128], stats[128];
};

static inline uint8_t *fct_scratch(const char *tmpl, size_t size, struct fct_paths *p)
{
	snprintf(p->dir, sizeof(p->dir), "%s", tmpl);
	if (!mkdtemp(p->dir))
		tap_bail("mkdtemp: %s", strerror(errno));
	snprintf(p->mem, sizeof(p->mem), "%s/mem", p->dir);
	snprintf(p->sock, sizeof(p->sock), "%s/sock", p->dir);
	snprintf(p->log, sizeof(p->log), "%s/log", p->dir);
	snprintf(p->stats, sizeof(p->stats), "%s/stats.json", p->dir);
	uint8_t *expect = malloc(size);
	if (!expect)
		tap_bail("out of memory");
	pattern_fill(expect, 0, size);
	int fd = open(p->mem, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, expect, size) != (ssize_t)size)
		tap_bail("cannot write %s", p->mem);
	close(fd);
	return expect;
}

#define FCT_MAX_REGIONS 4

/*
 * Start `$LAZYVM fc-serve ARGS... --ready-fd N` with stderr to log_path and
 * wait until it listens.  Returns the pid, or -1 (the log says why).
 */
static inline pid_t fct_server_start(const char *const *args, const char *log_path)
{
	const char *cli = getenv("LAZYVM");
	int p[2];
	if (!cli || pipe2(p, O_CLOEXEC))
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		char fdarg[16];
		const char *argv[32] = { cli, "fc-serve" };
		int n = 2;
		for (; *args && n < 28; args++)
			argv[n++] = *args;
		snprintf(fdarg, sizeof(fdarg), "%d", p[1]);
		argv[n++] = "--ready-fd";
		argv[n++] = fdarg;
		int log = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (log < 0 || dup2(log, 2) < 0)
			_exit(127);
		fcntl(p[1], F_SETFD, 0);
		prctl(PR_SET_PDEATHSIG, SIGKILL);	/* never outlive the test */
		execv(cli, (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	char buf[8] = { 0 };
	ssize_t n = pid > 0 ? read(p[0], buf, sizeof(buf) - 1) : -1;
	close(p[0]);
	if (n > 0 && !strncmp(buf, "ready", 5))
		return pid;
	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	return -1;
}

/* SIGTERM and reap; the exit status (or 128+signal). */
/* fc-serve on the scratch of fct_scratch (socket, memory file, stats, log). */
static inline pid_t fct_server_start_scratch(const struct fct_paths *p)
{
	const char *args[] = { "--socket", p->sock, "--mem-file", p->mem,
			       "--stats-json", p->stats, NULL };
	pid_t pid = fct_server_start(args, p->log);
	if (pid < 0)
		tap_bail("fc-serve did not start (see its log, %s)", p->log);
	return pid;
}

static inline int fct_server_stop(pid_t pid)
{
	int st;
	kill(pid, SIGTERM);
	if (waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Does the file at path contain needle? */
static inline bool fct_file_has(const char *path, const char *needle)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return false;
	static char buf[1 << 16];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	return strstr(buf, needle) != NULL;
}

struct fct_vm {
	int uffd, sock;
	unsigned n;
	uint64_t page_size;
	uint8_t *addr[FCT_MAX_REGIONS];
	uint64_t size[FCT_MAX_REGIONS], offset[FCT_MAX_REGIONS];
};

/* Guest memory + uffd + MISSING registration, as Firecracker sets it up. */
static inline int fct_vm_create(struct fct_vm *vm, unsigned n, const uint64_t *sizes,
				const uint64_t *offsets, bool hugetlb)
{
	memset(vm, 0, sizeof(*vm));
	vm->uffd = vm->sock = -1;
	vm->n = n;
	vm->page_size = hugetlb ? 2u << 20 : 4096;
	for (unsigned i = 0; i < n; i++) {
		void *p = mmap(NULL, sizes[i], PROT_READ | PROT_WRITE, MAP_PRIVATE |
			       MAP_ANONYMOUS | MAP_NORESERVE | (hugetlb ? MAP_HUGETLB : 0), -1, 0);
		if (p == MAP_FAILED)
			return -errno;
		vm->addr[i] = p;
		vm->size[i] = sizes[i];
		vm->offset[i] = offsets[i];
	}
	vm->uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (vm->uffd < 0)
		return -errno;
	struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_EVENT_REMOVE };
	if (ioctl(vm->uffd, UFFDIO_API, &api))
		return -errno;
	for (unsigned i = 0; i < n; i++) {
		struct uffdio_register reg = {
			.range = { (uint64_t)(uintptr_t)vm->addr[i], sizes[i] },
			.mode = UFFDIO_REGISTER_MODE_MISSING,
		};
		if (ioctl(vm->uffd, UFFDIO_REGISTER, &reg))
			return -errno;
	}
	return 0;
}

/* The mappings JSON; psz_key "page_size" or "page_size_kib" (value bytes). */
static inline void fct_vm_json(const struct fct_vm *vm, const char *psz_key, char *buf,
			       size_t len)
{
	size_t at = (size_t)snprintf(buf, len, "[");
	for (unsigned i = 0; i < vm->n; i++)
		at += (size_t)snprintf(buf + at, len - at,
			"%s{\"base_host_virt_addr\":%llu,\"size\":%llu,\"offset\":%llu,\"%s\":%llu}",
			i ? "," : "", (unsigned long long)(uintptr_t)vm->addr[i],
			(unsigned long long)vm->size[i], (unsigned long long)vm->offset[i],
			psz_key, (unsigned long long)vm->page_size);
	snprintf(buf + at, len - at, "]");
}

static inline int fct_connect(const char *sock_path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(sock_path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, sock_path, strlen(sock_path));
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa))) {
		int err = -errno;
		close(s);
		return err;
	}
	return s;
}

/* One sendmsg: msg, with fd attached unless fd < 0. */
static inline int fct_send(int sock, const char *msg, int fd)
{
	union { struct cmsghdr a; char b[CMSG_SPACE(sizeof(int))]; } cm;
	struct iovec iov = { (void *)msg, strlen(msg) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (fd >= 0) {
		mh.msg_control = cm.b;
		mh.msg_controllen = sizeof(cm.b);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	return sendmsg(sock, &mh, MSG_NOSIGNAL) == (ssize_t)iov.iov_len ? 0 : -errno;
}

/* Connect and send msg (NULL: the VM's own mappings with psz_key). */
static inline int fct_vm_connect(struct fct_vm *vm, const char *sock_path, const char *msg,
				 const char *psz_key, bool with_fd)
{
	char json[2048];
	if (!msg) {
		fct_vm_json(vm, psz_key, json, sizeof(json));
		msg = json;
	}
	vm->sock = fct_connect(sock_path);
	if (vm->sock < 0)
		return vm->sock;
	return fct_send(vm->sock, msg, with_fd ? vm->uffd : -1);
}

/* Block until the server closes the connection: true if it did. */
static inline bool fct_wait_closed(int sock)
{
	char c;
	ssize_t n;
	while ((n = recv(sock, &c, 1, 0)) > 0)
		;
	return n == 0 || errno == ECONNRESET;
}

/* First page of region i (index) whose bytes differ from expect+offset, or -1. */
static inline long fct_vm_mismatch(const struct fct_vm *vm, unsigned i, uint64_t lo,
				   uint64_t hi, const uint8_t *expect)
{
	for (uint64_t off = lo; off < hi; off += 4096)
		if (memcmp(vm->addr[i] + off, expect + vm->offset[i] + off, 4096))
			return (long)(off / 4096);
	return -1;
}

static inline void fct_vm_destroy(struct fct_vm *vm)
{
	if (vm->sock >= 0)
		close(vm->sock);
	if (vm->uffd >= 0)
		close(vm->uffd);
	for (unsigned i = 0; i < vm->n; i++)
		if (vm->addr[i])
			munmap(vm->addr[i], vm->size[i]);
	memset(vm, 0, sizeof(*vm));
	vm->uffd = vm->sock = -1;
}

#endif
