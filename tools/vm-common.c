/* SPDX-License-Identifier: MIT */
/* VM options and the --stats-json writer shared by the VM-running commands. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "vm-common.h"
#include "vmm/vmm.h"

const char vm_cli_usage[] =
	"  --guest NAME         workload (default), boot-like, or dirty (rewrites 4096\n"
	"                       random pages/s for --iterations ms, like QEMU's anchor)\n"
	"  --mem SIZE           guest memory, multiple of 2M (default 256M)\n"
	"  --seed S             guest seed (default 1)\n"
	"  --iterations N       random page touches (default 200000)\n"
	"  --vcpus N            1..16 (default 2)\n"
	"  --backing KIND       anon (default) | memfd | hugetlb | gmem\n"
	"  --mode MODE          missing | minor (lazy serving mode; default missing)\n"
	"  --stats-json FILE    write run statistics as one JSON object at exit\n";

void vm_cli_opts_init(struct vm_cli_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->guest = "workload";
	o->mem = 256ull << 20;
	o->seed = 1;
	o->iterations = 200000;
	o->vcpus = 2;
	o->backing = LVM_BACKING_ANON;
	o->mode = LVM_MODE_MISSING;
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || end == s || *end || *s == '-')
		return -EINVAL;
	*out = v;
	return 0;
}

static int vm_cli_value(const char *cmd, const char *opt, const char *val)
{
	return cli_fail(EXIT_USAGE, cmd, "%s: bad value '%s'", opt, val);
}

int vm_cli_apply(struct vm_cli_opts *o, const char *cmd, int code, const char *val)
{
	uint64_t n;
	switch (code) {
	case VM_OPT_GUEST:
		if (!vmm_guest_exists(val))
			return cli_fail(EXIT_USAGE, cmd, "unknown guest '%s' (workload, boot-like, dirty)", val);
		o->guest = val;
		return 1;
	case VM_OPT_MEM:
		return cli_parse_size(val, &o->mem) ? vm_cli_value(cmd, "--mem", val) : 1;
	case VM_OPT_SEED:
		return parse_u64(val, &o->seed) ? vm_cli_value(cmd, "--seed", val) : 1;
	case VM_OPT_ITERATIONS:
		return parse_u64(val, &o->iterations) ? vm_cli_value(cmd, "--iterations", val) : 1;
	case VM_OPT_VCPUS:
		if (parse_u64(val, &n) || !n || n > VMM_MAX_VCPUS)
			return vm_cli_value(cmd, "--vcpus", val);
		o->vcpus = (unsigned)n;
		return 1;
	case VM_OPT_BACKING:
		if (lvm_backing_parse(val, &o->backing))
			return vm_cli_value(cmd, "--backing", val);
		o->backing_set = true;
		return 1;
	case VM_OPT_MODE:
		if (strcmp(val, "missing") && strcmp(val, "minor"))
			return vm_cli_value(cmd, "--mode", val);
		o->mode = strcmp(val, "minor") ? LVM_MODE_MISSING : LVM_MODE_MINOR;
		o->mode_set = true;
		return 1;
	case VM_OPT_STATS_JSON:
		o->stats_json = val;
		return 1;
	default:
		return 0;
	}
}

void vm_stats_init(struct vm_stats *s)
{
	memset(s, 0, sizeof(*s));
	s->start_ns = mono_now_ns();
	s->backing = s->mode = s->result = "";
}

void vm_stats_add(struct vm_stats *s, const char *key, const char *fmt, ...)
{
	size_t used0 = strlen(s->extra), used = used0;
	int n = snprintf(s->extra + used, sizeof(s->extra) - used, ",\n  \"%s\": ", key);
	if (n < 0 || (size_t)n >= sizeof(s->extra) - used) {
		s->extra[used0] = 0;	/* no room: drop the member, keep the JSON valid */
		return;
	}
	used += (size_t)n;
	va_list ap;
	va_start(ap, fmt);
	n = vsnprintf(s->extra + used, sizeof(s->extra) - used, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(s->extra) - used)
		s->extra[used0] = 0;
}

static double us(uint64_t ns) { return (double)ns / 1000.0; }

int vm_stats_write(const char *path, const struct vm_stats *s)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "w") : stdout;
	if (!f)
		return -errno;
	uint64_t end = s->end_ns ? s->end_ns : mono_now_ns();
	const struct lvm_latency *l = &s->engine.fault_latency;
	fprintf(f, "{\n  \"first_instruction_us\": %.1f,\n  \"wall_us\": %.1f,\n",
		s->first_entry_ns ? us(s->first_entry_ns - s->start_ns) : -1.0,
		us(end - s->start_ns));
	fprintf(f, "  \"faults\": %llu,\n  \"pages_demand\": %llu,\n  \"pages_background\": %llu,\n",
		(unsigned long long)s->engine.faults, (unsigned long long)s->engine.pages_demand,
		(unsigned long long)s->engine.pages_background);
	fprintf(f, "  \"fault_latency_us\": {\"p50\": %.1f, \"p90\": %.1f, \"p99\": %.1f, \"max\": %.1f},\n",
		us(l->p50_ns), us(l->p90_ns), us(l->p99_ns), us(l->max_ns));
	fprintf(f, "  \"backing\": \"%s\",\n  \"mode\": \"%s\",\n  \"result\": \"%s\"%s\n}\n",
		s->backing, s->mode, s->result, s->extra);
	int ret = ferror(f) ? -EIO : 0;
	if (f != stdout && fclose(f))
		ret = -errno;
	else if (f == stdout)
		fflush(f);
	return ret;
}
