/* SPDX-License-Identifier: MIT */
/*
 * fc-serve and secret-free clients (Firecracker's 3-fd handshake) that get
 * things wrong, while a normal VM stays connected and is served correctly
 * throughout: a bitmap of the wrong size, a non-guest_memfd fd in the
 * second slot, two fds, a bad text message are refused at the handshake; a
 * malformed frame, a frame announcing 49 bytes and a bogus offset (also
 * glued to an exitless_apf:1 text with its 3 fds) make fc-serve stop
 * serving that VM with a log line and close its socket.  The text message
 * split at every byte, and glued to a frame, parses the same (the parsers
 * fed every prefix).  Runs wherever /dev/kvm can create a guest_memfd;
 * serving those VMs' pages needs the test kernel (tests/gmem-secret-free).
 */
#include <sys/eventfd.h>

#include "fc/secret-free.h"
#include "sf-testlib.h"

#define FILE_SIZE (8u << 20)
#define SF_SIZE (2u << 20)

static struct fct_paths paths;
static uint8_t *expect;
static struct fct_vm good;
static uint64_t good_read;

static bool good_step(void)
{
	uint64_t hi = good_read + (256u << 10);
	if (hi > good.size[0])
		hi = good.size[0];
	bool ok = fct_vm_mismatch(&good, 0, good_read, hi, expect) < 0;
	good_read = hi;
	return ok;
}

/* A secret-free client with fds (NULL: the right three) and then bytes
 * (the text and what follows) is closed with log_needle in the log. */
static void check_closed(const char *what, const int *fds, unsigned nfds, const void *after,
			 size_t after_len, const int *after_fds, unsigned nafter,
			 const char *log_needle)
{
	struct sft_vm v;
	int ret = sft_vm_create(&v, SF_SIZE);
	if (!ret)
		ret = sft_handshake(&v, paths.sock, fds, nfds, NULL);
	if (!ret && after_len)
		ret = sft_sendmsg(v.sock, after, after_len, after_fds, nafter);
	tap_phase(what);
	bool closed = (!ret || ret == -EPIPE || ret == -ECONNRESET) && fct_wait_closed(v.sock);
	bool logged = fct_file_has(paths.log, log_needle);
	tap_ok(closed && logged && good_step(), "%s: closed, log says \"%s\"; the normal VM is "
	       "still served", what, log_needle);
	if (!logged)
		tap_diag("log %s lacks it (client: %s)", paths.log, ret ? strerror(-ret) : "ok");
	sft_vm_destroy(&v);
}

static void check_handshakes(void)
{
	struct sft_vm v;
	if (sft_vm_create(&v, SF_SIZE))
		tap_bail("guest_memfd");
	int small = memfd_create("small-bitmap", MFD_CLOEXEC);
	int other = memfd_create("not-gmem", MFD_CLOEXEC);
	if (small < 0 || other < 0 || ftruncate(small, SF_SIZE / 4096 / 8 - 8) ||
	    ftruncate(other, SF_SIZE))
		tap_bail("memfd");
	int bad_bitmap[3] = { v.uffd, v.gmem, small }, bad_gmem[3] = { v.uffd, other, v.bitmap };
	int two[2] = { v.uffd, v.gmem };
	check_closed("bitmap of the wrong size", bad_bitmap, 3, "no_exitless_apf", 15, NULL, 0,
		     "the userfault bitmap is 56 bytes, expected 64");
	check_closed("a memfd in the guest_memfd slot", bad_gmem, 3, "no_exitless_apf", 15, NULL,
		     0, "fd 2 of 3 is not a guest_memfd");
	check_closed("two fds", two, 2, NULL, 0, NULL, 0, "two fds attached");
	check_closed("bad text message", NULL, 0, "hello", 5, NULL, 0, "bad text message");
	close(small);
	close(other);
	sft_vm_destroy(&v);
}

static void check_frames(void)
{
	static const uint8_t bad_option[] = { 0x0c, 0, 0, 0, 0x04, 0x00, 0x06, 0x00, 0x06, 0x10,
					      0x02, 0x02, 0x00, 0x50, 0x34, 0x12 };
	static const uint8_t oversized[] = { 49, 0, 0, 0 };
	uint8_t buf[64];
	memcpy(buf, "no_exitless_apf", 15);
	memcpy(buf + 15, bad_option, sizeof(bad_option));
	check_closed("malformed frame (Option byte 2)", NULL, 0, buf, 15 + sizeof(bad_option),
		     NULL, 0, "malformed FaultRequest frame");
	memcpy(buf + 15, oversized, sizeof(oversized));
	check_closed("frame announcing 49 bytes", NULL, 0, buf, 15 + sizeof(oversized), NULL, 0,
		     "frame header announces");
	/* exitless_apf:1 (3 eventfds, closed by the server) glued to a request
	 * for a gpa beyond guest memory. */
	struct fc_fault_request q = { 0, 0, 0x10, true, SF_SIZE + 4096 };
	int n = snprintf((char *)buf, sizeof(buf), "exitless_apf:1");
	n += fc_encode_fault_request(&q, buf + n, sizeof(buf) - (size_t)n);
	int efd[3] = { eventfd(0, EFD_CLOEXEC), eventfd(0, EFD_CLOEXEC), eventfd(0, EFD_CLOEXEC) };
	check_closed("exitless_apf:1 glued to a FaultRequest with a bogus gpa", NULL, 0, buf,
		     (size_t)n, efd, 3, "FaultRequest for gpa 0x201000: outside guest memory");
	for (unsigned i = 0; i < 3; i++)
		close(efd[i]);
}

/* The stream a client sends, cut at every byte: the parsers ask for more
 * until the whole part is there, then find the same ends. */
static void check_split_everywhere(void)
{
	static const char json[] = "[{\"base_host_virt_addr\":4096,\"size\":262144,"
		"\"offset\":0,\"gpa_start\":0,\"page_size\":4096,\"is_guest_memfd\":true}]";
	static const char *const texts[] = { "no_exitless_apf", "exitless_apf:12" };
	static const unsigned fds[] = { 0, 36 };
	unsigned bad = 0;
	size_t jl = strlen(json);
	for (size_t cut = 0; cut <= jl; cut++) {
		int e = fc_sf_json_end(json, cut);
		bad += cut < jl ? e != 0 : e != (int)jl;
	}
	for (unsigned t = 0; t < 2; t++) {
		char s[64];
		size_t tl = strlen(texts[t]);
		memcpy(s, texts[t], tl);
		memcpy(s + tl, "\x0c\0\0\0", 4);	/* a frame follows at once */
		for (size_t cut = 0; cut <= tl + 4; cut++) {
			unsigned vcpus = 99;
			int e = fc_sf_parse_apf((uint8_t *)s, cut, fds[t], &vcpus);
			/* "exitless_apf:1" is a prefix of 12 with 36 fds: more needed */
			bool want_done = cut >= tl;
			bad += want_done ? e != (int)tl || vcpus != fds[t] / 3 : e != 0;
		}
	}
	unsigned vcpus;
	bad += fc_sf_parse_apf((const uint8_t *)"exitless_apf:2x", 15, 3, &vcpus) != -EBADMSG;
	bad += fc_sf_parse_apf((const uint8_t *)"no_exitless_apf", 15, 3, &vcpus) != -EBADMSG;
	bad += fc_sf_parse_apf((const uint8_t *)"exitless_apf:1", 14, 0, &vcpus) != -EBADMSG;
	tap_ok(!bad, "JSON and text message cut at every byte, glued to a frame: parsed the "
	       "same (%u wrong)", bad);
}

int main(void)
{
	tap_watchdog(120);
	tap_plan(11);
	struct sft_vm probe;
	int ret = sft_vm_create(&probe, SF_SIZE);
	sft_vm_destroy(&probe);
	if (ret) {
		for (int i = 0; i < 11; i++)
			tap_skip("secret-free handshakes", "no guest_memfd here: %s",
				 strerror(-ret));
		return 0;
	}
	expect = fct_scratch("/tmp/lazyvm-fcsfbad-XXXXXX", FILE_SIZE, &paths);
	pid_t server = fct_server_start_scratch(&paths);
	static const uint64_t sizes[1] = { 4u << 20 }, offsets[1] = { 0 };
	ret = fct_vm_create(&good, 1, sizes, offsets, false);
	if (!ret)
		ret = fct_vm_connect(&good, paths.sock, NULL, "page_size", true);
	tap_ok(!ret && good_step(), "normal VM: served from the file");

	check_handshakes();
	check_frames();
	check_split_everywhere();
	tap_ok(good_step() && fct_vm_mismatch(&good, 0, 0, good.size[0], expect) < 0,
	       "the normal VM: every page served from the file after all that");
	fct_vm_destroy(&good);
	tap_ok(fct_server_stop(server) == 0, "fc-serve exits 0 on SIGTERM");
	char cmd[200];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", paths.dir);
	if (system(cmd)) {
		/* scratch left behind: harmless */
	}
	return tap_done();
}
