/* SPDX-License-Identifier: MIT */
/*
 * Secret-free VMs served by fc-serve (Firecracker's feature/secret-hiding
 * protocol), on a kernel with KVM userfault and guest_memfd write()
 * (make check-gmem; SKIP with the reason elsewhere):
 *
 *  - a client that does what Firecracker does (3-fd handshake, text
 *    message) and drives both paths by hand: a FaultRequest populates the
 *    page and its 64 KiB block by pwrite and clears their bits; the
 *    client's own accesses to those pages are MINOR faults served by
 *    CONTINUE; a page never asked for faults MISSING and is COPYed, its bits
 *    cleared; a page whose bit the client cleared itself (after writing it)
 *    is served by CONTINUE with the client's content, never the file's; a
 *    request for a page already populated writes nothing.  The stats count
 *    exactly the pages written (no page twice).
 *  - lazyvm's own VMM: `restore --uffd-socket --backing gmem --secret-free`
 *    through fc-serve finishes with the uninterrupted run's RESULT, and
 *    fc-serve answered FaultRequests for it.
 */
#include <sys/wait.h>

#include "sf-testlib.h"
#include "vmtest.h"

#define SF_SIZE (4u << 20)
#define OWN_PAGE 100	/* the client writes it and clears its bit itself */
#define MISS_PAGE 300	/* never requested: the client touches it first */
#define PLAN 12
/* Under the guest's own timeout (check-gmem: 480 s for every program):
 * a hang must name its phase, not end in a killed guest. */
#define GMEM_SF_WATCHDOG_S 240

static struct fct_paths paths;
static pid_t fct_pid;
static uint8_t *expect;

static bool sf_kernel(char *why, size_t len)
{
	bool uf = false, wr = false;
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	int vm = kvm >= 0 ? ioctl(kvm, KVM_CREATE_VM, 0) : -1;
	if (vm >= 0) {
		uf = ioctl(vm, KVM_CHECK_EXTENSION, LVM_KVM_CAP_USERFAULT) > 0;
		int f = ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD_FLAGS);
		wr = f > 0 && (f & LVM_GUEST_MEMFD_FLAG_WRITE);
		close(vm);
	}
	if (kvm >= 0)
		close(kvm);
	snprintf(why, len, "this kernel lacks %s", !uf && !wr ? "KVM userfault "
		 "(KVM_CAP_USERFAULT 252) and guest_memfd write()" : !uf ? "KVM userfault" :
		 "guest_memfd write()");
	return uf && wr;
}

static void dump_log(void)
{
	char buf[4096];
	vmtest_slurp(paths.log, buf, sizeof(buf));
	for (char *l = strtok(buf, "\n"); l; l = strtok(NULL, "\n"))
		tap_diag("fc-serve: %s", l);
}

static unsigned bits_clear(const struct sft_vm *v)
{
	unsigned n = 0;
	for (uint64_t p = 0; p < v->size / 4096; p++)
		n += !sft_bit(v, p);
	return n;
}

static long long stat_of(const char *key)
{
	char buf[8192];
	char pat[64];
	vmtest_slurp(paths.stats, buf, sizeof(buf));
	snprintf(pat, sizeof(pat), "\"%s\":", key);	/* fc-serve writes no spaces */
	const char *p = strstr(buf, pat);
	return p ? strtoll(p + strlen(pat), NULL, 10) : -1;
}

/* The client drives both paths; see the top of the file. */
static void check_client(void)
{
	struct sft_vm v;
	if (sft_vm_create(&v, SF_SIZE) || !v.registered)
		tap_bail("secret-free client setup (uffd MISSING|MINOR on guest_memfd: %s)",
			 v.registered ? "ok" : "refused");
	static uint8_t own[4096];
	memset(own, 0xa5, sizeof(own));
	if (pwrite(v.gmem, own, 4096, OWN_PAGE * 4096) != 4096)
		tap_bail("client pwrite of its own page: %s", strerror(errno));
	atomic_fetch_and(&v.bits[OWN_PAGE / 64], ~(1ull << (OWN_PAGE % 64)));
	if (sft_handshake(&v, paths.sock, NULL, 0, "no_exitless_apf"))
		tap_bail("handshake");

	struct fc_fault_reply a;
	tap_phase("the first FaultRequest");
	int ret = sft_request(&v, 3, 0);
	if (!ret)
		ret = sft_reply(&v, &a);
	bool bits_ok = true;
	for (unsigned p = 0; p < 16; p++)
		bits_ok &= !sft_bit(&v, p);
	if (!tap_ok(!ret && a.has_vcpu && a.vcpu == 3 && a.has_gpa && a.gpa == 0 && a.flags ==
		    LVM_KVM_MEMORY_EXIT_FLAG_USERFAULT && bits_ok && sft_bit(&v, 16),
		    "FaultRequest{vcpu 3, gpa 0}: FaultReply names vcpu 3, bits 0..15 clear, 16 set")) {
		dump_log();	/* touching the memory now would wait for ever */
		tap_bail("the first FaultRequest failed (%s)", ret ? strerror(-ret) : "bad reply");
	}
	tap_phase("reading pages through the VMM's mapping (faults served by fc-serve)");
	tap_ok(!memcmp(v.mem, expect, 16 * 4096),
	       "the block it populated reads as the file through the VMM's mapping (MINOR: CONTINUE)");
	tap_ok(!memcmp(v.mem + OWN_PAGE * 4096, own, 4096),
	       "the page whose bit the client cleared: its own content, not the file's");
	tap_ok(!memcmp(v.mem + MISS_PAGE * 4096, expect + MISS_PAGE * 4096, 4096) &&
	       !sft_bit(&v, MISS_PAGE) && !sft_bit(&v, MISS_PAGE / 16 * 16),
	       "a page never requested: MISSING fault, copied from the file, its block's bits clear");
	ret = sft_request(&v, 1, 4096 * 5);
	if (!ret)
		ret = sft_reply(&v, &a);
	tap_ok(!ret && a.vcpu == 1 && a.len == 0, "FaultRequest for a page already populated: "
	       "replied, nothing written (len %llu)", (unsigned long long)a.len);
	unsigned cleared = bits_clear(&v);
	sft_vm_destroy(&v);

	/* fc-serve writes the stats when it stops. */
	tap_ok(fct_server_stop(fct_pid) == 0, "fc-serve exits 0");
	long long req = stat_of("fault_requests"), written = stat_of("pages_written");
	long long copied = stat_of("pages_copied"), cont = stat_of("continues");
	tap_diag("fault_requests %lld pages_written %lld pages_copied %lld continues %lld "
		 "pwrites %lld bits cleared %u", req, written, copied, cont,
		 stat_of("pwrites"), cleared);
	tap_ok(req == 2, "2 FaultRequests served (stats: %lld)", req);
	tap_ok(written == 16 && copied == 16 && cont >= 17,
	       "both paths: 16 pages pwritten, 16 copied on a MISSING fault, >= 17 CONTINUEs");
	tap_ok((unsigned)(written + copied + 1) == cleared,
	       "no page written twice: every cleared bit is one write (%lld + %lld + the "
	       "client's own = %u bits)", written, copied, cleared);
}

static void check_vmm(void)
{
	char tmp[] = "/tmp/lazyvm-gmem-sf.XXXXXX", snap[128], out[8192], err[8192];
	if (!mkdtemp(tmp))
		tap_bail("mkdtemp");
	snprintf(snap, sizeof(snap), "%s/snap", tmp);
	const char *run[] = { "run", "--guest", "workload", "--mem", "16M", "--seed", "5",
			      "--iterations", "3000000", "--vcpus", "2", NULL };
	const char *snapshot[] = { "run", "--guest", "workload", "--mem", "16M", "--seed", "5",
				   "--iterations", "3000000", "--vcpus", "2", "--snapshot", snap,
				   "--snapshot-after-ms", "50", NULL };
	uint64_t want = 0, got = 0;
	int st = vmtest_exec(tmp, run, out, sizeof(out), err, sizeof(err));
	bool have = !st && vmtest_result(out, &want);
	st = have ? vmtest_exec(tmp, snapshot, out, sizeof(out), err, sizeof(err)) : -1;
	if (!tap_ok(have && st == 0, "uninterrupted run RESULT %016llx, snapshot taken",
		    (unsigned long long)want))
		tap_diag("%s", err);
	char mem[160];
	snprintf(mem, sizeof(mem), "%s/memory", snap);
	const char *sargs[] = { "--socket", paths.sock, "--mem-file", mem, "--once",
				"--stats-json", paths.stats, NULL };
	unlink(paths.stats);
	pid_t server = fct_server_start(sargs, paths.log);
	const char *rargs[] = { "restore", snap, "--uffd-socket", paths.sock, "--backing", "gmem",
				"--secret-free", NULL };
	st = server > 0 ? vmtest_exec(tmp, rargs, out, sizeof(out), err, sizeof(err)) : -1;
	have = vmtest_result(out, &got);
	if (!tap_ok(st == 0 && have && got == want, "restore --secret-free via fc-serve: RESULT "
		    "%016llx == uninterrupted %016llx", (unsigned long long)got,
		    (unsigned long long)want))
		tap_diag("exit %d, stderr: %s", st, err), dump_log();
	int ws = -1;
	if (server > 0 && st)
		kill(server, SIGTERM);
	if (server > 0)
		waitpid(server, &ws, 0);
	long long req = stat_of("fault_requests");
	tap_diag("fc-serve for the VMM: fault_requests %lld pages_written %lld pages_copied "
		 "%lld continues %lld uffd faults %lld", req, stat_of("pages_written"),
		 stat_of("pages_copied"), stat_of("continues"), stat_of("faults"));
	tap_ok(WIFEXITED(ws) && !WEXITSTATUS(ws) && req > 0,
	       "fc-serve answered %lld FaultRequests of the VM's vCPUs and exited 0", req);
	vmtest_rmtree(tmp);
}

int main(void)
{
	tap_watchdog(GMEM_SF_WATCHDOG_S);
	tap_plan(PLAN);
	char why[128];
	if (!sf_kernel(why, sizeof(why))) {
		for (int i = 0; i < PLAN; i++)
			tap_skip("secret-free VMs", "%s", why);
		return 0;
	}
	expect = fct_scratch("/tmp/lazyvm-gmem-sf-XXXXXX", SF_SIZE, &paths);
	fct_pid = fct_server_start_scratch(&paths);
	check_client();
	check_vmm();
	return tap_done();
}
