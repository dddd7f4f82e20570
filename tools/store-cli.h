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

#include "store/store.h"

struct store_cli {
	struct objstore *store;
	char name[256];
	struct manifest m;		/* moved into the source by store_cli_source */
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
