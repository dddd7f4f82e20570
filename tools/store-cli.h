/* SPDX-License-Identifier: MIT */
/*
 * The CLI side of the chunk store (src/store/): open a snapshot given as a
 * URL (s3://, http(s)://) or as a directory holding a manifest, and serve
 * its memory through the per-host cache.
 */
#ifndef LAZYVM_STORE_CLI_H
#define LAZYVM_STORE_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cli.h"
#include "store/store.h"

struct store_cli {
	struct objstore *store;
	char name[256];
	struct manifest m;		/* moved into the source by store_cli_source */
	uint8_t id[16];			/* the snapshot id (m's, kept after the move) */
	uint8_t *state;
	size_t state_len;
	struct chunk_cache *cache;	/* NULL: no cache */
	struct store_source *source;	/* after store_cli_source */
	char state_dir[64];		/* a private temp dir holding the state, or "" */
	char first_error[1600];
};

/* Cache options shared by restore, fc-serve and snapshot pull. */
struct store_cache_opts {
	const char *dir;		/* NULL: CHUNK_CACHE_DEFAULT_DIR */
	uint64_t max_bytes;		/* 0: CHUNK_CACHE_DEFAULT_MAX */
	bool off;			/* --no-cache */
};

/* --cache DIR, --cache-max SIZE, --no-cache in a getopt_long table. */
enum { STORE_OPT_CACHE = CLI_OPT_CMD + 0x80, STORE_OPT_CACHE_MAX, STORE_OPT_NO_CACHE };
#define STORE_CACHE_OPTIONS \
	{ "cache", required_argument, NULL, STORE_OPT_CACHE }, \
	{ "cache-max", required_argument, NULL, STORE_OPT_CACHE_MAX }, \
	{ "no-cache", no_argument, NULL, STORE_OPT_NO_CACHE }
#define STORE_CACHE_USAGE \
	"  --cache DIR          snapshots in a chunk store (URL, or BASE/NAME with a\n" \
	"                       manifest): the per-host chunk cache\n" \
	"                       (default " CHUNK_CACHE_DEFAULT_DIR ")\n" \
	"  --cache-max SIZE     its bound (LRU; default 8G); --no-cache: none\n"
/* 1 if ch was one of them (applied), 0 if not, EXIT_USAGE after an error. */
int store_cache_apply(struct store_cache_opts *co, const char *cmd, int ch, const char *val);

/* A URL, or a directory with a manifest and no DIR/memory. */
bool store_cli_is_store(const char *src);
/* Open src: its store, manifest and state.  err has one line. */
int store_cli_open(const char *src, struct store_cli *sc, char *err, size_t errlen);
int store_cli_open_cache(struct store_cli *sc, const struct store_cache_opts *co, char *err,
			 size_t errlen);
/* The lazy memory source over the manifest (taken by the caller). */
int store_cli_source(struct store_cli *sc, unsigned prefetch_threads, struct lvm_source **out);
/* The state in a private temp dir (for vm_restore_open); removed by close. */
int store_cli_state_dir(struct store_cli *sc, char *err, size_t errlen);
void store_cli_close(struct store_cli *sc);
/* Exit status for an open/fetch error: 2 for bad data and credentials. */
int store_cli_status(int err);
/* "NAME: N fetched from the store (X MiB), N from the cache ..." */
void store_cli_print_stats(const struct store_cli *sc, FILE *f);

#endif
