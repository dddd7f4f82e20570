/* SPDX-License-Identifier: MIT */
/*
 * The programs in examples/ (built against liblazyvm.so alone) run and do
 * what they say: the custom source serves every page right, the lazy
 * restore's memory hashes like its image, and the Firecracker page server
 * serves a VM that a Firecracker stand-in (src/fc/client.c) connects.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <sys/wait.h>

#include "fc/fc.h"
#include "lazyvm.h"
#include "tap.h"
#include "testlib.h"

#define IMG_SIZE (8u << 20)

static char dir[64], img[96], sock[96];

/* Start build/examples/NAME with args; its stdout on *out.  pid or -1. */
static pid_t example_start(const char *name, const char *a1, const char *a2, FILE **out)
{
	char path[512];
	const char *build = getenv("LAZYVM_BUILD");
	snprintf(path, sizeof(path), "%s/examples/%s", build ? build : "build", name);
	int p[2];
	if (pipe(p))
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		dup2(p[1], 1);
		close(p[0]);
		execl(path, name, a1, a2, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	*out = fdopen(p[0], "r");
	if (pid > 0)
		tap_watch_pid(pid);
	return pid;
}

static int example_wait(pid_t pid)
{
	int st = 0;
	waitpid(pid, &st, 0);
	tap_unwatch_pid(pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* The whole output of an example that runs to its end; its exit status. */
static int example_run(const char *name, const char *a1, char *buf, size_t len)
{
	FILE *f;
	pid_t pid = example_start(name, a1, NULL, &f);
	if (pid < 0 || !f)
		return -1;
	size_t n = fread(buf, 1, len - 1, f);
	while (n && buf[n - 1] == '\n')
		n--;
	buf[n] = 0;
	fclose(f);
	return example_wait(pid);
}

static uint64_t fnv1a(const uint8_t *p, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

static void custom_source(void)
{
	char out[512];
	int st = example_run("custom-source", "512", out, sizeof(out));
	tap_ok(st == 0 && strstr(out, "512 pages, 0 wrong"),
	       "custom-source: every page from the custom source (exit %d: %s)", st, out);
}

static void lazy_restore(uint64_t want)
{
	char out[512], expect[64];
	int st = example_run("lazy-restore", img, out, sizeof(out));
	snprintf(expect, sizeof(expect), "fnv1a %016" PRIx64, want);
	tap_ok(st == 0 && strstr(out, expect),
	       "lazy-restore: the program's memory hashes like the image (%s; exit %d: %s)",
	       expect, st, out);
}

static void fc_page_server(void)
{
	FILE *f;
	char line[512] = "", err[256] = "";
	pid_t pid = example_start("fc-page-server", sock, img, &f);
	/* Its first line says it listens: the event the client waits for. */
	bool up = pid > 0 && f && fgets(line, sizeof(line), f) && strstr(line, "listening");
	struct lvm_mem_opts mo = { .struct_size = sizeof(mo), .backing = LVM_BACKING_ANON,
				   .size = IMG_SIZE, .kvm_vm_fd = -1 };
	struct lvm_mem *mem = NULL;
	struct fc_client *c = NULL;
	int ret = up ? lvm_mem_create(&mo, &mem) : -EIO;
	if (!ret)
		ret = fc_client_connect(sock, mem, NULL, NULL, &c, err, sizeof(err));
	int64_t bad = ret ? 0 : pattern_check(lvm_mem_addr(mem), 0, IMG_SIZE);
	tap_ok(!ret && bad < 0, "fc-page-server: the VM's memory equals the memory file "
	       "(%d %s, first bad byte %lld)", ret, err, (long long)bad);
	fc_client_close(c);	/* the VM is gone: the server reports and exits */
	if (!f || !fgets(line, sizeof(line), f))
		line[0] = 0;
	line[strcspn(line, "\n")] = 0;
	int st = pid > 0 ? example_wait(pid) : -1;
	tap_ok(st == 0 && strstr(line, "served 1 regions") && strstr(line, " 0 failed"),
	       "fc-page-server: exits 0 when the VM closes the socket (%d: %s)", st, line);
	if (f)
		fclose(f);
	lvm_mem_destroy(mem);
}

int main(void)
{
	tap_plan(4);
	snprintf(dir, sizeof(dir), "/tmp/lazyvm-examples-XXXXXX");
	if (!mkdtemp(dir))
		tap_bail("mkdtemp");
	snprintf(img, sizeof(img), "%s/mem", dir);
	snprintf(sock, sizeof(sock), "%s/sock", dir);
	uint8_t *buf = malloc(IMG_SIZE);
	pattern_fill(buf, 0, IMG_SIZE);
	int fd = open(img, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (!buf || fd < 0 || write(fd, buf, IMG_SIZE) != IMG_SIZE)
		tap_bail("cannot write %s", img);
	close(fd);
	uint64_t want = fnv1a(buf, IMG_SIZE);
	free(buf);

	custom_source();
	lazy_restore(want);
	fc_page_server();
	unlink(img);
	unlink(sock);
	rmdir(dir);
	return tap_done();
}
