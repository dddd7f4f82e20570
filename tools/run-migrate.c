/* SPDX-License-Identifier: MIT */
/*
 * lazyvm run --migrate-to HOST:PORT: the source half of post-copy migration.
 * The guest runs for --migrate-after-ms, then src/migrate/src.c moves it
 * (pre-copy rounds, stop, state, post-copy) while this VM's memory serves
 * the destination's requests.  If migration fails before the destination
 * started the VM, the VM resumes here and runs to completion: never lost.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "migrate-cli.h"
#include "vm-common.h"
#include "vmm/vmm.h"

const char run_migrate_usage[] =
	"  --migrate-to HOST:PORT  migrate the running guest to `lazyvm migrate-recv`\n"
	"  --migrate-after-ms MS   when (default 0: right after start)\n"
	"  --precopy-rounds N|auto pre-copy rounds before the stop (default 0: pure post-copy;\n"
	"                          auto: until another round would not shrink the rest)\n"
	"  --recover-timeout SEC   after a link cut in post-copy, keep reconnecting this long\n"
	"                          (default 60)\n"
	"  --auth-psk FILE         authenticate every connection with this pre-shared key\n"
	"                          (mode 0600, 16+ bytes; the destination needs the same)\n";

void run_migrate_opts_init(struct run_migrate_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->recover_timeout_s = 60;
}

int run_migrate_apply(struct run_migrate_opts *o, int code, const char *val)
{
	static const char *const names[] = { "--migrate-to", "--migrate-after-ms",
		"--precopy-rounds", "--recover-timeout" };
	static const unsigned long max[] = { 0, 86400000ul, 100, 86400 };
	unsigned k = (unsigned)(code - RUN_MIG_OPT_TO);
	unsigned long v = 0;
	if (code == RUN_MIG_OPT_AUTH_PSK)
		return (o->have_key = migrate_cli_load_key("run", val, &o->key)) ? 1 : EXIT_BADDATA;
	if (code < RUN_MIG_OPT_TO || k >= sizeof(names) / sizeof(names[0]))
		return 0;
	if (code == RUN_MIG_OPT_TO) {
		if (!strchr(val, ':'))
			return cli_fail(EXIT_USAGE, "run", "--migrate-to: '%s' is not HOST:PORT", val);
		o->to = val;
		return 1;
	}
	if (code == RUN_MIG_OPT_ROUNDS && !strcmp(val, "auto")) {
		o->precopy_rounds = MIG_PRECOPY_AUTO;
		return 1;
	}
	if (cli_parse_uint(val, max[k], &v) || (code == RUN_MIG_OPT_RECOVER && !v))
		return cli_fail(EXIT_USAGE, "run", "%s: bad value '%s'", names[k], val);
	if (code == RUN_MIG_OPT_AFTER_MS)
		o->after_ms = v;
	else if (code == RUN_MIG_OPT_ROUNDS)
		o->precopy_rounds = (unsigned)v;
	else
		o->recover_timeout_s = (unsigned)v;
	return 1;
}

int migrate_cli_load_key(const char *cmd, const char *path, struct mig_key *k)
{
	char err[320];
	if (mig_key_load(path, k, err, sizeof(err)))
		return cli_fail(0, cmd, "--auth-psk %s", err);
	return 1;
}

static double us(uint64_t ns)
{
	return (double)ns / 1e3;
}

void migrate_stats_add(struct vm_stats *st, const struct mig_stats *m)
{
	const struct lvm_latency *l = &m->remote_fault;
	vm_stats_add(st, "total_ms", "%llu", (unsigned long long)m->total_ms);
	vm_stats_add(st, "downtime_ms", "%llu", (unsigned long long)m->downtime_ms);
	vm_stats_add(st, "precopy_rounds", "%llu", (unsigned long long)m->precopy_rounds);
	vm_stats_add(st, "pages_precopy", "%llu", (unsigned long long)m->pages_precopy);
	vm_stats_add(st, "pages_postcopy_push", "%llu", (unsigned long long)m->pages_postcopy_push);
	vm_stats_add(st, "pages_postcopy_request", "%llu",
		     (unsigned long long)m->pages_postcopy_request);
	vm_stats_add(st, "remote_fault_us",
		     "{\"p50\": %.1f, \"p90\": %.1f, \"p99\": %.1f, \"max\": %.1f, \"count\": %llu}",
		     us(l->p50_ns), us(l->p90_ns), us(l->p99_ns), us(l->max_ns),
		     (unsigned long long)l->count);
	vm_stats_add(st, "blocktime_ms", "%llu", (unsigned long long)m->blocktime_ms);
	vm_stats_add(st, "reconnects", "%llu", (unsigned long long)m->reconnects);
	if (m->wire_bytes)	/* the source's count */
		vm_stats_add(st, "wire_bytes", "%llu", (unsigned long long)m->wire_bytes);
}

/* The VMM behind the protocol's callbacks. */
static int src_vm_pause(void *ctx)
{
	return vmm_pause(ctx);
}

static int src_vm_resume(void *ctx)
{
	return vmm_resume(ctx);
}

static int src_vm_save(void *ctx, void **blob, size_t *len)
{
	return vmm_save_state(ctx, blob, len);
}

/* Migration failed before the destination ran the VM: it resumed here. */
static int run_migrate_fallback(struct vmm *vm, const struct run_migrate_opts *o,
				struct vm_stats *st, const char *why)
{
	char err[256] = "";
	fprintf(stderr, "lazyvm run: migration to %s failed: %s; the VM keeps running here\n",
		o->to, why);
	int ret = vmm_wait(vm, err, sizeof(err));
	st->result = vmm_result(vm);
	if (ret)
		cli_fail(1, "run", "guest stopped: %s", err);
	return 1;
}

int run_migrate(struct vmm *vm, const struct run_migrate_opts *o, struct vm_stats *st)
{
	char err[256] = "";
	int ret = vmm_wait_timeout(vm, (int)o->after_ms, err, sizeof(err));
	if (ret != -ETIMEDOUT) {
		st->result = vmm_result(vm);
		return ret ? cli_fail(1, "run", "guest stopped: %s", err)
			   : cli_fail(1, "run", "guest finished before the migration point "
				      "(--migrate-after-ms %llu): not migrated",
				      (unsigned long long)o->after_ms);
	}
	unsigned rounds = o->precopy_rounds;
	struct lvm_probe wp = { .struct_size = sizeof(wp) };
	if (rounds && lvm_probe(lvm_mem_backing(vmm_mem(vm)), LVM_MODE_WP, &wp) == 0 && wp.err) {
		fprintf(stderr, "lazyvm run: pre-copy tracks writes with uffd write-protect, which "
			"%s memory does not support here (%s): migrating with 0 pre-copy rounds\n",
			lvm_backing_name(lvm_mem_backing(vmm_mem(vm))), wp.reason);
		rounds = 0;
	}
	struct mig_src_vm ops = { vm, src_vm_pause, src_vm_resume, src_vm_save };
	struct mig_src_opts so = {
		.addr = o->to, .precopy_rounds = rounds,
		.recover_timeout_s = o->recover_timeout_s, .vcpus = vmm_vcpus(vm), .progress = true,
		.auth_key = o->have_key ? &o->key : NULL,
	};
	struct mig_stats ms;
	ret = mig_src_run(&so, vmm_mem(vm), &ops, &ms, err, sizeof(err));
	migrate_stats_add(st, &ms);
	if (ret == -ECANCELED)
		return run_migrate_fallback(vm, o, st, err);
	if (ret)
		return cli_fail(1, "run", "migration to %s failed after the VM moved: %s", o->to,
				err);
	fprintf(stderr, "lazyvm run: migrated to %s: %llu ms total, %llu ms downtime, "
		"%llu reconnects\n", o->to, (unsigned long long)ms.total_ms,
		(unsigned long long)ms.downtime_ms, (unsigned long long)ms.reconnects);
	return 0;
}
