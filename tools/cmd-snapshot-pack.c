/* SPDX-License-Identifier: MIT */
/*
 * lazyvm snapshot pack / unpack: a flat memory image (Firecracker's format)
 * to a snapshot's chunked memory and back.  Both print their throughput:
 * they are also how the format's write and read speed is measured.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "snapshot/snapshot.h"
#include "util/clock.h"
#include "util/progress.h"

int snapshot_cmd_pack(int argc, char **argv);
int snapshot_cmd_unpack(int argc, char **argv);

#define UNPACK_PIECE (2u << 20)

static int pack_parse(int argc, char **argv, struct snap_write_opts *o,
		      const char **image, const char **dir)
{
	static const struct option opts[] = {
		{ "compress", no_argument, NULL, 'c' },
		{ "chunk-size", required_argument, NULL, 's' },
		{ "level", required_argument, NULL, 'l' },
		CLI_OPT_END,
	};
	unsigned long level;
	uint64_t v;
	int ch;
	while ((ch = cli_getopt("snapshot pack", argc, argv, opts)) != -1) {
		if (ch == 'c') {
			o->compress = true;
		} else if (ch == 's') {
			if (cli_parse_size(optarg, &v) || v > UINT32_MAX)
				return -EINVAL;
			o->chunk_size = (uint32_t)v;
		} else if (ch == 'l') {
			if (cli_parse_uint(optarg, 22, &level))
				return -EINVAL;
			o->zstd_level = (int)level;
		} else {
			return -EINVAL;
		}
	}
	if (optind + 2 != argc)
		return -EINVAL;
	*image = argv[optind];
	*dir = argv[optind + 1];
	return 0;
}

static int pack_image(const char *image, const char *dir, const struct snap_write_opts *o)
{
	int fd = open(image, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st))
		return cli_fail(EXIT_BADDATA, "snapshot pack", "%s: %s", image, strerror(errno));
	if (!st.st_size || st.st_size % 4096) {
		close(fd);
		return cli_fail(EXIT_BADDATA, "snapshot pack", "%s: size %lld is not a non-zero "
				"multiple of 4 KiB", image, (long long)st.st_size);
	}
	uint64_t size = (uint64_t)st.st_size;
	void *mem = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (mem == MAP_FAILED)
		return cli_fail(1, "snapshot pack", "%s: mmap: %s", image, strerror(errno));
	struct snap_writer *w;
	int ret = snapshot_writer_open(dir, o, &w);
	if (ret) {
		munmap(mem, size);
		return cli_fail(ret == -ENOTSUP ? EXIT_USAGE : 1, "snapshot pack", "%s: %s", dir,
				ret == -ENOTSUP ? "this lazyvm was built without zstd"
						: strerror(-ret));
	}
	char meta[256];
	int n = snprintf(meta, sizeof(meta), "source=pack\nmem_size=%llu\n",
			 (unsigned long long)size);
	struct progress p;
	progress_init(&p, "pack", size);
	double t0 = mono_now_s();
	ret = snapshot_write_section(w, SNAP_SEC_META, meta, (size_t)n);
	if (!ret)
		ret = snapshot_write_memory(w, mem, size, &p);
	if (ret)
		snapshot_writer_abort(w);
	else
		ret = snapshot_writer_close(w);
	double secs = mono_now_s() - t0;
	progress_done(&p);
	munmap(mem, size);
	if (ret)
		return cli_fail(1, "snapshot pack", "%s: %s", dir, strerror(-ret));
	printf("packed %.1f MiB in %.2f s (%.0f MiB/s, including fsync)\n",
	       (double)size / (1 << 20), secs, secs > 0 ? (double)size / (1 << 20) / secs : 0);
	return 0;
}

int snapshot_cmd_pack(int argc, char **argv)
{
	struct snap_write_opts o = { .chunk_size = 0 };
	const char *image, *dir;
	if (pack_parse(argc, argv, &o, &image, &dir))
		return cli_fail(EXIT_USAGE, "snapshot pack",
				"usage: lazyvm snapshot pack IMAGE DIR [--chunk-size SIZE] "
				"[--compress] [--level N]");
	return pack_image(image, dir, &o);
}

/* Write [0, size) of src into fd, leaving holes where memory is zero. */
static int unpack_copy(struct lvm_source *src, int fd, uint64_t size, struct progress *p)
{
	uint8_t *buf = aligned_alloc(4096, UNPACK_PIECE);
	if (!buf)
		return -ENOMEM;
	int ret = 0;
	for (uint64_t off = 0; off < size && !ret; off += UNPACK_PIECE) {
		size_t len = size - off < UNPACK_PIECE ? (size_t)(size - off) : UNPACK_PIECE;
		ret = lvm_source_read(src, off, buf, len);
		if (!ret && (buf[0] || memcmp(buf, buf + 1, len - 1)) &&
		    pwrite(fd, buf, len, (off_t)off) != (ssize_t)len)
			ret = errno ? -errno : -EIO;
		progress_update(p, off + len);
	}
	free(buf);
	return ret;
}

int snapshot_cmd_unpack(int argc, char **argv)
{
	if (argc != 3)
		return cli_fail(EXIT_USAGE, "snapshot unpack", "usage: lazyvm snapshot unpack DIR IMAGE");
	char err[512];
	struct snap_reader *r;
	struct lvm_source *src = NULL;
	int ret = snapshot_open(argv[1], &r, err, sizeof(err));
	if (ret)
		return cli_fail(EXIT_BADDATA, "snapshot unpack", "%s", err);
	uint64_t size = snapshot_mem_size(r);
	ret = snapshot_memory_source(r, &src);
	snapshot_close(r);
	int fd = ret ? -1 : open(argv[2], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (!ret && (fd < 0 || ftruncate(fd, (off_t)size)))
		ret = -errno;
	struct progress p;
	progress_init(&p, "unpack", size);
	double t0 = mono_now_s();
	if (!ret)
		ret = unpack_copy(src, fd, size, &p);
	double secs = mono_now_s() - t0;
	progress_done(&p);
	if (fd >= 0)
		close(fd);
	lvm_source_destroy(src);
	if (ret == -EBADMSG)
		return cli_fail(EXIT_BADDATA, "snapshot unpack", "%s: corrupt chunk (run "
				"'lazyvm snapshot verify %s')", argv[1], argv[1]);
	if (ret)
		return cli_fail(1, "snapshot unpack", "%s: %s", argv[2], strerror(-ret));
	printf("unpacked %.1f MiB in %.2f s (%.0f MiB/s)\n", (double)size / (1 << 20), secs,
	       secs > 0 ? (double)size / (1 << 20) / secs : 0);
	return 0;
}
