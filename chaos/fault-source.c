/* SPDX-License-Identifier: MIT */
/*
 * Chaos: a fault-injecting page source under the engine, on every backing
 * and served mode.  Seeded random pages ($CHAOS_SEED) fail with EIO at once,
 * fail later (PENDING, then lvm_engine_fail from another thread), arrive
 * short (PENDING, then supplied in two parts), arrive late (PENDING, then
 * supplied after a delay) or are served after a delay in get() itself; the
 * rest are served at once.  Two reader threads ("vCPUs") read every page in
 * their own random order.  Each page must either read as the source's data
 * or stop its reader with SIGBUS, and then an error from the engine must name
 * it (its "source offset 0x..., N bytes" covers the page).  Never a zero or
 * wrong page, never a hang (the watchdog).  Both outcomes are counted.
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "core/hugetlb.h"
#include "lazyvm.h"
#include "tap.h"
#include "testlib.h"

#define REGION (64ull << 20)
#define READERS 2
#define MAX_ERRORS 4096
#define QUEUE 1024

enum fate { FATE_OK, FATE_DELAY, FATE_LATE, FATE_SHORT, FATE_FAIL_LATER, FATE_EIO };
enum seen { SEEN_NONE, SEEN_RIGHT, SEEN_WRONG, SEEN_BUS };

struct job { uint64_t off; size_t len; enum fate fate; };

struct chaos_src {
	uint64_t seed;
	size_t page;
	struct lvm_engine *_Atomic e;
	struct lvm_source *_Atomic src;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct job q[QUEUE];
	unsigned head, tail;
	bool stop;
	/* what the engine reported: [off, off+len) of each error */
	struct { uint64_t off, len; } err[MAX_ERRORS];
	_Atomic unsigned nerr;
	_Atomic uint64_t injected[FATE_EIO + 1];
};

static enum fate page_fate(const struct chaos_src *c, uint64_t pg)
{
	uint64_t s = c->seed ^ (pg * 0x9e3779b97f4a7c15ull);
	/* per mille; 4 times as often on 2 MiB pages (only 32 of them) */
	unsigned r = (unsigned)(test_rand(&s) % 1000) / (c->page > 4096 ? 4 : 1);
	return r < 15 ? FATE_EIO : r < 25 ? FATE_FAIL_LATER : r < 45 ? FATE_SHORT
	     : r < 75 ? FATE_LATE : r < 125 ? FATE_DELAY : FATE_OK;
}

/* The range's fate: its worst page's. */
static enum fate range_fate(const struct chaos_src *c, uint64_t off, size_t len)
{
	enum fate f = FATE_OK;
	for (uint64_t pg = off / c->page; pg < (off + len) / c->page; pg++) {
		enum fate p = page_fate(c, pg);
		f = p > f ? p : f;
	}
	return f;
}

static void delay_us(uint64_t *seed, unsigned max)
{
	struct timespec d = { 0, (long)(test_rand(seed) % max) * 1000 };
	nanosleep(&d, NULL);	/* the injected latency itself */
}

static int chaos_get(void *ctx, uint64_t off, size_t len, void *scratch, const void **data)
{
	struct chaos_src *c = ctx;
	enum fate f = range_fate(c, off, len);
	atomic_fetch_add(&c->injected[f], 1);
	uint64_t seed = off ^ c->seed;
	if (f == FATE_EIO)
		return -EIO;
	if (f == FATE_DELAY)
		delay_us(&seed, 2000);
	if (f == FATE_OK || f == FATE_DELAY) {
		pattern_fill(scratch, off, len);
		*data = scratch;
		return 0;
	}
	pthread_mutex_lock(&c->lock);
	bool full = c->tail - c->head == QUEUE;
	if (!full) {
		c->q[c->tail++ % QUEUE] = (struct job){ off, len, f };
		pthread_cond_signal(&c->cond);
	}
	pthread_mutex_unlock(&c->lock);
	return full ? -EAGAIN : LVM_SOURCE_PENDING;	/* a full queue is a failure too */
}

static void supply(struct chaos_src *c, uint64_t off, size_t len)
{
	void *buf = malloc(len);
	pattern_fill(buf, off, len);
	lvm_engine_supply(atomic_load(&c->e), atomic_load(&c->src), off, buf, len);
	free(buf);
}

/* The asynchronous half of the source: late, short and failing answers. */
static void *supplier_thread(void *arg)
{
	struct chaos_src *c = arg;
	uint64_t seed = c->seed ^ 0x5a5a;
	pthread_mutex_lock(&c->lock);
	for (;;) {
		while (c->head == c->tail && !c->stop)
			pthread_cond_wait(&c->cond, &c->lock);
		if (c->head == c->tail)
			break;
		struct job j = c->q[c->head++ % QUEUE];
		pthread_mutex_unlock(&c->lock);
		delay_us(&seed, 1000);
		if (j.fate == FATE_FAIL_LATER) {
			lvm_engine_fail(atomic_load(&c->e), atomic_load(&c->src), j.off, j.len, -EIO);
		} else if (j.fate == FATE_SHORT && j.len > c->page) {
			size_t first = (j.len / c->page / 2) * c->page;
			supply(c, j.off, first);
			delay_us(&seed, 1000);
			supply(c, j.off + first, j.len - first);
		} else {
			supply(c, j.off, j.len);
		}
		pthread_mutex_lock(&c->lock);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

static void on_engine_error(void *ctx, const char *msg)
{
	struct chaos_src *c = ctx;
	const char *p = strstr(msg, "source offset 0x");
	unsigned long long off, len;
	if (!p || sscanf(p, "source offset 0x%llx, %llu bytes", &off, &len) != 2)
		return;
	unsigned i = atomic_fetch_add(&c->nerr, 1);
	if (i < MAX_ERRORS)
		c->err[i].off = off, c->err[i].len = len;
}

static bool reported(struct chaos_src *c, uint64_t off)
{
	unsigned n = atomic_load(&c->nerr);
	for (unsigned i = 0; i < n && i < MAX_ERRORS; i++)
		if (off >= c->err[i].off && off - c->err[i].off < c->err[i].len)
			return true;
	return false;
}

struct reading {
	const uint8_t *mem;
	size_t page, npages;
	_Atomic uint8_t *seen;
	uint64_t seed;
};

static __thread sigjmp_buf reader_jb;

static void on_sigbus(int sig)
{
	(void)sig;
	siglongjmp(reader_jb, 1);
}

/* Read page pg whole: right, wrong, or SIGBUS (the poison of a failed page). */
static __attribute__((noinline)) uint8_t read_page(const struct reading *rd, size_t pg)
{
	if (sigsetjmp(reader_jb, 1))
		return SEEN_BUS;
	return pattern_check(rd->mem + pg * rd->page, pg * rd->page, rd->page) < 0 ? SEEN_RIGHT
										   : SEEN_WRONG;
}

static void *reader_thread(void *arg)
{
	struct reading *rd = arg;
	uint64_t seed = rd->seed;
	size_t *order = malloc(rd->npages * sizeof(*order));
	for (size_t i = 0; i < rd->npages; i++)
		order[i] = i;
	for (size_t i = rd->npages - 1; i > 0; i--) {	/* Fisher-Yates */
		size_t j = test_rand(&seed) % (i + 1), t = order[i];
		order[i] = order[j], order[j] = t;
	}
	for (size_t i = 0; i < rd->npages; i++) {
		size_t pg = order[i];
		uint8_t seen = read_page(rd, pg), none = SEEN_NONE;
		if (!atomic_compare_exchange_strong(&rd->seen[pg], &none, seen) && none != seen)
			atomic_store(&rd->seen[pg], SEEN_WRONG);	/* two readers disagree */
	}
	free(order);
	return NULL;
}

static void run(enum lvm_backing b, enum lvm_mode m, uint64_t seed)
{
	char name[96];
	snprintf(name, sizeof(name), "%s x %s: fault-injecting source", lvm_backing_name(b),
		 lvm_mode_name(m));
	tap_phase(name);
	struct hugetlb_reservation res = HUGETLB_RESERVATION_INIT;
	if (!test_can_run(name, b, m, REGION, &res))
		return;
	struct chaos_src *c = calloc(1, sizeof(*c));
	c->seed = seed;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	static const struct lvm_source_ops ops = { .struct_size = sizeof(ops), .get = chaos_get };
	struct lvm_mem_opts mo = { .struct_size = sizeof(mo), .backing = b, .size = REGION,
				   .kvm_vm_fd = -1 };
	struct lvm_engine_opts eo;
	lvm_engine_opts_init(&eo);
	eo.threads = 2;
	eo.fault_around = 16u << 10;
	eo.on_error = on_engine_error;
	eo.on_error_ctx = c;
	struct lvm_mem *mem = NULL;
	struct lvm_source *src = NULL;
	struct lvm_engine *e = NULL;
	int ret = lvm_mem_create(&mo, &mem);
	if (!ret)
		ret = lvm_source_create(&ops, c, REGION, &src);
	if (!ret)
		ret = lvm_engine_create(&eo, &e);
	if (!ret) {
		c->page = lvm_mem_page_size(mem);
		atomic_store(&c->e, e);
		atomic_store(&c->src, src);
		ret = lvm_engine_add_mem(e, mem, m, src, 0);
	}
	pthread_t sup;
	pthread_create(&sup, NULL, supplier_thread, c);
	if (ret >= 0)
		ret = lvm_engine_start(e);
	struct reading rd = { lvm_mem_addr(mem), c->page, REGION / (c->page ? c->page : 4096) };
	rd.seen = calloc(rd.npages, 1);
	if (ret >= 0) {
		pthread_t t[READERS];
		struct reading per[READERS];
		for (int i = 0; i < READERS; i++) {
			per[i] = rd;
			per[i].seed = seed + 1 + (uint64_t)i;
			pthread_create(&t[i], NULL, reader_thread, &per[i]);
		}
		for (int i = 0; i < READERS; i++)
			pthread_join(t[i], NULL);
	}
	pthread_mutex_lock(&c->lock);
	c->stop = true;
	pthread_cond_signal(&c->cond);
	pthread_mutex_unlock(&c->lock);
	pthread_join(sup, NULL);
	uint64_t right = 0, bus = 0, wrong = 0, unread = 0, unnamed = 0;
	for (size_t pg = 0; ret >= 0 && pg < rd.npages; pg++) {
		uint8_t s = atomic_load(&rd.seen[pg]);
		right += s == SEEN_RIGHT, wrong += s == SEEN_WRONG, unread += s == SEEN_NONE;
		if (s == SEEN_BUS && ++bus && !reported(c, pg * c->page))
			unnamed++;
	}
	tap_diag("%s: injected per range: %llu ok, %llu delayed, %llu late, %llu short, %llu failed "
		 "later, %llu EIO; pages: %llu right data, %llu stopped with SIGBUS (named), %llu "
		 "wrong, %llu SIGBUS unnamed; %u errors", name,
		 (unsigned long long)c->injected[FATE_OK], (unsigned long long)c->injected[FATE_DELAY],
		 (unsigned long long)c->injected[FATE_LATE], (unsigned long long)c->injected[FATE_SHORT],
		 (unsigned long long)c->injected[FATE_FAIL_LATER],
		 (unsigned long long)c->injected[FATE_EIO], (unsigned long long)right,
		 (unsigned long long)bus, (unsigned long long)wrong, (unsigned long long)unnamed,
		 atomic_load(&c->nerr));
	if (ret < 0)
		tap_ok(0, "%s: setup: %s", name, strerror(-ret));
	else
		tap_ok(!wrong && !unread && !unnamed && right &&
		       (bus > 0) == (c->injected[FATE_EIO] + c->injected[FATE_FAIL_LATER] > 0),
		       "%s: every page right (%llu) or stopped with an error naming it (%llu)", name,
		       (unsigned long long)right, (unsigned long long)bus);
	lvm_engine_destroy(e);
	lvm_source_destroy(src);
	lvm_mem_destroy(mem);
	free(rd.seen);
	free(c);
	hugetlb_release(&res);
}

int main(void)
{
	tap_watchdog(600);
	const char *s = getenv("CHAOS_SEED");
	uint64_t seed = (s ? strtoull(s, NULL, 10) : 1) * 0x2545f4914f6cdd1dull + 3;
	struct sigaction sa = { .sa_handler = on_sigbus, .sa_flags = SA_NODEFER };
	sigaction(SIGBUS, &sa, NULL);
	tap_plan(2 * LVM_BACKING__COUNT - 1);	/* MINOR on all but anon */
	for (enum lvm_backing b = 0; b < LVM_BACKING__COUNT; b++) {
		run(b, LVM_MODE_MISSING, seed);
		if (b != LVM_BACKING_ANON)
			run(b, LVM_MODE_MINOR, seed);
	}
	return tap_done();
}
