/* SPDX-License-Identifier: MIT */
/*
 * lazyvm's own Firecracker-protocol client (src/fc/client.c, used by
 * `lazyvm restore --uffd-socket`) against the real `lazyvm fc-serve`: guest
 * memory (anon, then hugetlb) served page by page from the file; and when
 * the page server dies, the client reports it (the VMM stops the VM) instead
 * of leaving the guest blocked or, worse, reading zeros.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "lazyvm.h"
#include "fc/fc.h"
#include "core/hugetlb.h"
#include "testlib.h"
#include "fc-testlib.h"

#define MEM_SIZE (8u << 20)

static char dir[64], mem_path[128], sock_path[128], log_path[128];
static int lost_pipe[2];

static void on_lost(void *ctx, const char *msg)
{
	(void)ctx;
	if (write(lost_pipe[1], msg, strlen(msg) + 1) < 0)
		abort();
}

static void check_backing(enum lvm_backing b)
{
	const char *name = lvm_backing_name(b);
	struct lvm_mem_opts mo = { .struct_size = sizeof(mo), .backing = b, .size = MEM_SIZE, .kvm_vm_fd = -1 };
	struct lvm_mem *mem = NULL;
	struct fc_client *c = NULL;
	char err[256] = "";
	int ret = lvm_mem_create(&mo, &mem);
	if (!ret)
		ret = fc_client_connect(sock_path, mem, on_lost, NULL, &c, err, sizeof(err));
	if (!tap_ok(!ret, "%s: registered, connected, message sent", name)) {
		tap_diag("%s", err);
		tap_ok(0, "%s: not run", name);
		lvm_mem_destroy(mem);
		return;
	}
	tap_ok(pattern_check(lvm_mem_addr(mem), 0, MEM_SIZE) < 0,
	       "%s: every page of guest memory equals the file", name);
	fc_client_close(c);
	lvm_mem_destroy(mem);
}

int main(void)
{
	tap_watchdog(120);
	tap_plan(6);
	snprintf(dir, sizeof(dir), "/tmp/lazyvm-fccl-XXXXXX");
	if (!mkdtemp(dir) || pipe(lost_pipe))
		tap_bail("mkdtemp/pipe: %s", strerror(errno));
	snprintf(mem_path, sizeof(mem_path), "%s/mem", dir);
	snprintf(sock_path, sizeof(sock_path), "%s/sock", dir);
	snprintf(log_path, sizeof(log_path), "%s/log", dir);
	uint8_t *buf = malloc(MEM_SIZE);
	pattern_fill(buf, 0, MEM_SIZE);
	int fd = open(mem_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, buf, MEM_SIZE) != MEM_SIZE)
		tap_bail("cannot write %s", mem_path);
	close(fd);
	free(buf);

	const char *args[] = { "--socket", sock_path, "--mem-file", mem_path, NULL };
	pid_t server = fct_server_start(args, log_path);
	if (server < 0)
		tap_bail("fc-serve did not start");

	check_backing(LVM_BACKING_ANON);
	struct hugetlb_reservation res = HUGETLB_RESERVATION_INIT;
	if (hugetlb_reserve(MEM_SIZE >> 21, &res)) {
		tap_skip("hugetlb: fc client", "cannot reserve %u huge pages", MEM_SIZE >> 21);
		tap_skip("hugetlb: fc client", "cannot reserve %u huge pages", MEM_SIZE >> 21);
	} else {
		check_backing(LVM_BACKING_HUGETLB);
		hugetlb_release(&res);
	}

	/* The page server dies while a VM is connected. */
	struct lvm_mem_opts mo = { .struct_size = sizeof(mo), .backing = LVM_BACKING_ANON, .size = MEM_SIZE, .kvm_vm_fd = -1 };
	struct lvm_mem *mem = NULL;
	struct fc_client *c = NULL;
	char err[256] = "", msg[256] = "";
	int ret = lvm_mem_create(&mo, &mem);
	if (!ret)
		ret = fc_client_connect(sock_path, mem, on_lost, NULL, &c, err, sizeof(err));
	tap_ok(!ret && pattern_check(lvm_mem_addr(mem), 0, 1u << 20) < 0,
	       "third VM connected and served");
	kill(server, SIGKILL);
	waitpid(server, NULL, 0);
	ssize_t n = read(lost_pipe[0], msg, sizeof(msg) - 1);	/* bounded by the watchdog */
	tap_ok(n > 0 && strstr(msg, "page server closed"), "page server killed: the client "
	       "reports it (\"%s\")", n > 0 ? msg : "");
	fc_client_close(c);
	lvm_mem_destroy(mem);

	unlink(mem_path);
	unlink(log_path);
	unlink(sock_path);
	rmdir(dir);
	return tap_done();
}
