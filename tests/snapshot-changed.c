/* SPDX-License-Identifier: MIT */
/*
 * A snapshot memory file changed or truncated while it is served (issue 9,
 * defect 8): the source answers with an error, never with bytes it did not
 * check, and never dies of SIGBUS.  Each case runs in a child, so a SIGBUS
 * (the failure before the fix) is a failed test, not a dead test program.
 *   1. a chunk read once (its CRC checked), then rewritten in place: the
 *      next read of it is an error (-ESTALE), not the new bytes;
 *   2. the file truncated: reading past the new end is an error;
 *   3. the guard itself: reading a truncated page of a shared file mapping
 *      under sigbus_guard_run() is -EIO, not SIGBUS.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "lazyvm.h"
#include "snapshot/snapshot.h"
#include "tap.h"
#include "testlib.h"
#include "util/sigbus-guard.h"

#define MEM (1u << 20)
#define CHUNK (64u << 10)

static char dir[64], path[96];

static void write_snapshot(void)
{
	uint8_t *mem = malloc(MEM);
	pattern_fill(mem, 0, MEM);
	struct snap_writer *w;
	if (snapshot_writer_open(dir, NULL, &w) || snapshot_mem_begin(w, MEM) ||
	    snapshot_write_memory(w, mem, MEM, NULL) || snapshot_writer_close(w))
		tap_bail("cannot write %s", dir);
	free(mem);
}

static struct lvm_source *open_source(void)
{
	struct lvm_source *src;
	char err[256];
	if (snapshot_memory_file_source(path, &src, err, sizeof(err)))
		_exit(90);
	return src;
}

/* Child: exit 0 when the read after the change fails and nothing wrong was served. */
static void child_rewrite(void)
{
	sigbus_guard_install();
	struct lvm_source *src = open_source();
	static uint8_t buf[CHUNK];
	if (lvm_source_read(src, 3 * CHUNK, buf, CHUNK) || pattern_check(buf, 3 * CHUNK, CHUNK) >= 0)
		_exit(91);
	/* Rewrite every byte after the header with 0xee: chunk 3's bytes too. */
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	static uint8_t junk[MEM];
	memset(junk, 0xee, sizeof(junk));
	if (fd < 0 || pwrite(fd, junk, MEM, 4096) != MEM)
		_exit(92);
	close(fd);
	int ret = lvm_source_read(src, 3 * CHUNK, buf, CHUNK);
	_exit(ret == -ESTALE ? 0 : ret ? 93 : 94);	/* 94: served the new bytes */
}

static void child_truncate(void)
{
	sigbus_guard_install();
	struct lvm_source *src = open_source();
	if (truncate(path, 8192))
		_exit(92);
	static uint8_t buf[CHUNK];
	int ret = lvm_source_read(src, 10 * CHUNK, buf, CHUNK);
	_exit(ret < 0 ? 0 : 94);
}

static int read_second_page(void *arg)
{
	return *(volatile const uint8_t *)arg;
}

static void child_guard_real(void)
{
	sigbus_guard_install();
	int fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0 || ftruncate(fd, 8192))
		_exit(92);
	uint8_t *p = mmap(NULL, 8192, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED || ftruncate(fd, 4096))
		_exit(93);
	int ret = sigbus_guard_run(p, 8192, read_second_page, p + 4096);
	_exit(ret == -EIO ? 0 : 94);
}

static int run_child(void (*fn)(void))
{
	write_snapshot();
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0)
		fn();
	int st = 0;
	waitpid(pid, &st, 0);
	return st;
}

static void report(int st, const char *name)
{
	tap_ok(WIFEXITED(st) && !WEXITSTATUS(st), "%s", name);
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		tap_diag("child %s %d (94: wrong bytes served or no error)",
			 WIFSIGNALED(st) ? "killed by signal" : "exit",
			 WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
}

int main(void)
{
	tap_plan(3);
	snprintf(dir, sizeof(dir), "/tmp/lazyvm-changed-XXXXXX");
	if (!mkdtemp(dir))
		tap_bail("mkdtemp: %s", strerror(errno));
	snprintf(path, sizeof(path), "%s/memory", dir);
	report(run_child(child_rewrite), "a chunk rewritten after its check: an error, not the new bytes");
	report(run_child(child_truncate), "the file truncated while served: an error, no SIGBUS");
	report(run_child(child_guard_real), "a SIGBUS inside the guarded range is -EIO");
	char cmd[96];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd))
		tap_diag("cleanup of %s failed", dir);
	return tap_done();
}
