/* SPDX-License-Identifier: MIT */
/*
 * lazyvm run: boot one of the embedded guests on the chosen backing and run
 * it to completion (guest serial on stdout), or snapshot it mid-run
 * (--snapshot DIR --snapshot-after-ms MS, --live for a point-in-time
 * snapshot taken while the guest keeps running).  --fill SIZE: the workload
 * first writes SIZE of its memory whole (non-zero), and the snapshot or
 * migration point counts from the end of that phase, so what is moved is
 * real data whatever the machine's speed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/hugetlb.h"
#include "migrate-cli.h"
#include "vm-common.h"
#include "vmm/snapshot.h"
#include "vmm/vmm.h"

struct run_opts {
	struct vm_cli_opts vm;
	const char *snapshot;
	uint64_t after_ms;
	uint64_t fill;		/* --fill SIZE (bytes of data memory) */
	bool live;
	bool prefault;
	struct run_migrate_opts mig;
};

static int run_usage(FILE *f, int status)
{
	fprintf(f, "usage: lazyvm run --guest NAME --mem SIZE [options]\n%s"
		"  --snapshot DIR       snapshot the guest mid-run into DIR and exit\n"
		"  --snapshot-after-ms MS  when (default 0: right after start)\n"
		"  --live               keep the guest running while the snapshot is written\n"
		"                       (uffd write-protect, point-in-time); it then finishes\n"
		"  --prefault           all guest memory writable and populated before the\n"
		"                       guest runs (MADV_POPULATE_WRITE; KVM_PRE_FAULT_MEMORY\n"
		"                       where the kernel has it)\n"
		"  --fill SIZE          workload: first write SIZE of memory with non-zero data\n"
		"                       (dirty: SIZE is its dirty set; default all of memory)\n"
		"                       (all of it when larger); snapshot and migration points\n"
		"                       count from the end of that phase\n%s",
		vm_cli_usage, run_migrate_usage);
	return status;
}

enum { RUN_OPT_SNAPSHOT = CLI_OPT_CMD, RUN_OPT_AFTER_MS, RUN_OPT_LIVE, RUN_OPT_PREFAULT,
       RUN_OPT_FILL };

static int run_parse(int argc, char **argv, struct run_opts *o)
{
	static const struct option opts[] = {
		VM_CLI_OPTIONS, RUN_MIGRATE_OPTIONS,
		{ "snapshot", required_argument, NULL, RUN_OPT_SNAPSHOT },
		{ "snapshot-after-ms", required_argument, NULL, RUN_OPT_AFTER_MS },
		{ "live", no_argument, NULL, RUN_OPT_LIVE },
		{ "prefault", no_argument, NULL, RUN_OPT_PREFAULT },
		{ "fill", required_argument, NULL, RUN_OPT_FILL },
		CLI_OPT_HELP, CLI_OPT_END,
	};
	unsigned long v;
	int ch, r;
	vm_cli_opts_init(&o->vm);
	run_migrate_opts_init(&o->mig);
	while ((ch = cli_getopt("run", argc, argv, opts)) != -1) {
		switch (ch) {
		case 'h':
			return run_usage(stdout, 0) - 1;
		case RUN_OPT_LIVE:
			o->live = true;
			break;
		case RUN_OPT_PREFAULT:
			o->prefault = true;
			break;
		case RUN_OPT_SNAPSHOT:
			o->snapshot = optarg;
			break;
		case RUN_OPT_FILL:
			if (cli_parse_size(optarg, &o->fill))
				return cli_fail(EXIT_USAGE, "run", "--fill: bad value '%s'", optarg);
			break;
		case RUN_OPT_AFTER_MS:
			if (cli_parse_uint(optarg, 86400000ul, &v))
				return cli_fail(EXIT_USAGE, "run", "--snapshot-after-ms: bad value '%s'", optarg);
			o->after_ms = v;
			break;
		case CLI_GETOPT_ERROR:
			return run_usage(stderr, EXIT_USAGE);
		default:
			r = vm_cli_apply(&o->vm, "run", ch, optarg);
			if (!r)
				r = run_migrate_apply(&o->mig, ch, optarg);
			if (r != 1)
				return r ? r : run_usage(stderr, EXIT_USAGE);
		}
	}
	if (optind != argc)
		return cli_fail(EXIT_USAGE, "run", "unexpected argument '%s'", argv[optind]);
	if (o->live && !o->snapshot)
		return cli_fail(EXIT_USAGE, "run", "--live needs --snapshot DIR");
	if (o->fill && strcmp(o->vm.guest, "workload") && strcmp(o->vm.guest, "dirty"))
		return cli_fail(EXIT_USAGE, "run", "--fill is for the workload and dirty guests");
	if (o->mig.to && o->snapshot)
		return cli_fail(EXIT_USAGE, "run", "--migrate-to and --snapshot exclude each other");
	return 0;
}

/* --fill: wait until every vCPU is past its fill phase (the guest says so in
 * its parameter page; nothing to block on, so look every millisecond). */
static int run_wait_filled(struct vmm *vm)
{
	char err[256] = "";
	while (!vmm_guest_filled(vm)) {
		int ret = vmm_wait_timeout(vm, 1, err, sizeof(err));
		if (ret == -ETIMEDOUT || (!ret && vmm_guest_filled(vm)))
			continue;	/* filling, or finished after it: the caller says so */
		return ret ? cli_fail(1, "run", "guest stopped: %s", err)
			   : cli_fail(1, "run", "guest finished during its fill phase");
	}
	return 0;
}

/* Run to the end; or until the snapshot point, then snapshot. */
static int run_guest(struct vmm *vm, const struct run_opts *o, struct vm_stats *st)
{
	char err[256] = "";
	int ret = vmm_start(vm);
	if (ret)
		return cli_fail(1, "run", "starting vCPUs: %s", strerror(-ret));
	if (o->fill && (ret = run_wait_filled(vm)))
		return ret;
	if (o->mig.to)
		return run_migrate(vm, &o->mig, st);
	if (o->snapshot) {
		ret = vmm_wait_timeout(vm, (int)o->after_ms, err, sizeof(err));
		if (ret != -ETIMEDOUT)
			return ret ? cli_fail(1, "run", "guest stopped: %s", err)
				   : cli_fail(1, "run", "guest finished before the snapshot point "
					      "(--snapshot-after-ms %llu): no snapshot written",
					      (unsigned long long)o->after_ms);
		struct vm_snapshot_info info = {
			.guest = o->vm.guest, .seed = o->vm.seed, .iterations = o->vm.iterations,
		};
		ret = o->live ? vm_snapshot_live(vm, o->snapshot, &info, err, sizeof(err))
			      : vm_snapshot_take(vm, o->snapshot, &info, err, sizeof(err));
		if (ret)
			return cli_fail(1, "run", "snapshot %s: %s", o->snapshot, err);
		if (!o->live)
			return 0;
	}
	ret = vmm_wait(vm, err, sizeof(err));
	st->result = vmm_result(vm);
	return ret ? cli_fail(1, "run", "guest stopped: %s", err) : 0;
}

int cmd_run(int argc, char **argv)
{
	struct run_opts o = { 0 };
	int ret = run_parse(argc, argv, &o);
	if (ret)
		return ret < 0 ? 0 : ret;
	struct vm_stats st;
	vm_stats_init(&st);
	st.backing = lvm_backing_name(o.vm.backing);
	st.mode = "fresh";
	struct hugetlb_reservation res = HUGETLB_RESERVATION_INIT;
	if (o.vm.backing == LVM_BACKING_HUGETLB &&
	    (ret = hugetlb_reserve((long)(o.vm.mem >> 21), &res)))
		return cli_fail(1, "run", "hugetlb: cannot reserve %llu 2 MiB pages: %s",
				(unsigned long long)(o.vm.mem >> 21), strerror(-ret));
	struct vmm_opts vo = {
		.guest = o.vm.guest, .mem_size = o.vm.mem, .vcpus = o.vm.vcpus,
		.backing = o.vm.backing, .seed = o.vm.seed, .iterations = o.vm.iterations,
		.fill_pages = (o.fill + 4095) / 4096, .serial_fd = 1,
	};
	struct vmm *vm = NULL;
	char err[256];
	ret = vmm_create(&vo, &vm, err, sizeof(err));
	if (ret)
		ret = cli_fail(1, "run", "%s", err);
	else if ((ret = vmm_load_guest(vm, err, sizeof(err))))
		ret = cli_fail(1, "run", "%s", err);
	else if (o.prefault && (ret = vmm_prefault(vm, err, sizeof(err))))
		ret = cli_fail(1, "run", "%s", err);
	else
		ret = run_guest(vm, &o, &st);
	if (vm && o.prefault)
		vm_stats_add(&st, "prefault", "\"%s\"", vmm_kvm_prefaulted(vm) ? "host+kvm" : "host");
	if (vm)
		st.first_entry_ns = vmm_first_entry_ns(vm);
	st.end_ns = mono_now_ns();
	int wret = o.vm.stats_json ? vm_stats_write(o.vm.stats_json, &st) : 0;
	if (wret)
		ret = cli_fail(1, "run", "%s: %s", o.vm.stats_json, strerror(-wret));
	vmm_destroy(vm);
	hugetlb_release(&res);
	return ret;
}
