/* SPDX-License-Identifier: MIT */
/*
 * liblazyvm.so exports exactly the API: the dynamic symbol table of the
 * built library against the global names of lazyvm.map, both ways, and every
 * exported name is lvm_*.  Also: the runtime version matches the header.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lazyvm.h"
#include "tap.h"

#define MAX_SYMS 512

struct symset { char *name[MAX_SYMS]; int n; };

static void symset_free(struct symset *s)
{
	for (int i = 0; i < s->n; i++)
		free(s->name[i]);
	s->n = 0;
}

static int symset_has(const struct symset *s, const char *name)
{
	for (int i = 0; i < s->n; i++)
		if (!strcmp(s->name[i], name))
			return 1;
	return 0;
}

static void symset_add(struct symset *s, const char *name)
{
	if (s->n < MAX_SYMS && !symset_has(s, name))
		s->name[s->n++] = strdup(name);
}

/* Global names in the map: lines "name;" inside a global: section. */
static int map_read(const char *path, struct symset *out)
{
	FILE *f = fopen(path, "r");
	char line[256];
	int global = 0;
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		char name[128];
		if (strstr(line, "global:"))
			global = 1;
		else if (strstr(line, "local:") || strchr(line, '}'))
			global = 0;
		else if (global && sscanf(line, " %127[A-Za-z0-9_];", name) == 1)
			symset_add(out, name);
	}
	fclose(f);
	return 0;
}

/* Defined dynamic symbols of the .so, version suffix stripped. */
static int so_read(const char *so, struct symset *out)
{
	char cmd[600], line[256];
	snprintf(cmd, sizeof(cmd), "nm -D --defined-only '%s'", so);
	FILE *p = popen(cmd, "r");
	if (!p)
		return -1;
	while (fgets(line, sizeof(line), p)) {
		char addr[64], type[8], name[160];
		if (sscanf(line, "%63s %7s %159s", addr, type, name) != 3)
			continue;
		name[strcspn(name, "@")] = 0;
		if (!strncmp(name, "LAZYVM_", 7))	/* the version nodes */
			continue;
		symset_add(out, name);
	}
	return pclose(p) == 0 ? 0 : -1;
}

int main(void)
{
	const char *build = getenv("LAZYVM_BUILD");
	char so[512], map[512];
	struct symset exp = { 0 }, got = { 0 };
	int missing = 0, extra = 0, foreign = 0;

	tap_plan(5);
	snprintf(so, sizeof(so), "%s/liblazyvm.so", build ? build : "build");
	snprintf(map, sizeof(map), "%s/../lazyvm.map", build ? build : "build");
	if (map_read(map, &exp) || exp.n == 0)
		tap_bail("cannot read %s", map);
	if (so_read(so, &got) || got.n == 0)
		tap_bail("cannot list the symbols of %s (nm from binutils)", so);

	for (int i = 0; i < exp.n; i++)
		if (!symset_has(&got, exp.name[i]) && ++missing)
			tap_diag("in lazyvm.map, not exported: %s", exp.name[i]);
	for (int i = 0; i < got.n; i++) {
		if (!symset_has(&exp, got.name[i]) && ++extra)
			tap_diag("exported, not in lazyvm.map: %s", got.name[i]);
		if (strncmp(got.name[i], "lvm_", 4) && ++foreign)
			tap_diag("exported name outside the lvm_ namespace: %s", got.name[i]);
	}
	tap_ok(missing == 0, "every name in lazyvm.map is exported (%d names)", exp.n);
	tap_ok(extra == 0, "nothing exported beyond lazyvm.map (%d exported)", got.n);
	tap_ok(foreign == 0, "every exported name is lvm_*");

	const char *vs = NULL;
	unsigned v = lvm_version(&vs);
	tap_ok(v == LAZYVM_VERSION_NUMBER, "lvm_version() %#x == LAZYVM_VERSION_NUMBER %#x",
	       v, LAZYVM_VERSION_NUMBER);
	tap_ok(vs && !strcmp(vs, LAZYVM_VERSION), "version string \"%s\"", vs ? vs : "(null)");
	symset_free(&exp);
	symset_free(&got);
	return tap_done();
}
