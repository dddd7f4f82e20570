/* SPDX-License-Identifier: MIT */
/* lazyvm probe [--json]: the backing x mode matrix, measured by trying. */
#include <stdio.h>
#include <string.h>

#include "lazyvm.h"
#include "cli.h"
#include "core/share.h"
#include "vmm/vmm.h"
#include "core/uapi-compat.h"
#include "core/uffd.h"

static void print_json_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", *s);
		else
			putchar(*s);
	}
	putchar('"');
}

/*
 * What --backing gmem does on this kernel, in words: lazy needs the two
 * guest_memfd patches of "KVM: guest_memfd: implement userfaultfd operations"
 * (Linux 7.1+ has the mm half, struct vm_uffd_ops; no release up to 7.3 has
 * the guest_memfd half), and mmap-able guest_memfd needs Linux 6.18+.
 */
static void probe_print_gmem_verdict(const struct lvm_probe gmem[LVM_MODE__COUNT])
{
	const struct lvm_probe *miss = &gmem[LVM_MODE_MISSING], *minor = &gmem[LVM_MODE_MINOR];
	if (!miss->err || !minor->err) {
		printf("guest_memfd: lazy on this kernel (userfaultfd on guest_memfd: MISSING %s, "
		       "MINOR %s): restore and migrate-recv with --backing gmem serve pages on "
		       "demand\n", miss->err ? "no" : "yes", minor->err ? "no" : "yes");
		return;
	}
	struct lvm_mem *mem = NULL;
	struct lvm_mem_opts o = { .struct_size = sizeof(o), .backing = LVM_BACKING_GMEM, .size = 4096, .kvm_vm_fd = -1 };
	int ret = lvm_mem_create(&o, &mem);
	lvm_mem_destroy(mem);
	if (ret) {
		printf("guest_memfd: unavailable on this kernel (KVM_CREATE_GUEST_MEMFD with "
		       "MMAP|INIT_SHARED, then mmap: %s; needs KVM and Linux 6.18+): "
		       "--backing gmem fails\n", strerror(-ret));
		return;
	}
	printf("guest_memfd: eager on this kernel (UFFDIO_REGISTER on guest_memfd fails: no "
	       "userfaultfd for guest_memfd): --backing gmem loads all guest memory before "
	       "the guest runs.\n  Lazy guest_memfd needs a kernel with the patches \"KVM: "
	       "guest_memfd: implement userfaultfd operations\" (not in any release up to "
	       "Linux 7.3;\n  shared/gmem-kernel/ builds one and make check-gmem tests on "
	       "it)\n");
}

/* restore --share: one page cache for many VMs (docs/sharing.md). */
static void probe_print_share_verdict(const struct lvm_probe *share)
{
	if (!share->err)
		printf("share: one page cache for many VMs on this kernel (MINOR on a MAP_PRIVATE "
		       "memfd mapping: UFFDIO_CONTINUE maps the cache's page, a write copies it): "
		       "restore --share keeps a snapshot's memory once per host\n");
	else
		printf("share: no true sharing on this kernel (%s): restore --share fetches each "
		       "page once per host but copies it into every VM\n", share->reason);
}

int cmd_probe(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' }, CLI_OPT_HELP, CLI_OPT_END,
	};
	int json = 0, ch;
	while ((ch = cli_getopt("probe", argc, argv, opts)) != -1) {
		if (ch == 'j') {
			json = 1;
		} else if (ch == 'h') {
			printf("usage: lazyvm probe [--json]\n");
			return 0;
		} else {
			return EXIT_USAGE;
		}
	}
	if (optind != argc)
		return cli_fail(EXIT_USAGE, "probe", "unexpected argument '%s'", argv[optind]);
	uint64_t features = 0;
	int ret = uffd_kernel_features(&features);
	if (ret)
		return cli_fail(1, "probe", "userfaultfd unavailable: %s", strerror(-ret));

	struct lvm_probe p[LVM_BACKING__COUNT][LVM_MODE__COUNT];
	for (int b = 0; b < LVM_BACKING__COUNT; b++)
		for (int m = 0; m < LVM_MODE__COUNT; m++) {
			p[b][m].struct_size = sizeof(p[b][m]);
			lvm_probe((enum lvm_backing)b, (enum lvm_mode)m, &p[b][m]);
		}

	struct lvm_probe share;
	share_probe(&share);
	bool kvm_uf, gmem_write;
	vmm_probe_secret_free(&kvm_uf, &gmem_write);
	if (json) {
		printf("{\"uffd_features\":\"0x%llx\",\"matrix\":{", (unsigned long long)features);
		for (int b = 0; b < LVM_BACKING__COUNT; b++) {
			printf("%s\"%s\":{", b ? "," : "", lvm_backing_name((enum lvm_backing)b));
			for (int m = 0; m < LVM_MODE__COUNT; m++) {
				printf("%s\"%s\":{\"supported\":%s,\"reason\":", m ? "," : "",
				       lvm_mode_name((enum lvm_mode)m), p[b][m].err ? "false" : "true");
				print_json_string(p[b][m].reason);
				printf("}");
			}
			printf("}");
		}
		printf("},\"secret_free\":{\"kvm_userfault\":%s,\"gmem_write\":%s}",
		       kvm_uf ? "true" : "false", gmem_write ? "true" : "false");
		printf(",\"share\":{\"supported\":%s,\"reason\":", share.err ? "false" : "true");
		print_json_string(share.reason);
		printf("}}\n");
		return 0;
	}
	printf("uffd features: 0x%llx\n\n%-9s", (unsigned long long)features, "backing");
	for (int m = 0; m < LVM_MODE__COUNT; m++)
		printf(" %-48s", lvm_mode_name((enum lvm_mode)m));
	printf("\n");
	for (int b = 0; b < LVM_BACKING__COUNT; b++) {
		printf("%-9s", lvm_backing_name((enum lvm_backing)b));
		for (int m = 0; m < LVM_MODE__COUNT; m++) {
			char cell[200];
			if (p[b][m].err)
				snprintf(cell, sizeof(cell), "no: %s", p[b][m].reason);
			else
				snprintf(cell, sizeof(cell), "yes");
			printf(" %-48s", cell);
		}
		printf("\n");
	}
	printf("\n");
	probe_print_gmem_verdict(p[LVM_BACKING_GMEM]);
	/* Firecracker's secret-free VMs (restore --secret-free, fc-serve). */
	printf("KVM userfault (KVM_MEM_USERFAULT, cap %d): %s\nguest_memfd write(): %s\n",
	       LVM_KVM_CAP_USERFAULT, kvm_uf ? "yes" : "no", gmem_write ? "yes" : "no");
	probe_print_share_verdict(&share);
	return 0;
}
