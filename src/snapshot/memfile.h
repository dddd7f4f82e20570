/* SPDX-License-Identifier: MIT */
/* An opened, validated snapshot memory file, shared by reader and sources. */
#ifndef LAZYVM_SNAPSHOT_MEMFILE_H
#define LAZYVM_SNAPSHOT_MEMFILE_H

#include <stdatomic.h>

#include "snapshot/format.h"
#include "snapshot/snapshot.h"

struct snap_memfile {
	_Atomic int refs;
	uint64_t uid;			/* unique per open: keys the per-thread caches */
	char *path;			/* for messages */
	const uint8_t *map;		/* the whole file, read-only */
	size_t map_len;
	struct snap_mem_hdr hdr;
	struct snap_entry *entries;	/* decoded index, hdr.chunk_count long */
	_Atomic uint64_t *verified;	/* bit per chunk: stored CRC checked */
	struct snap_mem_stats stats;
};

/* Map path and validate header and index.  -errno and one line in err. */
int snap_memfile_open(const char *path, struct snap_memfile **out, char *err, size_t errlen);
struct snap_memfile *snap_memfile_get(struct snap_memfile *m);
void snap_memfile_put(struct snap_memfile *m);

/* Check chunk idx's stored CRC (once; later calls are free).  0 or -EBADMSG. */
int snap_memfile_check_chunk(struct snap_memfile *m, uint64_t idx);
/* The chunk's memory into dst (snap_chunk_len bytes), CRCs checked. */
int snap_memfile_read_chunk(struct snap_memfile *m, uint64_t idx, void *dst);
/* Check every chunk; see snapshot_verify(). */
int snap_memfile_verify(struct snap_memfile *m,
			void (*report)(void *ctx, uint64_t idx, uint64_t off, const char *msg),
			void *ctx, struct progress *p);



/* An lvm_source over m (takes its own reference). */
int snap_memfile_source(struct snap_memfile *m, struct lvm_source **out);

#endif
