/* SPDX-License-Identifier: MIT */
/*
 * Tests against a real S3 server: start the Ceph radosgw of
 * ../shared/s3-server/ (beside the checkout; LAZYVM_SHARED overrides) on
 * 127.0.0.1 for this test alone, and an HTTP proxy in front of it that
 * counts requests and injects faults: 500s, connection resets, truncated
 * bodies, or added latency.
 */
#ifndef LAZYVM_S3TEST_H
#define LAZYVM_S3TEST_H

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char s3t_dir[600];	/* the server's state dir; "" when not started */
static char s3t_script[PATH_MAX + 64];
static char s3t_endpoint[128];

static inline void s3t_stop(void)
{
	if (!*s3t_dir)
		return;
	char cmd[PATH_MAX + 800];
	snprintf(cmd, sizeof(cmd), "bash '%s' stop '%s' >/dev/null 2>&1", s3t_script, s3t_dir);
	if (system(cmd))
		fprintf(stderr, "# s3 server stop failed\n");
	*s3t_dir = 0;
}

static void s3t_on_alarm(int sig)
{
	(void)sig;
	s3t_stop();	/* the watchdog fired: leave no daemon behind */
	_exit(1);
}

/* Where ../shared/s3-server/s3-server.sh is; false (why) if not there. */
static bool s3t_find_script(char *why, size_t len)
{
	const char *shared = getenv("LAZYVM_SHARED");
	const char *build = getenv("LAZYVM_BUILD");
	char root[PATH_MAX];
	if (shared)
		snprintf(root, sizeof(root), "%s", shared);
	else if (build)
		snprintf(root, sizeof(root), "%s/../../shared", build);
	else
		snprintf(root, sizeof(root), "../shared");
	snprintf(s3t_script, sizeof(s3t_script), "%s/s3-server/s3-server.sh", root);
	if (access(s3t_script, R_OK)) {
		snprintf(why, len, "no S3 server script at %.400s", s3t_script);
		return false;
	}
	return true;
}

/*
 * Start the server under tmp/s3 and export its endpoint and credentials
 * (AWS_* for lazyvm).  false with why when it cannot start here.
 */
static inline bool s3t_start(const char *tmp, char *why, size_t len)
{
	if (!s3t_find_script(why, len))
		return false;
	if (system("command -v radosgw >/dev/null 2>&1")) {
		snprintf(why, len, "Ceph radosgw not installed (s3-server.sh install)");
		return false;
	}
	snprintf(s3t_dir, sizeof(s3t_dir), "%s/s3", tmp);
	signal(SIGALRM, s3t_on_alarm);
	atexit(s3t_stop);
	char cmd[PATH_MAX + 800], line[512];
	snprintf(cmd, sizeof(cmd), "bash '%s' start '%s' 2>&1", s3t_script, s3t_dir);
	FILE *p = popen(cmd, "r");
	if (!p) {
		snprintf(why, len, "popen: %s", strerror(errno));
		return false;
	}
	while (fgets(line, sizeof(line), p)) {
		line[strcspn(line, "\n")] = 0;
		char *eq = strchr(line, '=');
		if (!eq)
			continue;
		*eq = 0;
		if (!strcmp(line, "S3_ENDPOINT"))
			snprintf(s3t_endpoint, sizeof(s3t_endpoint), "%s", eq + 1);
		else if (!strncmp(line, "AWS_", 4))
			setenv(line, eq + 1, 1);
	}
	if (pclose(p) || !*s3t_endpoint) {
		snprintf(why, len, "the S3 server did not start (see %.400s/log)", s3t_dir);
		return false;
	}
	setenv("AWS_ENDPOINT_URL", s3t_endpoint, 1);
	return true;
}

/* ---- the fault proxy ---- */

enum s3t_fault { S3T_OK, S3T_500, S3T_RESET, S3T_TRUNCATE };

struct s3t_proxy {
	int lfd;
	uint16_t port, up_port;
	pthread_t thread;
	_Atomic unsigned gets, chunk_gets, faults;
	/* Every fault_every-th chunk GET gets the next fault (cycling 500,
	 * reset, truncate), unless it is a retry of a chunk already faulted
	 * (so a bounded number of retries always gets through);
	 * always_fail: every chunk GET gets a 500. */
	_Atomic unsigned fault_every;
	pthread_mutex_t lock;
	uint64_t faulted[4096];		/* hashes of the request lines faulted */
	unsigned nfaulted;
	_Atomic bool always_fail;
	_Atomic unsigned latency_us;	/* added before every request */
	_Atomic bool stop;
};

static int s3t_read_headers(int fd, char *buf, size_t cap, size_t *have, size_t *hdr_end)
{
	for (;;) {
		buf[*have] = 0;
		char *e = strstr(buf, "\r\n\r\n");
		if (e) {
			*hdr_end = (size_t)(e - buf) + 4;
			return 0;
		}
		if (*have + 1 >= cap)
			return -1;
		ssize_t n = recv(fd, buf + *have, cap - 1 - *have, 0);
		if (n <= 0)
			return -1;
		*have += (size_t)n;
	}
}

static long s3t_content_length(const char *hdr)
{
	const char *p = strcasestr(hdr, "\r\nContent-Length:");
	return p ? strtol(p + 17, NULL, 10) : 0;
}

static bool s3t_send_all(int fd, const void *b, size_t n)
{
	const char *p = b;
	while (n) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
		if (k <= 0)
			return false;
		p += k;
		n -= (size_t)k;
	}
	return true;
}

/* Forward one request to a fresh upstream connection ("Connection: close":
 * the response ends at EOF) and return the whole response (malloc'd). */
static char *s3t_forward(struct s3t_proxy *px, const char *req, size_t hdr_end, size_t total,
			 size_t *rlen)
{
	int u = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(px->up_port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	if (u < 0 || connect(u, (struct sockaddr *)&a, sizeof(a))) {
		if (u >= 0)
			close(u);
		return NULL;
	}
	s3t_send_all(u, req, hdr_end - 2);	/* up to the blank line */
	s3t_send_all(u, "Connection: close\r\n\r\n", 21);
	s3t_send_all(u, req + hdr_end, total - hdr_end);
	size_t cap = 1 << 20, n = 0;
	char *r = malloc(cap);
	for (ssize_t k; r && (k = recv(u, r + n, cap - n, 0)) > 0; ) {
		n += (size_t)k;
		if (n == cap && !(r = realloc(r, cap *= 2)))
			break;
	}
	close(u);
	*rlen = n;
	return r;
}

static void s3t_reset(int fd)
{
	struct linger l = { 1, 0 };
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	close(fd);
}

/* Record the request line; false if it was faulted before. */
static bool s3t_first_fault(struct s3t_proxy *px, const char *req)
{
	uint64_t h = 1469598103934665603ull;	/* FNV-1a */
	for (const char *p = req; *p && *p != '\r'; p++)
		h = (h ^ (uint8_t)*p) * 1099511628211ull;
	pthread_mutex_lock(&px->lock);
	bool first = true;
	for (unsigned i = 0; i < px->nfaulted && first; i++)
		first = px->faulted[i] != h;
	if (first && px->nfaulted < 4096)
		px->faulted[px->nfaulted++] = h;
	pthread_mutex_unlock(&px->lock);
	return first;
}

static void *s3t_conn(void *arg)
{
	struct s3t_proxy *px = ((void **)arg)[0];
	int fd = (int)(intptr_t)((void **)arg)[1];
	free(arg);
	size_t cap = 4 << 20;
	char *buf = malloc(cap);
	while (buf && !atomic_load(&px->stop)) {
		size_t have = 0, hdr_end;
		if (s3t_read_headers(fd, buf, cap, &have, &hdr_end))
			break;
		size_t total = hdr_end + (size_t)s3t_content_length(buf);
		while (have < total && total < cap) {
			ssize_t n = recv(fd, buf + have, total - have, 0);
			if (n <= 0)
				goto out;
			have += (size_t)n;
		}
		unsigned lat = atomic_load(&px->latency_us);
		if (lat)
			usleep(lat);
		bool get = !strncmp(buf, "GET ", 4);
		bool chunk = get && strstr(buf, "/chunks/") && strstr(buf, "/chunks/") < strchr(buf, '\n');
		enum s3t_fault f = S3T_OK;
		if (get)
			atomic_fetch_add(&px->gets, 1);
		if (chunk) {
			unsigned n = atomic_fetch_add(&px->chunk_gets, 1) + 1, every = px->fault_every;
			if (atomic_load(&px->always_fail))
				f = S3T_500;
			else if (every && n % every == 0 && s3t_first_fault(px, buf))
				f = (enum s3t_fault)(1 + (n / every) % 3);
		}
		if (f != S3T_OK)
			atomic_fetch_add(&px->faults, 1);
		if (f == S3T_500) {
			const char *r = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n";
			if (!s3t_send_all(fd, r, strlen(r)))
				break;
			continue;
		}
		if (f == S3T_RESET) {
			s3t_reset(fd);
			fd = -1;
			break;
		}
		size_t rlen;
		char *resp = s3t_forward(px, buf, hdr_end, total, &rlen);
		if (!resp)
			break;
		size_t send_len = rlen;
		if (f == S3T_TRUNCATE && rlen) {	/* the headers, then half the body */
			resp[rlen - 1] = 0;
			char *e = strstr(resp, "\r\n\r\n");
			size_t h = e ? (size_t)(e - resp) + 4 : 0;
			send_len = h + (rlen - h) / 2;
		}
		bool ok = s3t_send_all(fd, resp, send_len);
		free(resp);
		if (!ok || f == S3T_TRUNCATE || strcasestr(buf, "\r\nConnection: close"))
			break;
	}
out:
	free(buf);
	if (fd >= 0)
		close(fd);
	return NULL;
}

static void *s3t_accept(void *arg)
{
	struct s3t_proxy *px = arg;
	while (!atomic_load(&px->stop)) {
		int c = accept4(px->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0)
			continue;
		void **a = malloc(2 * sizeof(void *));
		pthread_t t;
		a[0] = px;
		a[1] = (void *)(intptr_t)c;
		if (pthread_create(&t, NULL, s3t_conn, a)) {
			close(c);
			free(a);
			continue;
		}
		pthread_detach(t);
	}
	return NULL;
}

/* A proxy in front of the endpoint http://127.0.0.1:PORT; 0 or -1. */
static inline int s3t_proxy_start(struct s3t_proxy *px, const char *endpoint)
{
	memset(px, 0, sizeof(*px));
	pthread_mutex_init(&px->lock, NULL);
	const char *colon = strrchr(endpoint, ':');
	px->up_port = (uint16_t)atoi(colon ? colon + 1 : "0");
	px->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	if (px->lfd < 0 || bind(px->lfd, (struct sockaddr *)&a, sizeof(a)) ||
	    listen(px->lfd, 64) || getsockname(px->lfd, (struct sockaddr *)&a, &al))
		return -1;
	px->port = ntohs(a.sin_port);
	return pthread_create(&px->thread, NULL, s3t_accept, px) ? -1 : 0;
}

static inline void s3t_proxy_reset_counts(struct s3t_proxy *px)
{
	atomic_store(&px->gets, 0);
	atomic_store(&px->chunk_gets, 0);
	atomic_store(&px->faults, 0);
}

#endif
