/* SPDX-License-Identifier: MIT */
/*
 * lazyvm fc-serve: a Firecracker-compatible UFFD page server (docs/firecracker.md).
 * Option parsing, the memory file (flat raw image or lazyvm snapshot memory,
 * told apart by its header), signals; the protocol is in src/fc*.c.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "fc/fc.h"
#include "snapshot/snapshot.h"
#include "snapshot/ws.h"
#include "metrics.h"
#include "store-cli.h"

static const char usage_text[] =
	"usage: lazyvm fc-serve --socket PATH (--mem-file FILE | --mem-url URL) [--once]\n"
	"                       [--cache DIR] [--cache-max SIZE] [--no-cache]\n"
	"                       [--metrics-listen 127.0.0.1:PORT]\n"
	"                       [--allow-uid UID]... [--prefault all|none]\n"
	"                       [--prefetch ws|all|none]\n"
	"                       [--stats-json FILE] [--threads N] [--ready-fd FD]\n";

static struct fc_server *volatile signal_server;

static void on_signal(int sig)
{
	(void)sig;
	if (signal_server)
		fc_server_stop(signal_server);
}

static void log_line(void *ctx, const char *line)
{
	(void)ctx;
	fprintf(stderr, "lazyvm fc-serve: %s\n", line);
}

struct fc_cli {
	struct fc_server_opts o;
	const char *mem_file, *stats_json;
	const char *mem_url;	/* --mem-url: a snapshot in a chunk store */
	struct store_cache_opts cache;
	struct store_cli sc;
	const char *metrics_listen;	/* Prometheus text on HOST:PORT */
	struct fc_server *server;
	const char *prefetch;	/* --prefetch; NULL: ws when there is one */
	struct ws ws;
	uid_t uids[FC_MAX_MAPPINGS];
	int ready_fd;
};

static int parse_args(int argc, char **argv, struct fc_cli *c)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "mem-file", required_argument, NULL, 'm' },
		{ "once", no_argument, NULL, 'o' },
		{ "allow-uid", required_argument, NULL, 'u' },
		{ "prefault", required_argument, NULL, 'p' },
		{ "stats-json", required_argument, NULL, 'j' },
		{ "threads", required_argument, NULL, 't' },
		{ "ready-fd", required_argument, NULL, 'r' },
		{ "prefetch", required_argument, NULL, 'w' },
		{ "mem-url", required_argument, NULL, 'U' },
		{ "metrics-listen", required_argument, NULL, 'M' },
		STORE_CACHE_OPTIONS,
		CLI_OPT_HELP, CLI_OPT_END,
	};
	unsigned long v;
	int ch;
	while ((ch = cli_getopt("fc-serve", argc, argv, opts)) != -1) {
		switch (ch) {
		case 's': c->o.socket_path = optarg; break;
		case 'm': c->mem_file = optarg; break;
		case 'U': c->mem_url = optarg; break;
		case 'M': c->metrics_listen = optarg; break;
		case 'o': c->o.once = true; break;
		case 'j': c->stats_json = optarg; break;
		case 'u':
			if (c->o.nallow_uids == FC_MAX_MAPPINGS || cli_parse_uint(optarg, 0xfffffffeul, &v))
				return cli_fail(EXIT_USAGE, "fc-serve", "bad --allow-uid '%s'", optarg);
			c->uids[c->o.nallow_uids++] = (uid_t)v;
			break;
		case 'p':
			if (strcmp(optarg, "all") && strcmp(optarg, "none"))
				return cli_fail(EXIT_USAGE, "fc-serve", "--prefault all|none, not '%s'",
						optarg);
			c->o.prefault = !strcmp(optarg, "all");
			break;
		case 'w':
			if (strcmp(optarg, "ws") && strcmp(optarg, "all") && strcmp(optarg, "none"))
				return cli_fail(EXIT_USAGE, "fc-serve", "--prefetch ws|all|none, not "
						"'%s'", optarg);
			c->prefetch = optarg;
			break;
		case 't':
			if (cli_parse_uint(optarg, 64, &v))
				return cli_fail(EXIT_USAGE, "fc-serve", "bad --threads '%s' (0..64)", optarg);
			c->o.threads = (unsigned)v;
			break;
		case 'r':
			if (cli_parse_uint(optarg, 1u << 20, &v))
				return cli_fail(EXIT_USAGE, "fc-serve", "bad --ready-fd '%s'", optarg);
			c->ready_fd = (int)v;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return -1;
		default: {
			int r = store_cache_apply(&c->cache, "fc-serve", ch, optarg);
			if (r == 1)
				break;
			if (!r)
				fputs(usage_text, stderr);
			return EXIT_USAGE;
		}
		}
	}
	if (optind != argc || !c->o.socket_path || !c->mem_file == !c->mem_url) {
		fputs(usage_text, stderr);
		return cli_fail(EXIT_USAGE, "fc-serve", "--socket and one of --mem-file, --mem-url "
				"are required");
	}
	c->o.allow_uids = c->uids;
	return 0;
}

/* Flat raw image (Firecracker's) or lazyvm snapshot memory, by its header. */
static int open_mem_file(const char *path, struct lvm_source **src)
{
	if (snapshot_is_memory_file(path)) {
		int ret = lvm_source_snapshot_open(path, src);
		return ret ? cli_fail(EXIT_BADDATA, "fc-serve", "%s", lvm_last_error()) : 0;
	}
	int ret = lvm_source_file_open(path, 0, src);
	if (ret)
		return cli_fail(ret == -ENOENT ? 1 : EXIT_BADDATA, "fc-serve",
				"--mem-file %s: %s", path, ret == -EINVAL ?
				"not a regular file" : strerror(-ret));
	if (!lvm_source_size(*src)) {
		lvm_source_destroy(*src);
		return cli_fail(EXIT_BADDATA, "fc-serve", "--mem-file %s is empty", path);
	}
	return 0;
}

/* --mem-url: memory from a chunk store through the per-host cache, each
 * chunk fetched at its first fault (prefetch threads fetch the rest). */
static int open_mem_url(struct fc_cli *c)
{
	char err[1600];
	int ret = store_cli_open(c->mem_url, &c->sc, err, sizeof(err));
	if (!ret)
		ret = store_cli_open_cache(&c->sc, &c->cache, err, sizeof(err));
	if (!ret && (ret = store_cli_source(&c->sc, 4, &c->o.src)))
		snprintf(err, sizeof(err), "%s: %s", c->mem_url, strerror(-ret));
	if (ret) {
		store_cli_close(&c->sc);
		return cli_fail(store_cli_status(ret), "fc-serve", "%s", err);
	}
	c->mem_file = c->mem_url;	/* for messages */
	return 0;
}

/*
 * --prefetch (docs/prefetch.md): ws (default when the --mem-file's directory
 * has a working-set file): each VM gets it prefetched, the rest lazy unless
 * --prefault all; all = --prefault all; none: faults only.
 */
static int load_working_set(struct fc_cli *c)
{
	if (c->prefetch && strcmp(c->prefetch, "ws")) {
		c->o.prefault = c->o.prefault || !strcmp(c->prefetch, "all");
		return 0;
	}
	char dir[4096], err[512];
	snprintf(dir, sizeof(dir), "%s", c->mem_file);
	char *slash = strrchr(dir, '/');
	if (slash)
		*slash = 0;
	else
		snprintf(dir, sizeof(dir), ".");
	int ret = ws_load(dir, lvm_source_size(c->o.src), &c->ws, err, sizeof(err));
	if (ret == -ENOENT && !c->prefetch)
		return 0;
	if (ret)
		return cli_fail(ret == -ENOENT ? 1 : EXIT_BADDATA, "fc-serve", "--prefetch ws: %s",
				err);
	c->o.ws = &c->ws;
	return 0;
}

static void metric(FILE *f, const char *name, const char *type, const char *help,
		   double v)
{
	fprintf(f, "# HELP lazyvm_%s %s\n# TYPE lazyvm_%s %s\nlazyvm_%s %.17g\n", name, help,
		name, type, name, v);
}

static void render_store(struct fc_cli *c, FILE *f)
{
	const struct chunk_fetch_stats *st = store_source_stats(c->sc.source);
	fprintf(f, "# HELP lazyvm_chunk_bytes_total Chunk content served, by where it came "
		"from.\n# TYPE lazyvm_chunk_bytes_total counter\n"
		"lazyvm_chunk_bytes_total{source=\"cache\"} %llu\n"
		"lazyvm_chunk_bytes_total{source=\"store\"} %llu\n",
		(unsigned long long)st->cache_bytes, (unsigned long long)st->store_content_bytes);
	metric(f, "store_received_bytes_total", "counter", "Bytes received from the store "
	       "(compressed chunk objects).", (double)st->store_bytes);
	uint64_t hits = st->cache_chunks, all = hits + st->store_chunks;
	metric(f, "cache_hits_total", "counter", "Chunks served from the host cache.",
	       (double)hits);
	metric(f, "cache_misses_total", "counter", "Chunks fetched from the store.",
	       (double)st->store_chunks);
	metric(f, "cache_hit_ratio", "gauge", "Cache hits over chunk fetches (0 before any).",
	       all ? (double)hits / (double)all : 0);
	metric(f, "store_bad_bodies_total", "counter", "Bodies that failed their hash and were "
	       "fetched again.", (double)st->bad_bodies);
	metric(f, "store_errors_total", "counter", "Chunks that could not be fetched within the "
	       "retries.", (double)st->errors);
	fprintf(f, "# HELP lazyvm_chunk_fetch_seconds Latency of a chunk fetch on a fault or "
		"prefetch (cache or store).\n# TYPE lazyvm_chunk_fetch_seconds histogram\n");
	uint64_t cum = 0;
	for (unsigned b = 0; b < CHUNK_FETCH_BUCKETS; b++) {
		cum += st->latency[b];
		if (b < CHUNK_FETCH_BUCKETS - 1)
			fprintf(f, "lazyvm_chunk_fetch_seconds_bucket{le=\"%g\"} %llu\n",
				chunk_fetch_bucket_s[b], (unsigned long long)cum);
		else
			fprintf(f, "lazyvm_chunk_fetch_seconds_bucket{le=\"+Inf\"} %llu\n",
				(unsigned long long)cum);
	}
	fprintf(f, "lazyvm_chunk_fetch_seconds_sum %.9f\nlazyvm_chunk_fetch_seconds_count %llu\n",
		(double)st->fetch_ns_total / 1e9, (unsigned long long)cum);
}

static void render_metrics(void *ctx, FILE *f)
{
	struct fc_cli *c = ctx;
	struct fc_totals t;
	fc_server_totals(c->server, &t);
	metric(f, "vms_served_total", "counter", "VMs whose memory was served.",
	       (double)t.vms_served);
	metric(f, "vms_active", "gauge", "VMs being served now.", (double)t.vms_active);
	metric(f, "vms_refused_total", "counter", "Connections refused (peer or message).",
	       (double)t.vms_refused);
	metric(f, "faults_total", "counter", "Page faults read.", (double)t.faults);
	fprintf(f, "# HELP lazyvm_pages_total Pages installed, by how.\n"
		"# TYPE lazyvm_pages_total counter\n"
		"lazyvm_pages_total{how=\"demand\"} %llu\nlazyvm_pages_total{how=\"background\"} "
		"%llu\nlazyvm_pages_total{how=\"zero\"} %llu\n",
		(unsigned long long)t.pages_demand, (unsigned long long)t.pages_background,
		(unsigned long long)t.pages_zero);
	metric(f, "errors_total", "counter", "Pages that could not be served (poisoned), plus VMs "
	       "that ended with an error.", (double)(t.pages_failed + t.vms_failed));
	fprintf(f, "# HELP lazyvm_fault_latency_seconds Fault read to page installed (the worst "
		"VM's quantiles).\n# TYPE lazyvm_fault_latency_seconds summary\n");
	const uint64_t q[3] = { t.fault_latency.p50_ns, t.fault_latency.p90_ns,
				t.fault_latency.p99_ns };
	const char *qn[3] = { "0.5", "0.9", "0.99" };
	for (int i = 0; i < 3; i++)
		fprintf(f, "lazyvm_fault_latency_seconds{quantile=\"%s\"} %.9f\n", qn[i],
			(double)q[i] / 1e9);
	fprintf(f, "lazyvm_fault_latency_seconds_count %llu\n",
		(unsigned long long)t.fault_latency.count);
	if (c->sc.source)
		render_store(c, f);
}

static void install_signals(struct fc_server *s)
{
	struct sigaction sa = { .sa_handler = on_signal };
	sigemptyset(&sa.sa_mask);
	signal_server = s;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

static void signal_ready(int fd)
{
	if (fd <= 0)
		return;
	if (write(fd, "ready\n", 6) != 6) {
		/* the waiter went away; serving goes on */
	}
	close(fd);
}

int cmd_fc_serve(int argc, char **argv)
{
	struct fc_cli c = { .ready_fd = -1 };
	c.o.log = log_line;
	int ret = parse_args(argc, argv, &c);
	if (ret)
		return ret < 0 ? 0 : ret;
	ret = c.mem_url ? open_mem_url(&c) : open_mem_file(c.mem_file, &c.o.src);
	if (!ret && !c.mem_url && (ret = load_working_set(&c)))
		lvm_source_destroy(c.o.src);
	if (ret)
		return ret;

	struct fc_server *s;
	char err[256];
	ret = fc_server_open(&c.o, &s, err, sizeof(err));
	if (ret) {
		lvm_source_destroy(c.o.src);
		store_cli_close(&c.sc);
		ws_free(&c.ws);
		return cli_fail(1, "fc-serve", "%s", err);
	}
	install_signals(s);
	c.server = s;
	struct metrics *metrics = NULL;
	if (c.metrics_listen &&
	    (ret = metrics_start(c.metrics_listen, render_metrics, &c, &metrics, err, sizeof(err)))) {
		signal_server = NULL;
		fc_server_close(s);
		lvm_source_destroy(c.o.src);
		store_cli_close(&c.sc);
		ws_free(&c.ws);
		return cli_fail(EXIT_USAGE, "fc-serve", "%s", err);
	}
	if (metrics)
		fprintf(stderr, "lazyvm fc-serve: metrics on http://%.*s:%u/metrics\n",
			(int)(strrchr(c.metrics_listen, ':') - c.metrics_listen), c.metrics_listen,
			metrics_port(metrics));
	fprintf(stderr, "lazyvm fc-serve: listening on %s, memory file %s (%llu MiB)%s%s\n",
		c.o.socket_path, c.mem_file,
		(unsigned long long)(lvm_source_size(c.o.src) >> 20), c.o.once ? ", once" : "",
		c.o.ws ? ", working set prefetched" : "");
	signal_ready(c.ready_fd);

	ret = fc_server_run(s);
	int status = ret ? cli_fail(1, "fc-serve", "%s", strerror(-ret)) : 0;
	if (c.stats_json) {
		int sret = fc_server_write_stats(s, c.stats_json);
		if (sret)
			status = cli_fail(1, "fc-serve", "--stats-json %s: %s", c.stats_json,
					  strerror(-sret));
	}
	signal_server = NULL;
	metrics_stop(metrics);
	fc_server_close(s);
	store_cli_print_stats(&c.sc, stderr);	/* its counters live in the source */
	lvm_source_destroy(c.o.src);
	store_cli_close(&c.sc);
	ws_free(&c.ws);
	return status;
}
