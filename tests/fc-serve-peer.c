/* SPDX-License-Identifier: MIT */
/*
 * fc-serve and VMMs whose uffd it cannot serve with COPY alone (issue 9,
 * defect 10).  Refused at the handshake, with the reason in the log, where
 * serving would loop: a uffd without EVENT_REMOVE, memory registered MINOR
 * or WP as well as MISSING.  Served correctly where it can be: guest memory
 * on shmem (a memfd), where UFFDIO_ZEROPAGE is refused, gets COPYs of zeros
 * for the snapshot's zero chunks instead of SIGBUS.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "snapshot/snapshot.h"
#include "tap.h"
#include "testlib.h"
#include "fc-testlib.h"

#define MEM (2u << 20)
#define HALF (MEM / 2)

static struct fct_paths paths;

/* Guest memory (anon, or a shared memfd) with a uffd set up as asked. */
static int peer_create(struct fct_vm *vm, bool shmem, uint64_t features, uint64_t modes)
{
	memset(vm, 0, sizeof(*vm));
	vm->uffd = vm->sock = -1;
	vm->n = 1;
	vm->page_size = 4096;
	vm->size[0] = MEM;
	int fd = shmem ? memfd_create("peer", MFD_CLOEXEC) : -1;
	if (shmem && (fd < 0 || ftruncate(fd, MEM)))
		return -errno;
	void *p = mmap(NULL, MEM, PROT_READ | PROT_WRITE,
		       shmem ? MAP_SHARED : MAP_PRIVATE | MAP_ANONYMOUS, fd, 0);
	if (fd >= 0)
		close(fd);
	if (p == MAP_FAILED)
		return -errno;
	vm->addr[0] = p;
	vm->uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	struct uffdio_api api = { .api = UFFD_API, .features = features };
	struct uffdio_register reg = { .range = { (uint64_t)(uintptr_t)p, MEM }, .mode = modes };
	if (vm->uffd < 0 || ioctl(vm->uffd, UFFDIO_API, &api) || ioctl(vm->uffd, UFFDIO_REGISTER, &reg))
		return -errno;
	return 0;
}

static void check_refused(const char *what, bool shmem, uint64_t features, uint64_t modes,
			  const char *needle)
{
	struct fct_vm vm;
	int ret = peer_create(&vm, shmem, features, modes);
	if (ret) {
		tap_skip(what, "cannot set up the peer's uffd: %s", strerror(-ret));
		fct_vm_destroy(&vm);
		return;
	}
	ret = fct_vm_connect(&vm, paths.sock, NULL, "page_size", true);
	bool closed = !ret && fct_wait_closed(vm.sock);
	bool logged = fct_file_has(paths.log, needle);
	tap_ok(closed && logged, "%s: refused, the log says \"%s\"", what, needle);
	fct_vm_destroy(&vm);
}

static sigjmp_buf bus_jb;
static void on_sigbus(int sig)
{
	(void)sig;
	siglongjmp(bus_jb, 1);
}

static void check_shmem_zero_chunks(void)
{
	struct fct_vm vm;
	int ret = peer_create(&vm, true, UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_MISSING_SHMEM,
			      UFFDIO_REGISTER_MODE_MISSING);
	if (!ret)
		ret = fct_vm_connect(&vm, paths.sock, NULL, "page_size", true);
	if (ret) {
		tap_ok(0, "shmem guest memory: connect: %s", strerror(-ret));
		fct_vm_destroy(&vm);
		return;
	}
	struct sigaction sa = { .sa_handler = on_sigbus }, old;
	sigaction(SIGBUS, &sa, &old);
	volatile long bus_at = -1;
	if (sigsetjmp(bus_jb, 1) == 0) {
		for (uint64_t off = 0; off < MEM; off += 4096) {
			bus_at = (long)off;
			(void)*(volatile uint8_t *)(vm.addr[0] + off);
		}
		bus_at = -1;
	}
	sigaction(SIGBUS, &old, NULL);
	bool ok = bus_at < 0 && pattern_check(vm.addr[0], 0, HALF) < 0 &&
		  is_zero(vm.addr[0] + HALF, HALF);
	tap_ok(ok, "shmem guest memory: data chunks right, zero chunks read as zeros (no SIGBUS)");
	if (!ok)
		tap_diag("SIGBUS at offset %ld", (long)bus_at);
	fct_vm_destroy(&vm);
}

/* A lazyvm snapshot whose memory is pattern, then zero chunks (elided). */
static void write_snapshot(const char *dir)
{
	uint8_t *mem = calloc(1, MEM);
	pattern_fill(mem, 0, HALF);
	struct snap_writer *w;
	if (snapshot_writer_open(dir, NULL, &w) || snapshot_mem_begin(w, MEM) ||
	    snapshot_write_memory(w, mem, MEM, NULL) || snapshot_writer_close(w))
		tap_bail("cannot write the snapshot in %s", dir);
	free(mem);
}

int main(void)
{
	tap_watchdog(120);
	tap_plan(4);
	snprintf(paths.dir, sizeof(paths.dir), "/tmp/lazyvm-fcpeer-XXXXXX");
	if (!mkdtemp(paths.dir))
		tap_bail("mkdtemp: %s", strerror(errno));
	char snap[100];
	snprintf(snap, sizeof(snap), "%s/snap", paths.dir);
	snprintf(paths.mem, sizeof(paths.mem), "%s/memory", snap);
	snprintf(paths.sock, sizeof(paths.sock), "%s/sock", paths.dir);
	snprintf(paths.log, sizeof(paths.log), "%s/log", paths.dir);
	snprintf(paths.stats, sizeof(paths.stats), "%s/stats.json", paths.dir);
	write_snapshot(snap);
	pid_t server = fct_server_start_scratch(&paths);

	check_refused("a uffd without EVENT_REMOVE", false, 0, UFFDIO_REGISTER_MODE_MISSING,
		      "lacks UFFD_FEATURE_EVENT_REMOVE");
	check_refused("memory registered MINOR as well", true,
		      UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_MISSING_SHMEM |
		      UFFD_FEATURE_MINOR_SHMEM,
		      UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_MINOR,
		      "registered MINOR as well");
	check_refused("memory registered WP as well", false,
		      UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_PAGEFAULT_FLAG_WP,
		      UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP,
		      "registered WP as well");
	check_shmem_zero_chunks();

	fct_server_stop(server);
	char cmd[160];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", paths.dir);
	if (system(cmd))
		tap_diag("cleanup of %s failed", paths.dir);
	return tap_done();
}
