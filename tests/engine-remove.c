/* SPDX-License-Identifier: MIT */
/*
 * REMOVE storm: while 3 threads fault and write pages, a 4th discards random
 * ranges (MADV_DONTNEED on private anon, MADV_REMOVE on shared memory: what a
 * balloon does).  Afterwards: every discarded page reads as zero, every other
 * page as the pattern or as the thread's write; no write lost; no livelock
 * (the run finishes).  Blocks of 64 KiB alternate roles so discards and
 * faults hit the same pages too: "discard blocks" are read by the faulting
 * threads and discarded by the remover; "write blocks" are owned by one
 * writer each and never discarded.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "core/hugetlb.h"
#include "lazyvm.h"
#include "tap.h"
#include "testlib.h"

#define REGION (64ull << 20)
#define BLOCK (64u << 10)
#define PAGE 4096u
#define NBLOCKS (REGION / BLOCK)
#define WRITERS 3
#define OPS 20000
#define DISCARDS 3000

struct shared {
	uint8_t *mem;
	int advice;
	uint8_t *removed;	/* per page, set by the remover before it discards */
	uint8_t *written;	/* per page, set by its writer */
	_Atomic int bad;
};

static bool is_discard_block(uint64_t blk) { return blk % 4 == 3; }

struct worker_arg { struct shared *s; int tid; };

static void *writer(void *arg)
{
	struct worker_arg *a = arg;
	struct shared *s = a->s;
	uint64_t seed = 77 + (uint64_t)a->tid;
	for (int i = 0; i < OPS; i++) {
		uint64_t blk = test_rand(&seed) % NBLOCKS;
		uint64_t pg = blk * (BLOCK / PAGE) + test_rand(&seed) % (BLOCK / PAGE);
		uint64_t off = pg * PAGE;
		uint8_t *p = s->mem + off;
		if (is_discard_block(blk)) {
			/* racing a discard: pattern or zero, nothing else */
			if (pattern_check(p, off, PAGE) >= 0 && !is_zero(p, PAGE))
				atomic_fetch_add(&s->bad, 1);
			continue;
		}
		if (blk % 4 != (uint64_t)a->tid)
			continue;	/* someone else's write block */
		uint64_t *w = (uint64_t *)p;
		uint64_t want = s->written[pg] ? ~pattern_word(off) : pattern_word(off);
		if (w[0] != want || pattern_check(w + 1, off + 8, PAGE - 8) >= 0)
			atomic_fetch_add(&s->bad, 1);
		w[0] = ~pattern_word(off);
		s->written[pg] = 1;
	}
	return NULL;
}

static void *remover(void *arg)
{
	struct shared *s = arg;
	uint64_t seed = 4242;
	for (int i = 0; i < DISCARDS; i++) {
		uint64_t blk = (test_rand(&seed) % (NBLOCKS / 4)) * 4 + 3;
		uint64_t first = test_rand(&seed) % (BLOCK / PAGE);
		uint64_t n = 1 + test_rand(&seed) % (BLOCK / PAGE - first);
		uint64_t pg = blk * (BLOCK / PAGE) + first;
		for (uint64_t k = 0; k < n; k++)
			s->removed[pg + k] = 1;
		if (madvise(s->mem + pg * PAGE, n * PAGE, s->advice))
			atomic_fetch_add(&s->bad, 1000000);
	}
	return NULL;
}

static int64_t verify(struct shared *s)
{
	for (uint64_t pg = 0; pg < REGION / PAGE; pg++) {
		uint64_t off = pg * PAGE;
		uint64_t *w = (uint64_t *)(s->mem + off);
		if (s->removed[pg]) {
			if (!is_zero(w, PAGE))
				return (int64_t)off;
			continue;
		}
		uint64_t want = s->written[pg] ? ~pattern_word(off) : pattern_word(off);
		if (w[0] != want || pattern_check(w + 1, off + 8, PAGE - 8) >= 0)
			return (int64_t)off;
	}
	return -1;
}

static void run(enum lvm_backing b, enum lvm_mode m, int advice, const char *path)
{
	char name[128];
	snprintf(name, sizeof(name), "REMOVE storm on %s x %s (%s)", lvm_backing_name(b),
		 lvm_mode_name(m), advice == MADV_DONTNEED ? "MADV_DONTNEED" : "MADV_REMOVE");
	struct hugetlb_reservation res = HUGETLB_RESERVATION_INIT;
	if (!test_can_run(name, b, m, REGION, &res))
		return;
	struct lvm_mem *mem;
	struct lvm_source *src;
	struct lvm_engine *e;
	struct lvm_engine_opts eo;
	lvm_engine_opts_init(&eo);
	eo.threads = 2;
	int ret = test_serve(b, m, REGION, path, &eo, &mem, &src, &e);
	if (ret < 0)
		tap_bail("%s: setup: %s", name, strerror(-ret));

	struct shared s = { lvm_mem_addr(mem), advice, calloc(REGION / PAGE, 1),
			    calloc(REGION / PAGE, 1), 0 };
	pthread_t t[WRITERS + 1];
	struct worker_arg wa[WRITERS];
	for (int i = 0; i < WRITERS; i++) {
		wa[i] = (struct worker_arg){ &s, i };
		pthread_create(&t[i], NULL, writer, &wa[i]);
	}
	pthread_create(&t[WRITERS], NULL, remover, &s);
	for (int i = 0; i <= WRITERS; i++)
		pthread_join(t[i], NULL);
	int64_t first_bad = verify(&s);
	lvm_engine_stop(e);
	struct lvm_stats st = { .struct_size = sizeof(st) };
	lvm_engine_stats(e, &st);
	tap_ok(!atomic_load(&s.bad) && first_bad < 0 && st.remove_events > 0 &&
	       !lvm_engine_error(e)[0], "%s", name);
	tap_diag("bad during run %d, first bad byte %lld; REMOVE events %llu, faults %llu, "
		 "zero pages %llu, EAGAIN retries %llu %s", atomic_load(&s.bad),
		 (long long)first_bad, (unsigned long long)st.remove_events,
		 (unsigned long long)st.faults, (unsigned long long)st.pages_zero,
		 (unsigned long long)st.eagain_retries, lvm_engine_error(e));
	free(s.removed);
	free(s.written);
	test_unserve(mem, src, e);
	hugetlb_release(&res);
}

int main(void)
{
	char path[64];
	if (pattern_file(REGION, path, sizeof(path)) < 0)
		tap_bail("cannot create the pattern file");
	tap_plan(3);
	run(LVM_BACKING_ANON, LVM_MODE_MISSING, MADV_DONTNEED, path);
	run(LVM_BACKING_MEMFD, LVM_MODE_MISSING, MADV_REMOVE, path);
	run(LVM_BACKING_MEMFD, LVM_MODE_MINOR, MADV_REMOVE, path);
	return tap_done();
}
