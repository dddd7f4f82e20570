/* SPDX-License-Identifier: MIT */
/*
 * share-probe: which userfaultfd combination gives N processes one copy of a
 * memory image (docs/sharing.md).  K child processes each map one cache file
 * (memfd, or hugetlb memfd) and serve their own faults:
 *
 *   minor-shmem    MAP_PRIVATE memfd, MINOR|MISSING: a MISSING fault fills the
 *                  cache with pwrite, then UFFDIO_CONTINUE maps the cache page
 *   minor-hugetlb  the same on a MAP_PRIVATE hugetlb memfd (2 MiB pages)
 *   copy-anon      MAP_PRIVATE anon, MISSING: UFFDIO_COPY from a MAP_SHARED
 *                  mapping of the cache (one fetch, a copy per process)
 *
 * Each child reads every page (checks the bytes), reports Pss/Anonymous from
 * /proc/self/smaps_rollup while all K are alive, then writes W pages and
 * checks that the cache (pread) and the other children still see the
 * original bytes.
 *
 *   share-probe [-k procs] [-m MiB] [-w pages-written] [combo...]
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/memfd.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/hugetlb.h"
#include "core/uffd.h"

enum combo { MINOR_SHMEM, MINOR_HUGETLB, COPY_ANON };
static const char *const combo_names[] = { "minor-shmem", "minor-hugetlb", "copy-anon" };

struct child {
	enum combo c;
	int cache_fd;
	uint8_t *shared;	/* MAP_SHARED view of the cache (copy-anon source) */
	uint8_t *mem;
	size_t size, psz;
	int uffd;
	int err;
};

static uint8_t pattern(uint64_t off) { return (uint8_t)((off >> 12) * 37 + 11); }

static void fill_page(uint8_t *buf, uint64_t off, size_t psz)
{
	for (size_t i = 0; i < psz; i += 4096)
		memset(buf + i, pattern(off + i), 4096);
}

static int serve_one(struct child *ch, const struct uffd_msg *m, uint8_t *buf)
{
	uint64_t addr = m->arg.pagefault.address & ~(uint64_t)(ch->psz - 1);
	uint64_t off = addr - (uint64_t)(uintptr_t)ch->mem, done = 0;
	if (ch->c == COPY_ANON) {
		/* The single fetch: whoever comes first fills the shared cache. */
		if (pread(ch->cache_fd, buf, 1, (off_t)off) == 1 && buf[0] == pattern(off))
			;
		else {
			fill_page(buf, off, ch->psz);
			if (pwrite(ch->cache_fd, buf, ch->psz, (off_t)off) != (ssize_t)ch->psz)
				return -errno;
		}
		return uffd_copy(ch->uffd, addr, ch->shared + off, ch->psz, 0, &done);
	}
	if (!(m->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_MINOR)) {
		fill_page(buf, off, ch->psz);
		if (ch->c == MINOR_HUGETLB)	/* hugetlbfs has no write_iter */
			memcpy(ch->shared + off, buf, ch->psz);
		else if (pwrite(ch->cache_fd, buf, ch->psz, (off_t)off) != (ssize_t)ch->psz)
			return -errno;
	}
	int ret = uffd_continue(ch->uffd, addr, ch->psz, 0, &done);
	return ret == -EEXIST ? 0 : ret;
}

static void *handler(void *arg)
{
	struct child *ch = arg;
	uint8_t *buf = malloc(ch->psz);
	for (;;) {
		struct pollfd p = { ch->uffd, POLLIN, 0 };
		if (poll(&p, 1, -1) < 0 || (p.revents & (POLLERR | POLLHUP)))
			break;
		struct uffd_msg msgs[16];
		int n = uffd_read_msgs(ch->uffd, msgs, 16);
		for (int i = 0; i < n; i++) {
			int ret = serve_one(ch, &msgs[i], buf);
			if (ret && !ch->err) {
				ch->err = ret;
				fprintf(stderr, "serve: %s\n", strerror(-ret));
			}
		}
	}
	free(buf);
	return NULL;
}

static long rollup_kib(const char *key)
{
	FILE *f = fopen("/proc/self/smaps_rollup", "r");
	char line[256];
	long v = -1;
	size_t kl = strlen(key);
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, key, kl) && line[kl] == ':')
			v = atol(line + kl + 1);
	if (f)
		fclose(f);
	return v;
}

/* One child: map, register, read all, report, write w pages, verify. */
static int child_run(struct child *ch, unsigned wpages, int report_fd, int go_fd)
{
	int flags = MAP_PRIVATE | (ch->c == COPY_ANON ? MAP_ANONYMOUS : 0);
	ch->mem = mmap(NULL, ch->size, PROT_READ | PROT_WRITE, flags,
		       ch->c == COPY_ANON ? -1 : ch->cache_fd, 0);
	if (ch->mem == MAP_FAILED)
		return -errno;
	uint64_t got;
	ch->uffd = uffd_open(UFFD_WANT_FEATURES, &got);
	if (ch->uffd < 0)
		return ch->uffd;
	uint64_t modes = ch->c == COPY_ANON ? UFFDIO_REGISTER_MODE_MISSING
		: UFFDIO_REGISTER_MODE_MINOR | UFFDIO_REGISTER_MODE_MISSING;
	int ret = uffd_register(ch->uffd, (uint64_t)(uintptr_t)ch->mem, ch->size, modes, NULL);
	if (ret)
		return ret;
	pthread_t t;
	pthread_create(&t, NULL, handler, ch);
	long before = rollup_kib("Pss");
	for (size_t off = 0; off < ch->size; off += 4096)
		if (ch->mem[off] != pattern(off))
			return -EIO;
	long r[4] = { rollup_kib("Pss") - before, rollup_kib("Anonymous"), 0, 0 };
	/* Wait until every child has read everything, then measure again. */
	if (write(report_fd, r, sizeof(r)) != sizeof(r))
		return -EIO;
	char go;
	if (read(go_fd, &go, 1) != 1)
		return -EIO;
	r[0] = rollup_kib("Pss") - before;
	for (unsigned i = 0; i < wpages; i++)
		ch->mem[(size_t)i * 4096] = 0xee;
	r[1] = rollup_kib("Anonymous");
	r[2] = rollup_kib("Pss") - before;
	uint8_t b;
	r[3] = pread(ch->cache_fd, &b, 1, 0) == 1 && b == pattern(0);
	if (write(report_fd, r, sizeof(r)) != sizeof(r))
		return -EIO;
	if (read(go_fd, &go, 1) != 1)	/* stay mapped until all have written */
		return -EIO;
	for (size_t off = wpages * 4096UL; off < ch->size; off += 4096)
		if (ch->mem[off] != pattern(off))
			return -EIO;
	return ch->err;
}

static void child_died(int sig)
{
	char msg[64];
	int n = snprintf(msg, sizeof(msg), "child: signal %d\n", sig);
	if (write(2, msg, (size_t)n) < 0)
		_exit(3);
	_exit(3);
}

static int cache_create(enum combo c, size_t size, size_t *psz)
{
	unsigned fl = MFD_CLOEXEC | (c == MINOR_HUGETLB ? MFD_HUGETLB | MFD_HUGE_2MB : 0);
	*psz = c == MINOR_HUGETLB ? 2UL << 20 : 4096;
	int fd = memfd_create("share-probe", fl);
	if (fd < 0 || ftruncate(fd, (off_t)size))
		return -errno;
	return fd;
}

static void run_combo(enum combo c, unsigned k, size_t size, unsigned wpages)
{
	struct child ch = { .c = c, .size = size };
	ch.cache_fd = cache_create(c, size, &ch.psz);
	if (ch.cache_fd < 0) {
		printf("%-14s cache: %s\n", combo_names[c], strerror(-ch.cache_fd));
		return;
	}
	ch.shared = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, ch.cache_fd, 0);
	if (getenv("PREFILL"))
		for (size_t off = 0; off < size; off += ch.psz)
			fill_page(ch.shared + off, off, ch.psz);
	int rep[2], go[2];
	if (ch.shared == MAP_FAILED || pipe(rep) || pipe(go)) {
		printf("%-14s shared map: %s\n", combo_names[c], strerror(errno));
		return;
	}
	for (unsigned i = 0; i < k; i++) {
		if (fork() == 0) {
			close(rep[0]);
			close(go[1]);
			signal(SIGBUS, child_died);
			signal(SIGSEGV, child_died);
			int ret = child_run(&ch, wpages, rep[1], go[0]);
			if (ret)
				fprintf(stderr, "%s child: %s\n", combo_names[c], strerror(-ret));
			_exit(ret ? 1 : 0);
		}
	}
	close(rep[1]);
	close(go[0]);
	long sum_pss = 0, sum_anon = 0, r[4];
	unsigned n = 0;
	for (unsigned i = 0; i < k && read(rep[0], r, sizeof(r)) == sizeof(r); i++)
		n++;
	if (n == k && write(go[1], "gggggggggggggggggggggggggggggggg", k) != (ssize_t)k)
		n = 0;
	long after_pss = 0, after_anon = 0, cache_ok = 1;
	for (unsigned i = 0; i < n && read(rep[0], r, sizeof(r)) == sizeof(r); i++) {
		sum_pss += r[0];
		after_anon += r[1];
		after_pss += r[2];
		cache_ok &= r[3];
	}
	(void)sum_anon;
	if (n == k && write(go[1], "gggggggggggggggggggggggggggggggg", k) != (ssize_t)k)
		n = 0;
	int bad = 0, st;
	while (wait(&st) > 0)
		bad += !WIFEXITED(st) || WEXITSTATUS(st);
	printf("%-14s procs %u  image %zu KiB  read-all: PSS sum %ld KiB (%.2fx image)  "
	       "after %u page writes each: PSS sum %ld KiB, Anonymous sum %ld KiB, "
	       "cache unchanged %s, children %s\n",
	       combo_names[c], k, size >> 10, sum_pss, (double)sum_pss / (double)(size >> 10),
	       wpages, after_pss, after_anon, cache_ok ? "yes" : "NO",
	       bad || n != k ? "FAILED" : "ok");
	munmap(ch.shared, size);
	close(ch.cache_fd);
	close(rep[0]);
	close(go[1]);
}

int main(int argc, char **argv)
{
	unsigned k = 4, wpages = 16;
	size_t mib = 64;
	int opt;
	while ((opt = getopt(argc, argv, "k:m:w:")) != -1) {
		if (opt == 'k')
			k = (unsigned)atoi(optarg);
		else if (opt == 'm')
			mib = (size_t)atol(optarg);
		else if (opt == 'w')
			wpages = (unsigned)atoi(optarg);
		else
			return 2;
	}
	if (k < 1 || k > 32)
		return 2;
	for (int c = 0; c < 3; c++) {
		int want = optind >= argc;
		for (int i = optind; i < argc; i++)
			want |= !strcmp(argv[i], combo_names[c]);
		if (!want)
			continue;
		/* A MAP_PRIVATE hugetlb mapping reserves its pages for COW at mmap:
		 * the shared cache plus one full image per process. */
		struct hugetlb_reservation res = HUGETLB_RESERVATION_INIT;
		if (c == MINOR_HUGETLB && hugetlb_reserve((long)(mib / 2) * (k + 1), &res)) {
			printf("%-14s no hugetlb pages\n", combo_names[c]);
			continue;
		}
		run_combo((enum combo)c, k, mib << 20, wpages);
		hugetlb_release(&res);
	}
	return 0;
}
