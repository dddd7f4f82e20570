/* SPDX-License-Identifier: MIT */
/*
 * fc-serve as a fleet daemon, over a chunk-store snapshot (--mem-url, a
 * local store: no network needed):
 *  - --metrics-listen 127.0.0.1:0 answers a real HTTP client (curl) in
 *    Prometheus text format while a VM is served: VMs served and active,
 *    faults, the fault latency summary, chunk bytes by source, the cache
 *    hit ratio, the chunk-fetch latency histogram, errors;
 *  - SIGTERM while a VM is served: fc-serve exits 0, and the VM's memory
 *    is all there afterwards (every page mapped, every byte the snapshot's),
 *    never left to zero pages once the page server is gone.
 */
#include "fc-testlib.h"
#include "vmtest.h"

#define SIZE (8u << 20)

static char tmp[] = "/tmp/lazyvm-fc-metrics.XXXXXX";

static long metric(const char *text, const char *name)
{
	char pat[128];
	snprintf(pat, sizeof(pat), "\n%s ", name);
	const char *p = strstr(text, pat);
	return p ? strtol(p + strlen(pat), NULL, 10) : -1;
}

static bool all_resident(const struct fct_vm *vm)
{
	unsigned char vec[SIZE / 4096];
	if (mincore(vm->addr[0], SIZE, vec))
		return false;
	for (size_t i = 0; i < sizeof(vec); i++)
		if (!(vec[i] & 1))
			return false;
	return true;
}

int main(void)
{
	if (!vmtest_begin("fc-metrics", 300, tmp, 4))
		return 0;
	if (system("command -v curl >/dev/null 2>&1")) {
		for (int i = 0; i < 4; i++)
			tap_skip("fc-metrics", "curl (the HTTP client of this test) not installed");
		vmtest_rmtree(tmp);
		return 0;
	}
	struct fct_paths p;
	uint8_t *expect = fct_scratch("/tmp/lazyvm-fcm.XXXXXX", SIZE, &p);
	char snap[700], store[700], out[8192], err[8192];
	snprintf(snap, sizeof(snap), "%s/snap", tmp);
	snprintf(store, sizeof(store), "%s/store/vm", tmp);
	const char *pack[] = { "snapshot", "pack", p.mem, snap, NULL };
	const char *push[] = { "snapshot", "push", snap, store, "--chunk-size", "64K", NULL };
	if (vmtest_exec(tmp, pack, out, sizeof(out), err, sizeof(err)) ||
	    vmtest_exec(tmp, push, out, sizeof(out), err, sizeof(err)))
		tap_bail("pack/push: %s", err);
	char cache[700];
	snprintf(cache, sizeof(cache), "%s/cache", tmp);
	const char *args[] = { "--socket", p.sock, "--mem-url", store, "--cache", cache,
			       "--metrics-listen", "127.0.0.1:0", NULL };
	pid_t pid = fct_server_start(args, p.log);
	if (pid < 0)
		tap_bail("fc-serve did not start (log %s)", p.log);
	vmtest_slurp(p.log, err, sizeof(err));
	const char *at = strstr(err, "metrics on http://");
	unsigned port = 0;
	if (at && sscanf(at, "metrics on http://127.0.0.1:%u/", &port) != 1)
		port = 0;

	struct fct_vm vm;
	uint64_t size = SIZE, off = 0;
	if (fct_vm_create(&vm, 1, &size, &off, false) ||
	    fct_vm_connect(&vm, p.sock, NULL, "page_size", true))
		tap_bail("VM setup");
	/* Touch a few pages (each a fault the server serves). */
	bool first_ok = true;
	for (uint64_t o = 0; o < SIZE; o += SIZE / 8)
		first_ok &= !memcmp(vm.addr[0] + o, expect + o, 4096);

	char cmd[128], text[16384] = "";
	snprintf(cmd, sizeof(cmd), "curl -sf http://127.0.0.1:%u/metrics", port);
	FILE *c = port ? popen(cmd, "r") : NULL;
	size_t n = c ? fread(text, 1, sizeof(text) - 1, c) : 0;
	text[n] = 0;
	int cst = c ? pclose(c) : -1;
	tap_ok(first_ok && cst == 0 && metric(text, "lazyvm_vms_served_total") == 1 &&
	       metric(text, "lazyvm_vms_active") == 1 && metric(text, "lazyvm_faults_total") >= 1 &&
	       metric(text, "lazyvm_errors_total") == 0,
	       "curl http://127.0.0.1:%u/metrics while a VM is served: served 1, active 1, "
	       "faults %ld, errors 0", port, metric(text, "lazyvm_faults_total"));
	tap_ok(strstr(text, "lazyvm_chunk_bytes_total{source=\"store\"}") &&
	       strstr(text, "lazyvm_chunk_bytes_total{source=\"cache\"}") &&
	       strstr(text, "lazyvm_cache_hit_ratio ") &&
	       strstr(text, "lazyvm_chunk_fetch_seconds_bucket{le=\"+Inf\"}") &&
	       strstr(text, "lazyvm_fault_latency_seconds{quantile=\"0.99\"}") &&
	       strstr(text, "# TYPE lazyvm_chunk_fetch_seconds histogram"),
	       "bytes by source, cache hit ratio, fault latency summary, chunk-fetch histogram");
	if (!strstr(text, "histogram"))
		tap_diag("metrics: %s", text);

	int st = fct_server_stop(pid);
	bool resident = all_resident(&vm);
	tap_ok(st == 0 && resident, "SIGTERM while the VM is served: exit %d, every page of the "
	       "VM mapped afterwards", st);
	long bad = resident ? fct_vm_mismatch(&vm, 0, 0, SIZE, expect) : -2;
	tap_ok(bad == -1, "... and every byte is the snapshot's (first bad page %ld)", bad);
	fct_vm_destroy(&vm);
	free(expect);
	vmtest_rmtree(p.dir);
	vmtest_rmtree(tmp);
	return tap_done();
}
