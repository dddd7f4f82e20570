/* SPDX-License-Identifier: MIT */
/*
 * The chunk store in a local directory, no network:
 *  - SHA-256 against the FIPS 180-4 test vectors (one-shot and split), with
 *    the code this CPU uses (SHA-NI or portable); run it with
 *    LAZYVM_SHA256_PORTABLE=1 for the portable code;
 *  - the manifest round-trips, and every corruption of it is refused;
 *  - a chunk object decodes only to the content its name hashes to;
 *  - snapshot push DIR BASE/NAME, then verify and a lazy restore from it
 *    give the uninterrupted RESULT; the classic DIR keeps working;
 *  - diff snapshots (restore SRC --snapshot NAME): of a VM restored lazily,
 *    with and without the background fill, and --live; a chain of two
 *    diffs; each restores to the RESULT, and a diff of a barely-run VM
 *    reads (and uploads) fewer chunks than there are;
 *  - a chunk altered in the store: verify exits 2 naming it, and a restore
 *    stops cleanly (exit 2, no RESULT) instead of running on wrong data.
 */
#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>

#include "store/chunk.h"
#include "store/manifest.h"
#include "tap.h"
#include "util/sha256.h"
#include "vmtest.h"

static char out[16384], err[16384];
static char tmp[] = "/tmp/lazyvm-store-local.XXXXXX";

static void test_sha256(void)
{
	static const struct { const char *in, *hex; } v[] = {
		{ "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" },
		{ "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" },
		{ "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
		  "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1" },
	};
	bool ok = true;
	char hex[65];
	uint8_t d[32];
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		sha256(v[i].in, strlen(v[i].in), d);
		sha256_hex(d, hex);
		ok &= !strcmp(hex, v[i].hex);
	}
	/* A million 'a', fed in uneven pieces. */
	struct sha256 s;
	sha256_init(&s);
	char a[1000];
	memset(a, 'a', sizeof(a));
	for (int n = 0, step = 1; n < 1000000; n += step, step = step % 997 + 1)
		sha256_update(&s, a, (size_t)(1000000 - n < step ? 1000000 - n : step));
	sha256_final(&s, d);
	sha256_hex(d, hex);
	ok &= !strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
	tap_ok(ok, "SHA-256: FIPS 180-4 vectors, one-shot and in uneven pieces");
}

static void test_manifest(void)
{
	uint8_t id[16] = { 1, 2, 3 }, h[32];
	struct manifest m, p;
	manifest_init(&m, id, 10 << 20, 1 << 20);	/* 10 chunks */
	for (uint64_t i = 0; i < 10; i += 3) {
		sha256(&i, sizeof(i), h);
		manifest_set(&m, i, h);
	}
	uint8_t *enc;
	size_t len;
	manifest_encode(&m, &enc, &len);
	const char *why = NULL;
	int r = manifest_parse(enc, len, &p, &why);
	bool same = !r && p.chunk_count == 10 && p.present_count == 4 &&
		    !memcmp(p.present, m.present, 10) && !memcmp(p.hash, m.hash, 10 * 32);
	if (!r)
		manifest_free(&p);
	tap_ok(same, "manifest: encode then parse gives the same chunks and hashes");
	unsigned refused = 0, tried = 0;
	for (size_t i = 0; i < len; i++, tried++) {	/* every byte flipped */
		enc[i] ^= 0x40;
		if (manifest_parse(enc, len, &p, &why))
			refused++;
		else
			manifest_free(&p);
		enc[i] ^= 0x40;
	}
	for (size_t n = 0; n < len; n++, tried++)	/* every truncation */
		if (manifest_parse(enc, n, &p, &why))
			refused++;
		else
			manifest_free(&p);
	tap_ok(refused == tried, "manifest: %u of %u flipped or truncated copies refused", refused,
	       tried);
	free(enc);
	manifest_free(&m);
}

static void test_chunk(void)
{
	uint8_t data[8192], back[8192], *obj, h[32], other[32];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7 / 5);
	size_t olen;
	chunk_encode(data, sizeof(data), true, 1, &obj, &olen, h);
	bool ok = !chunk_decode(obj, olen, h, back, sizeof(back), NULL) &&
		  !memcmp(back, data, sizeof(data));
	memcpy(other, h, 32);
	other[5] ^= 1;
	ok &= chunk_decode(obj, olen, other, back, sizeof(back), NULL) == -EBADMSG;
	ok &= chunk_decode(obj, olen - 1, h, back, sizeof(back), NULL) == -EBADMSG;
	obj[olen - 1] ^= 0xff;
	ok &= chunk_decode(obj, olen, h, back, sizeof(back), NULL) == -EBADMSG;
	free(obj);
	tap_ok(ok, "chunk object: decodes to its content only; another name, a truncation or an "
	       "altered byte is refused");
}

static int lazyvm(const char *const *args)
{
	return vmtest_exec(tmp, args, out, sizeof(out), err, sizeof(err));
}

/* Overwrite bytes in the middle of the largest chunk file under dir. */
static bool corrupt_largest(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char best[1200] = "";
	long best_size = -1;
	while (d && (de = readdir(d))) {
		char p[1200];
		struct stat st;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		if (de->d_name[0] != '.' && !stat(p, &st) && st.st_size > best_size) {
			best_size = st.st_size;
			snprintf(best, sizeof(best), "%s", p);
		}
	}
	if (d)
		closedir(d);
	FILE *f = best_size > 40 ? fopen(best, "r+") : NULL;
	if (!f)
		return false;
	fseek(f, best_size / 2, SEEK_SET);
	fputs("XXXXXXXX", f);
	return !fclose(f);
}

static bool restores_to(const char *snap, uint64_t want)
{
	uint64_t got = 0;
	const char *args[] = { "restore", snap, "--no-cache", NULL };
	int st = lazyvm(args);
	bool have = vmtest_result(out, &got);
	if (st || !have || got != want)
		tap_diag("restore %s: exit %d, RESULT %016llx: %s", snap, st,
			 (unsigned long long)got, err);
	return st == 0 && have && got == want;
}

/* restore src --snapshot name ...; the counts of its summary line. */
static int diff_snapshot(const char *src, const char *name, const char *mode, long *dirty,
			 long *uploaded, long *chunks)
{
	const char *args[] = { "restore", src, "--no-cache", "--snapshot", name,
			       "--snapshot-after-ms", "40", mode, NULL };
	int st = lazyvm(args);
	const char *p = strstr(err, "diff snapshot");
	*chunks = *dirty = *uploaded = -1;
	if (p)
		sscanf(strchr(p, ':') + 2, "%ld chunks, %ld with a fetched page, %ld uploaded",
		       chunks, dirty, uploaded);
	return st;
}

static void test_diff(const char *store, uint64_t want)
{
	char c[720], d[720], e[720];
	snprintf(c, sizeof(c), "%s-c", store);
	snprintf(d, sizeof(d), "%s-d", store);
	snprintf(e, sizeof(e), "%s-e", store);
	long dirty, up, chunks;
	/* Faults only: most chunks never fetched, so most entries are B's. */
	int st = diff_snapshot(store, strrchr(c, '/') + 1, "--no-background", &dirty, &up,
			       &chunks);
	tap_ok(st == 0 && chunks > 0 && dirty >= 0 && dirty < chunks && up <= dirty &&
	       restores_to(c, want),
	       "diff snapshot of a lazily restored VM (faults only): %ld of %ld chunks read, %ld "
	       "uploaded; it restores to the RESULT", dirty, chunks, up);
	st = diff_snapshot(c, strrchr(d, '/') + 1, NULL, &dirty, &up, &chunks);
	tap_ok(st == 0 && restores_to(d, want),
	       "a diff of that diff (a chain of two, background fill on: %ld of %ld chunks read, "
	       "%ld uploaded) restores to the RESULT", dirty, chunks, up);
	uint64_t got = 0;
	st = diff_snapshot(store, strrchr(e, '/') + 1, "--live", &dirty, &up, &chunks);
	bool have = vmtest_result(out, &got);
	if (!tap_ok(st == 0 && have && got == want && restores_to(e, want),
		    "--live diff snapshot: the VM runs on to the RESULT, and the snapshot restores "
		    "to it"))
		tap_diag("live run: exit %d, RESULT %s %016llx; stderr: %s", st, have ? "" : "none",
			 (unsigned long long)got, err);
}

static void test_cli(void)
{
	char snap[700], store[700], chunks[700], cache[700];
	snprintf(snap, sizeof(snap), "%s/snap", tmp);
	snprintf(store, sizeof(store), "%s/store/vm1", tmp);
	snprintf(chunks, sizeof(chunks), "%s/store/chunks", tmp);
	snprintf(cache, sizeof(cache), "%s/cache", tmp);
	uint64_t want = vmtest_model_workload(64ull << 20, 5, 3000000), got = 0;
	const char *run[] = { "run", "--guest", "workload", "--mem", "64M", "--seed", "5",
			      "--iterations", "3000000", "--snapshot", snap, "--snapshot-after-ms",
			      "50", NULL };
	const char *push[] = { "snapshot", "push", snap, store, "--chunk-size", "64K", NULL };
	int st = lazyvm(run);
	if (!st)
		st = lazyvm(push);
	tap_ok(st == 0 && strstr(out, "uploaded"), "run --snapshot, then snapshot push into a "
	       "local chunk store (exit %d)", st);
	const char *verify[] = { "snapshot", "verify", store, NULL };
	st = lazyvm(verify);
	tap_ok(st == 0 && strstr(out, "intact"), "snapshot verify BASE/NAME: every chunk intact");
	const char *restore[] = { "restore", store, "--cache", cache, NULL };
	st = lazyvm(restore);
	bool have = vmtest_result(out, &got);
	tap_ok(st == 0 && have && got == want,
	       "lazy restore from the chunk store: RESULT %016llx == model", (unsigned long long)got);
	const char *classic[] = { "restore", snap, NULL };
	st = lazyvm(classic);
	tap_ok(st == 0 && vmtest_result(out, &got) && got == want,
	       "the classic snapshot directory still restores");
	test_diff(store, want);
	bool c = corrupt_largest(chunks);
	st = lazyvm(verify);
	tap_ok(c && st == 2 && strstr(err, "CORRUPT") && strstr(err, "chunks/"),
	       "a chunk altered in the store: verify exits %d naming it", st);
	const char *nocache[] = { "restore", store, "--no-cache", NULL };
	st = lazyvm(nocache);
	tap_ok(st == 2 && !strstr(out, "RESULT") && strstr(err, "SHA-256"),
	       "restore over the altered chunk stops cleanly (exit %d, no RESULT)", st);
	if (st != 2)
		tap_diag("stderr: %s", err);
}

int main(void)
{
	if (!vmtest_begin("store-local", 300, tmp, 13))
		return 0;
	test_sha256();
	test_manifest();
	test_chunk();
	test_cli();
	vmtest_rmtree(tmp);
	return tap_done();
}
