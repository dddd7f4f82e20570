/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/objstore.h"

bool objstore_is_url(const char *s)
{
	return !strncmp(s, "s3://", 5) || !strncmp(s, "http://", 7) || !strncmp(s, "https://", 8);
}

int objstore_open(const char *url, struct objstore **out, char *name, size_t namelen,
		  char *err, size_t errlen)
{
	char base[1024];
	size_t n = strlen(url);
	while (n > 1 && url[n - 1] == '/')
		n--;
	if (n >= sizeof(base)) {
		snprintf(err, errlen, "%s: URL too long", url);
		return -EINVAL;
	}
	memcpy(base, url, n);
	base[n] = 0;
	char *slash = strrchr(base, '/');
	size_t scheme = objstore_is_url(base) ? (size_t)(strstr(base, "//") - base) + 2 : 0;
	if (!slash || (size_t)(slash - base) < scheme || !slash[1] || strlen(slash + 1) >= namelen ||
	    !strcmp(slash + 1, "chunks") || !strcmp(slash + 1, "..") || !strcmp(slash + 1, ".")) {
		/* A bare relative name is a snapshot in the current directory. */
		if (!scheme && !slash && n < namelen) {
			snprintf(name, namelen, "%s", base);
			return objstore_local_open(".", out, err, errlen);
		}
		snprintf(err, errlen, "%s: expected BASE/NAME (e.g. s3://bucket/prefix/name)", url);
		return -EINVAL;
	}
	snprintf(name, namelen, "%s", slash + 1);
	if (slash == base)	/* "/name": the root directory */
		slash[1] = 0;
	else
		*slash = 0;
	return scheme ? objstore_remote_open(base, out, err, errlen)
		      : objstore_local_open(base, out, err, errlen);
}

int objstore_clone(struct objstore *s, struct objstore **out)
{
	if (!s->ops->clone) {
		*out = NULL;
		return -ENOTSUP;
	}
	struct objstore *c = malloc(sizeof(*c));
	if (!c)
		return -ENOMEM;
	*c = *s;
	c->is_clone = true;
	int ret = s->ops->clone(s->ctx, &c->ctx);
	if (ret) {
		free(c);
		return ret;
	}
	*out = c;
	return 0;
}

void objstore_close(struct objstore *s)
{
	if (!s)
		return;
	s->ops->destroy(s->ctx);
	if (!s->is_clone)
		free(s->count);
	free(s);
}

int objstore_get(struct objstore *s, const char *key, uint8_t **buf, size_t *len, char *err,
		 size_t errlen)
{
	atomic_fetch_add(&s->count->gets, 1);
	int ret = s->ops->get(s->ctx, key, buf, len, err, errlen);
	if (!ret)
		atomic_fetch_add(&s->count->get_bytes, *len);
	return ret;
}

int objstore_put(struct objstore *s, const char *key, const void *buf, size_t len, char *err,
		 size_t errlen)
{
	if (s->read_only) {
		snprintf(err, errlen, "%s: read-only (http/https); push to s3:// or a directory",
			 s->base);
		return -EROFS;
	}
	atomic_fetch_add(&s->count->puts, 1);
	int ret = s->ops->put(s->ctx, key, buf, len, err, errlen);
	if (!ret)
		atomic_fetch_add(&s->count->put_bytes, len);
	return ret;
}

int objstore_list(struct objstore *s, const char *prefix, void (*each)(void *arg, const char *key),
		  void *arg, char *err, size_t errlen)
{
	if (!s->ops->list)
		return -ENOTSUP;
	atomic_fetch_add(&s->count->lists, 1);
	return s->ops->list(s->ctx, prefix, each, arg, err, errlen);
}

void objstore_chunk_key(const uint8_t hash[SHA256_LEN], char *key)
{
	memcpy(key, "chunks/", 7);
	sha256_hex(hash, key + 7);
}

int objstore_new(const struct objstore_ops *ops, void *ctx, const char *base,
		 struct objstore **out)
{
	struct objstore *s = calloc(1, sizeof(*s));
	if (s)
		s->count = calloc(1, sizeof(*s->count));
	if (!s || !s->count) {
		free(s);
		return -ENOMEM;
	}
	s->ops = ops;
	s->ctx = ctx;
	snprintf(s->base, sizeof(s->base), "%s", base);
	*out = s;
	return 0;
}
