/* SPDX-License-Identifier: MIT */
/*
 * fc-serve's bounds on what a local peer can make it do (issue 9, defect
 * 11): a handshake sent one byte per send() is read (and parsed once it can
 * be complete, not after every byte) and the VM served; with --max-vms 1 a
 * second VM connected at the same time is refused with a log line, while the
 * first is still served.
 */
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "testlib.h"
#include "fc-testlib.h"

#define FILE_SIZE (2u << 20)

static struct fct_paths paths;

/* The message one byte per send(); the uffd travels with the first. */
static int send_dripping(struct fct_vm *vm, const char *sock_path)
{
	char json[2048], first[2] = { 0 };
	fct_vm_json(vm, "page_size", json, sizeof(json));
	vm->sock = fct_connect(sock_path);
	if (vm->sock < 0)
		return vm->sock;
	first[0] = json[0];
	int ret = fct_send(vm->sock, first, vm->uffd);
	for (size_t i = 1; !ret && json[i]; i++)
		if (send(vm->sock, &json[i], 1, MSG_NOSIGNAL) != 1)
			ret = -errno;
	return ret;
}

int main(void)
{
	tap_watchdog(120);
	tap_plan(2);
	uint8_t *expect = fct_scratch("/tmp/lazyvm-fclim-XXXXXX", FILE_SIZE, &paths);
	const char *args[] = { "--socket", paths.sock, "--mem-file", paths.mem,
			       "--max-vms", "1", NULL };
	pid_t server = fct_server_start(args, paths.log);
	if (server < 0)
		tap_bail("fc-serve did not start (log %s)", paths.log);

	static const uint64_t sizes[1] = { FILE_SIZE }, offsets[1] = { 0 };
	struct fct_vm a, b;
	int ret = fct_vm_create(&a, 1, sizes, offsets, false);
	if (!ret)
		ret = send_dripping(&a, paths.sock);
	tap_ok(!ret && fct_vm_mismatch(&a, 0, 0, FILE_SIZE, expect) < 0,
	       "a handshake sent a byte at a time: the VM is served, every page right");

	ret = fct_vm_create(&b, 1, sizes, offsets, false);
	if (!ret)
		ret = fct_vm_connect(&b, paths.sock, NULL, "page_size", true);
	/* The server may refuse and close before our handshake is out: then
	 * the send itself fails (EPIPE), which is the refusal too. */
	bool closed = ret == -EPIPE || ret == -ECONNRESET || (!ret && fct_wait_closed(b.sock));
	bool logged = fct_file_has(paths.log, "the limit");
	if (!closed || !logged)
		tap_diag("second VM: send %s, closed %d, log has \"the limit\" %d", strerror(-ret),
			 closed, logged);
	tap_ok(closed && logged, "--max-vms 1: a second VM at once is refused, the log says why");
	fct_vm_destroy(&b);
	fct_vm_destroy(&a);
	fct_server_stop(server);
	char cmd[96];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", paths.dir);
	if (system(cmd))
		tap_diag("cleanup of %s failed", paths.dir);
	free(expect);
	return tap_done();
}
