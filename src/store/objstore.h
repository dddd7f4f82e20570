/* SPDX-License-Identifier: MIT */
/*
 * Where snapshots and chunks are kept: a flat namespace of objects under a
 * base location.  A snapshot URL names base + snapshot:
 *
 *   /srv/snaps/vm1            base /srv/snaps, snapshot vm1 (a local directory)
 *   s3://bucket/prefix/vm1    base s3://bucket/prefix (S3, SigV4; src/remote/)
 *   https://host/path/vm1     base https://host/path (read-only, unsigned)
 *
 * Objects: NAME/state, NAME/manifest for each snapshot and chunks/HEX for
 * every chunk (HEX = SHA-256 of its content), shared by all snapshots under
 * the base: that is where deduplication and diff snapshots come from.
 * Functions return 0 or -errno, with one line in err (errlen bytes).
 */
#ifndef LAZYVM_STORE_OBJSTORE_H
#define LAZYVM_STORE_OBJSTORE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/sha256.h"

struct objstore;

struct objstore_ops {
	/* The whole object, malloc'd; -ENOENT when it does not exist. */
	int (*get)(void *ctx, const char *key, uint8_t **buf, size_t *len, char *err,
		   size_t errlen);
	/* Create or replace atomically (readers see old or new, never half). */
	int (*put)(void *ctx, const char *key, const void *buf, size_t len, char *err,
		   size_t errlen);
	/* each(arg, key) for every object whose key starts with prefix. */
	int (*list)(void *ctx, const char *prefix, void (*each)(void *arg, const char *key),
		    void *arg, char *err, size_t errlen);
	/* A handle for one more thread (connections are per thread); optional. */
	int (*clone)(void *ctx, void **out);
	void (*destroy)(void *ctx);
};

struct objstore {
	const struct objstore_ops *ops;
	void *ctx;
	bool read_only;
	char base[1024];	/* for messages: "s3://bucket/prefix", "/srv/snaps" */
	/* Requests made and bytes moved, shared by clones. */
	struct objstore_counters *count;
	bool is_clone;
};

struct objstore_counters {
	_Atomic uint64_t gets, puts, lists, get_bytes, put_bytes;
};

/* Split a snapshot URL or path into its store and the snapshot name; the
 * name is copied into name (namelen bytes).  -ENOTSUP for s3/http when
 * built without libcurl, -EINVAL for a malformed URL. */
int objstore_open(const char *url, struct objstore **out, char *name, size_t namelen,
		  char *err, size_t errlen);
/* Another handle on the same store for another thread (shares counters). */
int objstore_clone(struct objstore *s, struct objstore **out);
void objstore_close(struct objstore *s);
bool objstore_is_url(const char *s);

int objstore_get(struct objstore *s, const char *key, uint8_t **buf, size_t *len, char *err,
		 size_t errlen);
int objstore_put(struct objstore *s, const char *key, const void *buf, size_t len, char *err,
		 size_t errlen);
int objstore_list(struct objstore *s, const char *prefix, void (*each)(void *arg, const char *key),
		  void *arg, char *err, size_t errlen);
/* "chunks/HEX" into key (at least 80 bytes). */
void objstore_chunk_key(const uint8_t hash[SHA256_LEN], char *key);

/* Backends. */
/* Wrap a backend's ctx (destroyed with the store; on failure not). */
int objstore_new(const struct objstore_ops *ops, void *ctx, const char *base,
		 struct objstore **out);
int objstore_local_open(const char *dir, struct objstore **out, char *err, size_t errlen);
/* src/remote/: s3:// and http(s)://; -ENOTSUP without libcurl. */
int objstore_remote_open(const char *base, struct objstore **out, char *err, size_t errlen);

#endif
