/* SPDX-License-Identifier: MIT */
/*
 * Migration on a network with others on it (issue 14): --auth-psk and the
 * destination's gate.  Source and destination in one process, memory
 * compared page by page with the stopped source.
 * - HMAC-SHA256 against RFC 4231;
 * - same key both sides: every page arrives;
 * - a source with the wrong key, or none, is refused (and its VM resumes);
 * - while a real migration runs: a stray connection (garbage), a peer with
 *   the wrong key, a silent one, one dripping a byte a second, and forged
 *   RESUMEs (another session; the wrong key) are each refused with a reason,
 *   and the migration completes with every page equal.
 */
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "lazyvm.h"
#include "migrate/auth.h"
#include "migrate/hmac.h"
#include "migrate/migrate.h"
#include "migrate/wire.h"
#include "tap.h"
#include "testlib.h"
#include "testproxy.h"

#define MEM (32ull << 20)
#define PAGE 4096ull

static struct mig_key key_a, key_b;

static void hmac_vectors(void)
{
	/* RFC 4231 test cases 1 and 2. */
	static const uint8_t want1[32] = {
		0xb0, 0x34, 0x4c, 0x61, 0xd8, 0xdb, 0x38, 0x53, 0x5c, 0xa8, 0xaf, 0xce, 0xaf, 0x0b,
		0xf1, 0x2b, 0x88, 0x1d, 0xc2, 0x00, 0xc9, 0x83, 0x3d, 0xa7, 0x26, 0xe9, 0x37, 0x6c,
		0x2e, 0x32, 0xcf, 0xf7 };
	static const uint8_t want2[32] = {
		0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04, 0x24, 0x26, 0x08, 0x95,
		0x75, 0xc7, 0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27, 0x39, 0x83, 0x9d, 0xec, 0x58, 0xb9,
		0x64, 0xec, 0x38, 0x43 };
	uint8_t k1[20], out1[32], out2[32];
	memset(k1, 0x0b, sizeof(k1));
	struct hmac_sha256 m;
	hmac_sha256_init(&m, k1, sizeof(k1));
	hmac_sha256_update(&m, "Hi There", 8);
	hmac_sha256_final(&m, out1);
	hmac_sha256_init(&m, "Jefe", 4);
	hmac_sha256_update(&m, "what do ya want ", 16);
	hmac_sha256_update(&m, "for nothing?", 12);
	hmac_sha256_final(&m, out2);
	tap_ok(!memcmp(out1, want1, 32) && !memcmp(out2, want2, 32),
	       "HMAC-SHA256 matches RFC 4231 test cases 1 and 2");
}

/* ---- the VM behind the callbacks ---- */

struct vm {
	struct lvm_mem *mem;
	_Atomic int resumed;
	void (*on_start)(void *);	/* destination: post-copy began */
	void *on_start_arg;
};

static int src_pause(void *ctx) { (void)ctx; return 0; }
static int src_resume(void *ctx) { atomic_fetch_add(&((struct vm *)ctx)->resumed, 1); return 0; }
static int src_save(void *ctx, void **blob, size_t *len)
{
	(void)ctx;
	*blob = strdup("state");
	*len = 6;
	return *blob ? 0 : -ENOMEM;
}

static int dst_create(void *ctx, uint64_t size, unsigned vcpus, struct lvm_mem **mem)
{
	struct vm *v = ctx;
	(void)vcpus;
	struct lvm_mem_opts o = { .struct_size = sizeof(o), .backing = LVM_BACKING_ANON,
				  .size = size, .kvm_vm_fd = -1 };
	int ret = lvm_mem_create(&o, mem);
	v->mem = *mem;
	return ret;
}

static int dst_load(void *ctx, const void *b, size_t l) { (void)ctx, (void)b, (void)l; return 0; }

static int dst_start(void *ctx)
{
	struct vm *v = ctx;
	if (v->on_start)
		v->on_start(v->on_start_arg);
	return 0;
}

struct dst_run { struct mig_dst *d; struct vm v; struct mig_stats st; int ret; char err[256]; };

static void *dst_thread(void *arg)
{
	struct dst_run *r = arg;
	struct mig_dst_vm ops = { &r->v, dst_create, dst_load, dst_start };
	r->ret = mig_dst_run(r->d, &ops, &r->st, r->err, sizeof(r->err));
	return NULL;
}

static _Atomic int refusals;

static void count_refusal(void *ctx, const char *msg)
{
	(void)ctx;
	tap_diag("destination: %s", msg);
	atomic_fetch_add(&refusals, 1);
}

/* ---- attackers: raw connections to the destination ---- */

/* A HELLO as a peer would send it (session: random unless given). */
static void hello(struct mig_hello *h, uint32_t channel, uint32_t flags, const uint8_t *session)
{
	memset(h, 0, sizeof(*h));
	h->channel = channel;
	h->flags = flags;
	h->mem_size = MEM;
	h->unit = PAGE;
	h->vcpus = 1;
	if (session)
		memcpy(h->session, session, sizeof(h->session));
	else
		mig_random(h->session, sizeof(h->session));
	mig_random(h->nonce, sizeof(h->nonce));
	mig_hello_to_wire(h);
}

/* Read until the destination answers ERROR (true, text in why) or closes. */
static bool refused_with(int fd, char *why, size_t len)
{
	uint8_t buf[4160];
	struct mig_msg m;
	struct mig_limits none = { 0, 0 };
	char w[160];
	for (;;) {
		int ret = mig_recv(fd, &m, buf, sizeof(buf), &none, 60000, w, sizeof(w));
		if (ret) {
			snprintf(why, len, "no ERROR: %s", ret == -EPROTO ? w : strerror(-ret));
			return false;
		}
		if (m.type == MIG_ERROR) {
			snprintf(why, len, "%.*s", (int)m.len, (const char *)m.payload);
			return true;
		}
	}
}

/* Answer a challenge with a proof made from `k` (NULL: garbage). */
static void answer_challenge(int fd, const struct mig_hello *h, const struct mig_key *k)
{
	uint8_t buf[128];
	struct mig_msg m;
	struct mig_limits none = { 0, 0 };
	char w[160];
	if (mig_recv(fd, &m, buf, sizeof(buf), &none, 30000, w, sizeof(w)) ||
	    m.type != MIG_AUTH_CHALLENGE)
		return;
	struct mig_auth_challenge c;
	memcpy(&c, m.payload, sizeof(c));
	uint8_t mac[MIG_MAC_LEN] = { 0 };
	if (k)
		mig_auth_proof(k, MIG_AUTH_SRC, h, c.nonce, mac);
	mig_send(fd, MIG_AUTH_RESPONSE, mac, sizeof(mac), NULL, 0);
}

enum attack { GARBAGE, WRONG_KEY, NO_KEY, FORGED_RESUME, FORGED_RESUME_KEY, NATTACKS };
static const char *const attack_name[NATTACKS] = {
	"stray connection (HTTP)", "wrong key", "no key", "forged RESUME (another session)",
	"forged RESUME (wrong key)" };
static const char *const attack_expect[NATTACKS] = {
	"bad magic", "authentication failed", "authentication required", "session",
	"authentication failed" };

/* One attack; true if refused with the expected reason. */
static bool attack(int port, enum attack a, char *why, size_t len)
{
	int fd = proxy_connect_upstream(port);
	if (fd < 0) {
		snprintf(why, len, "connect failed");
		return false;
	}
	struct mig_hello h;
	switch (a) {
	case GARBAGE:
		if (write(fd, "GET / HTTP/1.1\r\n\r\n", 18) != 18)
			break;
		break;
	case WRONG_KEY:
	case FORGED_RESUME_KEY:
		hello(&h, MIG_CH_MAIN, MIG_HELLO_AUTH | (a == FORGED_RESUME_KEY ? MIG_HELLO_RESUME
										: 0), NULL);
		mig_send(fd, MIG_HELLO, &h, sizeof(h), NULL, 0);
		answer_challenge(fd, &h, &key_b);
		break;
	case NO_KEY:
		hello(&h, MIG_CH_MAIN, 0, NULL);
		mig_send(fd, MIG_HELLO, &h, sizeof(h), NULL, 0);
		break;
	case FORGED_RESUME:	/* a destination without a key: only the session id */
		hello(&h, MIG_CH_MAIN, MIG_HELLO_RESUME, NULL);
		mig_send(fd, MIG_HELLO, &h, sizeof(h), NULL, 0);
		break;
	default:
		break;
	}
	bool ok = refused_with(fd, why, len) && strstr(why, attack_expect[a]);
	close(fd);
	return ok;
}

/* ---- one migration with attackers around it ---- */

struct run {
	const struct mig_key *src_key, *dst_key;
	bool attack_during;		/* attacks once post-copy began */
	int dst_port;
	_Atomic int attacks_ok, attacks_done;
	int silent_fd, drip_fd, accept_ms;
	pthread_t dripper;
	_Atomic bool drip_stop;
	int src_ret, dst_ret, resumed;
	bool equal;
	char src_err[256], dst_err[256];
};

static void *attacks(void *arg)
{
	struct run *r = arg;
	for (int a = 0; a < NATTACKS; a++) {
		/* Without a key at the destination, only garbage and the session id
		 * can be tried; with one, everything but the bare session id. */
		bool keyed = a == WRONG_KEY || a == NO_KEY || a == FORGED_RESUME_KEY;
		if (a != GARBAGE && keyed != !!r->dst_key)
			continue;
		char why[200];
		bool ok = attack(r->dst_port, (enum attack)a, why, sizeof(why));
		tap_diag("%s: %s", attack_name[a], why);
		atomic_fetch_add(&r->attacks_ok, ok);
		atomic_fetch_add(&r->attacks_done, 1);
	}
	return NULL;
}

/* Post-copy began (GO arrived): attack before a single pushed unit is
 * taken, so the migration is certainly still going on. */
static void start_attacks(void *arg)
{
	attacks(arg);
}

/* A byte a second: never a whole header before the deadline. */
static void *dripper(void *arg)
{
	struct run *r = arg;
	static const uint8_t hdr[16] = { 'L', 'V', 'M', 'M', 2, 0, 1, 0, 56 };
	for (int i = 0; i < 15 && !atomic_load(&r->drip_stop); i++) {
		if (send(r->drip_fd, hdr + i, 1, MSG_NOSIGNAL) != 1)
			break;
		struct pollfd p = { r->drip_fd, POLLIN, 0 };
		if (poll(&p, 1, 1000) > 0)	/* the destination answered: refused */
			break;
	}
	return NULL;
}

static void migrate(struct run *r)
{
	struct lvm_mem_opts o = { .struct_size = sizeof(o), .backing = LVM_BACKING_ANON,
				  .size = MEM, .kvm_vm_fd = -1 };
	struct vm src = { 0 };
	if (lvm_mem_create(&o, &src.mem))
		tap_bail("source memory");
	pattern_fill(lvm_mem_addr(src.mem), 0, MEM);
	struct dst_run dr = { 0 };
	struct mig_dst_opts dopts = { .listen = "127.0.0.1:0",
				      .accept_timeout_ms = r->accept_ms ? r->accept_ms : 60000,
				      .recover_timeout_s = 30, .handler_threads = 2,
				      .auth_key = r->dst_key, .on_log = count_refusal };
	if (mig_dst_listen(&dopts, &dr.d))
		tap_bail("listen");
	r->dst_port = mig_dst_port(dr.d);
	if (r->attack_during) {
		dr.v.on_start = start_attacks;
		dr.v.on_start_arg = r;
		/* Connected before the source: they must not stand in its way. */
		r->silent_fd = proxy_connect_upstream(r->dst_port);
		r->drip_fd = proxy_connect_upstream(r->dst_port);
		pthread_create(&r->dripper, NULL, dripper, r);
	}
	pthread_t dt;
	pthread_create(&dt, NULL, dst_thread, &dr);
	char addr[64];
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", r->dst_port);
	struct mig_src_opts so = { .addr = addr, .recover_timeout_s = 5, .vcpus = 1,
				   .auth_key = r->src_key };
	struct mig_src_vm sv = { &src, src_pause, src_resume, src_save };
	struct mig_stats ss;
	r->src_ret = mig_src_run(&so, src.mem, &sv, &ss, r->src_err, sizeof(r->src_err));
	if (r->src_ret)
		tap_diag("source: %s", r->src_err);
	pthread_join(dt, NULL);
	r->dst_ret = dr.ret;
	if (dr.ret)
		snprintf(r->dst_err, sizeof(r->dst_err), "%s", dr.err);
	r->resumed = atomic_load(&src.resumed);
	r->equal = !dr.ret && dr.v.mem && !memcmp(lvm_mem_addr(dr.v.mem), lvm_mem_addr(src.mem),
						    MEM);
	if (r->attack_during) {
		char why[200];
		bool silent = refused_with(r->silent_fd, why, sizeof(why)) &&
			      strstr(why, "deadline");
		tap_diag("silent connection: %s", why);
		bool drip = refused_with(r->drip_fd, why, sizeof(why)) && strstr(why, "deadline");
		tap_diag("dripping connection: %s", why);
		atomic_store(&r->drip_stop, true);
		pthread_join(r->dripper, NULL);
		atomic_fetch_add(&r->attacks_ok, silent + drip);
		atomic_fetch_add(&r->attacks_done, 2);
		close(r->silent_fd);
		close(r->drip_fd);
	}
	mig_dst_destroy(dr.d);
	lvm_mem_destroy(dr.v.mem);
	lvm_mem_destroy(src.mem);
}

static void key_file(struct mig_key *k, const char *text)
{
	char path[] = "/tmp/lazyvm-key.XXXXXX", err[256];
	int fd = mkstemp(path);
	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		tap_bail("key file");
	close(fd);
	if (mig_key_load(path, k, err, sizeof(err)))
		tap_bail("%s", err);
	chmod(path, 0644);
	struct mig_key loose;
	int ret = mig_key_load(path, &loose, err, sizeof(err));
	unlink(path);
	if (ret != -EPERM)
		tap_bail("a key file readable by others was accepted");
}

int main(void)
{
	alarm(600);
	tap_plan(6);
	hmac_vectors();
	key_file(&key_a, "correct horse battery staple, a shared secret\n");
	key_file(&key_b, "another secret that is not the right one\n");

	struct run r = { .src_key = &key_a, .dst_key = &key_a };
	migrate(&r);
	tap_ok(!r.src_ret && !r.dst_ret && r.equal, "--auth-psk on both sides: every page equal");

	/* The destination then waits for a source that can authenticate: its
	 * accept timeout ends it, naming the refusal. */
	struct run w = { .src_key = &key_b, .dst_key = &key_a, .accept_ms = 3000 };
	migrate(&w);
	tap_ok(w.src_ret == -ECANCELED && w.resumed == 0 && strstr(w.src_err, "wrong key") &&
	       w.dst_ret && strstr(w.dst_err, "no source connected"),
	       "source with the wrong key: refused, its VM never left (%s)", w.src_err);

	struct run n = { .src_key = NULL, .dst_key = &key_a, .accept_ms = 3000 };
	migrate(&n);
	tap_ok(n.src_ret == -ECANCELED && strstr(n.src_err, "authentication required"),
	       "source without a key at a destination with one: refused (%s)", n.src_err);

	struct run a = { .src_key = &key_a, .dst_key = &key_a, .attack_during = true };
	migrate(&a);
	tap_ok(!a.src_ret && !a.dst_ret && a.equal && a.attacks_done == 6 && a.attacks_ok == 6,
	       "with --auth-psk: stray, wrong key, no key, forged RESUME, silent and dripping "
	       "connections refused (%d of %d), the migration completed, every page equal",
	       atomic_load(&a.attacks_ok), atomic_load(&a.attacks_done));

	struct run b = { .attack_during = true };
	migrate(&b);
	tap_ok(!b.src_ret && !b.dst_ret && b.equal && b.attacks_done == 4 && b.attacks_ok == 4,
	       "without a key: stray, forged RESUME, silent and dripping connections refused "
	       "(%d of %d), the migration completed, every page equal",
	       atomic_load(&b.attacks_ok), atomic_load(&b.attacks_done));
	return tap_done();
}
