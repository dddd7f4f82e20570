/* SPDX-License-Identifier: MIT */
/*
 * Every backing x served mode the probe supports: 4 threads read and write
 * random pages of a 256 MiB region served lazily from a file with a known
 * pattern, then every byte is verified.  Unsupported combinations SKIP with
 * the probe's reason; for guest_memfd an eager-fill test runs instead.
 */
#include <pthread.h>
#include <stdlib.h>

#include "lazyvm.h"
#include "core/hugetlb.h"
#include "tap.h"
#include "testlib.h"

#define REGION (256ull << 20)
#define THREADS 4
#define OPS_PER_THREAD 6000

struct ctx {
	uint8_t *mem;
	size_t psz;
	uint64_t npages;
	uint8_t *written;	/* per page: 1 if a thread wrote its first word */
	int tid;
	int bad;		/* first-touch content was wrong */
};

/* Threads own disjoint pages (page % THREADS == tid), so the final content
 * is known exactly; reads of any page check it against the pattern. */
static void *toucher(void *arg)
{
	struct ctx *c = arg;
	uint64_t seed = 0x1234567ull * (uint64_t)(c->tid + 1);
	uint64_t owned = c->npages / THREADS;
	for (int i = 0; i < OPS_PER_THREAD && owned; i++) {
		uint64_t pg = (test_rand(&seed) % owned) * THREADS + (uint64_t)c->tid;
		uint64_t *w = (uint64_t *)(c->mem + pg * c->psz);
		uint64_t off = pg * c->psz;
		/* first word may be ours (written), the rest must be pattern */
		if (pattern_check(w + 1, off + 8, c->psz - 8) >= 0)
			c->bad++;
		if (!c->written[pg] && w[0] != pattern_word(off))
			c->bad++;
		if (test_rand(&seed) & 1) {
			w[0] = ~pattern_word(off);
			c->written[pg] = 1;
		}
	}
	return NULL;
}

static int64_t verify_all(struct ctx *c)
{
	for (uint64_t pg = 0; pg < c->npages; pg++) {
		uint64_t off = pg * c->psz, *w = (uint64_t *)(c->mem + off);
		uint64_t first = c->written[pg] ? ~pattern_word(off) : pattern_word(off);
		if (w[0] != first)
			return (int64_t)off;
		int64_t bad = pattern_check(w + 1, off + 8, c->psz - 8);
		if (bad >= 0)
			return bad;
	}
	return -1;
}

static void run_lazy(enum lvm_backing b, enum lvm_mode m, const char *path, bool bg)
{
	char name[96];
	snprintf(name, sizeof(name), "%s x %s%s: 4 threads, 256 MiB, every byte",
		 lvm_backing_name(b), lvm_mode_name(m), bg ? " + background fill" : "");
	struct hugetlb_reservation res = HUGETLB_RESERVATION_INIT;
	if (!test_can_run(name, b, m, REGION, &res))
		return;
	struct lvm_mem *mem;
	struct lvm_source *src;
	struct lvm_engine *e;
	struct lvm_engine_opts eo;
	lvm_engine_opts_init(&eo);
	eo.threads = 2;
	eo.fault_around = bg ? 0 : 64 << 10;
	eo.background_fill = bg;
	int ret = test_serve(b, m, REGION, path, &eo, &mem, &src, &e);
	if (ret < 0) {
		tap_ok(0, "%s (setup: %s)", name, strerror(-ret));
		goto out;
	}
	struct ctx c[THREADS];
	pthread_t t[THREADS];
	size_t psz = lvm_mem_page_size(mem);
	uint8_t *written = calloc(REGION / psz, 1);
	for (int i = 0; i < THREADS; i++) {
		c[i] = (struct ctx){ lvm_mem_addr(mem), psz, REGION / psz, written, i, 0 };
		pthread_create(&t[i], NULL, toucher, &c[i]);
	}
	int bad = 0;
	for (int i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		bad += c[i].bad;
	}
	int64_t first_bad = verify_all(&c[0]);
	struct lvm_stats s = { .struct_size = sizeof(s) };
	lvm_engine_stop(e);	/* stats are final once the threads are joined */
	lvm_engine_stats(e, &s);
	bool counted = s.pages_present == s.pages_total &&
		       s.pages_demand + s.pages_background == s.pages_total;
	tap_ok(!bad && first_bad < 0 && counted && !lvm_engine_error(e)[0], "%s", name);
	tap_diag("faults %llu (dup %llu), pages demand %llu background %llu, "
		 "fault p50 %llu us p99 %llu us; bad reads %d, first bad byte %lld %s",
		 (unsigned long long)s.faults, (unsigned long long)s.faults_dup,
		 (unsigned long long)s.pages_demand, (unsigned long long)s.pages_background,
		 (unsigned long long)s.fault_latency.p50_ns / 1000,
		 (unsigned long long)s.fault_latency.p99_ns / 1000, bad,
		 (long long)first_bad, lvm_engine_error(e));
	free(written);
out:
	test_unserve(mem, src, e);
	hugetlb_release(&res);
}

/* Where uffd on guest_memfd is missing, gmem is filled eagerly: check that
 * path byte for byte, so the fallback is tested, not assumed. */
static void run_gmem_eager(const char *path)
{
	const char *name = "gmem eager fill (fallback): content equals the file";
	struct lvm_mem *mem = NULL;
	struct lvm_source *src = NULL;
	struct lvm_mem_opts mo = { .struct_size = sizeof(mo), .backing = LVM_BACKING_GMEM, .size = 16 << 20, .kvm_vm_fd = -1 };
	int ret = lvm_mem_create(&mo, &mem);
	if (ret) {
		tap_skip(name, "guest_memfd with MMAP|INIT_SHARED unavailable: %s", strerror(-ret));
		return;
	}
	ret = lvm_source_file_open(path, 0, &src);
	uint8_t *buf = malloc(1 << 20);
	for (uint64_t off = 0; !ret && off < mo.size; off += 1 << 20) {
		ret = lvm_source_read(src, off, buf, 1 << 20);
		if (!ret)
			ret = lvm_mem_write(mem, off, buf, 1 << 20);
	}
	int64_t bad = ret ? 0 : pattern_check(lvm_mem_addr(mem), 0, mo.size);
	tap_ok(!ret && bad < 0, "%s", name);
	free(buf);
	lvm_source_destroy(src);
	lvm_mem_destroy(mem);
}

static char pattern_path[64];

static void lazy_demand(enum lvm_backing b, enum lvm_mode m, const char *name)
{
	(void)name;
	run_lazy(b, m, pattern_path, false);
}

static void lazy_fill(enum lvm_backing b, enum lvm_mode m, const char *name)
{
	(void)name;
	run_lazy(b, m, pattern_path, true);
}

static const struct test_row tests[] = {
	{ "demand faults, 4 threads", lazy_demand, TEST_ALL_BACKINGS, LVM_MODE_MISSING, 1 },
	{ "demand faults, 4 threads", lazy_demand, TEST_ALL_BACKINGS, LVM_MODE_MINOR, 1 },
	{ "with background fill", lazy_fill, TEST_BACKING(LVM_BACKING_ANON), LVM_MODE_MISSING, 1 },
	{ "with background fill", lazy_fill, TEST_BACKING(LVM_BACKING_MEMFD), LVM_MODE_MINOR, 1 },
};

int main(void)
{
	if (pattern_file(REGION, pattern_path, sizeof(pattern_path)) < 0)
		tap_bail("cannot create the pattern file");
	size_t n = sizeof(tests) / sizeof(tests[0]);
	tap_plan(test_table_plan(tests, n) + 1);
	test_table_run(tests, n);
	run_gmem_eager(pattern_path);
	return tap_done();
}
