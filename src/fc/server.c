/* SPDX-License-Identifier: MIT */
/*
 * fc-serve's listening side: the 0600 socket (a stale one replaced safely),
 * the accept loop with the SO_PEERCRED check, one thread per VM (vm.c),
 * and the stats of the whole run.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fc/server.h"

void fc_server_log(struct fc_server *s, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (s->o.log)
		s->o.log(s->o.log_ctx, line);
	else
		fprintf(stderr, "fc-serve: %s\n", line);
}

void fc_server_record(struct fc_server *s, const struct fc_vm_record *r)
{
	pthread_mutex_lock(&s->lock);
	if (s->nrecords == s->caprecords) {
		size_t cap = s->caprecords ? s->caprecords * 2 : 16;
		struct fc_vm_record *n = realloc(s->records, cap * sizeof(*n));
		if (n) {
			s->records = n;
			s->caprecords = cap;
		}
	}
	if (s->nrecords < s->caprecords)
		s->records[s->nrecords++] = *r;
	pthread_mutex_unlock(&s->lock);
}

/* path exists: replace it only if it is a socket nobody listens on. */
static int sock_clear_stale(const char *path, const struct sockaddr_un *sa, char *err,
			    size_t errlen)
{
	struct stat st;
	if (lstat(path, &st))
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "%s exists and is not a socket; not replacing it", path);
		return -EEXIST;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int ret = connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) ? -errno : 0;
	close(fd);
	if (!ret) {
		snprintf(err, errlen, "a server is already listening on %s", path);
		return -EADDRINUSE;
	}
	if (ret != -ECONNREFUSED) {
		snprintf(err, errlen, "%s: cannot tell whether it is in use: %s", path,
			 strerror(-ret));
		return ret;
	}
	return unlink(path) && errno != ENOENT ? -errno : 0;	/* stale: nobody listens */
}

static int sock_listen(struct fc_server *s, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *path = s->o.socket_path;
	if (!path || !*path || strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "socket path empty or longer than %zu bytes",
			 sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	memcpy(sa.sun_path, path, strlen(path));
	memcpy(s->path, path, strlen(path) + 1);
	int ret = sock_clear_stale(path, &sa, err, errlen);
	if (ret)
		return ret;
	s->lsock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s->lsock < 0)
		return -errno;
	/* Created 0600 from the start: a chmod after bind would leave a window. */
	mode_t old = umask(0177);
	ret = bind(s->lsock, (struct sockaddr *)&sa, sizeof(sa)) ? -errno : 0;
	umask(old);
	struct stat st;
	if (!ret && !stat(path, &st)) {
		s->sock_dev = st.st_dev;
		s->sock_ino = st.st_ino;
	}
	if (!ret && listen(s->lsock, 64))
		ret = -errno;
	if (ret)
		snprintf(err, errlen, "%s: %s", path, strerror(-ret));
	return ret;
}

int fc_server_open(const struct fc_server_opts *o, struct fc_server **out, char *err,
		   size_t errlen)
{
	struct fc_server *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->o = *o;
	s->lsock = -1;
	s->next_id = 1;
	pthread_mutex_init(&s->lock, NULL);
	s->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	s->reap_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	int ret = s->stop_efd < 0 || s->reap_efd < 0 ? -errno : 0;
	if (ret)
		snprintf(err, errlen, "eventfd: %s", strerror(-ret));
	else
		ret = sock_listen(s, err, errlen);
	if (ret) {
		if (!s->sock_ino)
			s->path[0] = 0;	/* not ours: never unlink it */
		fc_server_close(s);
		return ret;
	}
	*out = s;
	return 0;
}

/* Join the VM threads that ended; returns how many of them were served. */
static unsigned reap_vms(struct fc_server *s, bool all)
{
	unsigned served = 0;
	pthread_mutex_lock(&s->lock);
	struct fc_vm **pp = &s->vms;
	while (*pp) {
		struct fc_vm *vm = *pp;
		if (!all && !atomic_load(&vm->done)) {
			pp = &vm->next;
			continue;
		}
		*pp = vm->next;
		s->nvms--;
		pthread_mutex_unlock(&s->lock);
		pthread_join(vm->thread, NULL);
		served += vm->rec.served;
		free(vm);
		pthread_mutex_lock(&s->lock);
	}
	pthread_mutex_unlock(&s->lock);
	return served;
}

/* Each VM costs a thread and an engine (its own threads): bound them, so a
 * local peer opening connections cannot exhaust the server. */
static bool server_full(struct fc_server *s, pid_t pid)
{
	unsigned max = s->o.max_vms ? s->o.max_vms : FC_MAX_VMS;
	pthread_mutex_lock(&s->lock);	/* ended, unreaped VMs count until reaped */
	bool full = s->nvms >= max;
	if (full)
		s->refused++;
	pthread_mutex_unlock(&s->lock);
	if (full)
		fc_server_log(s, "connection from pid %d refused: %u VMs connected, the limit "
			      "(--max-vms)", (int)pid, max);
	return full;
}

static void accept_one(struct fc_server *s)
{
	int fd = accept4(s->lsock, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
			fc_server_log(s, "accept: %s", strerror(errno));
		return;
	}
	uid_t uid = (uid_t)-1;
	pid_t pid = 0;
	int ret = fc_check_peer(fd, s->o.allow_uids, s->o.nallow_uids, &uid, &pid);
	if (ret) {
		fc_server_log(s, "connection from uid %u pid %d refused: %s", (unsigned)uid,
			      (int)pid, ret == -EPERM ? "uid not allowed (own uid and "
			      "--allow-uid only)" : strerror(-ret));
		pthread_mutex_lock(&s->lock);
		s->refused++;
		pthread_mutex_unlock(&s->lock);
		close(fd);
		return;
	}
	if (server_full(s, pid)) {
		close(fd);
		return;
	}
	struct fc_vm *vm = calloc(1, sizeof(*vm));
	if (!vm) {
		fc_server_log(s, "connection from pid %d dropped: out of memory", (int)pid);
		close(fd);
		return;
	}
	vm->s = s;
	vm->sock = fd;
	vm->rec.uid = uid;
	vm->rec.pid = pid;
	pthread_mutex_lock(&s->lock);
	vm->rec.id = s->next_id++;
	ret = pthread_create(&vm->thread, NULL, fc_vm_thread, vm);
	if (!ret) {
		vm->next = s->vms;
		s->vms = vm;
		s->nvms++;
	}
	pthread_mutex_unlock(&s->lock);
	if (ret) {
		fc_server_log(s, "vm %u: cannot start a thread: %s", vm->rec.id, strerror(ret));
		close(fd);
		free(vm);
	}
}

int fc_server_run(struct fc_server *s)
{
	struct pollfd pfd[3] = { { s->lsock, POLLIN, 0 }, { s->stop_efd, POLLIN, 0 },
				 { s->reap_efd, POLLIN, 0 } };
	int ret = 0;
	while (!atomic_load(&s->stopping)) {
		if (poll(pfd, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			break;
		}
		if (pfd[1].revents)
			break;
		if (pfd[2].revents) {
			uint64_t v;
			if (read(s->reap_efd, &v, sizeof(v)) < 0) {
				/* EAGAIN: another wake-up already consumed it */
			}
			if (reap_vms(s, false) && s->o.once)
				break;
		}
		if (pfd[0].revents)
			accept_one(s);
	}
	fc_server_stop(s);
	reap_vms(s, true);
	return ret;
}

void fc_server_stop(struct fc_server *s)
{
	atomic_store(&s->stopping, true);
	uint64_t one = 1;
	if (write(s->stop_efd, &one, sizeof(one)) < 0) {
		/* async-signal-safe; the flag alone also ends the loop */
	}
}

void fc_server_close(struct fc_server *s)
{
	if (!s)
		return;
	if (s->stop_efd >= 0)
		fc_server_stop(s);
	reap_vms(s, true);
	struct stat st;
	/* Remove the socket file only if it is still the one we created. */
	if (s->path[0] && !lstat(s->path, &st) && st.st_dev == s->sock_dev &&
	    st.st_ino == s->sock_ino)
		unlink(s->path);
	if (s->lsock >= 0)
		close(s->lsock);
	if (s->stop_efd >= 0)
		close(s->stop_efd);
	if (s->reap_efd >= 0)
		close(s->reap_efd);
	pthread_mutex_destroy(&s->lock);
	free(s->records);
	free(s);
}
