/* SPDX-License-Identifier: MIT */
/*
 * WP mode on every backing the probe supports: a point-in-time copy taken
 * with the write-protect tracker while 4 threads write random pages.  The
 * copy must equal the memory as it was when protection started — byte for
 * byte, including never-touched (zero) pages — and the live memory must hold
 * every write.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "core/hugetlb.h"
#include "lazyvm.h"
#include "tap.h"
#include "testlib.h"
#include "core/wp.h"

#define REGION (256ull << 20)
#define CHUNK (2u << 20)
#define THREADS 4
#define WRITES 8000

struct snap {
	uint8_t *mem, *copy;
	struct lvm_wp *t;
	uint64_t *written;	/* per 4 KiB page: how many times written */
	int tid;
};

static void save_chunk(void *ctx, uint64_t c)
{
	struct snap *s = ctx;
	memcpy(s->copy + c * CHUNK, s->mem + c * CHUNK, CHUNK);
}

static void *writer(void *arg)
{
	struct snap *s = arg;
	uint64_t seed = 99 + (uint64_t)s->tid, npages = REGION / 4096;
	for (int i = 0; i < WRITES; i++) {
		uint64_t pg = (test_rand(&seed) % (npages / THREADS)) * THREADS + (uint64_t)s->tid;
		((uint64_t *)(s->mem + pg * 4096))[1] = 0xdeadbeef00000000ull | (uint64_t)i;
		s->written[pg]++;
	}
	return NULL;
}

static void *walker(void *arg)
{
	struct snap *s = arg;
	for (uint64_t c = 0; c < lvm_wp_chunks(s->t); c++)
		lvm_wp_take(s->t, c);
	return NULL;
}

/* Before the snapshot point: even 2 MiB chunks hold the pattern, odd ones are
 * never touched (zero; for anon that tests WP_UNPOPULATED). */
static bool chunk_populated(uint64_t c) { return c % 2 == 0; }

static void run(enum lvm_backing b)
{
	char name[96];
	snprintf(name, sizeof(name), "%s x WP: point-in-time copy under 4 writers, 256 MiB",
		 lvm_backing_name(b));
	struct hugetlb_reservation res = HUGETLB_RESERVATION_INIT;
	if (!test_can_run(name, b, LVM_MODE_WP, REGION, &res)) {
		tap_skip(lvm_backing_name(b), "no huge pages: WP faults not counted");
		return;
	}
	struct lvm_mem *mem;
	struct lvm_mem_opts mo = { .struct_size = sizeof(mo), .backing = b, .size = REGION, .kvm_vm_fd = -1 };
	if (lvm_mem_create(&mo, &mem))
		tap_bail("%s: cannot create memory", name);
	uint8_t *m = lvm_mem_addr(mem);
	for (uint64_t c = 0; c < REGION / CHUNK; c++)
		if (chunk_populated(c))
			pattern_fill(m + c * CHUNK, c * CHUNK, CHUNK);

	struct snap s = { m, malloc(REGION), NULL, calloc(REGION / 4096, sizeof(uint64_t)), 0 };
	int ret = lvm_wp_start(mem, CHUNK, save_chunk, &s, &s.t);
	if (ret) {
		tap_ok(0, "%s (start: %s)", name, strerror(-ret));
		tap_ok(0, "%s: not run", lvm_backing_name(b));
		goto out;
	}
	/* Writes the test controls: one to a populated chunk, one to a never
	 * touched one, each must raise exactly one WP fault before it lands. */
	uint64_t f0 = lvm_wp_faults(s.t);
	for (uint64_t c = 2; c <= 3; c++) {
		uint64_t pg = c * CHUNK / 4096;
		((uint64_t *)(m + pg * 4096))[1] = 0xdeadbeef00000000ull;
		s.written[pg]++;
	}
	tap_ok(lvm_wp_faults(s.t) == f0 + 2, "%s: a write to a protected chunk faults "
	       "(%llu WP faults for 2 writes)", lvm_backing_name(b),
	       (unsigned long long)(lvm_wp_faults(s.t) - f0));
	struct snap ws[THREADS];
	pthread_t t[THREADS + 1];
	for (int i = 0; i < THREADS; i++) {
		ws[i] = s;
		ws[i].tid = i;
		pthread_create(&t[i], NULL, writer, &ws[i]);
	}
	pthread_create(&t[THREADS], NULL, walker, &s);
	for (int i = 0; i <= THREADS; i++)
		pthread_join(t[i], NULL);
	uint64_t faults = lvm_wp_faults(s.t);
	lvm_wp_stop(s.t);

	int64_t bad_copy = -1, bad_live = -1;
	for (uint64_t c = 0; c < REGION / CHUNK && bad_copy < 0; c++) {
		uint8_t *cp = s.copy + c * CHUNK;
		if (chunk_populated(c) ? pattern_check(cp, c * CHUNK, CHUNK) >= 0 : !is_zero(cp, CHUNK))
			bad_copy = (int64_t)(c * CHUNK);
	}
	for (uint64_t pg = 0; pg < REGION / 4096 && bad_live < 0; pg++) {
		uint64_t w1 = ((uint64_t *)(m + pg * 4096))[1];
		if (s.written[pg] && (w1 >> 32) != 0xdeadbeefull)
			bad_live = (int64_t)(pg * 4096);
	}
	tap_ok(bad_copy < 0 && bad_live < 0, "%s", name);
	tap_diag("WP faults %llu; first bad byte in copy %lld, in live memory %lld",
		 (unsigned long long)faults, (long long)bad_copy, (long long)bad_live);
out:
	free(s.copy);
	free(s.written);
	lvm_mem_destroy(mem);
	hugetlb_release(&res);
}

static void wp_copy(enum lvm_backing b, enum lvm_mode m, const char *name)
{
	(void)m, (void)name;
	run(b);
}

static const struct test_row tests[] = {
	{ "WP faults and a point-in-time copy", wp_copy, TEST_ALL_BACKINGS, LVM_MODE_WP, 2 },
};

int main(void)
{
	tap_plan(test_table_plan(tests, 1));
	test_table_run(tests, 1);
	return tap_done();
}
