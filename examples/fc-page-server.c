/* SPDX-License-Identifier: MIT */
/*
 * A Firecracker page server on liblazyvm's public API alone.
 *
 *   fc-page-server SOCKET MEMFILE
 *
 * Listens on SOCKET, takes one VM: Firecracker connects, sends a JSON array
 * of its guest memory mappings with the userfaultfd attached (SCM_RIGHTS),
 * and keeps the socket open while the VM lives.  Every page the guest
 * touches is served from MEMFILE (Firecracker's flat memory file) at the
 * mapping's offset; when Firecracker closes the socket, print what was
 * served and exit.  Build: cc fc-page-server.c -llazyvm
 */
#define _GNU_SOURCE	/* accept4, SO_PEERCRED */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <lazyvm.h>

#define MAX_REGIONS 32

struct mapping {
	uint64_t base, size, offset, page_size;
};

/* The number after "key": in the object that starts at obj. */
static int json_u64(const char *obj, const char *key, uint64_t *out)
{
	char pat[64];
	snprintf(pat, sizeof(pat), "\"%s\":", key);
	const char *p = strstr(obj, pat), *end = strchr(obj, '}');
	if (!p || (end && p > end))
		return -1;
	return sscanf(p + strlen(pat), " %" SCNu64, out) == 1 ? 0 : -1;
}

static int parse_mappings(const char *json, struct mapping *m)
{
	int n = 0;
	for (const char *o = strchr(json, '{'); o && n < MAX_REGIONS; o = strchr(o + 1, '{')) {
		if (json_u64(o, "base_host_virt_addr", &m[n].base) ||
		    json_u64(o, "size", &m[n].size) || json_u64(o, "offset", &m[n].offset) ||
		    json_u64(o, "page_size", &m[n].page_size))
			return -1;
		n++;
	}
	return n;
}

/* One message: the mappings as JSON, the uffd as SCM_RIGHTS. */
static int recv_message(int sock, char *buf, size_t len, int *uffd)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { buf, len - 1 };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	ssize_t n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	if (n <= 0 || !c || c->cmsg_type != SCM_RIGHTS)
		return -1;
	buf[n] = 0;
	memcpy(uffd, CMSG_DATA(c), sizeof(int));
	return 0;
}

static int listen_on(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	unlink(path);
	mode_t old = umask(0177);	/* the socket is 0600 */
	int ret = s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) || listen(s, 1) ? -1 : s;
	umask(old);
	return ret;
}

/* Only our own uid (or root) may hand us a VM. */
static int peer_ok(int sock)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	return !getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cr, &len) &&
	       (cr.uid == geteuid() || cr.uid == 0);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s SOCKET MEMFILE\n", argv[0]);
		return 64;
	}
	struct lvm_source *src;
	int ret = lvm_source_file_open(argv[2], 0, &src);
	int ls = ret ? -1 : listen_on(argv[1]);
	if (ret || ls < 0) {
		fprintf(stderr, "fc-page-server: %s: %s\n", ret ? argv[2] : argv[1],
			strerror(ret ? -ret : errno));
		return 1;
	}
	printf("listening on %s\n", argv[1]);	/* the caller waits for this line */
	fflush(stdout);
	int sock = accept4(ls, NULL, NULL, SOCK_CLOEXEC), uffd = -1, n = -1;
	char json[4096];
	struct mapping m[MAX_REGIONS];
	if (sock >= 0 && peer_ok(sock) && !recv_message(sock, json, sizeof(json), &uffd))
		n = parse_mappings(json, m);
	if (n <= 0) {
		fprintf(stderr, "fc-page-server: bad or no message from Firecracker\n");
		return 2;
	}

	struct lvm_engine_opts o;
	lvm_engine_opts_init(&o);
	o.uffd = uffd;		/* the engine owns it from now on */
	o.fault_around = 64 << 10;
	struct lvm_engine *e = NULL;
	ret = lvm_engine_create(&o, &e);
	for (int i = 0; !ret && i < n; i++) {
		int id = lvm_engine_add_remote(e, m[i].base, m[i].size, m[i].page_size, src,
					       m[i].offset);
		ret = id < 0 ? id : 0;
	}
	if (!ret)
		ret = lvm_engine_start(e);
	if (ret) {
		fprintf(stderr, "fc-page-server: engine: %s\n", strerror(-ret));
		return 1;
	}
	/* Firecracker keeps the socket open while the VM lives. */
	while (read(sock, json, sizeof(json)) > 0)
		;
	lvm_engine_stop(e);
	struct lvm_stats st = { .struct_size = sizeof(st) };
	lvm_engine_stats(e, &st);
	printf("served %d regions: %" PRIu64 " faults, %" PRIu64 " pages, %" PRIu64 " failed\n",
	       n, st.faults, st.pages_demand, st.pages_failed);
	lvm_engine_destroy(e);	/* closes the uffd too */
	lvm_source_destroy(src);
	unlink(argv[1]);
	return st.pages_failed ? 1 : 0;
}
