/* SPDX-License-Identifier: MIT */
/*
 * The post-copy migration wire protocol (docs/migration-protocol.md).
 * Every message: a 16-byte header (magic, version, type, payload length),
 * then the payload.  All integers little-endian.  Nothing is trusted: the
 * header, the payload length for the type, counts against the memory size,
 * and bitmap sizes are all checked before anything is used.
 */
#ifndef LAZYVM_MIGRATE_WIRE_H
#define LAZYVM_MIGRATE_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MIG_MAGIC	0x4d4d564cu	/* "LVMM" */
#define MIG_VERSION	2
#define MIG_MAX_DATA	(4u << 20)	/* page data in one PAGES message */
#define MIG_SESSION_LEN	16		/* session id: 128 random bits */
#define MIG_NONCE_LEN	16
#define MIG_MAC_LEN	32		/* HMAC-SHA256 */
/* Once a message's first byte is here, the rest must follow within this:
 * a peer dripping one byte at a time cannot hold a channel forever. */
#define MIG_MSG_DEADLINE_MS 10000
#define MIG_MAX_STATE	(4u << 20)	/* VM state blob */
#define MIG_MAX_MEM	(1ull << 40)	/* 1 TiB of guest memory */
#define MIG_MAX_VCPUS	1024

enum mig_type {
	MIG_HELLO = 1,	/* src -> dst, opens a channel */
	MIG_HELLO_ACK,	/* dst -> src */
	MIG_PAGES,	/* src -> dst: pre-copy, push, or a request's answer */
	MIG_ROUND_END,	/* src -> dst: end of a pre-copy round */
	MIG_DISCARD,	/* src -> dst: bitmap of pre-copied units now stale */
	MIG_STATE,	/* src -> dst: VM state; the source is stopped */
	MIG_READY,	/* dst -> src: state loaded, engine up, vCPUs not started */
	MIG_GO,		/* src -> dst: start the vCPUs */
	MIG_STARTED,	/* dst -> src: vCPUs running (timestamp for downtime) */
	MIG_REQUEST,	/* dst -> src: a guest faulted on these units */
	MIG_RECV_BITMAP,/* dst -> src on resume: units the destination has */
	MIG_DONE,	/* dst -> src: every unit received; src -> dst: seen */
	MIG_ERROR,	/* either way: text, then close */
	MIG_ROUND_ACK,	/* dst -> src: a pre-copy round is in memory */
	MIG_AUTH_CHALLENGE,/* dst -> src: nonce and the destination's proof */
	MIG_AUTH_RESPONSE,/* src -> dst: the source's proof */
	MIG__TYPE_MAX
};

enum mig_channel { MIG_CH_MAIN = 0, MIG_CH_REQUEST = 1 };

#define MIG_HELLO_RESUME 1u		/* hello.flags: reconnect after a cut */
#define MIG_HELLO_AUTH 2u		/* hello.flags: the source holds a pre-shared key */
#define MIG_PAGES_ZERO 1u		/* pages.flags: all zero, no data */

/* HELLO_ACK.phase: where a resuming source finds the destination. */
enum mig_phase {
	MIG_PHASE_PRECOPY = 0,	/* receiving pre-copy (not resumable) */
	MIG_PHASE_READY = 1,	/* state loaded, waiting for GO */
	MIG_PHASE_RUNNING = 2,	/* vCPUs run, units still missing */
	MIG_PHASE_DONE = 3,	/* every unit here: the source is finished */
};

struct mig_hdr {
	uint32_t magic;
	uint16_t version;
	uint16_t type;
	uint32_t len;
	uint32_t reserved;
};

struct mig_hello {
	uint8_t session[MIG_SESSION_LEN];
	uint32_t channel;
	uint32_t flags;
	uint64_t mem_size;
	uint32_t unit;		/* the source's page size */
	uint32_t vcpus;		/* the VM's vCPU count (0: memory only) */
	uint8_t nonce[MIG_NONCE_LEN];	/* fresh per connection (authentication) */
};

/* AUTH_CHALLENGE: the destination's nonce and its proof of the key, bound
 * to the HELLO it answers; AUTH_RESPONSE: the source's proof, bound to
 * both nonces (see src/migrate/auth.c). */
struct mig_auth_challenge {
	uint8_t nonce[MIG_NONCE_LEN];
	uint8_t mac[MIG_MAC_LEN];
};

struct mig_hello_ack {
	uint8_t session[MIG_SESSION_LEN];
	uint32_t status;	/* 0 ok, else errno */
	uint32_t unit;		/* transfer unit both sides use */
	uint32_t phase;		/* enum mig_phase (resume) */
	uint32_t reserved;
};

/* PAGES and REQUEST payload prefix (REQUEST: flags 0, no data). */
struct mig_pages {
	uint64_t offset;
	uint32_t count;		/* units */
	uint32_t flags;
};

struct mig_stamp {		/* STATE prefix, STARTED, DONE */
	uint64_t realtime_ns;
	uint64_t value;
};

/* A received message: header fields in host order, payload in buf. */
struct mig_msg {
	uint16_t type;
	uint32_t len;
	uint8_t *payload;
};

/* Session limits the validator checks against (0 before HELLO). */
struct mig_limits {
	uint64_t mem_size;
	uint32_t unit;
};

const char *mig_type_name(uint16_t type);

/*
 * Validate a header (in wire order) and return the payload length, or
 * -EPROTO with why filled.  Then mig_check_payload checks the payload of that
 * type against the limits.  Both are pure functions (fuzzed).
 */
int mig_check_header(const void *wire_hdr, uint16_t *type, uint32_t *len, char *why,
		     size_t whylen);
int mig_check_payload(uint16_t type, const uint8_t *p, uint32_t len,
		      const struct mig_limits *lim, char *why, size_t whylen);

/* Send header + up to two payload parts; MSG_NOSIGNAL; 0 or -errno
 * (-EMSGSIZE for a message beyond the protocol's limits). */
int mig_send(int fd, uint16_t type, const void *a, size_t alen, const void *b, size_t blen);
/*
 * Receive one message into buf (cap bytes) and validate it.  timeout_ms is
 * the deadline for the whole message; < 0 waits forever for it to begin,
 * then MIG_MSG_DEADLINE_MS for the rest.  0, -ECONNRESET (peer closed),
 * -ETIMEDOUT, -EPROTO (bad
 * message: why says what), or -errno.
 */
int mig_recv(int fd, struct mig_msg *m, uint8_t *buf, size_t cap, const struct mig_limits *lim,
	     int timeout_ms, char *why, size_t whylen);

/* Little-endian struct helpers (x86 and arm64 are LE; still convert). */
void mig_hello_to_wire(struct mig_hello *h);
void mig_hello_from_wire(struct mig_hello *h);
void mig_ack_to_wire(struct mig_hello_ack *a);
void mig_ack_from_wire(struct mig_hello_ack *a);
void mig_pages_to_wire(struct mig_pages *p);
void mig_pages_from_wire(struct mig_pages *p);
void mig_stamp_to_wire(struct mig_stamp *s);
void mig_stamp_from_wire(struct mig_stamp *s);

/* len bytes from getrandom (session ids, nonces): 0 or -errno. */
int mig_random(void *buf, size_t len);

/* "host:port" -> connected / listening TCP socket (IPv4 or IPv6). */
int mig_connect(const char *addr, int timeout_ms);
int mig_listen(const char *addr);
int mig_accept(int lfd, int timeout_ms);
/* TCP_NODELAY, keepalive, TCP_USER_TIMEOUT (docs/migration-protocol.md). */
void mig_tune_socket(int fd);

#endif
