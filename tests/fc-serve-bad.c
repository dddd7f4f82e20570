/* SPDX-License-Identifier: MIT */
/*
 * fc-serve and clients that get things wrong, while a good VM stays
 * connected and is served correctly throughout: an old-style message
 * (page_size_kib only) works; no fd, bad JSON, a mapping beyond the file,
 * overlapping or unaligned mappings, and a peer with another uid are each
 * refused with a clear log line, and the server keeps serving.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tap.h"
#include "testlib.h"
#include "fc-testlib.h"

#define FILE_SIZE (8u << 20)
#define NOBODY 65534

static struct fct_paths paths;
static uint8_t *expect;
static struct fct_vm good;
static uint64_t good_read;	/* bytes of good's region 1 verified so far */

/* The good VM reads (and checks) its next 512 KiB while the others misbehave. */
static bool good_step(void)
{
	uint64_t hi = good_read + (512u << 10);
	if (hi > good.size[1])
		hi = good.size[1];
	bool ok = fct_vm_mismatch(&good, 1, good_read, hi, expect) < 0;
	good_read = hi;
	return ok;
}

/* A client sends msg (with a fresh uffd unless !with_fd) and is refused. */
static void check_refused(const char *what, const char *msg, bool with_fd,
			  const char *log_needle)
{
	static const uint64_t sizes[1] = { 1u << 20 };
	static const uint64_t offsets[1] = { 0 };
	struct fct_vm vm;
	int ret = fct_vm_create(&vm, 1, sizes, offsets, false);
	if (!ret)
		ret = fct_vm_connect(&vm, paths.sock, msg, "page_size", with_fd);
	tap_phase(what);
	bool closed = !ret && fct_wait_closed(vm.sock);
	bool logged = fct_file_has(paths.log, log_needle);
	bool good_ok = good_step();
	tap_ok(closed && logged && good_ok, "%s: refused, log says \"%s\"; the good VM is "
	       "still served", what, log_needle);
	if (!logged)
		tap_diag("log %s lacks it (client: %s)", paths.log, ret ? strerror(-ret) : "ok");
	fct_vm_destroy(&vm);
}

static void check_kib_only(void)
{
	static const uint64_t sizes[1] = { 1u << 20 };
	static const uint64_t offsets[1] = { 6u << 20 };
	struct fct_vm vm;
	int ret = fct_vm_create(&vm, 1, sizes, offsets, false);
	if (!ret)
		ret = fct_vm_connect(&vm, paths.sock, NULL, "page_size_kib", true);
	tap_ok(!ret && fct_vm_mismatch(&vm, 0, 0, vm.size[0], expect) < 0 && good_step(),
	       "page_size_kib-only message (value in bytes): every page served from the file");
	fct_vm_destroy(&vm);
}

/* A forked child connects as uid 65534: the socket's mode is opened up so
 * that the SO_PEERCRED check, not the file mode, is what refuses it. */
static void check_wrong_uid(void)
{
	chmod(paths.dir, 0711);
	chmod(paths.sock, 0666);
	pid_t pid = fork();
	if (pid == 0) {
		static const uint64_t sizes[1] = { 1u << 20 };
		static const uint64_t offsets[1] = { 0 };
		struct fct_vm vm;
		if (fct_vm_create(&vm, 1, sizes, offsets, false) || setgid(NOBODY) ||
		    setuid(NOBODY))
			_exit(2);
		if (fct_vm_connect(&vm, paths.sock, NULL, "page_size", true) &&
		    errno != EPIPE && errno != ECONNRESET)
			_exit(3);
		_exit(fct_wait_closed(vm.sock) ? 0 : 4);
	}
	int st = -1;
	tap_phase("uid 65534 peer");
	waitpid(pid, &st, 0);
	chmod(paths.sock, 0600);
	chmod(paths.dir, 0700);
	bool logged = fct_file_has(paths.log, "connection from uid 65534") &&
		      fct_file_has(paths.log, "refused: uid not allowed");
	tap_ok(WIFEXITED(st) && !WEXITSTATUS(st) && logged && good_step(),
	       "uid %d peer: closed by the SO_PEERCRED check with a log line (child status "
	       "%d)", NOBODY, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

int main(void)
{
	tap_watchdog(120);
	tap_plan(11);
	expect = fct_scratch("/tmp/lazyvm-fcbad-XXXXXX", FILE_SIZE, &paths);

	pid_t server = fct_server_start_scratch(&paths);

	static const uint64_t sizes[2] = { 2u << 20, 4u << 20 };
	static const uint64_t offsets[2] = { 0, 2u << 20 };
	int ret = fct_vm_create(&good, 2, sizes, offsets, false);
	if (!ret)
		ret = fct_vm_connect(&good, paths.sock, NULL, "page_size", true);
	tap_ok(!ret && fct_vm_mismatch(&good, 0, 0, good.size[0], expect) < 0,
	       "good VM: region 0 served from the file");

	check_kib_only();
	check_refused("no fd attached",
		      "[{\"base_host_virt_addr\":4096,\"size\":4096,\"offset\":0,\"page_size\":4096}]",
		      false, "no userfaultfd attached");
	check_refused("malformed JSON",
		      "[{\"base_host_virt_addr\":4096,\"size\":,\"offset\":0}]", true, "bad JSON");
	check_refused("mapping beyond the file",
		      "[{\"base_host_virt_addr\":1073741824,\"size\":2097152,\"offset\":7340032,"
		      "\"page_size\":4096}]", true, "beyond the end of the memory file");
	check_refused("overlapping mappings",
		      "[{\"base_host_virt_addr\":1073741824,\"size\":1048576,\"offset\":0,"
		      "\"page_size\":4096},{\"base_host_virt_addr\":1074266112,\"size\":1048576,"
		      "\"offset\":1048576,\"page_size\":4096}]", true, "overlap in the VMM");
	check_refused("unaligned mapping",
		      "[{\"base_host_virt_addr\":1073745920,\"size\":2097152,\"offset\":0,"
		      "\"page_size\":2097152}]", true, "not a multiple of the 2097152-byte page");
	check_refused("page size 8 KiB",
		      "[{\"base_host_virt_addr\":1073741824,\"size\":8192,\"offset\":0,"
		      "\"page_size\":8192}]", true, "neither 4096 nor 2097152");
	check_wrong_uid();

	while (good_read < good.size[1])
		good_step();
	tap_ok(fct_vm_mismatch(&good, 1, 0, good.size[1], expect) < 0,
	       "good VM: every page of both regions equals the file at the end");
	fct_vm_destroy(&good);

	int status = fct_server_stop(server);
	tap_ok(status == 0 && fct_file_has(paths.stats, "\"vms_served\":2,\"vms_refused\":6,"
					   "\"peers_refused\":1"),
	       "server exits 0; stats: 2 VMs served, 6 refused, 1 peer refused");
	unlink(paths.mem);
	unlink(paths.log);
	unlink(paths.stats);
	unlink(paths.sock);
	rmdir(paths.dir);
	free(expect);
	return tap_done();
}
