/* SPDX-License-Identifier: MIT */
/*
 * The local-directory backend: object KEY is file BASE/KEY.  Writes go to a
 * temp file beside the target, fsynced, renamed into place: a reader (or a
 * crash) sees the old object or the new one.  Files are 0600: they hold
 * guest memory.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/objstore.h"
#include "store/store.h"

struct local_store {
	char dir[1024];
};

static int local_path(struct local_store *ls, const char *key, char *path, size_t len)
{
	/* Keys come from our own code, but a name from the command line must
	 * not climb out of the store. */
	if (strstr(key, "..") || key[0] == '/')
		return -EINVAL;
	return snprintf(path, len, "%s/%s", ls->dir, key) >= (int)len ? -ENAMETOOLONG : 0;
}

static int local_get(void *ctx, const char *key, uint8_t **buf, size_t *len, char *err,
		     size_t errlen)
{
	char path[2048];
	int ret = local_path(ctx, key, path, sizeof(path));
	if (!ret)
		ret = store_read_file(path, buf, len);
	if (ret)
		snprintf(err, errlen, "%s: %s", path, strerror(-ret));
	return ret;
}

static int local_put(void *ctx, const char *key, const void *buf, size_t len, char *err,
		     size_t errlen)
{
	char path[2048];
	int ret = local_path(ctx, key, path, sizeof(path));
	if (!ret) {
		char *slash = strrchr(path, '/');
		*slash = 0;
		ret = store_mkdirs(path);
		*slash = '/';
	}
	if (!ret)
		ret = store_write_file(path, buf, len, true);
	if (ret)
		snprintf(err, errlen, "%s: %s", path, strerror(-ret));
	return ret;
}

static int local_list(void *ctx, const char *prefix, void (*each)(void *arg, const char *key),
		      void *arg, char *err, size_t errlen)
{
	struct local_store *ls = ctx;
	char dir[2048], key[2048];
	const char *slash = strrchr(prefix, '/');
	size_t dlen = slash ? (size_t)(slash - prefix) : 0;
	snprintf(dir, sizeof(dir), "%s/%.*s", ls->dir, (int)dlen, prefix);
	DIR *d = opendir(dir);
	if (!d) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		return -errno;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(key, sizeof(key), "%.*s%s%s", (int)dlen, prefix, dlen ? "/" : "", de->d_name);
		if (!strncmp(key, prefix, strlen(prefix)))
			each(arg, key);
	}
	closedir(d);
	return 0;
}

static int local_clone(void *ctx, void **out)
{
	struct local_store *c = malloc(sizeof(*c));
	if (!c)
		return -ENOMEM;
	*c = *(struct local_store *)ctx;
	*out = c;
	return 0;
}

static const struct objstore_ops local_ops = {
	.get = local_get, .put = local_put, .list = local_list, .clone = local_clone,
	.destroy = free,
};

int objstore_local_open(const char *dir, struct objstore **out, char *err, size_t errlen)
{
	struct local_store *ls = calloc(1, sizeof(*ls));
	if (!ls)
		return -ENOMEM;
	if (snprintf(ls->dir, sizeof(ls->dir), "%s", dir) >= (int)sizeof(ls->dir)) {
		free(ls);
		snprintf(err, errlen, "%s: path too long", dir);
		return -ENAMETOOLONG;
	}
	int ret = objstore_new(&local_ops, ls, dir, out);
	if (ret)
		free(ls);
	return ret;
}
