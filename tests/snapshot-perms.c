/* SPDX-License-Identifier: MIT */
/*
 * Snapshot files hold guest memory (issue 9, defect 7): they are created
 * 0600 in a directory created 0700; an existing directory that another user
 * owns, or that others may write, is refused; a symlink planted where the
 * writer puts its temp file is not followed.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "snapshot/snapshot.h"
#include "tap.h"
#include "testlib.h"

#define MEM (64u << 10)

static char base[64];

static int write_snapshot(const char *dir)
{
	static uint8_t mem[MEM];
	pattern_fill(mem, 0, MEM);
	struct snap_writer *w;
	int ret = snapshot_writer_open(dir, NULL, &w);
	if (ret)
		return ret;
	ret = snapshot_mem_begin(w, MEM);
	if (!ret)
		ret = snapshot_write_memory(w, mem, MEM, NULL);
	if (ret) {
		snapshot_writer_abort(w);
		return ret;
	}
	return snapshot_writer_close(w);
}

static unsigned mode_of(const char *dir, const char *name)
{
	char p[192];
	struct stat st;
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return stat(p, &st) ? 07777 : st.st_mode & 07777;
}

static void sub(char *out, size_t len, const char *name)
{
	snprintf(out, len, "%s/%s", base, name);
}

int main(void)
{
	tap_plan(4);
	snprintf(base, sizeof(base), "/tmp/lazyvm-perms-XXXXXX");
	if (!mkdtemp(base))
		tap_bail("mkdtemp: %s", strerror(errno));
	char dir[128], victim[128], link[192];

	sub(dir, sizeof(dir), "fresh");
	int ret = write_snapshot(dir);
	unsigned dm = mode_of(base, "fresh"), mm = mode_of(dir, "memory"), sm = mode_of(dir, "state");
	tap_ok(!ret && dm == 0700 && mm == 0600 && sm == 0600,
	       "a new snapshot: directory 0700, memory and state 0600");
	tap_diag("write %s; modes dir %o memory %o state %o", strerror(-ret), dm, mm, sm);

	sub(dir, sizeof(dir), "theirs");
	mkdir(dir, 0755);
	bool chowned = !chown(dir, 65534, 65534);
	ret = write_snapshot(dir);
	if (chowned)
		tap_ok(ret == -EPERM, "an existing directory owned by another user is refused (%s)",
		       strerror(-ret));
	else
		tap_skip("another user's directory", "cannot chown (not root)");

	sub(dir, sizeof(dir), "open");
	mkdir(dir, 0700);
	chmod(dir, 0777);
	ret = write_snapshot(dir);
	tap_ok(ret == -EPERM, "a directory others may write is refused (%s)", strerror(-ret));

	sub(dir, sizeof(dir), "planted");
	sub(victim, sizeof(victim), "victim");
	mkdir(dir, 0700);
	int fd = open(victim, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, "keep", 4) != 4)
		tap_bail("victim: %s", strerror(errno));
	close(fd);
	snprintf(link, sizeof(link), "%s/.memory.tmp", dir);
	if (symlink(victim, link))
		tap_bail("symlink: %s", strerror(errno));
	ret = write_snapshot(dir);
	struct stat st;
	bool intact = !stat(victim, &st) && st.st_size == 4;
	tap_ok(!ret && intact && mode_of(dir, "memory") == 0600,
	       "a symlink planted as the temp file is not followed");
	tap_diag("write %s; victim %s", strerror(-ret), intact ? "intact" : "truncated");

	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", base);
	if (system(cmd))
		tap_diag("cleanup of %s failed", base);
	return tap_done();
}
