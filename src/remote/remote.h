/* SPDX-License-Identifier: MIT */
/* Internals of the libcurl backend (s3.c, request.c, list.c). */
#ifndef LAZYVM_REMOTE_H
#define LAZYVM_REMOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#define REMOTE_TRIES 5		/* attempts per request (LAZYVM_S3_TRIES overrides) */

struct remote {
	bool s3;			/* signed; else plain http(s), read-only */
	char endpoint[512];		/* scheme://host[:port] (path-style) */
	bool virtual_host;		/* AWS: https://BUCKET.s3.REGION.amazonaws.com */
	char bucket[256];
	char prefix[512];		/* "" or "a/b" (no leading or trailing /) */
	char base[1024];		/* the URL as given, for messages */
	char region[64];
	char userpwd[512];		/* KEY:SECRET */
	char token[2048];		/* AWS_SESSION_TOKEN or "" */
	unsigned tries;
	long connect_timeout_s, stall_timeout_s;
	CURL *curl;
};

struct remote_response {
	long status;
	uint8_t *body;			/* malloc'd, NUL-terminated */
	size_t len, cap;
};

int remote_parse(struct remote *r, const char *base, char *err, size_t errlen);
/*
 * One request with retries.  key NULL: the bucket itself; query: "a=b&c=d"
 * in sorted order (SigV4) or NULL.  0 on 2xx; -ENOENT 404, -EACCES 401/403
 * (not retried; err says to check the credentials), -EEXIST 409, -EIO when
 * the retries are spent; resp keeps the last body (caller frees).
 */
int remote_request(struct remote *r, const char *method, const char *key, const char *query,
		   const void *body, size_t len, struct remote_response *resp, char *err,
		   size_t errlen);
int remote_list(void *ctx, const char *prefix, void (*each)(void *arg, const char *key),
		void *arg, char *err, size_t errlen);
/* Percent-encode everything but A-Za-z0-9-_.~ (and '/' when keep_slash). */
void remote_encode(const char *in, bool keep_slash, char *out, size_t outlen);

#endif
