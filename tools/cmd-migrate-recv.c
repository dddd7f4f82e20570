/* SPDX-License-Identifier: MIT */
/*
 * lazyvm migrate-recv --listen HOST:PORT: the destination of post-copy
 * migration.  Waits for a source (`lazyvm run ... --migrate-to`), creates the
 * VM it describes with memory untouched, takes the pre-copied pages, loads
 * the state, starts the vCPUs at once while the fault engine gets every
 * missing page from the source, and runs the guest to completion (serial
 * output on stdout).  A page that can never arrive stops the VM with an
 * error: never a zero page.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "core/hugetlb.h"
#include "migrate-cli.h"
#include "vm-common.h"
#include "vmm/vmm.h"

struct recv_opts {
	struct vm_cli_opts vm;		/* --backing, --stats-json */
	struct mig_dst_opts dst;
	int ready_fd;
	struct mig_key key;		/* --auth-psk */
};

/* The destination VM behind the protocol's callbacks. */
struct recv_vm {
	enum lvm_backing backing;
	struct vmm *vm;
	struct hugetlb_reservation res;
	bool started;
	char err[256];
};

static const char recv_usage_text[] =
	"usage: lazyvm migrate-recv --listen HOST:PORT [--backing KIND] [--stats-json FILE]\n"
	"                           [--recover-timeout SEC] [--accept-timeout SEC]\n"
	"                           [--threads N] [--ready-fd FD] [--auth-psk FILE]\n"
	"  --listen HOST:PORT   where the source connects (port 0: any; see --ready-fd)\n"
	"  --backing KIND       anon (default) | memfd | hugetlb | gmem\n"
	"  --stats-json FILE    write migration and run statistics as JSON at exit\n"
	"  --recover-timeout SEC  after a link cut, wait this long for the source (default 60)\n"
	"  --accept-timeout SEC wait this long for a source (default: forever)\n"
	"  --threads N          fault-engine handler threads (default: one per CPU)\n"
	"  --ready-fd FD        write the listening port and a newline to FD once listening\n"
	"  --auth-psk FILE      admit only sources that prove this pre-shared key (HMAC\n"
	"                       challenge on every connection; mode 0600, 16+ bytes)\n";

static int recv_usage(FILE *f, int status)
{
	fputs(recv_usage_text, f);
	return status;
}

enum {
	RECV_OPT_LISTEN = CLI_OPT_CMD, RECV_OPT_RECOVER, RECV_OPT_ACCEPT, RECV_OPT_THREADS,
	RECV_OPT_READY_FD, RECV_OPT_AUTH_PSK,
};

static int recv_apply(struct recv_opts *o, int code, const char *val)
{
	static const char *const names[] = { "--listen", "--recover-timeout", "--accept-timeout",
		"--threads", "--ready-fd" };
	static const unsigned long max[] = { 0, 86400, 86400, 256, 1u << 20 };
	unsigned k = (unsigned)(code - RECV_OPT_LISTEN);
	unsigned long v = 0;
	if (code == RECV_OPT_AUTH_PSK) {
		if (migrate_cli_load_key("migrate-recv", val, &o->key) != 1)
			return EXIT_BADDATA;
		o->dst.auth_key = &o->key;
		return 1;
	}
	if (code < RECV_OPT_LISTEN || k >= sizeof(names) / sizeof(names[0]))
		return vm_cli_apply(&o->vm, "migrate-recv", code, val);
	if (code == RECV_OPT_LISTEN) {
		o->dst.listen = val;
		return 1;
	}
	if (cli_parse_uint(val, max[k], &v) || (code == RECV_OPT_RECOVER && !v))
		return cli_fail(EXIT_USAGE, "migrate-recv", "%s: bad value '%s'", names[k], val);
	if (code == RECV_OPT_RECOVER)
		o->dst.recover_timeout_s = (unsigned)v;
	else if (code == RECV_OPT_ACCEPT)
		o->dst.accept_timeout_ms = v ? (int)(v * 1000) : -1;
	else if (code == RECV_OPT_THREADS)
		o->dst.handler_threads = (unsigned)v;
	else
		o->ready_fd = (int)v;
	return 1;
}

static int recv_parse(int argc, char **argv, struct recv_opts *o)
{
	static const struct option opts[] = {
		VM_OPT_ENTRY_BACKING, VM_OPT_ENTRY_STATS_JSON,
		{ "listen", required_argument, NULL, RECV_OPT_LISTEN },
		{ "recover-timeout", required_argument, NULL, RECV_OPT_RECOVER },
		{ "accept-timeout", required_argument, NULL, RECV_OPT_ACCEPT },
		{ "threads", required_argument, NULL, RECV_OPT_THREADS },
		{ "ready-fd", required_argument, NULL, RECV_OPT_READY_FD },
		{ "auth-psk", required_argument, NULL, RECV_OPT_AUTH_PSK },
		CLI_OPT_HELP, CLI_OPT_END,
	};
	int ch, r;
	vm_cli_opts_init(&o->vm);
	o->dst.accept_timeout_ms = -1;
	o->dst.recover_timeout_s = 60;
	o->ready_fd = -1;
	while ((ch = cli_getopt("migrate-recv", argc, argv, opts)) != -1) {
		if (ch == 'h')
			return recv_usage(stdout, 0) - 1;
		if (ch == CLI_GETOPT_ERROR)
			return recv_usage(stderr, EXIT_USAGE);
		if ((r = recv_apply(o, ch, optarg)) != 1)
			return r ? r : recv_usage(stderr, EXIT_USAGE);
	}
	if (optind != argc)
		return cli_fail(EXIT_USAGE, "migrate-recv", "unexpected argument '%s'", argv[optind]);
	if (!o->dst.listen)
		return cli_fail(EXIT_USAGE, "migrate-recv", "--listen HOST:PORT is required");
	return 0;
}

static int recv_create(void *ctx, uint64_t size, unsigned vcpus, struct lvm_mem **mem)
{
	struct recv_vm *r = ctx;
	if (!vcpus || vcpus > VMM_MAX_VCPUS) {
		snprintf(r->err, sizeof(r->err), "the source describes a VM of %u vCPUs (1..%d)",
			 vcpus, VMM_MAX_VCPUS);
		return -EPROTO;
	}
	int ret;
	if (r->backing == LVM_BACKING_HUGETLB && (ret = hugetlb_reserve((long)(size >> 21), &r->res))) {
		snprintf(r->err, sizeof(r->err), "hugetlb: cannot reserve %llu 2 MiB pages",
			 (unsigned long long)(size >> 21));
		return ret;
	}
	struct vmm_opts vo = { .mem_size = size, .vcpus = vcpus, .backing = r->backing,
			       .serial_fd = STDOUT_FILENO };
	ret = vmm_create(&vo, &r->vm, r->err, sizeof(r->err));
	if (!ret)
		*mem = vmm_mem(r->vm);
	return ret;
}

static int recv_load(void *ctx, const void *blob, size_t len)
{
	struct recv_vm *r = ctx;
	return vmm_load_state(r->vm, blob, len, r->err, sizeof(r->err));
}

static int recv_start(void *ctx)
{
	struct recv_vm *r = ctx;
	int ret = vmm_start(r->vm);
	r->started = !ret;
	return ret;
}

static void recv_on_error(void *ctx, const char *msg)
{
	struct recv_vm *r = ctx;
	char line[320];
	snprintf(line, sizeof(line), "guest memory could not be served: %s", msg);
	if (r->vm)
		vmm_abort(r->vm, line);
}

static void recv_signal_ready(int fd, struct mig_dst *d)
{
	if (fd < 0)
		return;
	char line[16];
	int n = snprintf(line, sizeof(line), "%d\n", mig_dst_port(d));
	if (write(fd, line, (size_t)n) != n) {
		/* the waiter went away; receiving goes on */
	}
	close(fd);
}

/* Receive, then run to the end; the exit status. */
static int recv_run(struct mig_dst *d, struct recv_vm *r, struct vm_stats *st,
		    struct mig_stats *ms)
{
	char err[512] = "";
	struct mig_dst_vm ops = { r, recv_create, recv_load, recv_start };
	int ret = mig_dst_run(d, &ops, ms, err, sizeof(err));
	if (ret) {
		if (r->started)
			vmm_abort(r->vm, err);
		return cli_fail(ret == -EPROTO ? EXIT_BADDATA : 1, "migrate-recv", "%s%s%s", err,
				r->err[0] ? ": " : "", r->err);
	}
	ret = vmm_wait(r->vm, err, sizeof(err));
	st->result = vmm_result(r->vm);
	return ret ? cli_fail(1, "migrate-recv", "guest stopped: %s", err) : 0;
}

int cmd_migrate_recv(int argc, char **argv)
{
	struct recv_opts o = { 0 };
	int ret = recv_parse(argc, argv, &o);
	if (ret)
		return ret < 0 ? 0 : ret;
	struct recv_vm r = { .backing = o.vm.backing, .res = HUGETLB_RESERVATION_INIT };
	o.dst.on_error = recv_on_error;
	o.dst.on_error_ctx = &r;
	struct mig_dst *d = NULL;
	ret = mig_dst_listen(&o.dst, &d);
	if (ret)
		return cli_fail(1, "migrate-recv", "cannot listen on %s: %s", o.dst.listen,
				strerror(-ret));
	recv_signal_ready(o.ready_fd, d);
	struct vm_stats st;
	vm_stats_init(&st);
	st.backing = lvm_backing_name(o.vm.backing);
	st.mode = "migrate";
	struct mig_stats ms = { 0 };
	ret = recv_run(d, &r, &st, &ms);
	if (r.vm) {	/* no vCPU may be left waiting on a fault nobody serves */
		vmm_abort(r.vm, "migrate-recv finished");
		vmm_wait(r.vm, NULL, 0);
		st.first_entry_ns = vmm_first_entry_ns(r.vm);
	}
	if (mig_dst_engine(d)) {
		st.engine.struct_size = sizeof(st.engine);
		lvm_engine_stats(mig_dst_engine(d), &st.engine);
	}
	st.end_ns = mono_now_ns();
	migrate_stats_add(&st, &ms);
	if (o.vm.stats_json && (errno = -vm_stats_write(o.vm.stats_json, &st)))
		ret = cli_fail(1, "migrate-recv", "%s: %s", o.vm.stats_json, strerror(errno));
	mig_dst_destroy(d);
	vmm_destroy(r.vm);
	hugetlb_release(&r.res);
	return ret;
}
