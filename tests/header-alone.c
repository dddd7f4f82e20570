/* SPDX-License-Identifier: MIT */
/*
 * include/lazyvm.h is the whole public contract, so it must compile on its
 * own (no other lazyvm header, no _GNU_SOURCE) as strict C11 and as C++11
 * with every warning an error, and a C++ caller must reach the C symbols
 * (extern "C": the object references lvm_version, not a mangled name).
 * The compilers are $CC (default cc) and $CXX (default c++, then g++); no
 * C++ compiler: SKIP.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"

static char dir[] = "/tmp/lazyvm-header.XXXXXX";
static char inc[512];

/* Run cmd (sh); its status, with its output kept in dir/log for the diag. */
static int sh(const char *cmd)
{
	char full[2048];
	snprintf(full, sizeof(full), "(%s) >'%s/log' 2>&1", cmd, dir);
	return system(full);
}

static void show_log(void)
{
	char path[600], line[512];
	snprintf(path, sizeof(path), "%s/log", dir);
	FILE *f = fopen(path, "r");
	for (int i = 0; f && i < 20 && fgets(line, sizeof(line), f); i++)
		tap_diag("%s", strtok(line, "\n") ? line : "");
	if (f)
		fclose(f);
}

static void write_file(const char *name, const char *text)
{
	char path[600];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	if (!f || fputs(text, f) < 0 || fclose(f))
		tap_bail("cannot write %s", path);
}

static const char program[] =
	"#include \"lazyvm.h\"\n"
	"int main(void) { return lvm_version(0) == LAZYVM_VERSION_NUMBER ? 0 : 1; }\n";

/* The first of the candidates that runs, or NULL. */
static const char *find_compiler(const char *env, const char *const *candidates)
{
	const char *c = getenv(env);
	if (c && *c)
		return c;
	for (int i = 0; candidates[i]; i++) {
		char cmd[256];
		snprintf(cmd, sizeof(cmd), "command -v %s", candidates[i]);
		if (!sh(cmd))
			return candidates[i];
	}
	return NULL;
}

int main(void)
{
	tap_plan(3);
	const char *build = getenv("LAZYVM_BUILD");
	snprintf(inc, sizeof(inc), "%s/../include", build ? build : "build");
	if (!mkdtemp(dir))
		tap_bail("mkdtemp");
	write_file("alone.c", program);
	write_file("alone.cc", program);

	static const char *const ccs[] = { "cc", "gcc", "clang", NULL };
	static const char *const cxxs[] = { "c++", "g++", "clang++", NULL };
	const char *cc = find_compiler("CC", ccs), *cxx = find_compiler("CXX", cxxs);
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "%s -std=c11 -pedantic -Wall -Wextra -Werror -I'%s' -c '%s/alone.c' "
		 "-o '%s/alone.o'", cc ? cc : "cc", inc, dir, dir);
	if (!tap_ok(!sh(cmd), "lazyvm.h alone compiles as C11 (-pedantic -Wall -Wextra -Werror, %s)",
		    cc ? cc : "cc"))
		show_log();

	if (!cxx) {
		tap_skip("lazyvm.h as C++", "no C++ compiler (c++, g++, clang++; or set CXX)");
		tap_skip("C++ caller links to the C symbols", "no C++ compiler");
	} else {
		snprintf(cmd, sizeof(cmd), "%s -std=c++11 -pedantic -Wall -Wextra -Werror -I'%s' "
			 "-c '%s/alone.cc' -o '%s/alone-cxx.o'", cxx, inc, dir, dir);
		bool built = tap_ok(!sh(cmd), "lazyvm.h alone compiles as C++11 (-pedantic -Wall "
				    "-Wextra -Werror, %s)", cxx);
		if (!built)
			show_log();
		/* extern "C": an undefined, unmangled lvm_version in the object. */
		snprintf(cmd, sizeof(cmd), "nm -u '%s/alone-cxx.o' | grep -qx ' *U lvm_version'", dir);
		tap_ok(built && !sh(cmd), "a C++ caller references the C symbol lvm_version (extern \"C\")");
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd))
		tap_diag("could not remove %s", dir);
	return tap_done();
}
