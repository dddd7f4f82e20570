/* SPDX-License-Identifier: MIT */
/*
 * lazyvm snapshot push DIR URL | pull URL DIR | verify URL: snapshots in a
 * chunk store (docs/snapshot-format.md, "Chunk store").  URL is
 * s3://bucket/prefix/name, http(s)://host/path/name (read-only) or a local
 * path BASE/NAME (chunks in BASE/chunks/).  Push and pull move only the
 * chunks the destination lacks.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "snapshot/snapshot.h"
#include "store-cli.h"
#include "util/clock.h"

/* A snapshot to push: a classic DIR (state + memory) or a store snapshot. */
struct push_src {
	struct snap_reader *r;
	struct store_cli sc;
	bool is_store;
	uint8_t *state;
	size_t state_len;
	struct lvm_source *mem;
};

static int push_src_open(const char *src, struct push_src *p, char *err, size_t errlen)
{
	memset(p, 0, sizeof(*p));
	if (store_cli_is_store(src)) {
		p->is_store = true;
		int ret = store_cli_open(src, &p->sc, err, errlen);
		if (ret)
			return ret;
		p->state = p->sc.state;
		p->state_len = p->sc.state_len;
		return store_cli_source(&p->sc, 4, &p->mem);
	}
	int ret = snapshot_open(src, &p->r, err, errlen);
	if (ret)
		return ret;
	char path[1100];
	snprintf(path, sizeof(path), "%s/state", src);
	if ((ret = store_read_file(path, &p->state, &p->state_len)) ||
	    (ret = snapshot_memory_source(p->r, &p->mem)))
		snprintf(err, errlen, "%s: %s", path, strerror(-ret));
	return ret;
}

static void push_src_close(struct push_src *p)
{
	lvm_source_destroy(p->mem);
	if (p->is_store)
		store_cli_close(&p->sc);
	else
		free(p->state);
	snapshot_close(p->r);
}

/* Copy src to dst (push and pull are the same move). */
static int store_copy(const char *cmd, const char *src, const char *dst, uint32_t chunk_size)
{
	char err[1600], name[256];
	struct push_src p;
	int ret = push_src_open(src, &p, err, sizeof(err));
	if (ret) {
		push_src_close(&p);
		return cli_fail(store_cli_status(ret), cmd, "%s", err);
	}
	struct objstore *s;
	ret = objstore_open(dst, &s, name, sizeof(name), err, sizeof(err));
	if (ret) {
		push_src_close(&p);
		return cli_fail(store_cli_status(ret), cmd, "%s", err);
	}
	struct store_push_opts o = { .chunk_size = chunk_size, .compress = true };
	if (!chunk_size && p.is_store)
		o.chunk_size = store_source_manifest(p.sc.source)->chunk_size;
	struct store_push_stats st;
	uint64_t t0 = mono_now_ns();
	ret = store_push(s, name, p.state, p.state_len, p.mem, &o, &st, err, sizeof(err));
	double secs = (double)(mono_now_ns() - t0) / 1e9;
	push_src_close(&p);
	if (ret) {
		objstore_close(s);
		return cli_fail(store_cli_status(ret), cmd, "%s", err);
	}
	double mem = (double)st.chunks * (o.chunk_size ? o.chunk_size : 512 << 10) / (1 << 20);
	printf("%s -> %s: %llu chunks: %llu zero, %llu uploaded (%.1f MiB), %llu already there; "
	       "%.2f s (%.0f MiB/s of memory), %llu PUTs\n", src, dst,
	       (unsigned long long)st.chunks, (unsigned long long)st.zero_chunks,
	       (unsigned long long)st.uploaded, (double)st.uploaded_bytes / (1 << 20),
	       (unsigned long long)st.present, secs, secs > 0 ? mem / secs : 0,
	       (unsigned long long)atomic_load(&s->count->puts));
	objstore_close(s);
	return 0;
}

/* push/pull: SRC DST [--chunk-size SIZE]; 0 or -EINVAL. */
static int copy_parse(const char *cmd, int argc, char **argv, uint32_t *cs)
{
	static const struct option opts[] = {
		{ "chunk-size", required_argument, NULL, 's' },
		CLI_OPT_END,
	};
	uint64_t n;
	int ch;
	*cs = 0;
	while ((ch = cli_getopt(cmd, argc, argv, opts)) != -1) {
		if (ch != 's' || cli_parse_size(optarg, &n) || n < MANIFEST_MIN_CHUNK ||
		    n > MANIFEST_MAX_CHUNK || (n & (n - 1)))
			return -EINVAL;
		*cs = (uint32_t)n;
	}
	return optind + 2 == argc ? 0 : -EINVAL;
}

int snapshot_cmd_push(int argc, char **argv)
{
	uint32_t cs;
	if (copy_parse("snapshot push", argc, argv, &cs))
		return cli_fail(EXIT_USAGE, "snapshot push", "usage: lazyvm snapshot push DIR URL "
				"[--chunk-size SIZE (power of two, 4K..64M; default 512K)]");
	return store_copy("snapshot push", argv[optind], argv[optind + 1], cs);
}

int snapshot_cmd_pull(int argc, char **argv)
{
	uint32_t cs;
	if (copy_parse("snapshot pull", argc, argv, &cs))
		return cli_fail(EXIT_USAGE, "snapshot pull", "usage: lazyvm snapshot pull URL DIR");
	return store_copy("snapshot pull", argv[optind], argv[optind + 1], cs);
}

struct store_verify_ctx {
	uint64_t bad;
};

static void store_verify_report(void *ctx, uint64_t idx, const char *msg)
{
	struct store_verify_ctx *v = ctx;
	v->bad++;
	fprintf(stderr, "lazyvm snapshot verify: chunk %llu: %s\n", (unsigned long long)idx, msg);
}

int snapshot_cmd_verify_store(const char *src)
{
	char err[1600];
	struct store_cli sc;
	int ret = store_cli_open(src, &sc, err, sizeof(err));
	if (ret)
		return cli_fail(store_cli_status(ret), "snapshot verify", "%s", err);
	struct store_verify_ctx v = { 0 };
	ret = store_verify(sc.store, &sc.m, store_verify_report, &v);
	uint64_t n = sc.m.present_count, total = sc.m.chunk_count;
	store_cli_close(&sc);
	if (ret == -EBADMSG)
		return cli_fail(EXIT_BADDATA, "snapshot verify", "%s: CORRUPT: %llu of %llu stored "
				"chunks bad", src, (unsigned long long)v.bad, (unsigned long long)n);
	if (ret)
		return cli_fail(1, "snapshot verify", "%s: %s", src, strerror(-ret));
	printf("%s: intact: %llu chunks (%llu stored, each matching its SHA-256, %llu zero)\n", src,
	       (unsigned long long)total, (unsigned long long)n, (unsigned long long)(total - n));
	return 0;
}
