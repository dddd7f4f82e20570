/* SPDX-License-Identifier: MIT */
/*
 * lazyvm CLI entry point: dispatches to one subcommand.  Subcommands live in
 * tools/cmd-*.c.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lazyvm.h"
#include "cli.h"


struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
};

static const struct command commands[] = {
	{ "probe", cmd_probe, "which backing x uffd mode the kernel supports [--json]" },
	{ "run", cmd_run, "run a guest (--guest workload --mem SIZE ...)" },
	{ "restore", cmd_restore, "resume a snapshot lazily (default) or --eager" },
	{ "snapshot", cmd_snapshot, "snapshot tools: verify, info, pack, unpack, push, pull" },
	{ "migrate-recv", cmd_migrate_recv, "receive a migrating VM (--listen HOST:PORT)" },
	{ "fc-serve", cmd_fc_serve, "Firecracker-compatible UFFD page server" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: lazyvm COMMAND [ARGS]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-14s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\nlazyvm COMMAND --help for the options of one command; man lazyvm(1).\n");
}

int cli_parse_size(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || end == s || *s == '-')
		return -EINVAL;
	unsigned shift = 0;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	}
	if (*end == 'i' || *end == 'B')
		end += (*end == 'i' && end[1] == 'B') ? 2 : 1;
	if (*end || (shift && v > (~0ULL >> shift)))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

int cli_parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

int cli_getopt(const char *cmd, int argc, char **argv, const struct option *opts)
{
	opterr = 0;	/* our own messages, with the command's name */
	int ch = getopt_long(argc, argv, ":h", opts, NULL);
	if (ch == '?' || ch == ':') {
		const char *arg = argv[optind - 1];
		cli_fail(EXIT_USAGE, cmd, ch == ':' ? "%s needs a value" : "unknown option '%s'", arg);
		return CLI_GETOPT_ERROR;
	}
	return ch;
}

int cli_fail(int status, const char *cmd, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "lazyvm %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return status;
}

/* Which optional dependencies this build has: each feature is absent, not
 * broken, when its library was not found at build time. */
static void print_version(void)
{
	const char *lib;
	lvm_version(&lib);
	printf("lazyvm %s (liblazyvm %s)\n", LAZYVM_VERSION, lib);
	printf("optional: zstd %s, curl %s\n",
#ifdef LVM_HAVE_ZSTD
	       "yes",
#else
	       "no",
#endif
#ifdef LVM_HAVE_CURL
	       "yes (s3://, http(s):// snapshots)"
#else
	       "no (no remote snapshots)"
#endif
	);
}

int main(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : 0;
	}
	if (!strcmp(argv[1], "--version")) {
		print_version();
		return 0;
	}
	cli_progress_install();
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(argv[1], commands[i].name))
			continue;
		return commands[i].fn(argc - 1, argv + 1);
	}
	fprintf(stderr, "lazyvm: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return EXIT_USAGE;
}
