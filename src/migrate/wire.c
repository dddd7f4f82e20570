/* SPDX-License-Identifier: MIT */
/* Migration wire protocol: framing, validation, sockets. */
#include <endian.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "migrate/wire.h"
#include "util/clock.h"

static const char *const type_names[MIG__TYPE_MAX] = {
	[MIG_HELLO] = "HELLO", [MIG_HELLO_ACK] = "HELLO_ACK", [MIG_PAGES] = "PAGES",
	[MIG_ROUND_END] = "ROUND_END", [MIG_DISCARD] = "DISCARD", [MIG_STATE] = "STATE",
	[MIG_READY] = "READY", [MIG_GO] = "GO", [MIG_STARTED] = "STARTED",
	[MIG_REQUEST] = "REQUEST", [MIG_RECV_BITMAP] = "RECV_BITMAP", [MIG_DONE] = "DONE",
	[MIG_ERROR] = "ERROR", [MIG_ROUND_ACK] = "ROUND_ACK",
	[MIG_AUTH_CHALLENGE] = "AUTH_CHALLENGE", [MIG_AUTH_RESPONSE] = "AUTH_RESPONSE",
};

const char *mig_type_name(uint16_t type)
{
	return type && type < MIG__TYPE_MAX ? type_names[type] : "?";
}

static int why_fail(char *why, size_t whylen, const char *fmt, unsigned long long a,
		    unsigned long long b)
{
	if (why && whylen)
		snprintf(why, whylen, fmt, a, b);
	return -EPROTO;
}

int mig_check_header(const void *wire_hdr, uint16_t *type, uint32_t *len, char *why,
		     size_t whylen)
{
	struct mig_hdr h;
	memcpy(&h, wire_hdr, sizeof(h));
	if (le32toh(h.magic) != MIG_MAGIC)
		return why_fail(why, whylen, "bad magic 0x%08llx (not a lazyvm migration stream)",
				le32toh(h.magic), 0);
	if (le16toh(h.version) != MIG_VERSION)
		return why_fail(why, whylen, "protocol version %llu, this lazyvm speaks %llu",
				le16toh(h.version), MIG_VERSION);
	*type = le16toh(h.type);
	*len = le32toh(h.len);
	if (!*type || *type >= MIG__TYPE_MAX)
		return why_fail(why, whylen, "unknown message type %llu", *type, 0);
	if (*len > MIG_MAX_DATA + sizeof(struct mig_pages) && *len > MIG_MAX_STATE + 16)
		return why_fail(why, whylen, "message length %llu exceeds the limit %llu", *len,
				MIG_MAX_STATE + 16);
	return 0;
}

static uint64_t bitmap_bytes(uint64_t bits)
{
	return (bits + 7) / 8;
}

/* Fixed-size payloads per type (0: variable, checked below). */
static uint32_t fixed_len(uint16_t type)
{
	switch (type) {
	case MIG_HELLO: return sizeof(struct mig_hello);
	case MIG_HELLO_ACK: return sizeof(struct mig_hello_ack);
	case MIG_REQUEST: return sizeof(struct mig_pages);
	case MIG_ROUND_END: case MIG_ROUND_ACK: case MIG_READY: case MIG_GO: return 0;
	case MIG_STARTED: case MIG_DONE: return sizeof(struct mig_stamp);
	case MIG_AUTH_CHALLENGE: return sizeof(struct mig_auth_challenge);
	case MIG_AUTH_RESPONSE: return MIG_MAC_LEN;
	default: return UINT32_MAX;
	}
}

static int check_range(const struct mig_pages *p, const struct mig_limits *lim, char *why,
		       size_t whylen)
{
	uint64_t off = le64toh(p->offset), n = le32toh(p->count);
	if (!lim->unit || off % lim->unit || !n)
		return why_fail(why, whylen, "bad page range at 0x%llx (%llu units)", off, n);
	if (off >= lim->mem_size || n > (lim->mem_size - off) / lim->unit)
		return why_fail(why, whylen, "page range 0x%llx + %llu units beyond guest memory",
				off, n);
	return 0;
}

int mig_check_payload(uint16_t type, const uint8_t *p, uint32_t len,
		      const struct mig_limits *lim, char *why, size_t whylen)
{
	uint32_t fixed = fixed_len(type);
	if (fixed != UINT32_MAX && len != fixed)
		return why_fail(why, whylen, "payload is %llu bytes, expected %llu for its type",
				len, fixed);
	switch (type) {
	case MIG_HELLO: {
		struct mig_hello h;
		memcpy(&h, p, sizeof(h));
		mig_hello_from_wire(&h);
		if (h.channel > MIG_CH_REQUEST)
			return why_fail(why, whylen, "HELLO: unknown channel %llu", h.channel, 0);
		if (h.flags & ~(MIG_HELLO_RESUME | MIG_HELLO_AUTH))
			return why_fail(why, whylen, "HELLO: unknown flags 0x%llx", h.flags, 0);
		if (!h.mem_size || h.mem_size > MIG_MAX_MEM || !h.unit || (h.unit & (h.unit - 1)) ||
		    h.unit < 4096 || h.unit > (2u << 20) || h.mem_size % h.unit)
			return why_fail(why, whylen, "HELLO: bad memory size %llu / unit %llu",
					h.mem_size, h.unit);
		if (h.vcpus > MIG_MAX_VCPUS)
			return why_fail(why, whylen, "HELLO: %llu vCPUs (limit %llu)", h.vcpus,
					MIG_MAX_VCPUS);
		return 0;
	}
	case MIG_REQUEST:
		return check_range((const struct mig_pages *)p, lim, why, whylen);
	case MIG_PAGES: {
		if (len < sizeof(struct mig_pages))
			return why_fail(why, whylen, "PAGES payload too short (%llu bytes)", len, 0);
		struct mig_pages pg;
		memcpy(&pg, p, sizeof(pg));
		int ret = check_range(&pg, lim, why, whylen);
		if (ret)
			return ret;
		uint64_t data = le32toh(pg.flags) & MIG_PAGES_ZERO ? 0 :
				(uint64_t)le32toh(pg.count) * lim->unit;
		if (le32toh(pg.flags) & ~MIG_PAGES_ZERO)
			return why_fail(why, whylen, "PAGES: unknown flags 0x%llx", le32toh(pg.flags), 0);
		if (data > MIG_MAX_DATA || len != sizeof(pg) + data)
			return why_fail(why, whylen, "PAGES: %llu bytes of data for %llu units",
					len - sizeof(pg), le32toh(pg.count));
		return 0;
	}
	case MIG_DISCARD:
	case MIG_RECV_BITMAP: {
		if (!lim->unit)
			return why_fail(why, whylen, "bitmap before HELLO", 0, 0);
		uint64_t need = bitmap_bytes(lim->mem_size / lim->unit);
		if (len != need)
			return why_fail(why, whylen, "bitmap of %llu bytes, expected %llu", len, need);
		return 0;
	}
	case MIG_STATE:
		if (len < sizeof(struct mig_stamp) || len > MIG_MAX_STATE + sizeof(struct mig_stamp))
			return why_fail(why, whylen, "STATE of %llu bytes (limit %llu)", len,
					MIG_MAX_STATE);
		return 0;
	case MIG_ERROR:
		return len <= 4096 ? 0 : why_fail(why, whylen, "ERROR text of %llu bytes", len, 0);
	default:
		return 0;
	}
}

int mig_send(int fd, uint16_t type, const void *a, size_t alen, const void *b, size_t blen)
{
	/* Never a message the receiver must refuse (nor a length cut to 32 bits). */
	if (alen + blen > MIG_MAX_STATE + 16 || (type == MIG_PAGES && blen > MIG_MAX_DATA))
		return -EMSGSIZE;
	struct mig_hdr h = {
		.magic = htole32(MIG_MAGIC), .version = htole16(MIG_VERSION),
		.type = htole16(type), .len = htole32((uint32_t)(alen + blen)),
	};
	struct iovec iov[3] = { { &h, sizeof(h) }, { (void *)a, alen }, { (void *)b, blen } };
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 3 };
	size_t left = sizeof(h) + alen + blen;

	while (left) {
		ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		left -= (size_t)n;
		while (n > 0 && mh.msg_iovlen) {	/* advance over what went out */
			size_t step = (size_t)n < mh.msg_iov->iov_len ? (size_t)n : mh.msg_iov->iov_len;
			mh.msg_iov->iov_base = (uint8_t *)mh.msg_iov->iov_base + step;
			mh.msg_iov->iov_len -= step;
			n -= (ssize_t)step;
			if (!mh.msg_iov->iov_len) {
				mh.msg_iov++;
				mh.msg_iovlen--;
			}
		}
	}
	return 0;
}

/* Read len bytes by deadline_ns (CLOCK_MONOTONIC; 0 = none): one deadline
 * for the whole message, not one per recv. */
static int recv_full(int fd, void *buf, size_t len, uint64_t deadline_ns)
{
	uint8_t *p = buf;
	while (len) {
		if (deadline_ns) {
			uint64_t now = clock_now_ns(CLOCK_MONOTONIC);
			if (now >= deadline_ns)
				return -ETIMEDOUT;
			struct pollfd pfd = { fd, POLLIN, 0 };
			int n = poll(&pfd, 1, (int)((deadline_ns - now + 999999) / 1000000));
			if (n == 0)
				return -ETIMEDOUT;
			if (n < 0 && errno != EINTR)
				return -errno;
			if (n < 0)
				continue;
		}
		ssize_t n = recv(fd, p, len, 0);
		if (n == 0)
			return -ECONNRESET;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Wait for a message to begin (timeout_ms < 0: forever); the deadline for
 * all of it, or -errno. */
static int recv_begin(int fd, int timeout_ms, uint64_t *deadline_ns)
{
	uint64_t t0 = clock_now_ns(CLOCK_MONOTONIC);
	if (timeout_ms >= 0) {
		*deadline_ns = t0 + (uint64_t)timeout_ms * 1000000;
		return 0;
	}
	for (;;) {
		struct pollfd pfd = { fd, POLLIN, 0 };
		int n = poll(&pfd, 1, -1);
		if (n > 0)
			break;
		if (n < 0 && errno != EINTR)
			return -errno;
	}
	*deadline_ns = clock_now_ns(CLOCK_MONOTONIC) + MIG_MSG_DEADLINE_MS * 1000000ull;
	return 0;
}

int mig_recv(int fd, struct mig_msg *m, uint8_t *buf, size_t cap, const struct mig_limits *lim,
	     int timeout_ms, char *why, size_t whylen)
{
	uint8_t hdr[sizeof(struct mig_hdr)];
	uint64_t deadline = 0;
	int ret = recv_begin(fd, timeout_ms, &deadline);
	if (!ret)
		ret = recv_full(fd, hdr, sizeof(hdr), deadline);
	if (ret)
		return ret;
	ret = mig_check_header(hdr, &m->type, &m->len, why, whylen);
	if (ret)
		return ret;
	if (m->len > cap)
		return why_fail(why, whylen, "message of %llu bytes, buffer %llu", m->len, cap);
	ret = recv_full(fd, buf, m->len, deadline);
	if (ret)
		return ret;
	m->payload = buf;
	return mig_check_payload(m->type, buf, m->len, lim, why, whylen);
}

void mig_hello_to_wire(struct mig_hello *h)
{
	h->channel = htole32(h->channel);
	h->flags = htole32(h->flags);
	h->mem_size = htole64(h->mem_size);
	h->unit = htole32(h->unit);
	h->vcpus = htole32(h->vcpus);
}

void mig_hello_from_wire(struct mig_hello *h)
{
	mig_hello_to_wire(h);	/* byte swaps are their own inverse */
}

void mig_ack_to_wire(struct mig_hello_ack *a)
{
	a->status = htole32(a->status);
	a->unit = htole32(a->unit);
	a->phase = htole32(a->phase);
}

void mig_ack_from_wire(struct mig_hello_ack *a)
{
	mig_ack_to_wire(a);
}

void mig_pages_to_wire(struct mig_pages *p)
{
	p->offset = htole64(p->offset);
	p->count = htole32(p->count);
	p->flags = htole32(p->flags);
}

void mig_pages_from_wire(struct mig_pages *p)
{
	mig_pages_to_wire(p);
}

void mig_stamp_to_wire(struct mig_stamp *s)
{
	s->realtime_ns = htole64(s->realtime_ns);
	s->value = htole64(s->value);
}

void mig_stamp_from_wire(struct mig_stamp *s)
{
	mig_stamp_to_wire(s);
}

int mig_random(void *buf, size_t len)
{
	for (uint8_t *p = buf; len; ) {
		ssize_t n = getrandom(p, len, 0);
		if (n < 0 && errno != EINTR)
			return -errno;
		if (n > 0)
			p += n, len -= (size_t)n;
	}
	return 0;
}

/* Split "host:port" (host may be [v6]). */
static int split_addr(const char *addr, char *host, size_t hostlen, const char **port)
{
	const char *colon = strrchr(addr, ':');
	if (!colon || colon == addr || !colon[1])
		return -EINVAL;
	size_t n = (size_t)(colon - addr);
	if (addr[0] == '[' && n >= 2 && addr[n - 1] == ']') {
		addr++;
		n -= 2;
	}
	if (n >= hostlen)
		return -EINVAL;
	memcpy(host, addr, n);
	host[n] = 0;
	*port = colon + 1;
	return 0;
}

static int resolve(const char *addr, bool passive, struct addrinfo **res)
{
	char host[256];
	const char *port;
	if (split_addr(addr, host, sizeof(host), &port))
		return -EINVAL;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = passive ? AI_PASSIVE : 0 };
	return getaddrinfo(host, port, &hints, res) ? -EHOSTUNREACH : 0;
}

void mig_tune_socket(int fd)
{
	int one = 1, idle = 5, intvl = 1, cnt = 5;
	unsigned user_timeout_ms = 10000;
	/* Requests and their answers are small and latency-bound. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* A peer that vanished without a FIN/RST (cable, crash of a box in the
	 * path) must end up as an error, not as a send blocked forever:
	 * keepalive for an idle link, TCP_USER_TIMEOUT for unacknowledged data.
	 * Recovery takes it from there. */
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
	setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms, sizeof(user_timeout_ms));
}

int mig_connect(const char *addr, int timeout_ms)
{
	struct addrinfo *res;
	int ret = resolve(addr, false, &res);
	if (ret)
		return ret;
	int fd = -1;
	ret = -ECONNREFUSED;
	for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0)
			continue;
		struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		if (connect(fd, ai->ai_addr, ai->ai_addrlen)) {
			ret = -errno;
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(res);
	if (fd < 0)
		return ret;
	struct timeval none = { 0, 0 };
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &none, sizeof(none));
	mig_tune_socket(fd);
	return fd;
}

int mig_listen(const char *addr)
{
	struct addrinfo *res;
	int ret = resolve(addr, true, &res);
	if (ret)
		return ret;
	int fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, res->ai_protocol);
	if (fd < 0) {
		ret = -errno;
	} else {
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, res->ai_addr, res->ai_addrlen) || listen(fd, 64)) {
			ret = -errno;
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(res);
	return fd >= 0 ? fd : ret;
}

int mig_accept(int lfd, int timeout_ms)
{
	struct pollfd pfd = { lfd, POLLIN, 0 };
	int n = poll(&pfd, 1, timeout_ms);
	if (n == 0)
		return -ETIMEDOUT;
	if (n < 0)
		return -errno;
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return -errno;
	mig_tune_socket(fd);
	return fd;
}
