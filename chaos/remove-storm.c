/* SPDX-License-Identifier: MIT */
/*
 * Chaos: faults and REMOVE (balloon) storms together, uffd-stress style, on
 * every backing and served mode, for a bounded time ($CHAOS_SECONDS each,
 * default 5).  Two "vCPU" threads read, check and write random pages while
 * two host threads discard random runs of pages (MADV_DONTNEED on private
 * anon, MADV_REMOVE on shared memory), so REMOVE events race with faults,
 * with the engine's fault-around installs of neighbouring pages and with its
 * background fill.  Every page has a model (source pattern or zero, plus the
 * word a vCPU wrote), kept exact by a per-page lock held across each access
 * or discard; every access is checked against it and every page again at
 * the end.  Prints its counts.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "core/hugetlb.h"
#include "lazyvm.h"
#include "tap.h"
#include "testlib.h"

#define REGION (64ull << 20)
#define VCPUS 2
#define REMOVERS 2
#define MAX_RUN 8

struct page_model {
	atomic_flag lock;
	bool zero;		/* discarded: the base content is zero, not the pattern */
	bool written;		/* word 0 holds value */
	uint64_t value;
};

struct storm {
	uint8_t *mem;
	size_t page, npages;
	int advice;
	struct page_model *pm;
	_Atomic bool stop;
	_Atomic uint64_t accesses, writes, discards, bad;
	_Atomic int64_t first_bad;	/* offset, -1 none */
};

static void page_lock(struct page_model *m)
{
	while (atomic_flag_test_and_set_explicit(&m->lock, memory_order_acquire))
		sched_yield();
}

static void page_unlock(struct page_model *m)
{
	atomic_flag_clear_explicit(&m->lock, memory_order_release);
}

/* Does page pg hold what its model says?  full: every word, else a sample
 * (a 2 MiB page checked whole on every access would be all the run does). */
static bool page_ok(const struct storm *s, size_t pg, bool full)
{
	const struct page_model *m = &s->pm[pg];
	const uint64_t *w = (const uint64_t *)(s->mem + pg * s->page);
	size_t words = s->page / 8, step = full || words <= 512 ? 1 : words / 64;
	for (size_t i = 0; i < words; i += step) {
		uint64_t want = i == 0 && m->written ? m->value
			      : m->zero ? 0 : pattern_word(pg * s->page + i * 8);
		if (w[i] != want)
			return false;
	}
	return true;
}

static void note_bad(struct storm *s, size_t pg)
{
	int64_t none = -1;
	atomic_fetch_add(&s->bad, 1);
	atomic_compare_exchange_strong(&s->first_bad, &none, (int64_t)(pg * s->page));
}

static void *vcpu_thread(void *arg)
{
	struct storm *s = arg;
	uint64_t seed = (uint64_t)(uintptr_t)&seed ^ 0x5eed;
	while (!atomic_load(&s->stop)) {
		size_t pg = test_rand(&seed) % s->npages;
		struct page_model *m = &s->pm[pg];
		page_lock(m);
		if (!page_ok(s, pg, false))
			note_bad(s, pg);
		if (test_rand(&seed) & 1) {
			m->value = test_rand(&seed) | 1;
			m->written = true;
			*(volatile uint64_t *)(s->mem + pg * s->page) = m->value;
			atomic_fetch_add(&s->writes, 1);
		}
		page_unlock(m);
		atomic_fetch_add(&s->accesses, 1);
	}
	return NULL;
}

static void *remover_thread(void *arg)
{
	struct storm *s = arg;
	uint64_t seed = (uint64_t)(uintptr_t)&seed ^ 0xba11;
	while (!atomic_load(&s->stop)) {
		size_t n = 1 + test_rand(&seed) % MAX_RUN;
		size_t pg = test_rand(&seed) % s->npages;
		if (pg + n > s->npages)
			n = s->npages - pg;
		for (size_t i = 0; i < n; i++)	/* ascending: no lock-order cycle */
			page_lock(&s->pm[pg + i]);
		if (!madvise(s->mem + pg * s->page, n * s->page, s->advice)) {
			for (size_t i = 0; i < n; i++) {
				s->pm[pg + i].zero = true;
				s->pm[pg + i].written = false;
			}
			atomic_fetch_add(&s->discards, n);
		}
		for (size_t i = 0; i < n; i++)
			page_unlock(&s->pm[pg + i]);
	}
	return NULL;
}

static unsigned chaos_seconds(void)
{
	const char *v = getenv("CHAOS_SECONDS");
	unsigned long n = v ? strtoul(v, NULL, 10) : 5;
	return n ? (unsigned)n : 1;
}

static void storm(enum lvm_backing b, enum lvm_mode m, bool fill, const char *path)
{
	char name[96];
	snprintf(name, sizeof(name), "%s x %s%s: faults + REMOVE storm", lvm_backing_name(b),
		 lvm_mode_name(m), fill ? " + background fill" : "");
	tap_phase(name);
	struct hugetlb_reservation res = HUGETLB_RESERVATION_INIT;
	if (!test_can_run(name, b, m, REGION, &res))
		return;
	struct lvm_engine_opts eo;
	lvm_engine_opts_init(&eo);
	eo.threads = 2;
	eo.fault_around = 64u << 10;
	eo.background_fill = fill;
	struct lvm_mem *mem;
	struct lvm_source *src;
	struct lvm_engine *e;
	int ret = test_serve(b, m, REGION, path, &eo, &mem, &src, &e);
	if (ret) {
		tap_ok(0, "%s: setup: %s", name, strerror(-ret));
		test_unserve(mem, src, e);
		hugetlb_release(&res);
		return;
	}
	struct storm s = { .mem = lvm_mem_addr(mem), .page = lvm_mem_page_size(mem),
			   .advice = b == LVM_BACKING_ANON ? MADV_DONTNEED : MADV_REMOVE,
			   .first_bad = -1 };
	s.npages = REGION / s.page;
	s.pm = calloc(s.npages, sizeof(*s.pm));
	pthread_t t[VCPUS + REMOVERS];
	for (int i = 0; i < VCPUS + REMOVERS; i++)
		pthread_create(&t[i], NULL, i < VCPUS ? vcpu_thread : remover_thread, &s);
	struct timespec d = { chaos_seconds(), 0 };
	nanosleep(&d, NULL);	/* the run's length, not a synchronisation */
	atomic_store(&s.stop, true);
	for (int i = 0; i < VCPUS + REMOVERS; i++)
		pthread_join(t[i], NULL);
	uint64_t end_bad = 0;
	for (size_t pg = 0; pg < s.npages; pg++)
		if (!page_ok(&s, pg, true))
			end_bad++, note_bad(&s, pg);
	struct lvm_stats st = { .struct_size = sizeof(st) };
	lvm_engine_stats(e, &st);
	tap_diag("%s: %llu accesses, %llu writes, %llu pages discarded, %llu faults, "
		 "%llu REMOVE events, %llu EAGAIN retries", name,
		 (unsigned long long)s.accesses, (unsigned long long)s.writes,
		 (unsigned long long)s.discards, (unsigned long long)st.faults,
		 (unsigned long long)st.remove_events, (unsigned long long)st.eagain_retries);
	const char *err = lvm_engine_error(e);
	tap_ok(!atomic_load(&s.bad) && !err[0] && s.discards && s.accesses,
	       "%s: every access and every page at the end as the model says (%llu bad, %llu at "
	       "the end, first at %lld)%s%s", name, (unsigned long long)s.bad,
	       (unsigned long long)end_bad, (long long)s.first_bad, err[0] ? "; engine: " : "", err);
	test_unserve(mem, src, e);
	free(s.pm);
	hugetlb_release(&res);
}

int main(void)
{
	tap_watchdog(120 + 12 * chaos_seconds());
	tap_plan(3 * LVM_BACKING__COUNT - 1);	/* MINOR on all but anon */
	char path[64];
	int fd = pattern_file(REGION, path, sizeof(path));
	if (fd < 0)
		tap_bail("pattern file: %s", strerror(-fd));
	for (enum lvm_backing b = 0; b < LVM_BACKING__COUNT; b++) {
		storm(b, LVM_MODE_MISSING, false, path);
		storm(b, LVM_MODE_MISSING, true, path);
		if (b != LVM_BACKING_ANON)
			storm(b, LVM_MODE_MINOR, false, path);
	}
	close(fd);
	return tap_done();
}
