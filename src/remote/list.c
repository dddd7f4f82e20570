/* SPDX-License-Identifier: MIT */
/* ListObjectsV2, page by page; only <Key>, <IsTruncated> and
 * <NextContinuationToken> are read from the (untrusted) XML. */
#ifdef LVM_HAVE_CURL
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "remote/remote.h"

/* The text of the next <tag>...</tag> at or after *p (advanced past it). */
static bool xml_next(const char **p, const char *tag, char *out, size_t len)
{
	char open[64], close[64];
	snprintf(open, sizeof(open), "<%s>", tag);
	snprintf(close, sizeof(close), "</%s>", tag);
	const char *s = strstr(*p, open);
	const char *e = s ? strstr(s, close) : NULL;
	if (!e)
		return false;
	s += strlen(open);
	snprintf(out, len, "%.*s", (int)(e - s), s);
	*p = e + strlen(close);
	return true;
}

int remote_list(void *ctx, const char *prefix, void (*each)(void *arg, const char *key),
		void *arg, char *err, size_t errlen)
{
	struct remote *r = ctx;
	if (!r->s3)
		return -ENOTSUP;
	char full[1600], enc[4800], tok[2048] = "", etok[6200], query[12000], key[2048];
	snprintf(full, sizeof(full), "%s%s%s", r->prefix, *r->prefix ? "/" : "", prefix);
	remote_encode(full, false, enc, sizeof(enc));
	size_t strip = strlen(full) - strlen(prefix);
	for (;;) {
		remote_encode(tok, false, etok, sizeof(etok));
		/* Sorted by name, as SigV4's canonical query string wants. */
		snprintf(query, sizeof(query), "%s%s%slist-type=2&prefix=%s",
			 *tok ? "continuation-token=" : "", etok, *tok ? "&" : "", enc);
		struct remote_response resp = { 0 };
		int ret = remote_request(r, "GET", NULL, query, NULL, 0, &resp, err, errlen);
		if (ret == -ENOENT && strstr(resp.body ? (char *)resp.body : "", "NoSuchBucket"))
			ret = 0, resp.len = 0;	/* nothing there yet */
		if (ret || !resp.len) {
			free(resp.body);
			return ret;
		}
		const char *p = (const char *)resp.body;
		while (xml_next(&p, "Key", key, sizeof(key)))
			if (strlen(key) >= strip)
				each(arg, key + strip);
		p = (const char *)resp.body;
		char trunc[16] = "";
		xml_next(&p, "IsTruncated", trunc, sizeof(trunc));
		p = (const char *)resp.body;
		bool more = !strcmp(trunc, "true") && xml_next(&p, "NextContinuationToken", tok,
							      sizeof(tok));
		free(resp.body);
		if (!more)
			return 0;
	}
}
#endif
