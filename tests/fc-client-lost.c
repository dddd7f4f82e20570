/* SPDX-License-Identifier: MIT */
/*
 * The page server dies holding a fault it read but never answered (issue 9,
 * defect 3).  A deliberately bad page server (a fixture, like Firecracker's
 * malicious_handler) takes the uffd, serves page 0, reads the fault a guest
 * thread raised on page 7, and exits.  That fault is no longer on the uffd,
 * so a client that poisons only the faults it reads afterwards leaves the
 * thread blocked forever.  Expected: the client reports the loss, the thread
 * on page 7 gets SIGBUS, a later touch of another page gets SIGBUS, and page
 * 0 (served before the death) keeps its content.  Never zeros, never a hang.
 */
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "core/uapi-compat.h"
#include "fc/fc.h"
#include "lazyvm.h"
#include "tap.h"
#include "testlib.h"

#define PAGE 4096u
#define MEM_SIZE (1u << 20)

static int lost_pipe[2];

static void on_lost(void *ctx, const char *msg)
{
	(void)ctx;
	if (write(lost_pipe[1], msg, strlen(msg) + 1) < 0)
		abort();
}

/* ---- the bad page server ---------------------------------------------------- */

static int recv_uffd(int conn)
{
	char buf[4096], cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { buf, sizeof(buf) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	if (recvmsg(conn, &mh, 0) <= 0)
		return -1;
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	int fd = -1;
	if (cm && cm->cmsg_type == SCM_RIGHTS)
		memcpy(&fd, CMSG_DATA(cm), sizeof(fd));
	return fd;
}

/* Serve page 0, read one fault, die without answering it. */
static void bad_server(int lsock, uint64_t base)
{
	int conn = accept(lsock, NULL, NULL);
	int uffd = conn < 0 ? -1 : recv_uffd(conn);
	if (uffd < 0)
		_exit(10);
	static uint8_t page[PAGE];
	pattern_fill(page, 0, PAGE);
	struct uffdio_copy cp = { .dst = base, .src = (uint64_t)(uintptr_t)page, .len = PAGE };
	if (ioctl(uffd, UFFDIO_COPY, &cp))
		_exit(11);
	for (;;) {
		struct pollfd pfd = { uffd, POLLIN, 0 };
		struct uffd_msg m;
		if (poll(&pfd, 1, -1) < 0)
			_exit(12);
		if (read(uffd, &m, sizeof(m)) == sizeof(m) && m.event == UFFD_EVENT_PAGEFAULT)
			_exit(0);	/* read, never answered */
	}
}

/* ---- guest threads ------------------------------------------------------------ */

static __thread sigjmp_buf bus_jb;

static void on_sigbus(int sig)
{
	(void)sig;
	siglongjmp(bus_jb, 1);
}

struct touch {
	pthread_t t;
	volatile uint8_t *addr;
	int outcome;	/* 1 SIGBUS, 2 read */
};

static void *touch_page(void *arg)
{
	struct touch *t = arg;
	if (sigsetjmp(bus_jb, 1)) {
		t->outcome = 1;
		return NULL;
	}
	(void)t->addr[0];
	t->outcome = 2;
	return NULL;
}

static int touch_join(struct touch *t)
{
	pthread_join(t->t, NULL);
	return t->outcome;
}

int main(void)
{
	tap_watchdog(120);	/* before the fix, the thread on page 7 never returned */
	tap_plan(4);
	struct sigaction sa = { .sa_handler = on_sigbus };
	sigaction(SIGBUS, &sa, NULL);
	if (pipe(lost_pipe))
		tap_bail("pipe: %s", strerror(errno));

	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	snprintf(sun.sun_path, sizeof(sun.sun_path), "/tmp/lazyvm-fclost.%d", (int)getpid());
	unlink(sun.sun_path);
	int lsock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lsock < 0 || bind(lsock, (struct sockaddr *)&sun, sizeof(sun)) || listen(lsock, 1))
		tap_bail("listen %s: %s", sun.sun_path, strerror(errno));

	struct lvm_mem_opts mo = { .struct_size = sizeof(mo), .backing = LVM_BACKING_ANON,
				   .size = MEM_SIZE, .kvm_vm_fd = -1 };
	struct lvm_mem *mem = NULL;
	if (lvm_mem_create(&mo, &mem))
		tap_bail("memory");
	uint8_t *base = lvm_mem_addr(mem);
	fflush(stdout);
	pid_t server = fork();
	if (server == 0)
		bad_server(lsock, (uint64_t)(uintptr_t)base);

	struct fc_client *c = NULL;
	char err[256] = "", msg[256] = "";
	int ret = fc_client_connect(sun.sun_path, mem, on_lost, NULL, &c, err, sizeof(err));
	if (ret)
		tap_bail("connect: %s", err);
	struct touch t7 = { .addr = base + 7 * PAGE };
	pthread_create(&t7.t, NULL, touch_page, &t7);
	int status = 0;
	waitpid(server, &status, 0);	/* it exits once it read page 7's fault */
	ssize_t n = read(lost_pipe[0], msg, sizeof(msg) - 1);
	tap_ok(WIFEXITED(status) && !WEXITSTATUS(status) && n > 0 &&
	       strstr(msg, "page server"), "the client reports the lost page server (\"%s\")",
	       n > 0 ? msg : "");
	tap_ok(touch_join(&t7) == 1,
	       "the fault the dead server had read ends in SIGBUS, not a blocked thread");
	struct touch t20 = { .addr = base + 20 * PAGE };
	pthread_create(&t20.t, NULL, touch_page, &t20);
	tap_ok(touch_join(&t20) == 1, "a page touched after the loss: SIGBUS, never zeros");
	tap_ok(pattern_check(base, 0, PAGE) < 0, "the page served before the loss keeps its content");
	fc_client_close(c);
	lvm_mem_destroy(mem);
	close(lsock);
	unlink(sun.sun_path);
	return tap_done();
}
