/* SPDX-License-Identifier: MIT */
/*
 * The remote backend of objstore.h over libcurl: s3:// (AWS SigV4 through
 * CURLOPT_AWS_SIGV4) and read-only http(s)://.
 *
 *  - endpoint and credentials as the AWS CLI takes them: AWS_ACCESS_KEY_ID,
 *    AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION (AWS_DEFAULT_REGION),
 *    AWS_ENDPOINT_URL; path-style addressing for a non-AWS endpoint,
 *    virtual-hosted for AWS itself;
 *  - every signed request carries x-amz-content-sha256 (curl 7.88 does not
 *    add it, and S3 refuses the request without): UNSIGNED-PAYLOAD for reads,
 *    the body's real SHA-256 for writes, which the store checks;
 *  - one easy handle per thread (objstore_clone), so connections are kept
 *    alive and requests from different threads run in parallel;
 *  - timeouts (connect, and a stall of the transfer), and retries with
 *    exponential backoff on 5xx, 429, resets, timeouts and short bodies;
 *    403 is not retried: it is the credentials (one line, -EACCES).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/objstore.h"

#ifndef LVM_HAVE_CURL

int objstore_remote_open(const char *base, struct objstore **out, char *err, size_t errlen)
{
	(void)out;
	snprintf(err, errlen, "%s: built without libcurl: no remote snapshots", base);
	return -ENOTSUP;
}

#else

#include <curl/curl.h>
#include <pthread.h>
#include <time.h>

#include "remote/remote.h"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

static void remote_destroy(void *ctx)
{
	struct remote *r = ctx;
	if (r->curl)
		curl_easy_cleanup(r->curl);
	free(r);
}

static int remote_clone(void *ctx, void **out)
{
	struct remote *c = malloc(sizeof(*c));
	if (!c)
		return -ENOMEM;
	*c = *(struct remote *)ctx;
	c->curl = curl_easy_init();
	if (!c->curl) {
		free(c);
		return -ENOMEM;
	}
	*out = c;
	return 0;
}

static int remote_get(void *ctx, const char *key, uint8_t **buf, size_t *len, char *err,
		      size_t errlen)
{
	struct remote *r = ctx;
	struct remote_response resp = { 0 };
	int ret = remote_request(r, "GET", key, NULL, NULL, 0, &resp, err, errlen);
	if (ret) {
		free(resp.body);
		return ret;
	}
	*buf = resp.body ? resp.body : malloc(1);
	*len = resp.len;
	return *buf ? 0 : -ENOMEM;
}

static int remote_put(void *ctx, const char *key, const void *buf, size_t len, char *err,
		      size_t errlen)
{
	struct remote *r = ctx;
	struct remote_response resp = { 0 };
	int ret = remote_request(r, "PUT", key, NULL, buf, len, &resp, err, errlen);
	if (ret == -ENOENT && strstr(resp.body ? (char *)resp.body : "", "NoSuchBucket")) {
		/* First push into a new bucket: create it, then the object. */
		free(resp.body);
		memset(&resp, 0, sizeof(resp));
		ret = remote_request(r, "PUT", NULL, NULL, NULL, 0, &resp, err, errlen);
		if (!ret || ret == -EEXIST) {
			free(resp.body);
			memset(&resp, 0, sizeof(resp));
			ret = remote_request(r, "PUT", key, NULL, buf, len, &resp, err, errlen);
		}
	}
	free(resp.body);
	return ret;
}

static const struct objstore_ops remote_ops = {
	.get = remote_get, .put = remote_put, .list = remote_list, .clone = remote_clone,
	.destroy = remote_destroy,
};

int objstore_remote_open(const char *base, struct objstore **out, char *err, size_t errlen)
{
	pthread_once(&curl_once, curl_init_once);
	struct remote *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	int ret = remote_parse(r, base, err, errlen);
	if (!ret && !(r->curl = curl_easy_init()))
		ret = -ENOMEM;
	if (!ret)
		ret = objstore_new(&remote_ops, r, base, out);
	if (ret) {
		remote_destroy(r);
		return ret;
	}
	(*out)->read_only = !r->s3;
	return 0;
}

#endif
