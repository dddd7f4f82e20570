/* SPDX-License-Identifier: MIT */
/*
 * What a VMM embedding the engine needs: serving memory it already owns
 * (an anonymous mapping; a memfd mapped at an offset, in MINOR mode), adding
 * and removing regions while the engine runs, and driving the engine from
 * its own event loop instead of the engine's threads.
 */
#include <dirent.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <fcntl.h>

#include "lazyvm.h"
#include "tap.h"
#include "testlib.h"

#define MIB (1ull << 20)

/* A source that computes the test pattern: source byte off = pattern(off). */
static int pattern_get(void *ctx, uint64_t off, size_t len, void *scratch, const void **data)
{
	(void)ctx;
	pattern_fill(scratch, off, len);
	*data = scratch;
	return 0;
}

static struct lvm_source *pattern_source(uint64_t size)
{
	static const struct lvm_source_ops ops = { .struct_size = sizeof(ops), .get = pattern_get };
	struct lvm_source *s = NULL;
	if (lvm_source_create(&ops, NULL, size, &s))
		tap_bail("pattern source");
	return s;
}

static struct lvm_engine *engine_new(bool caller_driven)
{
	struct lvm_engine_opts o;
	lvm_engine_opts_init(&o);
	o.threads = 2;
	o.caller_driven = caller_driven;
	struct lvm_engine *e = NULL;
	if (lvm_engine_create(&o, &e))
		tap_bail("engine");
	return e;
}

static void *anon_map(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		tap_bail("mmap");
	return p;
}

static void own_anon_missing(void)
{
	const size_t len = 4 * MIB;
	uint8_t *m = anon_map(len);
	struct lvm_source *src = pattern_source(len);
	struct lvm_engine *e = engine_new(false);
	struct lvm_range r = { .struct_size = sizeof(r), .addr = m, .length = len,
			       .backing = LVM_BACKING_ANON, .fd = -1 };
	int id = lvm_engine_add_range(e, &r, LVM_MODE_MISSING, src, 0);
	int ret = id < 0 ? id : lvm_engine_start(e);
	int64_t bad = ret ? 0 : pattern_check(m, 0, len);
	lvm_engine_destroy(e);
	tap_ok(!ret && bad < 0, "the caller's anonymous mapping served MISSING (first bad byte %lld)",
	       (long long)bad);
	tap_ok(munmap(m, len) == 0, "the mapping is still the caller's after destroy");
	lvm_source_destroy(src);
}

static void own_memfd_minor_at_offset(void)
{
	const char *name = "the caller's memfd mapped at offset 2 MiB, MINOR";
	struct lvm_probe p = { .struct_size = sizeof(p) };
	lvm_probe(LVM_BACKING_MEMFD, LVM_MODE_MINOR, &p);
	if (p.err) {
		tap_skip(name, "probe: %s", p.reason);
		tap_skip("the file is still the caller's after destroy", "probe: %s", p.reason);
		return;
	}
	const size_t len = 4 * MIB, off = 2 * MIB;
	int fd = memfd_create("adopter", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, (off_t)(off + len + 2 * MIB)))
		tap_bail("memfd");
	uint8_t *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)off);
	if (m == MAP_FAILED)
		tap_bail("mmap memfd");
	struct lvm_source *src = pattern_source(len);
	struct lvm_engine *e = engine_new(false);
	struct lvm_range r = { .struct_size = sizeof(r), .addr = m, .length = len,
			       .backing = LVM_BACKING_MEMFD, .fd = fd, .fd_offset = off };
	int id = lvm_engine_add_range(e, &r, LVM_MODE_MINOR, src, 0);
	int ret = id < 0 ? id : lvm_engine_start(e);
	int64_t bad = ret ? 0 : pattern_check(m, 0, len);
	/* The content must be in the file where the mapping is, not at 0. */
	uint8_t *page = malloc(4096);
	bool in_file = pread(fd, page, 4096, (off_t)(off + MIB)) == 4096 &&
		       pattern_check(page, MIB, 4096) < 0;
	pread(fd, page, 4096, 0);
	bool head_zero = is_zero(page, 4096);
	lvm_engine_destroy(e);
	tap_ok(!ret && bad < 0 && in_file && head_zero,
	       "%s (ret %d, first bad byte %lld, in file at offset %d, file head untouched %d)",
	       name, ret, (long long)bad, in_file, head_zero);
	tap_ok(fcntl(fd, F_GETFD) >= 0 && munmap(m, len) == 0,
	       "the file is still the caller's after destroy");
	free(page);
	close(fd);
	lvm_source_destroy(src);
}

static uint64_t pages_total(struct lvm_engine *e)
{
	struct lvm_stats s = { .struct_size = sizeof(s) };
	lvm_engine_stats(e, &s);
	return s.pages_total;
}

static void hotplug(void)
{
	const size_t len = 2 * MIB;
	uint8_t *a = anon_map(len), *b = anon_map(len);
	struct lvm_source *src = pattern_source(2 * len);
	struct lvm_engine *e = engine_new(false);
	struct lvm_range ra = { .struct_size = sizeof(ra), .addr = a, .length = len,
				.backing = LVM_BACKING_ANON, .fd = -1 };
	struct lvm_range rb = ra;
	rb.addr = b;
	if (lvm_engine_add_range(e, &ra, LVM_MODE_MISSING, src, 0) < 0 || lvm_engine_start(e))
		tap_bail("hotplug setup");

	int id = lvm_engine_add_range(e, &rb, LVM_MODE_MISSING, src, len);
	int64_t bad = id < 0 ? 0 : pattern_check(b, len, len / 2);
	tap_ok(id > 0 && bad < 0 && pages_total(e) == 2 * len / 4096,
	       "a region added while the engine runs is served (id %d, first bad byte %lld)",
	       id, (long long)bad);

	int ret = lvm_engine_remove(e, id);
	/* Unregistered: the untouched half is plain anonymous memory again. */
	bool unserved = is_zero(b + len / 2, len / 2);
	tap_ok(!ret && unserved && pages_total(e) == len / 4096,
	       "removing it unregisters it: untouched pages read as the mapping's own zeros");
	tap_ok(lvm_engine_remove(e, id) == -ENOENT, "removing it twice: -ENOENT");
	tap_ok(pattern_check(a, 0, len) < 0, "the first region is still served");
	lvm_engine_destroy(e);
	lvm_source_destroy(src);
	munmap(a, len);
	munmap(b, len);
}

static int count_threads(void)
{
	DIR *d = opendir("/proc/self/task");
	int n = 0;
	for (struct dirent *de; d && (de = readdir(d));)
		n += de->d_name[0] != '.';
	if (d)
		closedir(d);
	return n;
}

struct reader {
	const uint8_t *mem;
	size_t len;
	int64_t bad;
	atomic_bool done;
};

static void *reader_run(void *arg)
{
	struct reader *r = arg;
	r->bad = pattern_check(r->mem, 0, r->len);
	atomic_store(&r->done, true);
	return NULL;
}

static void caller_driven(void)
{
	const size_t len = 4 * MIB;
	uint8_t *m = anon_map(len);
	struct lvm_source *src = pattern_source(len);
	struct lvm_engine *e = engine_new(true);
	struct lvm_range r = { .struct_size = sizeof(r), .addr = m, .length = len,
			       .backing = LVM_BACKING_ANON, .fd = -1 };
	int threads_before = count_threads();
	if (lvm_engine_add_range(e, &r, LVM_MODE_MISSING, src, 0) < 0 || lvm_engine_start(e))
		tap_bail("caller-driven setup");
	tap_ok(count_threads() == threads_before, "caller-driven engine starts no thread");

	struct reader rd = { m, len, 0, false };
	pthread_t t;
	pthread_create(&t, NULL, reader_run, &rd);
	/* The VMM's loop: poll the engine's fd, process what it has. */
	struct pollfd pfd = { lvm_engine_uffd(e), POLLIN, 0 };
	int served = 0, err = 0;
	while (!atomic_load(&rd.done) && !err) {
		if (poll(&pfd, 1, 100) > 0) {
			int n = lvm_engine_process(e);
			served += n > 0 ? n : 0;
			err = n < 0 ? n : 0;
		}
	}
	pthread_join(t, NULL);
	tap_ok(!err && rd.bad < 0 && served > 0,
	       "served from the caller's poll loop: %d faults, first bad byte %lld",
	       served, (long long)rd.bad);
	lvm_engine_destroy(e);
	lvm_source_destroy(src);
	munmap(m, len);

	e = engine_new(false);
	tap_ok(lvm_engine_process(e) == -EINVAL, "process() on a threaded engine: -EINVAL");
	lvm_engine_destroy(e);
}

int main(void)
{
	tap_plan(11);
	own_anon_missing();
	own_memfd_minor_at_offset();
	hotplug();
	caller_driven();
	return tap_done();
}
