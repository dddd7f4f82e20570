/* SPDX-License-Identifier: MIT */
/*
 * `lazyvm restore DIR --uffd-socket PATH` (the VMM as a Firecracker-protocol
 * client) against `lazyvm fc-serve --mem-file DIR/memory`: the restored
 * guest finishes with the RESULT of the uninterrupted run, on anonymous and
 * on hugetlb memory.  A page server that takes the uffd and hangs up
 * without serving stops the VM with a message: no hang, no zero pages.
 */
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "lazyvm.h"
#include "fc/fc.h"
#include "core/hugetlb.h"
#include "tap.h"
#include "vmtest.h"
#include "fc-testlib.h"

#define MEM (64ull << 20)

static char out[8192], err[8192];
static char tmp[] = "/tmp/lazyvm-fc-restore.XXXXXX";
static char snap[600], mem_file[640], sock[640], log_path[640], stats[640];
static const char *const guest[] = { "--guest", "workload", "--mem", "64M", "--seed", "5",
				     "--iterations", "3000000", "--vcpus", "2" };
#define NGUEST (sizeof(guest) / sizeof(guest[0]))

static int lazyvm(const char *cmd, const char *const *extra)
{
	const char *args[32] = { cmd };
	unsigned n = 1;
	if (strcmp(cmd, "restore"))
		for (unsigned i = 0; i < NGUEST; i++)
			args[n++] = guest[i];
	for (; *extra && n < 31; extra++)
		args[n++] = *extra;
	args[n] = NULL;
	return vmtest_exec(tmp, args, out, sizeof(out), err, sizeof(err));
}

/* fc-serve --once on the snapshot's memory, restore through it. */
static void restore_via_fc_serve(const char *backing, uint64_t want)
{
	const char *sargs[] = { "--socket", sock, "--mem-file", mem_file, "--once",
				"--stats-json", stats, NULL };
	pid_t server = fct_server_start(sargs, log_path);
	const char *rargs[] = { snap, "--uffd-socket", sock, "--backing", backing, NULL };
	int st = server > 0 ? lazyvm("restore", rargs) : -1;
	uint64_t got = 0;
	bool have = vmtest_result(out, &got);
	if (st && strstr(err, "hugetlb guest memory") && strstr(err, "Cannot allocate memory")) {
		/* The pool is machine-wide: a concurrent program shrank it. */
		kill(server, SIGTERM);
		waitpid(server, NULL, 0);
		tap_skip("hugetlb: restore --uffd-socket", "ENOMEM for the guest's huge pages (the "
			 "pool was shrunk by a concurrent program)");
		tap_skip("hugetlb: fc-serve", "no VM");
		return;
	}
	if (!tap_ok(st == 0 && have && got == want, "%s: restore --uffd-socket via fc-serve: "
		    "RESULT %016llx == uninterrupted %016llx", backing, (unsigned long long)got,
		    (unsigned long long)want))
		tap_diag("exit %d, stderr: %s", st, err);
	int ws = -1;
	if (server > 0 && st != 0)
		kill(server, SIGTERM);	/* the VM never came: do not wait for it */
	if (server > 0)
		waitpid(server, &ws, 0);	/* --once: it ends with its VM */
	tap_ok(WIFEXITED(ws) && !WEXITSTATUS(ws) && fct_file_has(stats, "\"vms_served\":1,") &&
	       !fct_file_has(stats, "\"pages_demand\":0,"),
	       "%s: fc-serve served the VM on demand and exited 0 after it", backing);
	unlink(stats);
	unlink(log_path);
}

/* A "page server" that takes the message and the uffd, then hangs up. */
static void check_server_hangs_up(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	memcpy(sa.sun_path, sock, strlen(sock));
	unlink(sock);
	int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof(sa)) || listen(l, 1))
		tap_bail("listen %s", sock);
	pid_t pid = fork();
	if (pid == 0) {
		struct fc_mapping m[FC_MAX_MAPPINGS];
		char e[256];
		int uffd = -1, c = accept(l, NULL, NULL);
		int n = fc_recv_message(c, 30000, m, FC_MAX_MAPPINGS, &uffd, e, sizeof(e));
		_exit(n == 1 ? 0 : 1);	/* closes the socket and the uffd unserved */
	}
	close(l);
	const char *rargs[] = { snap, "--uffd-socket", sock, NULL };
	int st = lazyvm("restore", rargs);
	int cs = -1;
	waitpid(pid, &cs, 0);
	tap_ok(st != 0 && strstr(err, "page server closed") && !strstr(out, "RESULT") &&
	       WIFEXITED(cs) && !WEXITSTATUS(cs),
	       "page server hangs up without serving: restore stops with a message (exit %d)", st);
	unlink(sock);
}

int main(void)
{
	if (!vmtest_begin("fc-restore", 300, tmp, 7))
		return 0;
	snprintf(snap, sizeof(snap), "%s/snap", tmp);
	snprintf(mem_file, sizeof(mem_file), "%s/memory", snap);
	snprintf(sock, sizeof(sock), "%s/uffd.sock", tmp);
	snprintf(log_path, sizeof(log_path), "%s/fc-serve.log", tmp);
	snprintf(stats, sizeof(stats), "%s/fc-serve.json", tmp);

	const char *none[] = { NULL };
	int st = lazyvm("run", none);
	uint64_t want = 0;
	bool have = vmtest_result(out, &want);
	tap_ok(st == 0 && have, "uninterrupted run: RESULT %016llx", (unsigned long long)want);
	const char *snap_args[] = { "--snapshot", snap, "--snapshot-after-ms", "60", NULL };
	st = lazyvm("run", snap_args);
	if (!tap_ok(st == 0 && !strstr(out, "RESULT"), "run --snapshot mid-run (exit %d)", st))
		tap_bail("no snapshot: %s", err);

	restore_via_fc_serve("anon", want);
	struct hugetlb_reservation res = HUGETLB_RESERVATION_INIT;
	/* The VM's pages plus spares for the kernel's hugetlb COPY (fc-serve.c). */
	if (hugetlb_reserve((long)(MEM >> 21) + 2, &res)) {
		tap_skip("hugetlb: restore --uffd-socket", "cannot reserve %llu huge pages",
			 (unsigned long long)(MEM >> 21) + 2);
		tap_skip("hugetlb: fc-serve", "no huge pages");
	} else {
		restore_via_fc_serve("hugetlb", want);
		hugetlb_release(&res);
	}
	check_server_hangs_up();
	vmtest_rmtree(tmp);
	return tap_done();
}
