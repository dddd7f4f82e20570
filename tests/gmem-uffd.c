/* SPDX-License-Identifier: MIT */
/*
 * guest_memfd served lazily by the engine, MISSING (UFFDIO_COPY) and MINOR
 * (write through a second mapping, then UFFDIO_CONTINUE):
 *
 *   - 4 threads read and write random pages of a 16 MiB region served from a
 *     file holding a known pattern; every byte of every page is verified, and
 *     the stats must show every page arrived on demand (nothing was eager);
 *   - one thread touches a fresh 8 MiB region page by page: every byte
 *     verified, and the time per fault reported (TCG figures for
 *     docs/guest-memfd.md; reported, never asserted).
 *
 * Sizes are small because the real run is inside QEMU TCG (make check-gmem).
 * On a kernel without userfaultfd for guest_memfd every test SKIPs with the
 * probe's reason.
 */
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "gmem-test.h"
#include "testlib.h"

#define REGION (16ull << 20)
#define SEQ_REGION (8ull << 20)
#define THREADS 4
#define OPS_PER_THREAD 3000
#define PAGE 4096ull
#define WORDS (PAGE / 8)

static int vm_fd = -1;
static char src_path[64];

struct toucher {
	uint8_t *mem;
	uint64_t npages;
	int16_t *word;		/* per page: index of the one word holding ~pattern, or -1 */
	int tid;
	uint64_t bad;		/* pages whose content was wrong when read */
};

static uint64_t expect_word(const int16_t *word, uint64_t pg, uint64_t w)
{
	uint64_t v = pattern_word(pg * PAGE + w * 8);
	return word[pg] == (int16_t)w ? ~v : v;
}

static bool page_ok(const uint8_t *mem, const int16_t *word, uint64_t pg)
{
	const uint64_t *p = (const uint64_t *)(mem + pg * PAGE);
	for (uint64_t w = 0; w < WORDS; w++)
		if (p[w] != expect_word(word, pg, w))
			return false;
	return true;
}

/* Each thread owns the pages with pg % THREADS == tid, so the expected content
 * is exact.  A page's first touch is a read or a write at random: both fault
 * kinds reach the handler.  A write moves the page's one changed word. */
static void *touch_random(void *arg)
{
	struct toucher *t = arg;
	uint64_t seed = 0x9e3779b9ull * (uint64_t)(t->tid + 1), owned = t->npages / THREADS;
	for (int i = 0; i < OPS_PER_THREAD; i++) {
		uint64_t pg = (test_rand(&seed) % owned) * THREADS + (uint64_t)t->tid;
		uint64_t *p = (uint64_t *)(t->mem + pg * PAGE);
		if (test_rand(&seed) & 1) {
			uint64_t w = test_rand(&seed) % WORDS;
			if (t->word[pg] >= 0)	/* restore the old changed word */
				p[t->word[pg]] = pattern_word(pg * PAGE + (uint64_t)t->word[pg] * 8);
			p[w] = ~pattern_word(pg * PAGE + w * 8);
			t->word[pg] = (int16_t)w;
		}
		if (!page_ok(t->mem, t->word, pg))
			t->bad++;
	}
	return NULL;
}

/* Memory, source and a started engine for gmem x m; 0 or -errno. */
static int serve(enum lvm_mode m, uint64_t size, struct lvm_mem **mem, struct lvm_source **src,
		 struct lvm_engine **e)
{
	struct lvm_mem_opts mo = { .struct_size = sizeof(mo), .backing = LVM_BACKING_GMEM, .size = size, .kvm_vm_fd = vm_fd };
	struct lvm_engine_opts eo;
	lvm_engine_opts_init(&eo);
	eo.threads = 2;
	eo.fault_around = 0;	/* one page per fault: the figures count faults */
	int ret = lvm_mem_create(&mo, mem);
	if (!ret)
		ret = lvm_source_file_open(src_path, 0, src);
	if (!ret)
		ret = lvm_engine_create(&eo, e);
	if (!ret)
		ret = lvm_engine_add_mem(*e, *mem, m, *src, 0);
	if (ret >= 0)
		ret = lvm_engine_start(*e);
	return ret < 0 ? ret : 0;
}

static void unserve(struct lvm_mem *mem, struct lvm_source *src, struct lvm_engine *e)
{
	lvm_engine_destroy(e);
	lvm_source_destroy(src);
	lvm_mem_destroy(mem);
}

/* The probe says gmem x m works (else SKIP) and serve() set it up (else
 * not ok); false when the test cannot go on. */
static bool serve_or_skip(enum lvm_mode m, const char *name, uint64_t size,
			  struct lvm_mem **mem, struct lvm_source **src, struct lvm_engine **e)
{
	if (!gmem_test_probe(m, name))
		return false;
	int ret = serve(m, size, mem, src, e);
	if (!ret)
		return true;
	tap_ok(0, "%s (setup: %s)", name, strerror(-ret));
	unserve(*mem, *src, *e);
	return false;
}

static void stats_diag(const char *what, const struct lvm_stats *s)
{
	tap_diag("%s: faults %llu (dup %llu), pages demand %llu of %llu, handler latency "
		 "p50 %.1f us p90 %.1f us p99 %.1f us max %.1f us", what,
		 (unsigned long long)s->faults, (unsigned long long)s->faults_dup,
		 (unsigned long long)s->pages_demand, (unsigned long long)s->pages_total,
		 s->fault_latency.p50_ns / 1e3, s->fault_latency.p90_ns / 1e3,
		 s->fault_latency.p99_ns / 1e3, s->fault_latency.max_ns / 1e3);
}

static void test_random(enum lvm_mode m)
{
	char name[96];
	snprintf(name, sizeof(name), "gmem x %s: 4 threads, random r/w, 16 MiB, every byte",
		 lvm_mode_name(m));
	struct lvm_mem *mem = NULL;
	struct lvm_source *src = NULL;
	struct lvm_engine *e = NULL;
	if (!serve_or_skip(m, name, REGION, &mem, &src, &e))
		return;
	uint64_t npages = REGION / PAGE;
	struct lvm_stats before = { .struct_size = sizeof(before) };
	lvm_engine_stats(e, &before);
	int16_t *word = malloc(npages * sizeof(*word));
	memset(word, 0xff, npages * sizeof(*word));	/* -1: untouched */
	struct toucher t[THREADS];
	pthread_t th[THREADS];
	for (int i = 0; i < THREADS; i++) {
		t[i] = (struct toucher){ lvm_mem_addr(mem), npages, word, i, 0 };
		pthread_create(&th[i], NULL, touch_random, &t[i]);
	}
	uint64_t bad = 0, bad_after = 0;
	for (int i = 0; i < THREADS; i++) {
		pthread_join(th[i], NULL);
		bad += t[i].bad;
	}
	int64_t first_bad = -1;
	for (uint64_t pg = 0; pg < npages; pg++) {	/* faults in the rest too */
		if (!page_ok(lvm_mem_addr(mem), word, pg)) {
			bad_after++;
			if (first_bad < 0)
				first_bad = (int64_t)pg;
		}
	}
	struct lvm_stats s = { .struct_size = sizeof(s) };
	lvm_engine_stop(e);
	lvm_engine_stats(e, &s);
	const char *err = lvm_engine_error(e);
	bool lazy = before.pages_present == 0 && s.pages_demand == npages &&
		    s.pages_present == npages && s.faults >= npages;
	tap_ok(!bad && !bad_after && lazy && !err[0], "%s", name);
	if (bad || bad_after || !lazy || err[0])
		tap_diag("bad reads %llu, bad pages at the end %llu (first: page %lld), "
			 "present before the threads %llu, engine error '%s'",
			 (unsigned long long)bad, (unsigned long long)bad_after,
			 (long long)first_bad, (unsigned long long)before.pages_present, err);
	stats_diag(lvm_mode_name(m), &s);
	free(word);
	unserve(mem, src, e);
}

/* One thread, page by page: per-fault cost seen by the faulting thread. */
static void test_sequential(enum lvm_mode m)
{
	char name[96];
	snprintf(name, sizeof(name), "gmem x %s: sequential first touch, 8 MiB, every byte",
		 lvm_mode_name(m));
	struct lvm_mem *mem = NULL;
	struct lvm_source *src = NULL;
	struct lvm_engine *e = NULL;
	if (!serve_or_skip(m, name, SEQ_REGION, &mem, &src, &e))
		return;
	volatile uint8_t *p = lvm_mem_addr(mem);
	uint64_t npages = SEQ_REGION / PAGE, sum = 0;
	uint64_t t0 = gmem_test_now_ns();
	for (uint64_t pg = 0; pg < npages; pg++)
		sum += p[pg * PAGE];
	uint64_t dt = gmem_test_now_ns() - t0;
	int64_t bad = pattern_check((const void *)p, 0, SEQ_REGION);
	struct lvm_stats s = { .struct_size = sizeof(s) };
	lvm_engine_stop(e);
	lvm_engine_stats(e, &s);
	tap_ok(bad < 0 && s.pages_demand == npages && !lvm_engine_error(e)[0], "%s", name);
	if (bad >= 0)
		tap_diag("first wrong byte at offset %lld", (long long)bad);
	tap_diag("%s: %llu pages touched in %.1f ms: %.1f us per fault seen by the "
		 "faulting thread (checksum %llu)", lvm_mode_name(m), (unsigned long long)npages,
		 dt / 1e6, dt / 1e3 / (double)npages, (unsigned long long)sum);
	stats_diag(lvm_mode_name(m), &s);
	unserve(mem, src, e);
}

/* The floor for the figures: first touch of gmem pages with no userfaultfd. */
static void baseline_diag(void)
{
	struct lvm_mem *mem = NULL;
	struct lvm_mem_opts mo = { .struct_size = sizeof(mo), .backing = LVM_BACKING_GMEM, .size = SEQ_REGION,
				   .kvm_vm_fd = vm_fd };
	if (lvm_mem_create(&mo, &mem))
		return;
	volatile uint8_t *p = lvm_mem_addr(mem);
	uint64_t npages = SEQ_REGION / PAGE, t0 = gmem_test_now_ns();
	for (uint64_t pg = 0; pg < npages; pg++)
		p[pg * PAGE] = 1;
	uint64_t dt = gmem_test_now_ns() - t0;
	tap_diag("no uffd (floor): %llu gmem pages first-touched in %.1f ms: %.1f us per page",
		 (unsigned long long)npages, dt / 1e6, dt / 1e3 / (double)npages);
	lvm_mem_destroy(mem);
}

int main(void)
{
	tap_plan(4);
	tap_watchdog(GMEM_TEST_WATCHDOG_S);
	vm_fd = gmem_test_vm();
	int fd = pattern_file(REGION, src_path, sizeof(src_path));
	if (fd < 0)
		tap_bail("cannot create the pattern file: %s", strerror(-fd));
	for (int m = LVM_MODE_MISSING; m <= LVM_MODE_MINOR; m++)
		test_random((enum lvm_mode)m);
	for (int m = LVM_MODE_MISSING; m <= LVM_MODE_MINOR; m++)
		test_sequential((enum lvm_mode)m);
	struct lvm_probe p = { .struct_size = sizeof(p) };
	if (!lvm_probe(LVM_BACKING_GMEM, LVM_MODE_MISSING, &p) && !p.err)
		baseline_diag();
	return tap_done();
}
