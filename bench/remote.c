/* SPDX-License-Identifier: MIT */
/*
 * bench/remote [MiB] [repeats]: restoring a snapshot from S3-compatible
 * object storage (a real Ceph radosgw on 127.0.0.1, started here from
 * ../shared/s3-server or $LAZYVM_SHARED) against the same snapshot on local
 * disk, all in one run:
 *
 *   local DIR (classic format), background fill on / off  <- the baseline
 *   s3:// through a proxy adding 0, 1 and 10 ms per request: cold cache
 *   (prefetch on and off) and warm cache
 *
 * Each: time to first instruction and to the guest's end ("working set
 * done", the restore's wall time), min/median/max over the repeats, the
 * median's ratio to local, and bytes fetched.  Also push throughput and the
 * deduplication of a second snapshot of the guest 100 ms into its run.
 * Writes remote.dat and, with gnuplot, remote.png.  Default 1024 MiB, 3.
 */
#include <sys/stat.h>

#include "../tests/s3test.h"
#include "bench.h"
#include "bootlike-snapshot.h"

#define MAX_REPEATS 9
#define ITERATIONS 2000

static char tmp[] = "/tmp/lazyvm-bench-remote.XXXXXX";
static struct s3t_proxy px;
static char proxy_url[64];

static const char *cli(void)
{
	const char *p = getenv("LAZYVM");
	return p ? p : "build/lazyvm";
}

/* Run the CLI with args (a shell word list); its stdout+stderr in out. */
static int run(const char *args, char *out, size_t len)
{
	char cmd[2048];
	snprintf(cmd, sizeof(cmd), "'%s' %s 2>&1", cli(), args);
	FILE *p = popen(cmd, "r");
	size_t n = p ? fread(out, 1, len - 1, p) : 0;
	out[n] = 0;
	return p ? pclose(p) : -1;
}

static double json_num(const char *path, const char *key)
{
	char buf[8192] = "", pat[64];
	FILE *f = fopen(path, "r");
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
	buf[n] = 0;
	if (f)
		fclose(f);
	snprintf(pat, sizeof(pat), "\"%s\": ", key);
	const char *p = strstr(buf, pat);
	return p ? strtod(p + strlen(pat), NULL) : -1;
}

struct sample { double first_ms, done_ms, mib; };

/* One restore of src with extra options: first instruction, end, MiB fetched. */
static int restore_once(const char *src, const char *extra, struct sample *s)
{
	char args[1024], out[16384], json[600];
	snprintf(json, sizeof(json), "%s/stats.json", tmp);
	snprintf(args, sizeof(args), "restore '%s' --stats-json '%s' %s", src, json, extra);
	int st = run(args, out, sizeof(out));
	if (st || !strstr(out, "RESULT")) {
		fprintf(stderr, "bench remote: restore %s %s failed: %s\n", src, extra, out);
		return -1;
	}
	s->first_ms = json_num(json, "first_instruction_us") / 1000.0;
	s->done_ms = json_num(json, "wall_us") / 1000.0;
	const char *p = strstr(out, "chunks from the store (");
	s->mib = p ? strtod(p + 23, NULL) : 0;
	return 0;
}

static double median(const struct sample *v, int n, int which)
{
	double x[MAX_REPEATS];
	for (int i = 0; i < n; i++)
		x[i] = which ? v[i].done_ms : v[i].first_ms;
	return bench_summary(x, n).median;
}

static FILE *dat;
static double base_first, base_done;

/* repeats restores; cold: a fresh cache dir each time (else the warm one). */
static int measure(const char *what, const char *src, const char *opts, bool cold,
		   unsigned latency_us, int repeats, int idx)
{
	struct sample v[MAX_REPEATS];
	atomic_store(&px.latency_us, latency_us);
	for (int r = 0; r < repeats; r++) {
		char extra[900];
		if (cold)
			snprintf(extra, sizeof(extra), "%s --cache '%s/cold%d.%d'", opts, tmp, idx, r);
		else
			snprintf(extra, sizeof(extra), "%s --cache '%s/warm'", opts, tmp);
		if (restore_once(src, extra, &v[r]))
			return -1;
	}
	double f[MAX_REPEATS], d[MAX_REPEATS];
	for (int r = 0; r < repeats; r++)
		f[r] = v[r].first_ms, d[r] = v[r].done_ms;
	char row[160];
	snprintf(row, sizeof(row), "%s: first instruction", what);
	bench_row(row, "ms", f, repeats);
	snprintf(row, sizeof(row), "%s: working set done", what);
	bench_row(row, "ms", d, repeats);
	double mf = median(v, repeats, 0), md = median(v, repeats, 1);
	if (idx == 0)
		base_first = mf, base_done = md;
	printf("  %-44s %10.2fx %9.2fx  (%.1f MiB fetched)\n", "  ratio to local (median)",
	       mf / base_first, md / base_done, v[0].mib);
	fprintf(dat, "%d \"%s\" %.3f %.3f %.3f %.3f\n", idx, what, mf, md, mf / base_first,
		md / base_done);
	return 0;
}

static void plot(void)
{
	FILE *g = bench_gnuplot_open();
	if (!g)
		return;
	fprintf(g, "set terminal png size 1100,550\nset output 'remote.png'\n"
		   "set style data histograms\nset style fill solid 0.8\nset boxwidth 0.8\n"
		   "set xtics rotate by -30\nset ylabel 'median, x local'\nset logscale y\n"
		   "set key top left\nset title 'lazyvm restore from S3 (radosgw, loopback) vs "
		   "local disk'\nplot 'remote.dat' u 5:xtic(2) t 'first instruction', "
		   "'' u 6 t 'working set done'\n");
	if (!pclose(g))
		printf("\nwrote remote.png\n");
}

static int push_and_dedup(const char *snap, uint64_t mib)
{
	char out[16384], args[1024];
	snprintf(args, sizeof(args), "snapshot push '%s' s3://lazyvm-bench/r/a", snap);
	double t0 = bench_now_us();
	if (run(args, out, sizeof(out))) {
		fprintf(stderr, "push: %s\n", out);
		return -1;
	}
	double secs = (bench_now_us() - t0) / 1e6;
	printf("push %llu MiB: %.2f s, %.1f MiB/s of memory\n  %s", (unsigned long long)mib, secs,
	       (double)mib / secs, out);
	/* A second snapshot of the same guest 100 ms into its run (a diff beside
	 * the first, in the same store): how many chunks it shares. */
	snprintf(args, sizeof(args), "restore s3://lazyvm-bench/r/a --no-cache --snapshot b "
		 "--snapshot-after-ms 100 --live");
	t0 = bench_now_us();
	int st = run(args, out, sizeof(out));
	const char *p = strstr(out, "diff snapshot b: ");
	long chunks = -1, dirty = -1, up = -1, refd = -1;
	if (p)
		sscanf(p + 17, "%ld chunks, %ld with a fetched page, %ld uploaded, %ld referenced",
		       &chunks, &dirty, &up, &refd);
	if (st && !strstr(out, "RESULT"))
		printf("second snapshot: %s\n", out);
	else
		printf("second snapshot 100 ms later (diff): %ld chunks, %ld read, %ld uploaded, %ld "
		       "shared with the first: dedup ratio %.3f\n", chunks, dirty, up, refd,
		       chunks > 0 ? (double)refd / (double)(refd + up) : 0);
	return 0;
}

int main(int argc, char **argv)
{
	uint64_t mib = argc > 1 ? strtoull(argv[1], NULL, 0) : 1024;
	int repeats = argc > 2 ? atoi(argv[2]) : 3;
	if (repeats < 1 || repeats > MAX_REPEATS)
		repeats = 3;
	if (!mkdtemp(tmp))
		return 1;
	char why[600];
	if (!s3t_start(tmp, why, sizeof(why))) {
		printf("bench remote: skipped: %s\n", why);
		return 0;
	}
	if (s3t_proxy_start(&px, s3t_endpoint))
		return 1;
	snprintf(proxy_url, sizeof(proxy_url), "http://127.0.0.1:%u", px.port);
	char snap[600];
	snprintf(snap, sizeof(snap), "%s/snap", tmp);
	if (bench_bootlike_snapshot(snap, mib << 20, ITERATIONS))
		return 1;
	if (push_and_dedup(snap, mib))
		return 1;
	setenv("AWS_ENDPOINT_URL", proxy_url, 1);
	dat = fopen("remote.dat", "w");
	printf("\nrestore: boot-like guest, %llu MiB (filled), anon, 2 vCPUs, %d repeats\n",
	       (unsigned long long)mib, repeats);
	bench_header();
	const char *url = "s3://lazyvm-bench/r/a";
	int idx = 0, ret = 0;
	ret |= measure("local, fill on", snap, "", false, 0, repeats, idx++);
	ret |= measure("local, fill off", snap, "--no-background", false, 0, repeats, idx++);
	ret |= measure("s3 0ms, cold, prefetch on", url, "", true, 0, repeats, idx++);
	ret |= measure("s3 0ms, cold, prefetch off", url, "--no-background", true, 0, repeats,
		       idx++);
	ret |= measure("s3 1ms, cold, prefetch on", url, "", true, 1000, repeats, idx++);
	ret |= measure("s3 1ms, cold, prefetch off", url, "--no-background", true, 1000, repeats,
		       idx++);
	ret |= measure("s3 10ms, cold, prefetch on", url, "", true, 10000, repeats, idx++);
	/* Fill the warm cache once, then measure it. */
	struct sample s;
	char warm[700];
	snprintf(warm, sizeof(warm), "--cache '%s/warm'", tmp);
	ret |= restore_once(url, warm, &s);
	ret |= measure("s3 1ms, warm cache", url, "", false, 1000, repeats, idx++);
	fclose(dat);
	plot();
	s3t_stop();
	char rm[700];
	snprintf(rm, sizeof(rm), "rm -rf '%s'", tmp);
	if (system(rm))
		ret = 1;
	return ret ? 1 : 0;
}
