/* SPDX-License-Identifier: MIT */
/*
 * lazyvm snapshot verify|info|pack|unpack: inspect and check snapshot
 * directories, and convert between a flat memory image and a snapshot.
 * Exit 0 when intact; 2 when corrupt, truncated, of another version or
 * missing; 64 for a bad command line.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "snapshot/snapshot.h"
#include "store-cli.h"
#include "util/clock.h"
#include "util/progress.h"

static int snapshot_usage(FILE *f, int status)
{
	fprintf(f,
		"usage: lazyvm snapshot verify DIR       check every checksum (exit 0 intact, 2 bad)\n"
		"       lazyvm snapshot info DIR         header, sections, chunk counts\n"
		"       lazyvm snapshot pack IMAGE DIR [--chunk-size SIZE] [--compress] [--level N]\n"
		"                                        a flat memory image -> a snapshot's memory\n"
		"       lazyvm snapshot unpack DIR IMAGE a snapshot's memory -> a flat image\n"
		"       lazyvm snapshot push DIR URL [--chunk-size SIZE]\n"
		"                                        into a chunk store: s3://bucket/prefix/name,\n"
		"                                        or BASE/NAME (chunks in BASE/chunks)\n"
		"       lazyvm snapshot pull URL DIR     from a chunk store into a local one\n"
		"       (verify also takes a URL or a chunk-store snapshot: every chunk's SHA-256)\n");
	return status;
}

/* Missing, corrupt, truncated, wrong version: all "bad data" to a script. */
static int open_status(int err)
{
	return err == -ENOMEM ? 1 : EXIT_BADDATA;
}

static double mib(uint64_t b) { return (double)b / (1 << 20); }

struct verify_ctx {
	const char *dir;
	uint64_t bad;
};

static void verify_report(void *ctx, uint64_t idx, uint64_t off, const char *msg)
{
	struct verify_ctx *v = ctx;
	v->bad++;
	fprintf(stderr, "lazyvm snapshot verify: %s/memory: chunk %llu (offset 0x%llx): %s\n",
		v->dir, (unsigned long long)idx, (unsigned long long)off, msg);
}

static int snapshot_cmd_verify(const char *dir)
{
	char err[512];
	struct snap_reader *r;
	int ret = snapshot_open(dir, &r, err, sizeof(err));
	if (ret)
		return cli_fail(open_status(ret), "snapshot verify", "%s", err);
	struct snap_mem_stats s;
	snapshot_mem_stats(r, &s);
	struct verify_ctx v = { dir, 0 };
	struct progress p;
	progress_init(&p, "verify", snapshot_mem_size(r));
	double t0 = mono_now_s();
	ret = snapshot_verify_progress(r, verify_report, &v, &p);
	double secs = mono_now_s() - t0;
	progress_done(&p);
	uint64_t mem = snapshot_mem_size(r);
	snapshot_close(r);
	if (ret == -EBADMSG)
		return cli_fail(EXIT_BADDATA, "snapshot verify", "%s: CORRUPT: %llu of %llu chunks bad",
				dir, (unsigned long long)v.bad, (unsigned long long)s.chunks);
	if (ret)
		return cli_fail(1, "snapshot verify", "%s: %s", dir, strerror(-ret));
	printf("%s: intact: %llu chunks (%llu zero, %llu raw, %llu zstd), %u sections, "
	       "%.1f MiB memory in %.1f MiB stored, checked in %.2f s (%.0f MiB/s)\n",
	       dir, (unsigned long long)s.chunks, (unsigned long long)s.zero_chunks,
	       (unsigned long long)s.raw_chunks, (unsigned long long)s.zstd_chunks, s.sections,
	       mib(mem), mib(s.stored_bytes), secs, secs > 0 ? mib(mem) / secs : 0);
	return 0;
}

static const char *section_name(uint32_t type)
{
	switch (type) {
	case SNAP_SEC_META: return "meta";
	case SNAP_SEC_VM_STATE: return "vm-state";
	case SNAP_SEC_VCPU_STATE: return "vcpu-state";
	case SNAP_SEC_DEVICE_STATE: return "device-state";
	default: return type >= SNAP_SEC_VMM_PRIVATE ? "vmm-private" : "unknown";
	}
}

static void info_print_sections(struct snap_reader *r)
{
	static const uint32_t types[] = { SNAP_SEC_META, SNAP_SEC_VM_STATE,
					  SNAP_SEC_VCPU_STATE, SNAP_SEC_DEVICE_STATE };
	for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
		unsigned n = snapshot_section_count(r, types[t]);
		for (unsigned i = 0; i < n; i++) {
			const void *data;
			size_t len;
			snapshot_section_nth(r, types[t], i, &data, &len);
			printf("section %-13s #%u  %zu bytes\n", section_name(types[t]), i, len);
		}
	}
	const void *meta;
	size_t len;
	if (snapshot_section(r, SNAP_SEC_META, &meta, &len) == 0 && len) {
		const char *p = meta, *end = p + len;
		while (p < end) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));
			int n = (int)((nl ? nl : end) - p);
			printf("  %.*s\n", n, p);
			p += n + 1;
		}
	}
}

static int snapshot_cmd_info(const char *dir)
{
	char err[512];
	struct snap_reader *r;
	int ret = snapshot_open(dir, &r, err, sizeof(err));
	if (ret)
		return cli_fail(open_status(ret), "snapshot info", "%s", err);
	struct snap_mem_stats s;
	snapshot_mem_stats(r, &s);
	uint64_t mem = snapshot_mem_size(r);
	printf("snapshot   %s (format version 1)\n", dir);
	printf("memory     %.1f MiB in %llu chunks of %u KiB\n", mib(mem),
	       (unsigned long long)s.chunks, snapshot_chunk_size(r) >> 10);
	printf("chunks     %llu zero (elided), %llu raw, %llu zstd\n",
	       (unsigned long long)s.zero_chunks, (unsigned long long)s.raw_chunks,
	       (unsigned long long)s.zstd_chunks);
	printf("stored     %.1f MiB of chunk data, file %.1f MiB (%.2fx smaller than memory)\n",
	       mib(s.stored_bytes), mib(s.file_bytes),
	       s.file_bytes ? (double)mem / (double)s.file_bytes : 0);
	printf("sections   %u\n", s.sections);
	info_print_sections(r);
	snapshot_close(r);
	return 0;
}

int snapshot_cmd_pack(int argc, char **argv);
int snapshot_cmd_unpack(int argc, char **argv);
int snapshot_cmd_push(int argc, char **argv);
int snapshot_cmd_pull(int argc, char **argv);
int snapshot_cmd_verify_store(const char *src);

int cmd_snapshot(int argc, char **argv)
{
	if (argc < 2)
		return snapshot_usage(stderr, EXIT_USAGE);
	const char *sub = argv[1];
	if (!strcmp(sub, "--help") || !strcmp(sub, "-h"))
		return snapshot_usage(stdout, 0);
	if (!strcmp(sub, "pack"))
		return snapshot_cmd_pack(argc - 1, argv + 1);
	if (!strcmp(sub, "unpack"))
		return snapshot_cmd_unpack(argc - 1, argv + 1);
	if (!strcmp(sub, "push"))
		return snapshot_cmd_push(argc - 1, argv + 1);
	if (!strcmp(sub, "pull"))
		return snapshot_cmd_pull(argc - 1, argv + 1);
	if (strcmp(sub, "verify") && strcmp(sub, "info"))
		return cli_fail(EXIT_USAGE, "snapshot", "unknown subcommand '%s' (verify, info, pack, unpack, push, pull)", sub);
	if (argc != 3 || argv[2][0] == '-')
		return snapshot_usage(stderr, EXIT_USAGE);
	if (!strcmp(sub, "verify") && store_cli_is_store(argv[2]))
		return snapshot_cmd_verify_store(argv[2]);
	return !strcmp(sub, "verify") ? snapshot_cmd_verify(argv[2]) : snapshot_cmd_info(argv[2]);
}
