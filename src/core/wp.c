/* SPDX-License-Identifier: MIT */
/* uffd write-protect tracking for live snapshots and dirty rounds. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/backing.h"
#include "core/uffd.h"
#include "core/wp.h"

#define WP_LOCKS 64	/* chunk locks, striped */

struct lvm_wp {
	struct lvm_mem *mem;
	int uffd;
	int stop_efd;
	size_t chunk;
	uint64_t nchunks;
	_Atomic uint8_t *protected_;	/* per chunk: 1 while write-protected */
	pthread_mutex_t locks[WP_LOCKS];
	lvm_wp_first_write_fn fn;
	void *ctx;
	pthread_t thread;
	_Atomic uint64_t faults;
	_Atomic int error;
};

static uint64_t chunk_addr(struct lvm_wp *t, uint64_t c)
{
	return (uint64_t)(uintptr_t)t->mem->addr + c * t->chunk;
}

static uint64_t chunk_len(struct lvm_wp *t, uint64_t c)
{
	uint64_t end = (c + 1) * t->chunk;
	return (end > t->mem->size ? t->mem->size : end) - c * t->chunk;
}

int lvm_wp_take(struct lvm_wp *t, uint64_t c)
{
	if (c >= t->nchunks)
		return -EINVAL;
	pthread_mutex_t *l = &t->locks[c % WP_LOCKS];
	int ret = 0;
	pthread_mutex_lock(l);
	if (atomic_load(&t->protected_[c])) {
		t->fn(t->ctx, c);	/* still the old content: writers are blocked */
		ret = uffd_writeprotect(t->uffd, chunk_addr(t, c), chunk_len(t, c), false, true);
		if (!ret) {
			atomic_store(&t->protected_[c], 0);
			ret = 1;
		}
	}
	pthread_mutex_unlock(l);
	return ret;
}

int lvm_wp_protect(struct lvm_wp *t, uint64_t c)
{
	if (c >= t->nchunks)
		return -EINVAL;
	pthread_mutex_t *l = &t->locks[c % WP_LOCKS];
	pthread_mutex_lock(l);
	int ret = 0;
	if (!atomic_load(&t->protected_[c])) {
		ret = uffd_writeprotect(t->uffd, chunk_addr(t, c), chunk_len(t, c), true, false);
		if (!ret)
			atomic_store(&t->protected_[c], 1);
	}
	pthread_mutex_unlock(l);
	return ret;
}

static void *wp_thread(void *arg)
{
	struct lvm_wp *t = arg;
	struct pollfd pfd[2] = { { t->uffd, POLLIN, 0 }, { t->stop_efd, POLLIN, 0 } };
	struct uffd_msg msgs[64];

	for (;;) {
		if (poll(pfd, 2, -1) < 0 && errno != EINTR)
			break;
		if (pfd[1].revents)
			break;
		int n = uffd_read_msgs(t->uffd, msgs, 64);
		for (int i = 0; i < n; i++) {
			if (msgs[i].event != UFFD_EVENT_PAGEFAULT ||
			    !(msgs[i].arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP))
				continue;
			uint64_t off = msgs[i].arg.pagefault.address -
				       (uint64_t)(uintptr_t)t->mem->addr;
			atomic_fetch_add(&t->faults, 1);
			int ret = lvm_wp_take(t, off / t->chunk);
			if (ret < 0)
				atomic_store(&t->error, ret);
			/* released by someone else meanwhile: the writer may still
			 * sleep on the fault; wake it. */
			if (ret == 0)
				uffd_wake(t->uffd, msgs[i].arg.pagefault.address & ~4095ull, 4096);
		}
	}
	return NULL;
}

int lvm_wp_start(struct lvm_mem *mem, size_t chunk_size, lvm_wp_first_write_fn fn,
		     void *ctx, struct lvm_wp **out)
{
	if (!fn || !chunk_size || chunk_size % mem->page_size)
		return -EINVAL;
	struct lvm_wp *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->mem = mem;
	t->chunk = chunk_size;
	t->nchunks = (mem->size + chunk_size - 1) / chunk_size;
	t->fn = fn;
	t->ctx = ctx;
	t->stop_efd = -1;
	t->protected_ = calloc(t->nchunks, 1);
	for (int i = 0; i < WP_LOCKS; i++)
		pthread_mutex_init(&t->locks[i], NULL);
	uint64_t got = 0;
	/* WP_UNPOPULATED: without it a never-touched anon page is not
	 * protected, and a write to it after the snapshot point would leak
	 * into the snapshot unseen. */
	t->uffd = uffd_open(UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_WP_UNPOPULATED |
			    UFFD_FEATURE_WP_HUGETLBFS_SHMEM, &got);
	int ret = t->uffd < 0 ? t->uffd : 0;
	if (!ret && !t->protected_)
		ret = -ENOMEM;
	if (!ret && mem->fd < 0 && !(got & UFFD_FEATURE_WP_UNPOPULATED))
		ret = -EOPNOTSUPP;
	if (!ret)
		ret = backing_can_userfault(mem, t->uffd, LVM_MODE_WP, true);
	if (!ret)
		ret = uffd_writeprotect(t->uffd, (uint64_t)(uintptr_t)mem->addr, mem->size,
					true, false);
	if (!ret) {
		for (uint64_t c = 0; c < t->nchunks; c++)
			atomic_store(&t->protected_[c], 1);
		t->stop_efd = eventfd(0, EFD_CLOEXEC);
		ret = t->stop_efd < 0 ? -errno : -pthread_create(&t->thread, NULL, wp_thread, t);
	}
	if (ret) {
		if (t->uffd >= 0)
			close(t->uffd);
		if (t->stop_efd >= 0)
			close(t->stop_efd);
		free((void *)t->protected_);
		free(t);
		return ret;
	}
	*out = t;
	return 0;
}

uint64_t lvm_wp_chunks(const struct lvm_wp *t) { return t->nchunks; }
uint64_t lvm_wp_faults(const struct lvm_wp *t) { return atomic_load(&t->faults); }

void lvm_wp_stop(struct lvm_wp *t)
{
	if (!t)
		return;
	uint64_t addr = (uint64_t)(uintptr_t)t->mem->addr;
	/* Unprotect (and wake) first so no writer stays blocked once the
	 * thread that would have served it is gone. */
	uffd_writeprotect(t->uffd, addr, t->mem->size, false, true);
	uint64_t one = 1;
	if (write(t->stop_efd, &one, sizeof(one)) == sizeof(one))
		pthread_join(t->thread, NULL);
	uffd_unregister(t->uffd, addr, t->mem->size);
	close(t->uffd);
	close(t->stop_efd);
	for (int i = 0; i < WP_LOCKS; i++)
		pthread_mutex_destroy(&t->locks[i]);
	free((void *)t->protected_);
	free(t);
}
