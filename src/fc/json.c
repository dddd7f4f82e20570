/* SPDX-License-Identifier: MIT */
/*
 * The JSON of Firecracker's handler message: a strict recursive-descent
 * parser for exactly the array of mappings, and its formatter.  Everything
 * it reads comes from another process, so every byte is bounds-checked,
 * nesting is limited and numbers are range-checked; fuzz/json.c runs it
 * under libFuzzer.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "fc/fc.h"

struct jp {
	const char *s;
	size_t len, pos;
	char *err;
	size_t errlen;
};

/* Record the first error; returns ret so callers can `return jp_fail(...)`. */
__attribute__((format(printf, 3, 4)))
static int jp_fail(struct jp *p, int ret, const char *fmt, ...)
{
	if (ret == -ENODATA)
		fmt = "message ends before the mappings array does";
	if (p->err && p->errlen) {
		int n = snprintf(p->err, p->errlen, "byte %zu: ", p->pos);
		va_list ap;
		va_start(ap, fmt);
		if (n >= 0 && (size_t)n < p->errlen)
			vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return ret;
}

static void jp_ws(struct jp *p)
{
	while (p->pos < p->len && strchr(" \t\r\n", p->s[p->pos]) && p->s[p->pos])
		p->pos++;
}

/* Skip whitespace; the next byte, or -1 at the end of the input. */
static int jp_peek(struct jp *p)
{
	jp_ws(p);
	return p->pos < p->len ? (unsigned char)p->s[p->pos] : -1;
}

static int jp_expect(struct jp *p, char c)
{
	int got = jp_peek(p);
	if (got < 0)
		return jp_fail(p, -ENODATA, "truncated");
	if (got != c)
		return jp_fail(p, -EBADMSG, "expected '%c'", c);
	p->pos++;
	return 0;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/*
 * A string at p->pos.  Its decoded ASCII form goes into key (NUL-terminated)
 * when it fits and has no escapes beyond ASCII; otherwise key is "" (no known
 * key is long or non-ASCII, so such a key is simply unknown).
 */
static int jp_string(struct jp *p, char *key, size_t keylen)
{
	size_t k = 0;
	bool fits = true;
	int ret = jp_expect(p, '"');
	if (ret)
		return ret;
	for (;;) {
		if (p->pos >= p->len)
			return jp_fail(p, -ENODATA, "truncated");
		unsigned char c = (unsigned char)p->s[p->pos++];
		if (c == '"')
			break;
		if (c < 0x20)
			return jp_fail(p, -EBADMSG, "control character in a string");
		if (c == '\\') {
			if (p->pos >= p->len)
				return jp_fail(p, -ENODATA, "truncated");
			c = (unsigned char)p->s[p->pos++];
			if (c == 'u') {
				unsigned v = 0;
				for (int i = 0; i < 4; i++, p->pos++) {
					if (p->pos >= p->len)
						return jp_fail(p, -ENODATA, "truncated");
					int h = hexval((unsigned char)p->s[p->pos]);
					if (h < 0)
						return jp_fail(p, -EBADMSG, "bad \\u escape");
					v = v << 4 | (unsigned)h;
				}
				if (v >= 0x80 || v == 0)
					fits = false;
				c = (unsigned char)v;
			} else if (strchr("\"\\/bfnrt", c) && c) {
				static const char from[] = "bfnrt", to[] = "\b\f\n\r\t";
				const char *f = strchr(from, c);
				if (f)
					c = (unsigned char)to[f - from];
			} else {
				return jp_fail(p, -EBADMSG, "bad escape '\\%c'", c >= 0x20 && c < 0x7f ? c : '?');
			}
		}
		if (k + 1 < keylen)
			key[k++] = (char)c;
		else
			fits = false;
	}
	if (keylen)
		key[fits ? k : 0] = 0;
	return 0;
}

/* A number of any JSON form (value of an unknown key): checked, ignored. */
static int jp_skip_number(struct jp *p)
{
	if (p->pos < p->len && p->s[p->pos] == '-')
		p->pos++;
	size_t digits = p->pos;
	while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
		p->pos++;
	if (p->pos == digits)
		return jp_fail(p, p->pos >= p->len ? -ENODATA : -EBADMSG, "bad number");
	if (p->s[digits] == '0' && p->pos - digits > 1)
		return jp_fail(p, -EBADMSG, "number with a leading zero");
	if (p->pos < p->len && p->s[p->pos] == '.') {
		size_t f = ++p->pos;
		while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
			p->pos++;
		if (p->pos == f)
			return jp_fail(p, p->pos >= p->len ? -ENODATA : -EBADMSG, "bad fraction");
	}
	if (p->pos < p->len && (p->s[p->pos] | 0x20) == 'e') {
		p->pos++;
		if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-'))
			p->pos++;
		size_t x = p->pos;
		while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
			p->pos++;
		if (p->pos == x)
			return jp_fail(p, p->pos >= p->len ? -ENODATA : -EBADMSG, "bad exponent");
	}
	/* A number at the very end may still be growing. */
	return p->pos >= p->len ? jp_fail(p, -ENODATA, "truncated") : 0;
}

/* The value of a known key: a non-negative integer that fits in 64 bits. */
static int jp_u64(struct jp *p, uint64_t *out)
{
	if (jp_peek(p) < 0)
		return jp_fail(p, -ENODATA, "truncated");
	size_t start = p->pos;
	uint64_t v = 0;
	while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') {
		unsigned d = (unsigned)(p->s[p->pos] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return jp_fail(p, -EBADMSG, "number does not fit in 64 bits");
		v = v * 10 + d;
		p->pos++;
	}
	if (p->pos == start)
		return jp_fail(p, -EBADMSG, "expected a non-negative integer");
	if (p->pos - start > 1 && p->s[start] == '0')
		return jp_fail(p, -EBADMSG, "number with a leading zero");
	if (p->pos >= p->len)
		return jp_fail(p, -ENODATA, "truncated");
	if (strchr(".eE", p->s[p->pos]) && p->s[p->pos])
		return jp_fail(p, -EBADMSG, "expected an integer, not a fraction");
	*out = v;
	return 0;
}

static int jp_skip_value(struct jp *p, int depth);

/* [ value, ... ] or { "k": value, ... } of an unknown key's value. */
static int jp_skip_container(struct jp *p, int depth, char open, char close)
{
	if (depth >= FC_MAX_DEPTH)
		return jp_fail(p, -EBADMSG, "nested deeper than %d", FC_MAX_DEPTH);
	p->pos++;	/* open */
	int c = jp_peek(p);
	if (c == close) {
		p->pos++;
		return 0;
	}
	for (;;) {
		int ret = 0;
		if (open == '{') {
			char k[1];
			ret = jp_string(p, k, 0);
			if (!ret)
				ret = jp_expect(p, ':');
		}
		if (!ret)
			ret = jp_skip_value(p, depth + 1);
		if (ret)
			return ret;
		c = jp_peek(p);
		if (c < 0)
			return jp_fail(p, -ENODATA, "truncated");
		p->pos++;
		if (c == close)
			return 0;
		if (c != ',')
			return jp_fail(p, -EBADMSG, "expected ',' or '%c'", close);
	}
}

static int jp_skip_value(struct jp *p, int depth)
{
	int c = jp_peek(p);
	if (c < 0)
		return jp_fail(p, -ENODATA, "truncated");
	if (c == '"')
		return jp_string(p, NULL, 0);
	if (c == '{')
		return jp_skip_container(p, depth, '{', '}');
	if (c == '[')
		return jp_skip_container(p, depth, '[', ']');
	if (c == '-' || (c >= '0' && c <= '9'))
		return jp_skip_number(p);
	static const char *const lit[] = { "true", "false", "null" };
	for (unsigned i = 0; i < 3; i++) {
		size_t n = strlen(lit[i]), have = p->len - p->pos;
		if (lit[i][0] != c)
			continue;
		if (memcmp(p->s + p->pos, lit[i], have < n ? have : n))
			break;
		if (have < n)
			return jp_fail(p, -ENODATA, "truncated");
		p->pos += n;
		return 0;
	}
	return jp_fail(p, -EBADMSG, "expected a value");
}

enum { K_BASE, K_SIZE, K_OFFSET, K_PSZ, K_PSZ_KIB, K_GPA, K_GMEM, K__COUNT };
static const char *const key_names[K__COUNT] = {
	"base_host_virt_addr", "size", "offset", "page_size", "page_size_kib",
	"gpa_start", "is_guest_memfd",
};

/* true or false (is_guest_memfd), as 1 or 0. */
static int jp_bool(struct jp *p, uint64_t *out)
{
	static const char *const lit[2] = { "false", "true" };
	int c = jp_peek(p);
	if (c < 0)
		return jp_fail(p, -ENODATA, "truncated");
	for (unsigned i = 0; i < 2; i++) {
		size_t n = strlen(lit[i]), have = p->len - p->pos;
		if (lit[i][0] != c)
			continue;
		if (memcmp(p->s + p->pos, lit[i], have < n ? have : n))
			break;
		if (have < n)
			return jp_fail(p, -ENODATA, "truncated");
		p->pos += n;
		*out = i;
		return 0;
	}
	return jp_fail(p, -EBADMSG, "expected true or false");
}

static int jp_mapping(struct jp *p, struct fc_mapping *m)
{
	uint64_t v[K__COUNT] = { 0 };
	bool seen[K__COUNT] = { false };
	int ret = jp_expect(p, '{');
	if (ret)
		return ret;
	if (jp_peek(p) == '}')
		return jp_fail(p, -EBADMSG, "empty mapping");
	for (;;) {
		char key[24];
		size_t at = p->pos;
		ret = jp_string(p, key, sizeof(key));
		if (!ret)
			ret = jp_expect(p, ':');
		if (ret)
			return ret;
		int k = 0;
		while (k < K__COUNT && strcmp(key, key_names[k]))
			k++;
		if (k < K__COUNT && seen[k]) {
			p->pos = at;
			return jp_fail(p, -EBADMSG, "\"%s\" given twice", key_names[k]);
		}
		ret = k == K_GMEM ? jp_bool(p, &v[k]) :
		      k < K__COUNT ? jp_u64(p, &v[k]) : jp_skip_value(p, 1);
		if (ret)
			return ret;
		if (k < K__COUNT)
			seen[k] = true;
		int c = jp_peek(p);
		if (c < 0)
			return jp_fail(p, -ENODATA, "truncated");
		p->pos++;
		if (c == '}')
			break;
		if (c != ',')
			return jp_fail(p, -EBADMSG, "expected ',' or '}'");
	}
	for (int k = K_BASE; k <= K_OFFSET; k++)
		if (!seen[k])
			return jp_fail(p, -EBADMSG, "mapping without \"%s\"", key_names[k]);
	if (seen[K_PSZ] && seen[K_PSZ_KIB] && v[K_PSZ] != v[K_PSZ_KIB])
		return jp_fail(p, -EBADMSG, "page_size and page_size_kib disagree");
	*m = (struct fc_mapping){
		.base = v[K_BASE], .size = v[K_SIZE], .offset = v[K_OFFSET],
		/* page_size_kib carries bytes too (Firecracker's old misnomer);
		 * neither key: the first protocol version, 4 KiB pages only. */
		.page_size = seen[K_PSZ] ? v[K_PSZ] : seen[K_PSZ_KIB] ? v[K_PSZ_KIB] : 4096,
		/* Secret-free VMs (feature/secret-hiding): where the region is in
		 * guest physical memory, and whether it is guest_memfd-backed. */
		.gpa_start = v[K_GPA], .has_gpa_start = seen[K_GPA],
		.is_guest_memfd = v[K_GMEM] != 0,
	};
	return 0;
}

int fc_parse_mappings(const char *json, size_t len, struct fc_mapping *out, unsigned max,
		      char *err, size_t errlen)
{
	struct jp p = { json, len, 0, err, errlen };
	unsigned n = 0;
	if (err && errlen)
		err[0] = 0;
	int ret = jp_expect(&p, '[');
	if (ret)
		return ret;
	if (jp_peek(&p) == ']')
		return jp_fail(&p, -EBADMSG, "no mappings");
	for (;;) {
		if (n == max)
			return jp_fail(&p, -E2BIG, "more than %u mappings", max);
		ret = jp_mapping(&p, &out[n]);
		if (ret)
			return ret;
		n++;
		int c = jp_peek(&p);
		if (c < 0)
			return jp_fail(&p, -ENODATA, "truncated");
		p.pos++;
		if (c == ']')
			break;
		if (c != ',')
			return jp_fail(&p, -EBADMSG, "expected ',' or ']'");
	}
	/* Firecracker sends nothing after the array; a NUL terminator is tolerated. */
	jp_ws(&p);
	while (p.pos < p.len && p.s[p.pos] == 0)
		p.pos++;
	if (p.pos != p.len)
		return jp_fail(&p, -EBADMSG, "bytes after the mappings array");
	return (int)n;
}

/* Firecracker's key order; the secret-hiding keys only where they are set. */
static int format_mapping(const struct fc_mapping *m, bool first, char *buf, size_t buflen)
{
	char gpa[40] = "", gmem[32] = "";
	if (m->has_gpa_start)
		snprintf(gpa, sizeof(gpa), ",\"gpa_start\":%" PRIu64, m->gpa_start);
	if (m->is_guest_memfd)
		snprintf(gmem, sizeof(gmem), ",\"is_guest_memfd\":true");
	return snprintf(buf, buflen,
			"%s{\"base_host_virt_addr\":%" PRIu64 ",\"size\":%" PRIu64
			",\"offset\":%" PRIu64 "%s,\"page_size\":%" PRIu64 "%s}",
			first ? "[" : ",", m->base, m->size, m->offset, gpa, m->page_size, gmem);
}

int fc_format_mappings(const struct fc_mapping *m, unsigned n, char *buf, size_t buflen)
{
	size_t at = 0;
	for (unsigned i = 0; i <= n; i++) {
		int w;
		if (i == n)
			w = snprintf(buf + at, buflen - at, n ? "]" : "[]");
		else
			w = format_mapping(&m[i], i == 0, buf + at, buflen - at);
		if (w < 0 || (size_t)w >= buflen - at)
			return -ENOSPC;
		at += (size_t)w;
	}
	return (int)at;
}
