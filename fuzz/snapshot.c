/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the snapshot reader (src/snapshot/read.c, -memfile.c,
 * -format.c) on arbitrary DIR/state and DIR/memory files.  Input layout:
 * a little-endian u32 n, then n bytes of DIR/state, then DIR/memory.
 * Whatever the bytes, open must fail cleanly or yield a reader whose
 * sections, metadata, verifier and lazy memory source stay inside the files
 * and report corruption as -errno (never a crash, never a silent zero for a
 * chunk that does not check out).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "snapshot/snapshot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];

static int write_file(const char *name, const uint8_t *p, size_t len)
{
	char path[96];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	ssize_t n = len ? write(fd, p, len) : 0;
	close(fd);
	return n == (ssize_t)len ? 0 : -1;
}

static void ignore_bad_chunk(void *ctx, uint64_t idx, uint64_t off, const char *msg)
{
	(void)ctx, (void)idx, (void)off, (void)msg;
}

/* Read every 4 KiB page through the lazy source, as the engine would, in
 * the first 4 MiB: later chunks take the same paths, and reading 64 MiB of a
 * large declared memory made an execution 30 ms. */
static void read_all_pages(struct snap_reader *r)
{
	struct lvm_source *src;
	if (snapshot_memory_source(r, &src))
		return;
	static uint8_t page[4096];
	uint64_t size = lvm_source_size(src);
	for (uint64_t off = 0; off + sizeof(page) <= size && off < (4u << 20); off += sizeof(page))
		lvm_source_read(src, off, page, sizeof(page));
	lvm_source_destroy(src);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!dir[0]) {
		/* tmpfs when there is one: two file writes per execution */
		strcpy(dir, "/dev/shm/lazyvm-fuzz-snapshot.XXXXXX");
		if (!mkdtemp(dir)) {
			strcpy(dir, "/tmp/lazyvm-fuzz-snapshot.XXXXXX");
			if (!mkdtemp(dir))
				abort();
		}
	}
	if (size < 4)
		return 0;
	uint32_t n = (uint32_t)data[0] | (uint32_t)data[1] << 8 | (uint32_t)data[2] << 16 |
		     (uint32_t)data[3] << 24;
	data += 4, size -= 4;
	if (n > size)
		n = (uint32_t)size;
	if (write_file("state", data, n) || write_file("memory", data + n, size - n))
		abort();

	struct snap_reader *r;
	char err[256];
	if (snapshot_open(dir, &r, err, sizeof(err)))
		return 0;
	for (uint32_t type = SNAP_SEC_META; type <= SNAP_SEC_DEVICE_STATE; type++) {
		unsigned count = snapshot_section_count(r, type);
		for (unsigned i = 0; i < count; i++) {
			const void *p;
			size_t len;
			if (!snapshot_section_nth(r, type, i, &p, &len) && len)
				(void)((volatile const uint8_t *)p)[len - 1];
		}
	}
	char val[64];
	snapshot_meta_get(r, "mem", val, sizeof(val));
	snapshot_verify(r, ignore_bad_chunk, NULL);
	read_all_pages(r);
	snapshot_close(r);
	return 0;
}
