/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "store-cli.h"

bool store_cli_is_store(const char *src)
{
	if (objstore_is_url(src))
		return true;
	char p[1100];
	struct stat st;
	snprintf(p, sizeof(p), "%s/memory", src);
	if (!stat(p, &st))
		return false;
	snprintf(p, sizeof(p), "%s/manifest", src);
	return !stat(p, &st);
}

int store_cli_open(const char *src, struct store_cli *sc, char *err, size_t errlen)
{
	memset(sc, 0, sizeof(*sc));
	int ret = objstore_open(src, &sc->store, sc->name, sizeof(sc->name), err, errlen);
	if (!ret)
		ret = store_load_manifest(sc->store, sc->name, &sc->m, err, errlen);
	if (!ret)
		ret = store_load_state(sc->store, sc->name, &sc->state, &sc->state_len, err, errlen);
	if (!ret)
		memcpy(sc->id, sc->m.id, sizeof(sc->id));
	if (!ret && (sc->state_len < 32 || memcmp(sc->state + 16, sc->m.id, 16))) {
		snprintf(err, errlen, "%s: state and manifest are of different snapshots", src);
		ret = -EBADMSG;
	}
	if (ret)
		store_cli_close(sc);
	return ret;
}

int store_cache_apply(struct store_cache_opts *co, const char *cmd, int ch, const char *val)
{
	switch (ch) {
	case STORE_OPT_CACHE:
		co->dir = val;
		return 1;
	case STORE_OPT_NO_CACHE:
		co->off = true;
		return 1;
	case STORE_OPT_CACHE_MAX:
		if (cli_parse_size(val, &co->max_bytes) || !co->max_bytes)
			return cli_fail(EXIT_USAGE, cmd, "--cache-max: bad size '%s'", val);
		return 1;
	default:
		return 0;
	}
}

int store_cli_open_cache(struct store_cli *sc, const struct store_cache_opts *co, char *err,
			 size_t errlen)
{
	if (co->off)
		return 0;
	return chunk_cache_open(co->dir ? co->dir : CHUNK_CACHE_DEFAULT_DIR, co->max_bytes,
				&sc->cache, err, errlen);
}

static void store_cli_on_error(void *ctx, const char *msg)
{
	struct store_cli *sc = ctx;
	snprintf(sc->first_error, sizeof(sc->first_error), "%s", msg);
	fprintf(stderr, "lazyvm: %s\n", msg);
}

int store_cli_source(struct store_cli *sc, unsigned prefetch_threads, struct lvm_source **out)
{
	struct store_source_opts o = { .prefetch_threads = prefetch_threads,
				       .on_error = store_cli_on_error, .on_error_ctx = sc };
	return store_source_create(&sc->m, sc->store, sc->cache, &o, out, &sc->source);
}

int store_cli_state_dir(struct store_cli *sc, char *err, size_t errlen)
{
	snprintf(sc->state_dir, sizeof(sc->state_dir), "/tmp/lazyvm-state.XXXXXX");
	if (!mkdtemp(sc->state_dir)) {
		snprintf(err, errlen, "mkdtemp: %s", strerror(errno));
		sc->state_dir[0] = 0;
		return -errno;
	}
	char p[128];
	snprintf(p, sizeof(p), "%s/state", sc->state_dir);
	int ret = store_write_file(p, sc->state, sc->state_len, false);
	if (ret)
		snprintf(err, errlen, "%s: %s", p, strerror(-ret));
	return ret;
}

void store_cli_close(struct store_cli *sc)
{
	if (*sc->state_dir) {
		char p[128];
		snprintf(p, sizeof(p), "%s/state", sc->state_dir);
		unlink(p);
		rmdir(sc->state_dir);
		sc->state_dir[0] = 0;
	}
	manifest_free(&sc->m);
	free(sc->state);
	sc->state = NULL;
	chunk_cache_close(sc->cache);
	sc->cache = NULL;
	objstore_close(sc->store);
	sc->store = NULL;
}

int store_cli_status(int err)
{
	switch (err) {
	case -ENOENT: case -EBADMSG: case -EPROTO: case -ENODATA: case -EACCES: case -EINVAL:
		return EXIT_BADDATA;
	default:
		return 1;
	}
}

void store_cli_print_stats(const struct store_cli *sc, FILE *f)
{
	if (!sc->source)
		return;
	const struct chunk_fetch_stats *st = store_source_stats(sc->source);
	fprintf(f, "lazyvm: %s: %llu chunks from the store (%.1f MiB, %llu GETs), %llu from the "
		"cache, %llu bad bodies refetched\n", sc->name,
		(unsigned long long)st->store_chunks, (double)st->store_bytes / (1 << 20),
		(unsigned long long)atomic_load(&sc->store->count->gets),
		(unsigned long long)st->cache_chunks, (unsigned long long)st->bad_bodies);
}
