/* SPDX-License-Identifier: MIT */
/*
 * A lazy restore into memory the program owns.
 *
 *   lazy-restore IMAGE
 *
 * The program maps its own guest memory (as a VMM does), hands it to the
 * engine with lvm_engine_add_range(), and starts using it at once: the
 * first touch of each page is served from IMAGE (a flat memory image, or a
 * lazyvm snapshot directory), and the background fill streams the rest.
 * It prints the FNV-1a hash of the memory, which equals the image's.
 * Build: cc lazy-restore.c -llazyvm
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <lazyvm.h>

static uint64_t fnv1a(const uint8_t *p, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

static int open_image(const char *path, struct lvm_source **src)
{
	struct stat st;
	if (!stat(path, &st) && S_ISDIR(st.st_mode))
		return lvm_source_snapshot_open(path, src);
	return lvm_source_file_open(path, 0, src);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s IMAGE\n", argv[0]);
		return 64;
	}
	struct lvm_source *src = NULL;
	int ret = open_image(argv[1], &src);
	if (ret) {
		fprintf(stderr, "lazy-restore: %s: %s %s\n", argv[1], strerror(-ret),
			lvm_last_error());
		return ret == -ENOENT ? 1 : 2;
	}
	size_t size = lvm_source_size(src) & ~(size_t)4095;
	/* The program's own guest memory: untouched, so every page faults. */
	uint8_t *mem = mmap(NULL, size, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (!size || mem == MAP_FAILED) {
		fprintf(stderr, "lazy-restore: empty image or no memory\n");
		lvm_source_destroy(src);
		return 1;
	}

	struct lvm_engine_opts o;
	lvm_engine_opts_init(&o);
	o.background_fill = true;
	struct lvm_range r = { .struct_size = sizeof(r), .addr = mem, .length = size,
			       .backing = LVM_BACKING_ANON, .fd = -1 };
	struct lvm_engine *e = NULL;
	ret = lvm_engine_create(&o, &e);
	if (!ret) {
		int id = lvm_engine_add_range(e, &r, LVM_MODE_MISSING, src, 0);
		ret = id < 0 ? id : lvm_engine_start(e);
	}
	if (ret) {
		fprintf(stderr, "lazy-restore: engine: %s\n", strerror(-ret));
		lvm_engine_destroy(e);
		lvm_source_destroy(src);
		return 1;
	}
	/* Use the memory right away: faults are served as they happen. */
	uint64_t first = fnv1a(mem, 4096);
	ret = lvm_engine_wait_filled(e, -1);
	uint64_t h = fnv1a(mem, size);
	struct lvm_stats st = { .struct_size = sizeof(st) };
	lvm_engine_stop(e);
	lvm_engine_stats(e, &st);
	printf("restored %zu bytes: fnv1a %016" PRIx64 " (first page %016" PRIx64 "); "
	       "%" PRIu64 " pages on demand, %" PRIu64 " in the background\n",
	       size, h, first, st.pages_demand, st.pages_background);
	if (ret)
		fprintf(stderr, "lazy-restore: %s\n", lvm_engine_error(e));
	lvm_engine_destroy(e);	/* unregisters; the mapping stays ours */
	munmap(mem, size);
	lvm_source_destroy(src);
	return ret ? 1 : 0;
}
