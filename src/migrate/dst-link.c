/* SPDX-License-Identifier: MIT */
/* Post-copy migration, destination side: the connections (see dst.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "migrate/dst.h"
#include "migrate/gate.h"
#include "util/clock.h"
#include "util/thread-latency.h"

static void *dst_request_reader(void *arg)
{
	struct mig_dst *d = arg;
	uint8_t *buf = malloc(MIG_MAX_DATA + 64);
	thread_set_latency_critical();	/* answers a blocked vCPU waits for */
	char why[160];
	for (;;) {
		struct mig_msg m;
		if (!buf || mig_recv(d->req_fd, &m, buf, MIG_MAX_DATA + 64, &d->lim, -1, why,
				     sizeof(why)) || m.type != MIG_PAGES)
			break;
		if (dst_take_pages(d, &m, true))
			break;
	}
	free(buf);
	pthread_mutex_lock(&d->req_lock);
	atomic_store(&d->link_up, false);
	pthread_mutex_unlock(&d->req_lock);
	dst_wake(d);
	return NULL;
}

/* ---- connections ---------------------------------------------------------- */

/*
 * The gate's question, on its thread, for a HELLO that passed validation
 * and the key: is this a channel the migration wants now?  The first main
 * HELLO opens the session; after that only its id and memory size pass,
 * the request channel opens once, and resumes only where resuming makes
 * sense (from READY on; the request channel right after its main one).
 */
int dst_admit(void *ctx, const struct mig_hello *h, char *why, size_t whylen)
{
	struct mig_dst *d = ctx;
	bool resume = h->flags & MIG_HELLO_RESUME, main_ch = h->channel == MIG_CH_MAIN;
	const char *no = NULL;
	pthread_mutex_lock(&d->admit_lock);
	if (!d->have_session) {
		if (!main_ch || resume)
			no = "no migration in progress here to join or resume";
		else {
			memcpy(d->session, h->session, sizeof(d->session));
			d->have_session = true;
			d->lim.mem_size = h->mem_size;
			d->lim.unit = h->unit;
			d->vcpus = h->vcpus;
		}
	} else if (memcmp(h->session, d->session, sizeof(d->session)) ||
		   h->mem_size != d->lim.mem_size) {
		no = "HELLO for another session";
	} else if (main_ch && !resume) {
		no = "this session's migration is in progress already";
	} else if (main_ch) {
		if (atomic_load(&d->phase) < MIG_PHASE_READY)
			no = "nothing to resume before the state is loaded";
	} else if (!resume) {
		if (d->req_admitted)
			no = "the request channel is open already";
		d->req_admitted = true;
	} else {
		if (!d->want_resume_req)
			no = "no resume in progress for a request channel";
		d->want_resume_req = false;
	}
	pthread_mutex_unlock(&d->admit_lock);
	if (no)
		snprintf(why, whylen, "%s", no);
	return no ? -EPERM : 0;
}

/*
 * The next admitted channel of the expected kind, or -ETIMEDOUT with why
 * saying so (and why the last connection was refused, if one was).  One of
 * another kind (a source that reconnected meanwhile) is turned away.
 */
int dst_accept_channel(struct mig_dst *d, uint32_t channel, bool resume, int timeout_ms,
		       char *why, size_t whylen)
{
	uint64_t deadline = clock_now_ns(CLOCK_MONOTONIC) + (uint64_t)timeout_ms * 1000000;
	for (;;) {
		uint64_t now = clock_now_ns(CLOCK_MONOTONIC);
		int left = timeout_ms < 0 ? -1 : now >= deadline ? 0 :
			   (int)((deadline - now) / 1000000);
		struct mig_gate_conn c;
		int ret = mig_gate_take(d->gate, left, &c);
		if (ret) {
			char last[200];
			mig_gate_last_refusal(d->gate, last, sizeof(last));
			snprintf(why, whylen, "%s%s%s%s", ret == -ETIMEDOUT ?
				 "no source connected in time" : strerror(-ret),
				 last[0] ? " (last connection refused: " : "", last, last[0] ? ")" : "");
			return ret;
		}
		if (c.hello.channel == channel && !!(c.hello.flags & MIG_HELLO_RESUME) == resume)
			return c.fd;
		static const char stale[] = "superseded: expected another channel";
		mig_send(c.fd, MIG_ERROR, stale, sizeof(stale) - 1, NULL, 0);
		close(c.fd);
	}
}

int dst_ack(struct mig_dst *d, int fd)
{
	struct mig_hello_ack a = { .unit = d->lim.unit, .phase = (uint32_t)atomic_load(&d->phase) };
	memcpy(a.session, d->session, sizeof(a.session));
	mig_ack_to_wire(&a);
	return mig_send(fd, MIG_HELLO_ACK, &a, sizeof(a), NULL, 0);
}

/* Accept the request channel (the source opens it right after the main
 * one), acknowledge it and start its reader. */
int dst_open_request_channel(struct mig_dst *d, bool resume, char *why, size_t whylen)
{
	int fd = dst_accept_channel(d, MIG_CH_REQUEST, resume, 30000, why, whylen);
	if (fd < 0)
		return fd;
	int ret = dst_ack(d, fd);
	if (ret) {
		close(fd);
		snprintf(why, whylen, "%s", strerror(-ret));
		return ret;
	}
	pthread_mutex_lock(&d->req_lock);
	d->req_fd = fd;
	atomic_store(&d->link_up, true);
	pthread_mutex_unlock(&d->req_lock);
	ret = -pthread_create(&d->req_thread, NULL, dst_request_reader, d);
	d->req_running = !ret;
	if (ret)
		snprintf(why, whylen, "%s", strerror(-ret));
	return ret;
}

void dst_drop_link(struct mig_dst *d)
{
	pthread_mutex_lock(&d->req_lock);
	atomic_store(&d->link_up, false);
	if (d->req_fd >= 0)
		shutdown(d->req_fd, SHUT_RDWR);
	pthread_mutex_unlock(&d->req_lock);
	if (d->req_running)
		pthread_join(d->req_thread, NULL);
	d->req_running = false;
	if (d->req_fd >= 0)
		close(d->req_fd);
	if (d->main_fd >= 0)
		close(d->main_fd);
	d->req_fd = d->main_fd = -1;
}

/* Ask again for every unit a vCPU is still waiting for. */
static void dst_resend_requests(struct mig_dst *d)
{
	for (uint64_t u = 0; u < d->nunits; ) {
		if (!atomic_load(&d->asked_ns[u]) || atomic_load(&d->have[u])) {
			u++;
			continue;
		}
		uint64_t n = 1;
		while (u + n < d->nunits && n < 64 && atomic_load(&d->asked_ns[u + n]) &&
		       !atomic_load(&d->have[u + n]))
			n++;
		dst_send_request(d, u, n);
		u += n;
	}
}

static int dst_send_bitmap(struct mig_dst *d)
{
	size_t bytes = (d->nunits + 7) / 8;
	uint8_t *bm = calloc(bytes, 1);
	if (!bm)
		return -ENOMEM;
	for (uint64_t u = 0; u < d->nunits; u++)
		if (atomic_load(&d->have[u]))
			bm[u / 8] |= (uint8_t)(1u << (u % 8));
	int ret = mig_send(d->main_fd, MIG_RECV_BITMAP, bm, bytes, NULL, 0);
	free(bm);
	return ret;
}

/*
 * After a cut: the guest's faulting vCPUs wait; take the source back.  A
 * connection that is not this session's resume is turned away and we keep
 * listening until the recovery timeout.
 */
int dst_recover(struct mig_dst *d)
{
	unsigned t = d->o.recover_timeout_s ? d->o.recover_timeout_s : 60;
	uint64_t deadline = clock_now_ns(CLOCK_MONOTONIC) + t * 1000000000ull;
	char why[160];
	for (;;) {
		dst_drop_link(d);
		uint64_t now = clock_now_ns(CLOCK_MONOTONIC);
		if (now >= deadline)
			return dst_fail(d, -ETIMEDOUT, "the source did not come back within %u s "
					"after the link dropped", t);
		int fd = dst_accept_channel(d, MIG_CH_MAIN, true, (int)((deadline - now) / 1000000),
					    why, sizeof(why));
		if (fd < 0)
			continue;
		d->main_fd = fd;
		pthread_mutex_lock(&d->admit_lock);
		d->want_resume_req = true;
		pthread_mutex_unlock(&d->admit_lock);
		if (dst_ack(d, fd) || dst_send_bitmap(d) ||
		    dst_open_request_channel(d, true, why, sizeof(why)))
			continue;	/* cut again: wait for the next attempt */
		d->reconnects++;
		dst_resend_requests(d);
		return 0;
	}
}

/* Wait for the source's DONE after ours (pushed units still in flight are
 * skipped).  true: the source knows it is finished. */
static bool dst_done_acked(struct mig_dst *d, int timeout_ms)
{
	struct mig_stamp done = { clock_now_ns(CLOCK_REALTIME), d->nunits };
	mig_stamp_to_wire(&done);
	if (d->main_fd < 0 || mig_send(d->main_fd, MIG_DONE, &done, sizeof(done), NULL, 0))
		return false;
	char why[160];
	for (;;) {
		struct mig_msg m;
		if (mig_recv(d->main_fd, &m, d->buf, BUF_CAP, &d->lim, timeout_ms, why, sizeof(why)))
			return false;
		if (m.type == MIG_DONE)
			return true;
	}
}

/*
 * Every unit is here.  If the link drops before the source saw our DONE, it
 * would try to resume and, finding nobody, report a failed migration of a VM
 * that in fact moved: answer its resume with phase DONE until the recovery
 * timeout.
 */
void dst_finish(struct mig_dst *d)
{
	unsigned t = d->o.recover_timeout_s ? d->o.recover_timeout_s : 60;
	atomic_store(&d->phase, MIG_PHASE_DONE);
	if (dst_done_acked(d, (int)t * 1000))
		return;
	dst_drop_link(d);
	uint64_t deadline = clock_now_ns(CLOCK_MONOTONIC) + t * 1000000000ull;
	char why[160];
	for (uint64_t now; (now = clock_now_ns(CLOCK_MONOTONIC)) < deadline; ) {
		int fd = dst_accept_channel(d, MIG_CH_MAIN, true, (int)((deadline - now) / 1000000),
					    why, sizeof(why));
		if (fd >= 0) {
			dst_ack(d, fd);
			close(fd);
			return;
		}
	}
}
