/* SPDX-License-Identifier: MIT */
/* URL parsing, signing and one request with retries (see s3.c). */
#ifdef LVM_HAVE_CURL
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "remote/remote.h"
#include "util/sha256.h"

static const char *env_or(const char *a, const char *b, const char *dflt)
{
	const char *v = getenv(a);
	if ((!v || !*v) && b)
		v = getenv(b);
	return v && *v ? v : dflt;
}

static int parse_s3(struct remote *r, const char *rest, char *err, size_t errlen)
{
	const char *slash = strchr(rest, '/');
	size_t blen = slash ? (size_t)(slash - rest) : strlen(rest);
	if (blen < 3 || blen >= sizeof(r->bucket)) {
		snprintf(err, errlen, "%s: bad bucket name", r->base);
		return -EINVAL;
	}
	memcpy(r->bucket, rest, blen);
	snprintf(r->prefix, sizeof(r->prefix), "%s", slash ? slash + 1 : "");
	snprintf(r->region, sizeof(r->region), "%s",
		 env_or("AWS_REGION", "AWS_DEFAULT_REGION", "us-east-1"));
	const char *ep = env_or("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", NULL);
	if (ep) {
		snprintf(r->endpoint, sizeof(r->endpoint), "%s", ep);
		size_t n = strlen(r->endpoint);
		while (n && r->endpoint[n - 1] == '/')
			r->endpoint[--n] = 0;
	} else {
		r->virtual_host = true;
		snprintf(r->endpoint, sizeof(r->endpoint), "https://%s.s3.%s.amazonaws.com",
			 r->bucket, r->region);
	}
	const char *id = env_or("AWS_ACCESS_KEY_ID", NULL, NULL);
	const char *secret = env_or("AWS_SECRET_ACCESS_KEY", NULL, NULL);
	if (!id || !secret) {
		snprintf(err, errlen, "%s: no credentials: set AWS_ACCESS_KEY_ID and "
			 "AWS_SECRET_ACCESS_KEY", r->base);
		return -EACCES;
	}
	snprintf(r->userpwd, sizeof(r->userpwd), "%s:%s", id, secret);
	snprintf(r->token, sizeof(r->token), "%s", env_or("AWS_SESSION_TOKEN", NULL, ""));
	return 0;
}

int remote_parse(struct remote *r, const char *base, char *err, size_t errlen)
{
	snprintf(r->base, sizeof(r->base), "%s", base);
	const char *tries = getenv("LAZYVM_S3_TRIES");
	r->tries = tries && atoi(tries) > 0 && atoi(tries) <= 20 ? (unsigned)atoi(tries)
								  : REMOTE_TRIES;
	r->connect_timeout_s = 5;
	r->stall_timeout_s = 15;
	if (!strncmp(base, "s3://", 5)) {
		r->s3 = true;
		return parse_s3(r, base + 5, err, errlen);
	}
	snprintf(r->endpoint, sizeof(r->endpoint), "%s", base);
	return 0;
}

void remote_encode(const char *in, bool keep_slash, char *out, size_t outlen)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	for (const unsigned char *p = (const unsigned char *)in; *p && o + 4 < outlen; p++) {
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
		    *p == '-' || *p == '_' || *p == '.' || *p == '~' || (keep_slash && *p == '/')) {
			out[o++] = (char)*p;
		} else {
			out[o++] = '%';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 15];
		}
	}
	out[o] = 0;
}

static int build_url(struct remote *r, const char *key, const char *query, char *url,
		     size_t len)
{
	char path[2048] = "";
	if (key) {
		char full[1600];
		snprintf(full, sizeof(full), "%s%s%s", r->prefix, *r->prefix ? "/" : "", key);
		remote_encode(full, true, path, sizeof(path));
	}
	int n;
	if (!r->s3)
		n = snprintf(url, len, "%s/%s", r->endpoint, path);
	else if (r->virtual_host)
		n = snprintf(url, len, "%s/%s", r->endpoint, path);
	else
		n = snprintf(url, len, "%s/%s%s%s", r->endpoint, r->bucket, key ? "/" : "", path);
	/* curl 7.88 signs a query key without "=" wrongly: callers write "k=". */
	if (query && n > 0 && (size_t)n < len)
		n += snprintf(url + n, len - (size_t)n, "?%s", query);
	return n > 0 && (size_t)n < len ? 0 : -ENAMETOOLONG;
}

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
	struct remote_response *resp = arg;
	size_t add = size * n;
	if (resp->len + add + 1 > resp->cap) {
		size_t cap = resp->cap ? resp->cap : 64 << 10;
		while (cap < resp->len + add + 1)
			cap *= 2;
		uint8_t *b = realloc(resp->body, cap);
		if (!b)
			return 0;	/* curl fails the transfer */
		resp->body = b;
		resp->cap = cap;
	}
	memcpy(resp->body + resp->len, data, add);
	resp->len += add;
	resp->body[resp->len] = 0;
	return add;
}

struct upload {
	const uint8_t *p;
	size_t left;
};

static size_t on_upload(char *dst, size_t size, size_t n, void *arg)
{
	struct upload *u = arg;
	size_t k = size * n < u->left ? size * n : u->left;
	memcpy(dst, u->p, k);
	u->p += k;
	u->left -= k;
	return k;
}

static struct curl_slist *sign_headers(struct remote *r, const void *body, size_t len,
				       bool upload)
{
	char h[2200];
	/* No "Expect:" to suppress 100-continue: curl 7.88 signs that empty
	 * header, which it does not send, and every request fails with 403. */
	struct curl_slist *l = NULL;
	if (!r->s3)
		return l;
	if (upload) {
		uint8_t d[SHA256_LEN];
		char hex[SHA256_HEX_LEN + 1];
		sha256(body, len, d);
		sha256_hex(d, hex);
		snprintf(h, sizeof(h), "x-amz-content-sha256: %s", hex);
	} else {
		snprintf(h, sizeof(h), "x-amz-content-sha256: UNSIGNED-PAYLOAD");
	}
	l = curl_slist_append(l, h);
	if (*r->token) {
		snprintf(h, sizeof(h), "x-amz-security-token: %s", r->token);
		l = curl_slist_append(l, h);
	}
	return l;
}

/* One attempt: the curl code; resp->status the HTTP status. */
static CURLcode request_once(struct remote *r, const char *method, const char *url,
			     const void *body, size_t len, struct remote_response *resp)
{
	CURL *c = r->curl;
	bool upload = !strcmp(method, "PUT");
	struct upload u = { body, len };
	curl_easy_reset(c);	/* keeps the connection cache */
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	if (getenv("LAZYVM_CURL_VERBOSE"))
		curl_easy_setopt(c, CURLOPT_VERBOSE, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, r->connect_timeout_s);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, r->stall_timeout_s);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, resp);
	if (r->s3) {
		char sigv4[128];
		snprintf(sigv4, sizeof(sigv4), "aws:amz:%s:s3", r->region);
		curl_easy_setopt(c, CURLOPT_AWS_SIGV4, sigv4);
		curl_easy_setopt(c, CURLOPT_USERPWD, r->userpwd);
	}
	if (upload) {
		curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(c, CURLOPT_READFUNCTION, on_upload);
		curl_easy_setopt(c, CURLOPT_READDATA, &u);
		curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len);
	} else if (!strcmp(method, "HEAD")) {
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	}
	struct curl_slist *h = sign_headers(r, body, len, upload);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	resp->len = 0;
	if (resp->body)
		resp->body[0] = 0;
	resp->status = 0;
	CURLcode cc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
	curl_slist_free_all(h);
	return cc;
}

/* The <Code> of an S3 error body, or "". */
static void s3_error_code(const struct remote_response *resp, char *code, size_t len)
{
	const char *b = resp->body ? (const char *)resp->body : "";
	const char *s = strstr(b, "<Code>"), *e = s ? strstr(s, "</Code>") : NULL;
	int n = s && e ? (int)(e - s - 6) : 0;
	snprintf(code, len, "%.*s", n < 0 ? 0 : n, s ? s + 6 : "");
}

static int status_error(struct remote *r, const char *url, const struct remote_response *resp,
			char *err, size_t errlen)
{
	char code[128];
	s3_error_code(resp, code, sizeof(code));
	if (resp->status == 401 || resp->status == 403) {
		snprintf(err, errlen, "%s: access denied (HTTP %ld%s%s): check AWS_ACCESS_KEY_ID and "
			 "AWS_SECRET_ACCESS_KEY", r->base, resp->status, *code ? " " : "", code);
		return -EACCES;
	}
	snprintf(err, errlen, "%s: HTTP %ld%s%s", url, resp->status, *code ? " " : "", code);
	return resp->status == 404 ? -ENOENT : resp->status == 409 ? -EEXIST : -EIO;
}

int remote_request(struct remote *r, const char *method, const char *key, const char *query,
		   const void *body, size_t len, struct remote_response *resp, char *err,
		   size_t errlen)
{
	char url[3000];
	if (build_url(r, key, query, url, sizeof(url))) {
		snprintf(err, errlen, "%s: key too long", r->base);
		return -ENAMETOOLONG;
	}
	for (unsigned attempt = 1; ; attempt++) {
		CURLcode cc = request_once(r, method, url, body, len, resp);
		bool transient = cc != CURLE_OK || resp->status >= 500 || resp->status == 429;
		if (!transient)
			return resp->status / 100 == 2 ? 0 : status_error(r, url, resp, err, errlen);
		if (attempt >= r->tries) {
			if (cc != CURLE_OK)
				snprintf(err, errlen, "%s: %s (%u tries)", url, curl_easy_strerror(cc),
					 attempt);
			else
				snprintf(err, errlen, "%s: HTTP %ld (%u tries)", url, resp->status,
					 attempt);
			return -EIO;
		}
		/* 50 ms, 100, 200, ... capped at 2 s. */
		long ms = 50L << (attempt - 1 < 6 ? attempt - 1 : 6);
		struct timespec ts = { ms > 2000 ? 2 : ms / 1000, (ms > 2000 ? 0 : ms % 1000) * 1000000L };
		nanosleep(&ts, NULL);
	}
}
#endif
