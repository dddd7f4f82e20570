/* SPDX-License-Identifier: MIT */
/*
 * A peer's ERROR reason is printed (issue 9, defect 11): it arrives inert.
 * An ERROR carrying an escape sequence, a bell, a NUL and a byte >= 0x80
 * comes out of mig_recv with each of those as '?', the rest unchanged.
 */
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "migrate/wire.h"
#include "tap.h"

int main(void)
{
	tap_plan(1);
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		tap_bail("socketpair");
	static const char evil[] = "\x1b]0;owned\x07 disk full\x00\xff\x1b[2J";
	if (mig_send(sv[0], MIG_ERROR, evil, sizeof(evil) - 1, NULL, 0))
		tap_bail("mig_send");
	static uint8_t buf[8192];
	struct mig_msg m;
	struct mig_limits lim = { 0 };
	char why[128] = "";
	int ret = mig_recv(sv[1], &m, buf, sizeof(buf), &lim, 5000, why, sizeof(why));
	static const char want[] = "?]0;owned? disk full???[2J";
	bool ok = !ret && m.type == MIG_ERROR && m.len == sizeof(want) - 1 &&
		  !memcmp(m.payload, want, m.len);
	tap_ok(ok, "an ERROR reason arrives with control bytes replaced: \"%.*s\"",
	       ok ? (int)m.len : 0, ok ? (const char *)m.payload : "");
	if (!ok)
		tap_diag("mig_recv: %d %s; len %u", ret, why, (unsigned)m.len);
	close(sv[0]);
	close(sv[1]);
	return tap_done();
}
