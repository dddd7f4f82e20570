/* SPDX-License-Identifier: MIT */
/* The lazyvm CLI: one cmd_* per subcommand, each in its own tools/cmd-*.c. */
#ifndef LAZYVM_CLI_H
#define LAZYVM_CLI_H

#include <getopt.h>
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

/* Draw progress bars on stderr from now on, when stdout and stderr are
 * terminals (tools/progress-bar.c; the library itself never prints). */
void cli_progress_install(void);

/* "4096", "64K", "256M", "1G" -> bytes; -EINVAL on junk. */
int cli_parse_size(const char *s, uint64_t *out);
/* A decimal number in [0, max]; 0 or -EINVAL. */
int cli_parse_uint(const char *s, unsigned long max, unsigned long *out);
/*
 * Every subcommand parses its options one way: getopt_long over a table of
 * struct option.  Shared option sets (vm-common.h, migrate-cli.h) give their
 * entries as macros with codes from their own block, so a command's table is
 * its own entries plus the sets it takes, and its switch hands unknown codes
 * to the sets' apply functions.  Positional arguments are argv[optind..].
 */
enum { CLI_OPT_VM = 0x100, CLI_OPT_MIGRATE = 0x200, CLI_OPT_CMD = 0x300 };
#define CLI_OPT_HELP { "help", no_argument, NULL, 'h' }
#define CLI_OPT_END { NULL, 0, NULL, 0 }
/* The error code cli_getopt() returns after printing the error. */
#define CLI_GETOPT_ERROR (-2)
/* The next option's code (val of its struct option, 'h' for -h/--help), -1 at
 * the end, or CLI_GETOPT_ERROR after printing "unknown option" / "needs a
 * value" for cmd. */
int cli_getopt(const char *cmd, int argc, char **argv, const struct option *opts);

/* Print "lazyvm <cmd>: <message>\n" to stderr; returns status. */
int cli_fail(int status, const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
