/* SPDX-License-Identifier: MIT */
/*
 * lazyvm restore DIR: resume a snapshot lazily (memory served on demand by
 * the fault engine, background fill on) or --eager (all memory read and
 * checked first), run it to completion.  Exit 2 when the snapshot is
 * missing, corrupt, truncated or of another version — before any guest
 * instruction — or when a page could not be served while it ran.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "util/timeline.h"
#include "restore-diff.h"
#include "share-cli.h"
#include "store-cli.h"
#include "vm-common.h"
#include "vmm/snapshot.h"
#include "vmm/vmm.h"

static int restore_usage(FILE *f, int status)
{
	fprintf(f, "usage: lazyvm restore DIR [--eager] [--backing KIND] [--mode missing|minor]\n"
		"                      [--no-background] [--fault-around SIZE] [--memory-file IMAGE]\n"
		"                      [--uffd-socket PATH [--secret-free]] [--prefetch ws|all|none]\n"
		"                      [--record-ws]\n"
		"                      [--stats-json FILE]\n"
		SHARE_CLI_SYNOPSIS
		"  --eager              fill all memory before the first instruction\n"
		"  --no-background      lazy: serve faults only, no background fill\n"
		"  --record-ws          record the pages the guest touches, in order, as\n"
		"                       DIR/working-set (one fault per page, no fill)\n"
		"  --prefetch MODE      ws: DIR/working-set first, in recorded order, then the\n"
		"                       rest (default when DIR has one); all: everything in\n"
		"                       address order (default otherwise); none: faults only\n"
		"  --fault-around SIZE  lazy: serve this aligned block per fault (default 256K)\n"
		"  --memory-file IMAGE  guest memory from a flat image (Firecracker style);\n"
		"                       DIR needs only its state file\n"
		"  --uffd-socket PATH   memory from the page server on PATH, Firecracker's\n"
		"                       protocol (e.g. lazyvm fc-serve --mem-file DIR/memory)\n"
		"  --secret-free        with --uffd-socket: a secret-free VM as Firecracker's\n"
		"                       secret-hiding branch runs it (gmem memslot with\n"
		"                       KVM_MEM_USERFAULT; FaultRequests to the server)\n"
		STORE_CACHE_USAGE
		SHARE_CLI_USAGE
		"  --snapshot DEST      (with a chunk-store SRC) a diff snapshot into DEST\n"
		"                       (URL, BASE/NAME, or a NAME beside SRC): only changed\n"
		"                       chunks are written, the rest are SRC's\n"
		"  --snapshot-after-ms MS  when (default 0); --live: the guest runs on\n"
		"  --backing, --mode, --stats-json: as for lazyvm run\n");
	return status;
}

static int restore_status(int err)
{
	switch (err) {
	case -ENOENT: case -EBADMSG: case -EPROTO: case -ENODATA: case -ENOTSUP:
		return EXIT_BADDATA;
	default:
		return 1;
	}
}

enum {
	RESTORE_OPT_EAGER = CLI_OPT_CMD, RESTORE_OPT_NO_BACKGROUND, RESTORE_OPT_MEMORY_FILE,
	RESTORE_OPT_FAULT_AROUND, RESTORE_OPT_UFFD_SOCKET, RESTORE_OPT_SECRET_FREE,
	RESTORE_OPT_PREFETCH, RESTORE_OPT_RECORD_WS, RESTORE_OPT_SNAPSHOT, RESTORE_OPT_AFTER_MS,
	RESTORE_OPT_LIVE,
};

/* --snapshot DEST --snapshot-after-ms MS [--live]: a diff snapshot. */
struct restore_snap {
	const char *dest;
	unsigned long after_ms;
	bool live;
};

static int restore_snap_apply(struct restore_snap *sn, int ch, const char *val)
{
	switch (ch) {
	case RESTORE_OPT_SNAPSHOT:
		sn->dest = val;
		return 1;
	case RESTORE_OPT_AFTER_MS:
		if (cli_parse_uint(val, 86400000ul, &sn->after_ms))
			return cli_fail(EXIT_USAGE, "restore", "--snapshot-after-ms: bad value '%s'",
					val);
		return 1;
	case RESTORE_OPT_LIVE:
		sn->live = true;
		return 1;
	default:
		return 0;
	}
}

static int restore_apply(struct vm_restore_opts *ro, int ch, const char *val)
{
	uint64_t n;
	switch (ch) {
	case RESTORE_OPT_EAGER:
		ro->eager = true;
		return 1;
	case RESTORE_OPT_NO_BACKGROUND:
		ro->no_background = true;
		return 1;
	case RESTORE_OPT_MEMORY_FILE:
		ro->memory_file = val;
		return 1;
	case RESTORE_OPT_FAULT_AROUND:
		if (cli_parse_size(val, &n) || n > (64u << 20))
			return cli_fail(EXIT_USAGE, "restore", "--fault-around: bad size '%s'", val);
		ro->fault_around = (size_t)n;
		return 1;
	case RESTORE_OPT_UFFD_SOCKET:
		ro->uffd_socket = val;
		return 1;
	case RESTORE_OPT_SECRET_FREE:
		ro->secret_free = true;
		return 1;
	case RESTORE_OPT_PREFETCH:
		if (vm_prefetch_parse(val, &ro->prefetch))
			return cli_fail(EXIT_USAGE, "restore", "--prefetch: ws, all or none, not '%s'",
					val);
		return 1;
	case RESTORE_OPT_RECORD_WS:
		ro->record_ws = true;
		return 1;
	default:
		return 0;
	}
}

static int restore_parse(int argc, char **argv, struct vm_cli_opts *vo,
			 struct vm_restore_opts *ro, struct store_cache_opts *co,
			 struct restore_snap *sn, const char **dir)
{
	static const struct option opts[] = {
		VM_CLI_OPTIONS,
		{ "eager", no_argument, NULL, RESTORE_OPT_EAGER },
		{ "no-background", no_argument, NULL, RESTORE_OPT_NO_BACKGROUND },
		{ "memory-file", required_argument, NULL, RESTORE_OPT_MEMORY_FILE },
		{ "fault-around", required_argument, NULL, RESTORE_OPT_FAULT_AROUND },
		{ "uffd-socket", required_argument, NULL, RESTORE_OPT_UFFD_SOCKET },
		{ "secret-free", no_argument, NULL, RESTORE_OPT_SECRET_FREE },
		{ "prefetch", required_argument, NULL, RESTORE_OPT_PREFETCH },
		{ "record-ws", no_argument, NULL, RESTORE_OPT_RECORD_WS },
		{ "snapshot", required_argument, NULL, RESTORE_OPT_SNAPSHOT },
		{ "snapshot-after-ms", required_argument, NULL, RESTORE_OPT_AFTER_MS },
		{ "live", no_argument, NULL, RESTORE_OPT_LIVE },
		STORE_CACHE_OPTIONS,
		SHARE_CLI_OPTIONS,
		CLI_OPT_HELP, CLI_OPT_END,
	};
	int ch, r;
	vm_cli_opts_init(vo);
	while ((ch = cli_getopt("restore", argc, argv, opts)) != -1) {
		if (ch == 'h')
			return restore_usage(stdout, 0) - 1;
		if (ch == CLI_GETOPT_ERROR)
			return restore_usage(stderr, EXIT_USAGE);
		r = restore_apply(ro, ch, optarg);
		if (!r)
			r = store_cache_apply(co, "restore", ch, optarg);
		if (!r)
			r = restore_snap_apply(sn, ch, optarg);
		if (!r)
			r = share_cli_apply(ro, "restore", ch, optarg);
		if (!r)
			r = vm_cli_apply(vo, "restore", ch, optarg);
		if (r != 1)
			return r ? r : restore_usage(stderr, EXIT_USAGE);
	}
	if (optind + 1 != argc)
		return restore_usage(stderr, EXIT_USAGE);
	if (sn->live && !sn->dest)
		return cli_fail(EXIT_USAGE, "restore", "--live needs --snapshot DEST");
	*dir = argv[optind];
	if (ro->secret_free && !ro->uffd_socket) {
		fprintf(stderr, "lazyvm restore: --secret-free needs --uffd-socket\n");
		return EXIT_USAGE;
	}
	ro->backing = vo->backing;
	ro->backing_set = vo->backing_set;
	ro->mode = vo->mode;
	ro->mode_set = vo->mode_set;
	ro->serial_fd = 1;
	return 0;
}

/* --stats-json: what prefetch did (docs/prefetch.md). */
static void restore_stats_ws(struct vm_restore *rs, struct vm_stats *st)
{
	struct vm_restore_ws_stats w;
	vm_restore_ws_stats(rs, &w);
	vm_stats_add(st, "prefetch", "\"%s\"", w.recorded ? "record" : w.prefetch);
	vm_stats_add(st, "pages_prefetch", "%llu", (unsigned long long)st->engine.pages_prefetch);
	vm_stats_add(st, "ws_pages", "%llu", (unsigned long long)w.ws_pages);
	vm_stats_add(st, "ws_hits", "%llu", (unsigned long long)st->engine.pages_prefetch);
	vm_stats_add(st, "ws_misses", "%llu", (unsigned long long)w.ws_misses);
	vm_stats_add(st, "working_set_done_us", "%.1f", w.guest_done_ns ?
		     (double)(w.guest_done_ns - st->start_ns) / 1000.0 : -1.0);
}

/* A snapshot in a chunk store: its state in a temp dir, its memory served
 * from the manifest through the cache. */
static int restore_open_store(const char *src, const struct store_cache_opts *co,
			      struct vm_restore_opts *ro, struct store_cli *sc, char *err,
			      size_t errlen)
{
	int ret = store_cli_open(src, sc, err, errlen);
	if (!ret)
		ret = store_cli_open_cache(sc, co, err, errlen);
	if (!ret)
		ret = store_cli_state_dir(sc, err, errlen);
	if (ret)
		return ret;
	ret = store_cli_source(sc, ro->no_background ? 0 : 4, &ro->memory_source);
	if (ret)
		snprintf(err, errlen, "%s: memory source: %s", src, strerror(-ret));
	ro->memory_source_id = sc->id;
	return ret;
}

/* Run to the end, or to the snapshot point, snapshot, and (--live) on. */
static int restore_run(struct vm_restore *rs, const struct restore_snap *sn,
		       struct store_cli *sc, char *err, size_t errlen)
{
	if (!sn->dest)
		return vm_restore_run(rs, err, errlen);
	int ret = vm_restore_start(rs, err, errlen);
	if (ret)
		return ret;
	ret = vmm_wait_timeout(vm_restore_vmm(rs), (int)sn->after_ms, err, errlen);
	if (ret != -ETIMEDOUT) {
		if (!ret)
			snprintf(err, errlen, "guest finished before the snapshot point "
				 "(--snapshot-after-ms %lu): no snapshot written", sn->after_ms);
		return ret ? ret : -EINVAL;
	}
	ret = restore_diff_snapshot(rs, sc, sn->dest, sn->live, err, errlen);
	return ret || !sn->live ? ret : vm_restore_run(rs, err, errlen);
}

int cmd_restore(int argc, char **argv)
{
	struct vm_cli_opts vo;
	struct vm_restore_opts ro = { 0 };
	const char *dir = NULL;
	struct store_cache_opts co = { 0 };
	struct restore_snap sn = { 0 };
	int ret = restore_parse(argc, argv, &vo, &ro, &co, &sn, &dir);
	if (ret)
		return ret < 0 ? 0 : ret;
	struct vm_stats st;
	vm_stats_init(&st);
	struct timeline tl;
	timeline_init(&tl);
	tl.start_ns = st.start_ns;
	ro.timeline = &tl;
	struct vm_restore *rs = NULL;
	char err[512] = "";
	int status = 0;
	struct store_cli sc = { 0 };
	const char *state_dir = dir;
	if (store_cli_is_store(dir)) {
		ret = restore_open_store(dir, &co, &ro, &sc, err, sizeof(err));
		if (ret) {
			store_cli_close(&sc);
			return cli_fail(store_cli_status(ret), "restore", "%s", err);
		}
		state_dir = sc.state_dir;
	}
	ret = vm_restore_open(state_dir, &ro, &rs, err, sizeof(err));
	if (ret) {
		store_cli_close(&sc);
		return cli_fail(restore_status(ret), "restore", "%s", err);
	}
	ret = restore_run(rs, &sn, &sc, err, sizeof(err));
	if (ret)
		status = cli_fail(ret == -EBADMSG ? EXIT_BADDATA : 1, "restore", "%s: %s", dir, err);
	st.end_ns = mono_now_ns();
	st.first_entry_ns = vmm_first_entry_ns(vm_restore_vmm(rs));
	st.result = vmm_result(vm_restore_vmm(rs));
	st.backing = lvm_backing_name(vm_restore_backing(rs));
	st.mode = vm_restore_mode(rs);
	vm_restore_stats(rs, &st.engine);
	restore_stats_ws(rs, &st);
	vm_stats_add(&st, "vm_create_done_us", "%.1f",
		     (double)(vm_restore_vm_created_ns(rs) - st.start_ns) / 1000.0);
	char steps[1536];
	timeline_json(&tl, steps, sizeof(steps));
	vm_stats_add(&st, "steps_us", "%s", steps);
	vm_stats_add(&st, "start_monotonic_ns", "%llu", (unsigned long long)st.start_ns);
	share_cli_stats(rs, &st);
	int wret = vo.stats_json ? vm_stats_write(vo.stats_json, &st) : 0;
	if (wret)
		status = cli_fail(1, "restore", "%s: %s", vo.stats_json, strerror(-wret));
	store_cli_print_stats(&sc, stderr);	/* its counters live in the source */
	vm_restore_close(rs);
	store_cli_close(&sc);
	return status;
}
