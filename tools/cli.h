/* SPDX-License-Identifier: MIT */
/* The lazyvm CLI: one cmd_* per subcommand, each in its own tools/cmd-*.c. */
#ifndef LAZYVM_CLI_H
#define LAZYVM_CLI_H

#include <stdint.h>
#include <stdio.h>

/* Exit statuses shared by every subcommand. */
#define EXIT_USAGE   64	/* bad command line */
#define EXIT_BADDATA 2	/* corrupt / wrong input (snapshot, message) */

/* Each returns the process exit status. */
int cmd_probe(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_restore(int argc, char **argv);
int cmd_snapshot(int argc, char **argv);
int cmd_migrate_recv(int argc, char **argv);
int cmd_fc_serve(int argc, char **argv);

/* "4096", "64K", "256M", "1G" -> bytes; -EINVAL on junk. */
int cli_parse_size(const char *s, uint64_t *out);
/* A decimal number in [0, max]; 0 or -EINVAL. */
int cli_parse_uint(const char *s, unsigned long max, unsigned long *out);
/* Print "lazyvm <cmd>: <message>\n" to stderr; returns status. */
int cli_fail(int status, const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
