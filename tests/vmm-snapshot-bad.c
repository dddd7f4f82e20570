/* SPDX-License-Identifier: MIT */
/*
 * Bad snapshots never run a guest on wrong memory: a flipped byte in a
 * memory chunk (verify names the chunk; eager restore refuses before the
 * first instruction; lazy restore stops the VM when the chunk is needed),
 * a truncated memory file, another format version and a missing directory
 * give exit 2 and one clear line.  A memory source that fails for one page
 * stops the restored VM with an error instead of running on a zero page.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>

#include "lazyvm.h"
#include "snapshot/format.h"
#include "vmm/snapshot.h"
#include "vmm/vmm.h"
#include "tap.h"
#include "vmtest.h"

static char out[8192], err[8192];
static char tmp[] = "/tmp/lazyvm-vmm-snapbad.XXXXXX";

static int cli(const char *a, const char *b, const char *c)
{
	const char *args[] = { a, b, c, NULL };
	return vmtest_exec(tmp, args, out, sizeof(out), err, sizeof(err));
}

static bool one_line(const char *s)
{
	const char *nl = strchr(s, '\n');
	return nl && !nl[1] && nl > s;
}

static int copy_snapshot(const char *name, char *dir, size_t len)
{
	char cmd[1400];
	snprintf(dir, len, "%s/%s", tmp, name);
	snprintf(cmd, sizeof(cmd), "cp -r '%s/good' '%s'", tmp, dir);
	return system(cmd);
}

/* Data offset of the memory file (the first stored chunk starts there). */
static uint64_t data_offset(const char *dir)
{
	char path[700];
	uint8_t raw[SNAP_MEM_HDR_SIZE];
	struct snap_mem_hdr h;
	const char *why;
	snprintf(path, sizeof(path), "%s/memory", dir);
	FILE *f = fopen(path, "rb");
	if (!f)
		return 0;
	size_t n = fread(raw, 1, sizeof(raw), f);
	fclose(f);
	return n == sizeof(raw) && !snap_mem_hdr_decode(raw, &h, &why) ? h.data_offset : 0;
}

static int poke(const char *dir, const char *file, uint64_t off, uint8_t xor_with)
{
	char path[700];
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	FILE *f = fopen(path, "r+b");
	if (!f)
		return -1;
	int c = fseek(f, (long)off, SEEK_SET) ? EOF : fgetc(f);
	int ret = c == EOF || fseek(f, (long)off, SEEK_SET) || fputc(c ^ xor_with, f) == EOF;
	return fclose(f) || ret ? -1 : 0;
}

static void test_corrupt_chunk(void)
{
	char dir[600];
	uint64_t off = 0;
	if (copy_snapshot("corrupt", dir, sizeof(dir)) || !(off = data_offset(dir)) ||
	    poke(dir, "memory", off + 1, 0xff))
		tap_bail("could not prepare the corrupt snapshot");
	int st = cli("snapshot", "verify", dir);
	tap_ok(st == 2 && strstr(err, "chunk "), "verify: exit %d, names the chunk: %s", st, err);
	st = cli("restore", dir, "--eager");
	tap_ok(st == 2 && !strstr(out, "RESULT") && one_line(err) && strstr(err, "checksum"),
	       "eager restore refuses: exit %d, no guest output: %s", st, err);
	st = cli("restore", dir, NULL);
	tap_ok(st == 2 && !strstr(out, "RESULT") && strstr(err, "could not be served"),
	       "lazy restore stops the VM at the bad chunk: exit %d: %s", st, err);
}

static void test_bad_files(void)
{
	char dir[600], path[700];
	uint64_t off = 0;
	if (copy_snapshot("trunc", dir, sizeof(dir)) || !(off = data_offset(dir)))
		tap_bail("could not prepare the truncated snapshot");
	snprintf(path, sizeof(path), "%s/memory", dir);
	if (truncate(path, (off_t)(off + 4096)))
		tap_bail("truncate");
	int st = cli("restore", dir, NULL);
	tap_ok(st == 2 && !*out && one_line(err), "truncated memory: exit %d: %s", st, err);

	if (copy_snapshot("version", dir, sizeof(dir)) || poke(dir, "state", 8, 0x03))
		tap_bail("could not prepare the other-version snapshot");
	st = cli("restore", dir, NULL);
	tap_ok(st == 2 && !*out && one_line(err) && strstr(err, "version"),
	       "other format version: exit %d: %s", st, err);

	snprintf(dir, sizeof(dir), "%s/nosuch", tmp);
	st = cli("restore", dir, NULL);
	tap_ok(st == 2 && !*out && one_line(err), "missing snapshot: exit %d: %s", st, err);
}

/* A source that fails for the page holding the guest's code. */
struct failing {
	struct lvm_source *inner;
	uint64_t bad;
};

static int failing_get(void *ctx, uint64_t off, size_t len, void *scratch, const void **data)
{
	struct failing *f = ctx;
	if (off <= f->bad && f->bad < off + len)
		return -EIO;
	int ret = lvm_source_read(f->inner, off, scratch, len);
	*data = scratch;
	return ret;
}

static void failing_destroy(void *ctx)
{
	struct failing *f = ctx;
	lvm_source_destroy(f->inner);
	free(f);
}

static int failing_wrap(void *ctx, struct lvm_source *src, struct lvm_source **out_src)
{
	static const struct lvm_source_ops ops = { .struct_size = sizeof(ops), .get = failing_get, .destroy = failing_destroy };
	struct failing *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->inner = src;
	f->bad = *(uint64_t *)ctx;
	int ret = lvm_source_create(&ops, f, lvm_source_size(src), out_src);
	if (ret)
		failing_destroy(f);
	return ret;
}

static void test_failing_source(void)
{
	char dir[600], e[512] = "";
	uint64_t bad = GUEST_CODE;
	snprintf(dir, sizeof(dir), "%s/good", tmp);
	struct vm_restore_opts o = { .serial_fd = -1, .no_background = true,
				     .wrap_source = failing_wrap, .wrap_ctx = &bad };
	struct vm_restore *rs;
	int ret = vm_restore_open(dir, &o, &rs, e, sizeof(e));
	if (ret) {
		tap_ok(0, "failing source: restore_open: %s", e);
		return;
	}
	ret = vm_restore_run(rs, e, sizeof(e));
	tap_ok(ret == -EBADMSG && strstr(e, "could not be served") && !*vmm_result(vm_restore_vmm(rs)),
	       "source failing for one page: the VM stops (%d): %s", ret, e);
	vm_restore_close(rs);
}

int main(void)
{
	if (!vmtest_begin("vmm-snapshot-bad", 300, tmp, 7))
		return 0;
	char good[600];
	snprintf(good, sizeof(good), "%s/good", tmp);
	const char *args[] = { "run", "--mem", "64M", "--iterations", "3000000", "--snapshot", good,
			       "--snapshot-after-ms", "60", NULL };
	int st = vmtest_exec(tmp, args, out, sizeof(out), err, sizeof(err));
	if (st)
		tap_bail("could not take the snapshot (exit %d): %s", st, err);
	test_corrupt_chunk();
	test_bad_files();
	test_failing_source();
	vmtest_rmtree(tmp);
	return tap_done();
}
