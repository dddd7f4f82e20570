/* SPDX-License-Identifier: MIT */
/*
 * The restore's step time line (timeline.h, --stats-json "steps_us"):
 * - timeline: NULL is accepted, marks come out in time order, the JSON is
 *   well formed, marks past TIMELINE_MAX are dropped, not written past the end;
 * - `lazyvm restore --stats-json`: steps_us names every step up to the first
 *   KVM_RUN, in order, and the memslot is installed before the irqchip exists
 *   (the order that keeps the memslot off a normal SRCU grace period, see
 *   src/vmm/vm.c); the restored guest still prints the uninterrupted RESULT.
 * No timing is asserted: only the order of the steps.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "util/timeline.h"
#include "vmtest.h"

static char out[8192], err[8192], json[8192];
static char tmp[] = "/tmp/lazyvm-restore-steps.XXXXXX";

static void test_timeline(void)
{
	timeline_mark(NULL, "nothing");	/* must not crash */
	struct timeline t;
	timeline_init(&t);
	timeline_mark(&t, "a");
	timeline_mark(&t, "b");
	t.marks[1].ns = t.marks[0].ns - 1;	/* b happened first (another thread) */
	struct timeline_mark m[TIMELINE_MAX];
	unsigned n = timeline_sorted(&t, m, TIMELINE_MAX);
	tap_ok(n == 2 && !strcmp(m[0].step, "b") && !strcmp(m[1].step, "a"),
	       "timeline: marks sorted by time");
	char buf[256];
	timeline_json(&t, buf, sizeof(buf));
	tap_ok(buf[0] == '{' && buf[strlen(buf) - 1] == '}' && strstr(buf, "\"b\": ") &&
	       strstr(buf, "\"b\": ") < strstr(buf, "\"a\": "), "timeline: JSON %s", buf);
	for (int i = 0; i < TIMELINE_MAX + 5; i++)
		timeline_mark(&t, "x");
	n = timeline_sorted(&t, m, TIMELINE_MAX);
	timeline_json(&t, buf, 8);	/* no room: still valid */
	tap_ok(n == TIMELINE_MAX && !strcmp(buf, "{}"),
	       "timeline: %u marks kept of %u, JSON without room is {}", n, atomic_load(&t.n));
}

/* The value of step in steps_us; -1 when absent. */
static double step_us(const char *step)
{
	const char *p = strstr(json, "\"steps_us\": {");
	char pat[64];
	snprintf(pat, sizeof(pat), "\"%s\": ", step);
	const char *q = p ? strstr(p, pat) : NULL;
	const char *end = p ? strchr(p, '}') : NULL;
	return q && q < end ? strtod(q + strlen(pat), NULL) : -1.0;
}

static void test_restore(void)
{
	char dir[600], stats[600];
	snprintf(dir, sizeof(dir), "%s/snap", tmp);
	snprintf(stats, sizeof(stats), "%s/stats.json", tmp);
	const char *run[] = { "run", "--guest", "workload", "--mem", "64M", "--seed", "5",
			      "--iterations", "2000000", "--snapshot", dir, "--snapshot-after-ms",
			      "30", NULL };
	int st = vmtest_exec(tmp, run, out, sizeof(out), err, sizeof(err));
	if (!tap_ok(st == 0, "snapshot taken (exit %d)", st)) {
		tap_diag("stderr: %s", err);
		tap_skip("restore steps", "no snapshot");
		tap_skip("restore RESULT", "no snapshot");
		return;
	}
	const char *restore[] = { "restore", dir, "--stats-json", stats, NULL };
	st = vmtest_exec(tmp, restore, out, sizeof(out), err, sizeof(err));
	vmtest_slurp(stats, json, sizeof(json));
	static const char *const order[] = {
		"snapshot_state", "kvm_create_vm", "kvm_set_memslot", "kvm_create_irqchip",
		"vcpu0_create", "vcpu1_create", "state_load", "engine_start", "first_kvm_run",
	};
	double prev = 0;
	const char *bad = NULL;
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]) && !bad; i++) {
		double v = step_us(order[i]);
		if (v < prev)
			bad = order[i];
		prev = v;
	}
	if (!tap_ok(st == 0 && !bad, "steps_us has every step, in order (memslot before irqchip)"))
		tap_diag("exit %d, out of order or missing: %s; %s", st, bad ? bad : "-", json);
	uint64_t got = 0, want = vmtest_model_workload(64ull << 20, 5, 2000000);
	bool have = vmtest_result(out, &got);
	tap_ok(have && got == want, "restore: RESULT %016llx == model %016llx",
	       (unsigned long long)got, (unsigned long long)want);
}

int main(void)
{
	if (!vmtest_begin("restore steps", 300, tmp, 6))
		return 0;
	test_timeline();
	test_restore();
	vmtest_rmtree(tmp);
	return tap_done();
}
