/* SPDX-License-Identifier: MIT */
/* The shared page cache file: find or create it, lock it, sweep old ones. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <linux/futex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "core/backing.h"
#include "core/share.h"
#include "util/errmsg.h"

#define SHARE_PREFIX "lazyvm-share-u"

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return h;
}

int share_identity(const char *path, uint64_t *out)
{
	struct stat st;
	if (stat(path, &st))
		return -errno;
	uint64_t v[7] = { st.st_dev, st.st_ino, (uint64_t)st.st_size,
			  (uint64_t)st.st_mtim.tv_sec, (uint64_t)st.st_mtim.tv_nsec,
			  (uint64_t)st.st_ctim.tv_sec, (uint64_t)st.st_ctim.tv_nsec };
	*out = fnv1a(0xcbf29ce484222325ull, v, sizeof(v));
	return 0;
}

static const char *share_dir(const char *dir)
{
	const char *env = getenv("LAZYVM_SHARE_DIR");
	return dir ? dir : env && *env ? env : "/dev/shm";
}

static uint64_t marks_off(uint64_t size) { return size; }
static uint64_t peers_off(uint64_t size) { return size + ((size / 4096 + 4095) & ~4095ull); }
static uint64_t file_size(uint64_t size) { return peers_off(size) + 4096; }

/* An unused cache whose linger time (its mtime, set by the last user) is
 * over: remove it.  Caches in use hold LOCK_SH, so LOCK_EX fails on them. */
static void share_sweep_one(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	if (fd < 0)
		return;
	if (!fstat(fd, &st) && st.st_uid == geteuid() && S_ISREG(st.st_mode) &&
	    st.st_mtime < time(NULL) && !flock(fd, LOCK_EX | LOCK_NB)) {
		struct stat now;
		if (!fstatat(dirfd, name, &now, AT_SYMLINK_NOFOLLOW) && now.st_ino == st.st_ino)
			unlinkat(dirfd, name, 0);
	}
	close(fd);
}

static void share_sweep(const char *dir, const char *keep)
{
	char prefix[64];
	snprintf(prefix, sizeof(prefix), SHARE_PREFIX "%u-", (unsigned)geteuid());
	DIR *d = opendir(dir);
	struct dirent *de;
	while (d && (de = readdir(d)))
		if (!strncmp(de->d_name, prefix, strlen(prefix)) && strcmp(de->d_name, keep))
			share_sweep_one(dirfd(d), de->d_name);
	if (d)
		closedir(d);
}

/* A new cache, complete (size, mode) before it gets its name: O_TMPFILE then
 * link, so a peer never opens a half-made file.  EEXIST: a peer won. */
static int share_create(const char *dir, const char *path, uint64_t fsize)
{
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	char proc[64];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	int ret = 0;
	if (fchmod(fd, 0600) || ftruncate(fd, (off_t)fsize) ||
	    linkat(AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW))
		ret = -errno;
	close(fd);
	return ret;
}

/* Open path and take LOCK_SH; the name must still be that file afterwards
 * (a sweeper may have removed it between our open and our lock). */
static int share_open_locked(const char *path, uint64_t fsize, char *err, size_t errlen)
{
	int fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st, now;
	int ret = 0;
	if (flock(fd, LOCK_SH) || fstat(fd, &st))
		ret = -errno;
	else if (stat(path, &now) || now.st_ino != st.st_ino)
		ret = -EAGAIN;
	else if (st.st_uid != geteuid() || (st.st_mode & 0077) || !S_ISREG(st.st_mode))
		ret = errmsg_set(err, errlen, -EPERM, "%s: not a private (0600, ours) file", path);
	else if ((uint64_t)st.st_size != fsize)
		ret = errmsg_set(err, errlen, -EBADMSG, "%s: %llu bytes, expected %llu", path,
				 (unsigned long long)st.st_size, (unsigned long long)fsize);
	if (ret) {
		close(fd);
		return ret;
	}
	return fd;
}

static int share_map(struct share_cache *c)
{
	void *marks = mmap(NULL, peers_off(c->size) + 4096 - marks_off(c->size),
			   PROT_READ | PROT_WRITE, MAP_SHARED, c->fd, (off_t)marks_off(c->size));
	if (marks == MAP_FAILED)
		return -errno;
	c->marks = marks;
	c->peers = (struct share_peers *)((uint8_t *)marks + peers_off(c->size) - marks_off(c->size));
	void *view = mmap(NULL, c->size, PROT_READ, MAP_SHARED, c->fd, 0);
	if (view == MAP_FAILED)
		return -errno;
	c->view = view;
	return 0;
}

int share_cache_open(const char *dir, uint64_t identity, uint64_t size, unsigned linger_s,
		     struct share_cache **out, char *err, size_t errlen)
{
	if (!size || size % 4096)
		return errmsg_set(err, errlen, -EINVAL, "shared cache: size not a multiple of 4 KiB");
	dir = share_dir(dir);
	/* MINOR faults and UFFDIO_CONTINUE exist for shmem (and hugetlbfs) only. */
	struct statfs sf;
	if (statfs(dir, &sf))
		return errmsg_set(err, errlen, -errno, "shared cache dir %s: %s", dir, strerror(errno));
	if (sf.f_type != TMPFS_MAGIC)
		return errmsg_set(err, errlen, -EINVAL, "shared cache dir %s: not a tmpfs "
				  "(userfaultfd MINOR needs shmem; e.g. /dev/shm)", dir);
	struct share_cache *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->size = size;
	c->npages = size / 4096;
	c->linger_s = linger_s;
	c->fd = -1;
	char name[80];
	snprintf(name, sizeof(name), SHARE_PREFIX "%u-%016llx", (unsigned)geteuid(),
		 (unsigned long long)identity);
	snprintf(c->path, sizeof(c->path), "%s/%s", dir, name);
	share_sweep(dir, name);
	int fd = -ENOENT;
	for (int attempt = 0; attempt < 8 && (fd == -ENOENT || fd == -EAGAIN); attempt++) {
		fd = share_open_locked(c->path, file_size(size), err, errlen);
		if (fd == -ENOENT) {
			int cr = share_create(dir, c->path, file_size(size));
			if (cr && cr != -EEXIST) {
				fd = cr;
				break;
			}
		}
	}
	int ret = fd < 0 ? fd : 0;
	if (!ret) {
		c->fd = fd;
		ret = share_map(c);
	}
	if (ret) {
		if (!*err)
			errmsg_set(err, errlen, ret, "shared cache %s: %s", c->path, strerror(-ret));
		share_cache_close(c);
		return ret;
	}
	*out = c;
	return 0;
}

void share_cache_close(struct share_cache *c)
{
	if (!c)
		return;
	if (c->view)
		munmap(c->view, c->size);
	if (c->marks)
		munmap((void *)c->marks, peers_off(c->size) + 4096 - marks_off(c->size));
	if (c->fd >= 0 && !flock(c->fd, LOCK_EX | LOCK_NB)) {
		/* The last user: drop the cache, or leave it for linger_s more. */
		struct stat st, now;
		bool same = !fstat(c->fd, &st) && !stat(c->path, &now) && now.st_ino == st.st_ino;
		if (same && !c->linger_s) {
			unlink(c->path);
		} else if (same) {
			struct timespec t[2] = { { 0, UTIME_OMIT }, { time(NULL) + c->linger_s, 0 } };
			futimens(c->fd, t);
		}
	}
	if (c->fd >= 0)
		close(c->fd);
	free(c);
}

static void share_mem_destroy(struct lvm_mem *mem) { (void)mem; }

static const struct backing_ops share_ops = {
	LVM_BACKING_MEMFD, "memfd", 4096, NULL, share_mem_destroy
};

int share_mem_create(struct share_cache *c, struct lvm_mem **out)
{
	struct lvm_mem *mem = calloc(1, sizeof(*mem));
	if (!mem)
		return -ENOMEM;
	/* MAP_PRIVATE: CONTINUE maps the cache page read-only here and a write
	 * faults it into a private copy (docs/sharing.md). */
	void *p = mmap(NULL, c->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, c->fd, 0);
	if (p == MAP_FAILED) {
		free(mem);
		return -errno;
	}
	*mem = (struct lvm_mem){ .ops = &share_ops, .addr = p, .size = c->size,
				 .page_size = 4096, .fd = -1, .own_vm_fd = -1, .share = c };
	*out = mem;
	return 0;
}

static long kib_field(const char *line, const char *key)
{
	size_t n = strlen(key);
	return strncmp(line, key, n) ? -1 : atol(line + n);
}

int share_usage_sample(const void *addr, struct share_usage *out)
{
	memset(out, 0, sizeof(*out));
	FILE *f = fopen("/proc/self/smaps", "r");
	if (!f)
		return -errno;
	char line[512];
	bool in = false;
	uintptr_t a = (uintptr_t)addr;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			in = a >= lo && a < hi;
			continue;
		}
		long v;
		if (in && (v = kib_field(line, "Rss:")) >= 0)
			out->rss_kib = (uint64_t)v;
		else if (in && (v = kib_field(line, "Anonymous:")) >= 0)
			out->anon_kib = (uint64_t)v;
		else if (in && (v = kib_field(line, "Pss:")) >= 0)
			out->guest_pss_kib = (uint64_t)v;
	}
	fclose(f);
	f = fopen("/proc/self/smaps_rollup", "r");
	while (f && fgets(line, sizeof(line), f)) {
		long v = kib_field(line, "Pss:");
		if (v >= 0)
			out->pss_kib = (uint64_t)v;
	}
	if (f)
		fclose(f);
	return 0;
}

/*
 * Count this VM in and wait until its group of n is complete.  The counter
 * lives in the shared file, so the wait is a shared (not private) futex;
 * groups of n follow each other when a cache is reused.
 */
static int share_arrive_wait(_Atomic uint32_t *counter, unsigned n, int timeout_ms)
{
	uint32_t me = atomic_fetch_add(counter, 1) + 1;
	uint32_t target = ((me - 1) / n + 1) * n;
	struct timespec deadline;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	syscall(SYS_futex, counter, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
	for (uint32_t v; (int32_t)((v = atomic_load(counter)) - target) < 0;) {
		struct timespec now, left;
		clock_gettime(CLOCK_MONOTONIC, &now);
		left.tv_sec = deadline.tv_sec - now.tv_sec;
		left.tv_nsec = deadline.tv_nsec - now.tv_nsec;
		if (left.tv_nsec < 0) {
			left.tv_sec--;
			left.tv_nsec += 1000000000L;
		}
		if (left.tv_sec < 0)
			return -ETIMEDOUT;
		syscall(SYS_futex, counter, FUTEX_WAIT, v, &left, NULL, 0);
	}
	return 0;
}

int share_sync_sample(struct share_cache *c, unsigned n, int timeout_ms, const void *addr,
		      struct share_usage *out)
{
	int ret = share_arrive_wait(&c->peers->ended, n, timeout_ms);
	share_usage_sample(addr, out);
	int ret2 = share_arrive_wait(&c->peers->sampled, n, timeout_ms);
	return ret ? ret : ret2;
}
