/* SPDX-License-Identifier: MIT */
/* lazyvm probe [--json]: the backing x mode matrix, measured by trying. */
#include <stdio.h>
#include <string.h>

#include "lazyvm.h"
#include "cli.h"
#include "uffd.h"

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

int cmd_probe(int argc, char **argv)
{
	int json = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = 1;
		else if (!strcmp(argv[i], "--help")) {
			printf("usage: lazyvm probe [--json]\n");
			return 0;
		} else
			return cli_fail(EXIT_USAGE, "probe", "unknown option '%s'", argv[i]);
	}
	uint64_t features = 0;
	int ret = uffd_kernel_features(&features);
	if (ret)
		return cli_fail(1, "probe", "userfaultfd unavailable: %s", strerror(-ret));

	struct lvm_probe p[LVM_BACKING__COUNT][LVM_MODE__COUNT];
	for (int b = 0; b < LVM_BACKING__COUNT; b++)
		for (int m = 0; m < LVM_MODE__COUNT; m++)
			lvm_probe((enum lvm_backing)b, (enum lvm_mode)m, &p[b][m]);

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
	struct lvm_probe g;
	lvm_probe(LVM_BACKING_GMEM, LVM_MODE_MISSING, &g);
	printf("\nguest_memfd: %s\n", g.err ?
	       "served eagerly on this kernel (no userfaultfd on guest_memfd; needs the "
	       "'KVM: guest_memfd: implement userfaultfd operations' series)" :
	       "served lazily (userfaultfd on guest_memfd is available)");
	return 0;
}
